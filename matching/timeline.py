"""Where a set of ads places a woman, day by day, and where those ads contradict each other.

Every day a crawl saw an ad is a *sighting*: the ad, the day, and the place the ad named that day.
When her ads name different places on the same day, the place that was named most recently wins
(``since``: the day the ad started naming that place), then the place more of her ads name,
then the place code, so the result never depends on input order. That is how an ad left online
after she moved on (a stale, lingering ad) loses to the ad she posted in her new place.

A losing sighting is only *lingering* when it behaves like a forgotten ad: it never wins again
after it started losing, and it stops within :data:`LINGER_DAYS`. Any other losing sighting is a
*contradiction*: these ads put her in two places at once. The linker uses contradictions to keep
apart ads of different women, the trail builder uses the daily winners.

Days are proleptic ordinals (``date.toordinal()``) so that day arithmetic is integer arithmetic.
Places are strings: a CBS municipality code (``GM0363``) or, abroad, a country code (``BE``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Place = str

LINGER_DAYS = 5  # an ad may stay online this many days after she left, without contradiction


@dataclass(frozen=True, slots=True)
class Sighting:
    """One day on which one ad was online and named a place."""

    ad_id: int
    day: int  # date ordinal
    place: Place
    since: int  # first day (ordinal) of the ad's current run of naming this place
    site: str


def place_key(code: str | None, country: str | None) -> Place | None:
    """The place of an observation: its municipality, or its country when abroad.

    A Dutch observation without a municipality says nothing about where she is.
    """
    if code:
        return code
    if country and country != "NL":
        return country
    return None


def ad_sightings(
    ad_id: int,
    site: str,
    days: Iterable[tuple[int, Place | None]],
    posted_on: int | None = None,
) -> list[Sighting]:
    """The sightings of one ad from its observed (day, place) pairs, in day order.

    ``since`` restarts whenever the ad names another place. The first place counts from the
    posting date when the ad shows one that is earlier than the first crawl that saw it.
    """
    sightings: list[Sighting] = []
    current: Place | None = None
    since = 0
    first = True
    for day, place in sorted(days):
        if place is None:
            continue
        if place != current:
            since = day
            if first and posted_on is not None and posted_on < day:
                since = posted_on
            current = place
        first = False
        sightings.append(Sighting(ad_id, day, place, since, site))
    return sightings


def daily_winners(sightings: Iterable[Sighting]) -> dict[int, Place]:
    """The place of each day: newest ``since``, then most ads, then the place code."""
    tally: dict[int, dict[Place, list[int]]] = defaultdict(dict)  # [newest since, ads]
    for s in sightings:
        entry = tally[s.day].get(s.place)
        if entry is None:
            tally[s.day][s.place] = [s.since, 1]
        else:
            entry[0] = max(entry[0], s.since)
            entry[1] += 1
    return {
        day: max(places.items(), key=lambda item: (item[1][0], item[1][1], item[0]))[0]
        for day, places in tally.items()
    }


def contradiction_days(
    sightings: Sequence[Sighting],
    winners: dict[int, Place] | None = None,
    linger: int = LINGER_DAYS,
) -> set[int]:
    """Days on which these ads put her in two places and a losing ad is not a lingering one."""
    if winners is None:
        winners = daily_winners(sightings)
    runs: dict[tuple[int, Place, int], list[int]] = defaultdict(list)
    for s in sightings:
        runs[(s.ad_id, s.place, s.since)].append(s.day)
    bad: set[int] = set()
    for (_ad, place, _since), days in runs.items():
        losses = [d for d in days if winners.get(d) != place]
        if losses and not _lingers(days, losses, place, winners, linger):
            bad.update(losses)
    return bad


def _lingers(
    days: list[int], losses: list[int], place: Place, winners: dict[int, Place], linger: int
) -> bool:
    wins = [d for d in days if winners.get(d) == place]
    first_loss = min(losses)
    if wins and max(wins) > first_loss:
        return False  # it won again after losing: she was there, and somewhere else too
    lost_from = max(wins) + 1 if wins else first_loss
    return max(losses) - lost_from < linger


def extra_contradictions(
    a: Sequence[Sighting],
    b: Sequence[Sighting],
    known_a: int | None = None,
    known_b: int | None = None,
) -> int:
    """How many more contradiction days the ads of ``a`` and ``b`` have together than apart.

    ``known_a``/``known_b`` are the counts of ``a`` and ``b`` alone when the caller has them.
    """
    if not a or not b:
        return 0
    if max(min(s.day for s in a), min(s.day for s in b)) > min(
        max(s.day for s in a), max(s.day for s in b)
    ):
        return 0  # never online on the same day: they cannot contradict each other
    alone_a = len(contradiction_days(a)) if known_a is None else known_a
    alone_b = len(contradiction_days(b)) if known_b is None else known_b
    together = len(contradiction_days([*a, *b]))
    return max(0, together - alone_a - alone_b)


def overlap_agreement(a: Sequence[Sighting], b: Sequence[Sighting]) -> tuple[int, int]:
    """(days both place her somewhere, of which days they name the same place), by winners."""
    wa, wb = daily_winners(a), daily_winners(b)
    both = wa.keys() & wb.keys()
    return len(both), sum(1 for d in both if wa[d] == wb[d])
