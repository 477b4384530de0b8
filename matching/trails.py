"""Trails: where each person stayed and when she moved, from the days her ads were seen.

For every person, :func:`person_trail` turns the sightings of her ads (one per ad per day seen,
with the place the ad named that day) into stays and moves:

1. each day gets the place her most recently placed ad names (:func:`matching.timeline.
   daily_winners`): an ad left online after she moved on loses to the ad of her new place;
2. consecutive days with the same place form a run; days without any sighting in between (a
   missed crawl, a pause) do not end it;
3. a run is discarded as spurious, and its days given to a neighbour, when that neighbour's
   place was named by her ads on all its days (one in :data:`SPURIOUS_DAYS_PER_MISSING` may
   miss) and either
   follows it (ads cannot name her next place before she goes there: a copy of her ad under a
   nearby city she is not in) or comes back after it (her ads there never stopped), or when
   only *copies* name the run's place and the ads they were posted with name the place
   before it on all its days. A copy is an ad posted within :data:`COPY_DAYS` of another ad of
   hers on the same site that names another place (her ad posted twice, once under a nearby
   city); the original may be reposted or edited to her next place before the copy goes, so
   nothing follows it;
4. the remaining runs are her stays; a change of place between two stays is a move, dated by
   the last day at the old place and the first day at the new one.

:func:`build_trails` rebuilds ``trail_stays`` and ``trail_moves`` for every person and writes
her carousel figures to ``persons``: places stayed, median stay length, border crossings,
first and last seen, number of ads.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import time
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import Engine, Table, bindparam, delete, select, update

from lovitura_crawl.db import models
from matching.evidence import COPY_DAYS
from matching.loader import AdRecord, load_ads
from matching.timeline import Place, Sighting, daily_winners

logger = logging.getLogger(__name__)

STAYS: Table = models.TrailStay.__table__  # type: ignore[assignment]
MOVES: Table = models.TrailMove.__table__  # type: ignore[assignment]
PERSONS: Table = models.Person.__table__  # type: ignore[assignment]
MUNICIPALITIES: Table = models.Municipality.__table__  # type: ignore[assignment]

# The name of a stay abroad, which the trail knows by its country only (pipelines/geo.py places
# an ad abroad in Belgium, Germany, Romania or Moldova); Dutch, as the municipalities' names.
COUNTRY_NAMES = {"BE": "België", "DE": "Duitsland", "RO": "Roemenië", "MD": "Moldavië"}
SPURIOUS_DAYS_PER_MISSING = 6  # a spurious run's neighbour may be missing 1 day in 6
_CHUNK = 1_000

Key = TypeVar("Key", bound=Hashable)


@dataclass
class Stay:
    place: Place
    arrived: int  # date ordinal
    left: int
    ads: set[int] = field(default_factory=set)
    sites: set[str] = field(default_factory=set)
    days: list[int] = field(default_factory=list)  # days she was placed here

    @property
    def country(self) -> str:
        return country_of(self.place)

    @property
    def length(self) -> int:
        return self.left - self.arrived + 1


@dataclass(frozen=True)
class Move:
    from_place: Place
    to_place: Place
    left: int
    arrived: int


@dataclass
class TrailResult:
    persons: int
    stays: int
    moves: int
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"trails: {self.stays} stays and {self.moves} moves of {self.persons} persons; "
            f"{self.seconds:.1f} s"
        )


def country_of(place: Place) -> str:
    """``NL`` for a municipality code, else the place is a country code."""
    return "NL" if place.startswith("GM") else place


# --- one person ------------------------------------------------------------------------------


def person_trail(sightings: Sequence[Sighting]) -> tuple[list[Stay], list[Move]]:
    """Stays and moves from one person's sightings (see the module docstring)."""
    winners = daily_winners(sightings)
    if not winners:
        return [], []
    named: dict[int, set[Place]] = defaultdict(set)
    for s in sightings:
        named[s.day].add(s.place)
    named_by: dict[tuple[int, Place], set[int]] = defaultdict(set)
    for s in sightings:
        named_by[(s.day, s.place)].add(s.ad_id)
    copies = Copies(_copy_partners(sightings), named_by)
    runs = _without_spurious(_runs(winners), named, copies)
    run_of_day = {day: run for run in runs for day in run.days}
    for s in sightings:
        run = run_of_day.get(s.day)
        if run is not None and run.place == s.place:
            run.ads.add(s.ad_id)
            run.sites.add(s.site)
    moves = [Move(a.place, b.place, a.left, b.arrived) for a, b in itertools.pairwise(runs)]
    return runs, moves


def _runs(winners: Mapping[int, Place]) -> list[Stay]:
    runs: list[Stay] = []
    for day in sorted(winners):
        place = winners[day]
        if runs and runs[-1].place == place:
            runs[-1].left = day
            runs[-1].days.append(day)
        else:
            runs.append(Stay(place, day, day, days=[day]))
    return runs


@dataclass
class Copies:
    """Ads posted as two copies at once, and which ads named which place on which day."""

    partners: dict[int, set[int]]  # ad -> the ads it was posted with, naming another place
    named_by: dict[tuple[int, Place], set[int]]

    def absorbed_by_partner(self, run: Stay, other: Stay) -> bool:
        """Only copies name ``run``'s place, and their partners name ``other``'s place on all
        its days (one in :data:`SPURIOUS_DAYS_PER_MISSING` may miss)."""
        here = set().union(*(self.named_by.get((d, run.place), set()) for d in run.days))
        if not here or not here <= self.partners.keys():
            return False
        theirs = set().union(*(self.partners[a] for a in here))
        missing = sum(
            1 for d in run.days if not self.named_by.get((d, other.place), set()) & theirs
        )
        return missing <= len(run.days) // SPURIOUS_DAYS_PER_MISSING


def _copy_partners(sightings: Sequence[Sighting]) -> dict[int, set[int]]:
    """Ads posted within :data:`COPY_DAYS` of another ad on the same site whose first place
    differs (one of the two is a copy under a nearby city), with those other ads."""
    first: dict[int, Sighting] = {}
    for s in sightings:
        if s.ad_id not in first or (s.day, s.since) < (first[s.ad_id].day, first[s.ad_id].since):
            first[s.ad_id] = s
    by_site: dict[str, list[Sighting]] = defaultdict(list)
    for s in first.values():
        by_site[s.site].append(s)
    partners: dict[int, set[int]] = defaultdict(set)
    for starts in by_site.values():
        starts.sort(key=lambda s: s.since)
        for i, a in enumerate(starts):
            for b in starts[i + 1 :]:
                if b.since - a.since > COPY_DAYS:
                    break
                if a.place != b.place:
                    partners[a.ad_id].add(b.ad_id)
                    partners[b.ad_id].add(a.ad_id)
    return dict(partners)


def _without_spurious(
    runs: list[Stay], named: Mapping[int, set[Place]], copies: Copies
) -> list[Stay]:
    changed = True
    while changed and len(runs) > 1:
        changed = False
        for i, run in enumerate(runs):
            target = _absorbing_neighbour(runs, i, named, copies)
            if target is None:
                continue
            neighbour = runs[target]
            neighbour.days = sorted(neighbour.days + run.days)
            neighbour.arrived, neighbour.left = neighbour.days[0], neighbour.days[-1]
            del runs[i]
            runs = _joined(runs)
            changed = True
            break
    return runs


def _absorbing_neighbour(
    runs: list[Stay], i: int, named: Mapping[int, set[Place]], copies: Copies
) -> int | None:
    run = runs[i]
    previous = runs[i - 1] if i > 0 else None
    following = runs[i + 1] if i + 1 < len(runs) else None

    def present(place: Place) -> bool:
        missing = sum(1 for d in run.days if place not in named.get(d, ()))
        return missing <= len(run.days) // SPURIOUS_DAYS_PER_MISSING

    if following is not None and present(following.place):
        return i + 1
    if (
        previous is not None
        and following is not None
        and previous.place == following.place
        and present(previous.place)
    ):
        return i - 1
    if previous is not None and copies.absorbed_by_partner(run, previous):
        return i - 1
    return None


def _joined(runs: list[Stay]) -> list[Stay]:
    """Neighbouring runs of one place made one."""
    joined: list[Stay] = []
    for run in runs:
        if joined and joined[-1].place == run.place:
            last = joined[-1]
            last.days = sorted(last.days + run.days)
            last.arrived, last.left = last.days[0], last.days[-1]
        else:
            joined.append(run)
    return joined


def carousel_figures(stays: Sequence[Stay], moves: Sequence[Move]) -> dict[str, Any]:
    """Places stayed, median stay length in days and border crossings."""
    return {
        "n_municipalities": len({s.place for s in stays}),
        "median_stay_days": float(statistics.median(s.length for s in stays)) if stays else None,
        "border_crossings": sum(
            1 for m in moves if country_of(m.from_place) != country_of(m.to_place)
        ),
    }


# --- every person ----------------------------------------------------------------------------


def trails_of(
    persons: Mapping[Key, Iterable[AdRecord]],
) -> dict[Key, tuple[list[Stay], list[Move]]]:
    """The trail of each person (id -> her ads)."""
    return {
        person: person_trail([s for ad in ads for s in ad.sightings])
        for person, ads in persons.items()
    }


def build_trails(engine: Engine) -> TrailResult:
    """Rebuild ``trail_stays`` and ``trail_moves`` and the persons' carousel figures."""
    started = time.monotonic()
    with engine.connect() as conn:
        ads = load_ads(conn)
        names = dict(conn.execute(select(MUNICIPALITIES.c.code, MUNICIPALITIES.c.name)).all())
    by_person: dict[int, list[AdRecord]] = defaultdict(list)
    for ad in ads.values():
        if ad.person_id is not None:
            by_person[ad.person_id].append(ad)
    trails = trails_of(by_person)
    stay_rows: list[dict[str, Any]] = []
    move_rows: list[dict[str, Any]] = []
    person_rows: list[dict[str, Any]] = []
    for person, (stays, moves) in sorted(trails.items()):
        stay_rows.extend(_stay_row(person, s, names) for s in stays)
        move_rows.extend(_move_row(person, m) for m in moves)
        person_ads = by_person[person]
        person_rows.append(
            {
                "person_id": person,
                "n_ads_": len(person_ads),
                "first_": min(a.first_seen_at for a in person_ads),
                "last_": max(a.last_seen_at for a in person_ads),
                **{f"{k}_": v for k, v in carousel_figures(stays, moves).items()},
            }
        )
    with engine.begin() as conn:
        conn.execute(delete(MOVES))
        conn.execute(delete(STAYS))
        for chunk in _chunks(stay_rows):
            conn.execute(STAYS.insert(), chunk)
        for chunk in _chunks(move_rows):
            conn.execute(MOVES.insert(), chunk)
        stmt = (
            update(PERSONS)
            .where(PERSONS.c.id == bindparam("person_id"))
            .values(
                n_ads=bindparam("n_ads_"),
                first_seen_at=bindparam("first_"),
                last_seen_at=bindparam("last_"),
                n_municipalities=bindparam("n_municipalities_"),
                median_stay_days=bindparam("median_stay_days_"),
                border_crossings=bindparam("border_crossings_"),
            )
        )
        for chunk in _chunks(person_rows):
            conn.execute(stmt, chunk)
    result = TrailResult(len(trails), len(stay_rows), len(move_rows))
    result.seconds = round(time.monotonic() - started, 2)
    logger.info("%s", result)
    return result


def _stay_row(person: int, stay: Stay, names: Mapping[str, str]) -> dict[str, Any]:
    code = stay.place if stay.place.startswith("GM") else None
    return {
        "person_id": person,
        "municipality_code": code,
        "country": stay.country,
        "place_name": names.get(code) if code else COUNTRY_NAMES.get(stay.country, stay.country),
        "arrived_at": date.fromordinal(stay.arrived),
        "left_at": date.fromordinal(stay.left),
        "n_ads": len(stay.ads),
        "sites": ",".join(sorted(stay.sites)),
    }


def _move_row(person: int, move: Move) -> dict[str, Any]:
    def code(place: Place) -> str | None:
        return place if place.startswith("GM") else None

    return {
        "person_id": person,
        "from_municipality_code": code(move.from_place),
        "to_municipality_code": code(move.to_place),
        "from_country": country_of(move.from_place),
        "to_country": country_of(move.to_place),
        "left_at": date.fromordinal(move.left),
        "arrived_at": date.fromordinal(move.arrived),
    }


def _chunks(rows: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(rows), _CHUNK):
        yield rows[start : start + _CHUNK]
