"""Where a set of ads places a woman, day by day, and where those ads contradict each other.

Every day a crawl saw an ad is a *sighting*: the ad, the day, and the place the ad named that day.
When her ads name different places on the same day, the place she was named at most recently
wins: a place's ``since`` is the first day of the run of days her ads named it (gaps of up to
:data:`RUN_GAP_DAYS` missed days do not end a run), counted from the posting date of an ad that
was online before the first crawl. That is how an ad left online after she moved on (a stale,
lingering ad) loses to the ads of her new place, while reposts of an ad do not make its place
any newer. One exception: a place named on only one site loses to a place named on two or more
sites that day (one ad naming a wrong place, for instance a misread station name, cannot move
her). Ties go to the place more ads name, then to the place code, so the result never depends
on input order.

A losing sighting is only *lingering* when it behaves like a forgotten ad: it never wins again
after it started losing, it stops within :data:`LINGER_DAYS`, and, if it never won at all while
crawled from its first day, it named its place before the winning place was named (an ad posted
where she is not, as late as the winner or later, is not left over from an earlier stay). Any
other losing sighting is a *contradiction*: these ads put her in two places at once. The linker
uses contradictions to keep apart ads of different women, the trail builder uses the daily
winners. Sightings of an ad that was posted twice at once (once under a nearby city she is not
in) are never contradictions: the copy is the poster's, not another woman's.

Days are proleptic ordinals (``date.toordinal()``) so that day arithmetic is integer arithmetic.
Places are strings: a CBS municipality code (``GM0363``) or, abroad, a country code (``BE``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Place = str

LINGER_DAYS = 5  # an ad may stay online this many days after she left, without contradiction
RUN_GAP_DAYS = 2  # missed crawl days that do not end a run of days naming one place
ABROAD = ("BE", "DE")  # countries a trail can go to: the ones the directories list


@dataclass(frozen=True, slots=True)
class Sighting:
    """One day on which one ad was online and named a place."""

    ad_id: int
    day: int  # date ordinal
    place: Place
    since: int  # first day (ordinal) of the ad's current run of naming this place
    site: str
    copy: bool = False  # the ad is one of two copies of an ad posted at once (see evidence.twins)


def place_key(code: str | None, country: str | None) -> Place | None:
    """The place of an observation: its municipality, or its country when abroad.

    A Dutch observation without a municipality says nothing about where she is, and neither
    does a country the sites do not cover (an ad's "from Romania" is where she comes from).
    """
    if code:
        return code
    if country in ABROAD:
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
    """The place of each day (see the module docstring)."""
    return {day: place for day, (place, _since) in _daily_winners(sightings).items()}


def _daily_winners(sightings: Iterable[Sighting]) -> dict[int, tuple[Place, int]]:
    """The place of each day and the ``since`` of its run."""
    by_place: dict[Place, dict[int, list[Sighting]]] = defaultdict(lambda: defaultdict(list))
    for s in sightings:
        by_place[s.place][s.day].append(s)
    tally: dict[int, list[tuple[int, int, int, Place]]] = defaultdict(list)
    for place, days in by_place.items():
        for run in _runs(sorted(days)):
            since = min(s.since for day in run for s in days[day])
            for day in run:
                named = days[day]
                sites = len({s.site for s in named})
                tally[day].append((since, len(named), sites, place))
    return {day: _winner(candidates) for day, candidates in tally.items()}


def _runs(days: list[int]) -> list[list[int]]:
    """Days split where more than :data:`RUN_GAP_DAYS` days in a row are missing."""
    runs: list[list[int]] = []
    for day in days:
        if runs and day - runs[-1][-1] <= RUN_GAP_DAYS + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _winner(candidates: list[tuple[int, int, int, Place]]) -> tuple[Place, int]:
    if len(candidates) == 1:
        return candidates[0][3], candidates[0][0]
    newest = max(candidates)
    if newest[2] == 1 and any(c[2] > 1 for c in candidates):
        candidates = [c for c in candidates if c[2] > 1]
    best = max(candidates, key=lambda c: (c[0], c[1], c[3]))
    return best[3], best[0]


def contradiction_days(
    sightings: Sequence[Sighting],
    winners: dict[int, Place] | None = None,
    linger: int = LINGER_DAYS,
) -> set[int]:
    """Days on which these ads put her in two places and a losing ad is not a lingering one."""
    won = _daily_winners(sightings)
    if winners is None:
        winners = {day: place for day, (place, _since) in won.items()}
    runs: dict[tuple[int, Place, int], list[int]] = defaultdict(list)
    for s in sightings:
        if not s.copy:
            runs[(s.ad_id, s.place, s.since)].append(s.day)
    bad: set[int] = set()
    for (_ad, place, since), days in runs.items():
        losses = [d for d in days if winners.get(d) != place]
        if not losses:
            continue
        # An ad that never won is left over from an earlier stay only when it named its place
        # before the winning place was named; one seen from its first day on that started
        # naming it as late or later is another woman's (a copy never gets here). An ad
        # online before the first crawl may have won before anyone looked.
        newer = (
            since >= min(days) - 1
            and not any(winners.get(d) == place for d in days)
            and since >= won.get(min(losses), ("", since))[1]
        )
        if newer or not _lingers(days, losses, place, winners, linger):
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
