"""Trails from sightings: stale ads, missed crawl days, copies under another city, borders."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, select

from lovitura_crawl.db import models
from matching.link import link
from matching.timeline import (
    Sighting,
    ad_sightings,
    contradiction_days,
    daily_winners,
    extra_contradictions,
    place_key,
)
from matching.trails import build_trails, carousel_figures, person_trail
from tests.adfactory import START, AdSpec, persons, store

D0 = START.toordinal()
UTRECHT, ZWOLLE, AMSTERDAM, VENLO = "GM0344", "GM0193", "GM0363", "GM0983"


def _ad(ad_id: int, days: range, place: str, site: str = "roodlicht") -> list[Sighting]:
    return ad_sightings(ad_id, site, [(D0 + d, place) for d in days])


def _stays(sightings: list[Sighting]) -> list[tuple[str, int, int]]:
    stays, _moves = person_trail(sightings)
    return [(s.place, s.arrived - D0, s.left - D0) for s in stays]


def test_place_key_keeps_municipalities_and_countries_abroad() -> None:
    assert place_key("GM0363", "NL") == "GM0363"
    assert place_key(None, "BE") == "BE"
    assert place_key(None, "NL") is None
    assert place_key(None, None) is None


def test_stale_ad_loses_to_the_ad_of_her_new_place() -> None:
    sightings = _ad(1, range(0, 14), UTRECHT) + _ad(2, range(10, 20), ZWOLLE, "nachtvlinder")
    assert _stays(sightings) == [(UTRECHT, 0, 9), (ZWOLLE, 10, 19)]
    _, moves = person_trail(sightings)
    assert [(m.from_place, m.to_place, m.left - D0, m.arrived - D0) for m in moves] == [
        (UTRECHT, ZWOLLE, 9, 10)
    ]
    assert contradiction_days(sightings) == set()


def test_an_edit_to_a_new_place_counts_from_the_edit() -> None:
    edited = ad_sightings(
        1, "escortgids", [(D0 + d, UTRECHT if d < 6 else VENLO) for d in range(12)]
    )
    other = _ad(2, range(0, 9), UTRECHT)  # lingers three days after she left
    assert _stays(edited + other) == [(UTRECHT, 0, 5), (VENLO, 6, 11)]


def test_a_missed_crawl_day_does_not_end_a_stay() -> None:
    sightings = ad_sightings(1, "roodlicht", [(D0 + d, UTRECHT) for d in (0, 1, 2, 4, 5, 8)])
    assert _stays(sightings) == [(UTRECHT, 0, 8)]


def test_a_copy_under_a_nearby_city_is_not_a_stay() -> None:
    her = _ad(1, range(0, 15), UTRECHT) + _ad(2, range(0, 15), UTRECHT, "prikbord")
    decoy = ad_sightings(3, "roodlicht", [(D0 + d, AMSTERDAM) for d in range(1, 6)])
    assert _stays(her + decoy) == [(UTRECHT, 0, 14)]


def test_a_copy_posted_on_arrival_is_not_a_stay() -> None:
    before = _ad(1, range(0, 6), ZWOLLE)
    her = _ad(2, range(6, 20), UTRECHT, "nachtvlinder")
    decoy = ad_sightings(3, "roodlicht", [(D0 + d, AMSTERDAM) for d in range(6, 10)])
    assert _stays(before + her + decoy) == [(ZWOLLE, 0, 5), (UTRECHT, 6, 19)]


def test_a_copy_whose_original_moves_on_first_is_not_a_stay() -> None:
    # Her ad and its copy under a nearby city go up a day apart on her only site; the original
    # is reposted under her next place while the copy is still online.
    original = ad_sightings(1, "roodlicht", [(D0 + d, UTRECHT) for d in range(0, 8)], D0)
    copy = ad_sightings(2, "roodlicht", [(D0 + d, AMSTERDAM) for d in range(1, 10)], D0 + 1)
    repost = ad_sightings(3, "roodlicht", [(D0 + d, ZWOLLE) for d in range(8, 15)], D0 + 8)
    assert _stays(original + copy + repost) == [(UTRECHT, 0, 7), (ZWOLLE, 8, 14)]


def test_her_new_place_posted_with_a_copy_is_a_stay_beside_a_stale_ad() -> None:
    # She moved to Utrecht for five days: the new ad and its copy under a nearby city go up
    # together while her old ad in Venlo lingers throughout; Utrecht is still a stay.
    stale = _ad(1, range(0, 11), VENLO)
    new = ad_sightings(2, "roodlicht", [(D0 + d, UTRECHT) for d in range(6, 11)], D0 + 6)
    copy = ad_sightings(3, "roodlicht", [(D0 + d, ZWOLLE) for d in range(6, 9)], D0 + 6)
    after = _ad(4, range(11, 16), AMSTERDAM, "nachtvlinder")
    assert _stays(stale + new + copy + after) == [
        (VENLO, 0, 5),
        (UTRECHT, 6, 10),
        (AMSTERDAM, 11, 15),
    ]


def test_two_places_at_once_are_contradictions_and_lingering_is_not() -> None:
    her = _ad(1, range(0, 20), UTRECHT)
    elsewhere = _ad(2, range(5, 10), AMSTERDAM, "prikbord")
    assert contradiction_days(her + elsewhere) == {D0 + d for d in range(5, 10)}
    assert extra_contradictions(her, elsewhere) == 5
    moved = _ad(3, range(12, 20), ZWOLLE)
    assert extra_contradictions(_ad(1, range(0, 15), UTRECHT), moved) == 0


def test_a_new_ad_elsewhere_that_never_wins_is_a_contradiction_even_when_short() -> None:
    # Crawling ended two days after the Amsterdam ad went up: it loses to Utrecht, named on two
    # sites, but it is no ad left over from an earlier stay, since Utrecht was named first.
    her = _ad(1, range(0, 7), UTRECHT) + _ad(2, range(0, 7), UTRECHT, "nachtvlinder")
    newer = _ad(3, range(5, 7), AMSTERDAM, "prikbord")
    assert contradiction_days(her + newer) == {D0 + 5, D0 + 6}
    # An ad posted in Amsterdam before she was named in Utrecht is a stale one.
    older = ad_sightings(4, "prikbord", [(D0 + d, AMSTERDAM) for d in range(0, 3)], D0 - 9)
    assert contradiction_days(her + older) == set()


def test_newest_place_wins_then_most_ads() -> None:
    sightings = [
        Sighting(1, D0, UTRECHT, D0 - 5, "roodlicht"),
        Sighting(2, D0, UTRECHT, D0 - 5, "nachtvlinder"),
        Sighting(3, D0, ZWOLLE, D0 - 5, "prikbord"),
        Sighting(4, D0 + 1, VENLO, D0 + 1, "prikbord"),
        Sighting(1, D0 + 1, UTRECHT, D0 - 5, "roodlicht"),
    ]
    assert daily_winners(sightings) == {D0: UTRECHT, D0 + 1: VENLO}


def test_abroad_and_back_counts_two_border_crossings() -> None:
    sightings = (
        _ad(1, range(0, 7), VENLO)
        + ad_sightings(2, "escortgids", [(D0 + d, "BE") for d in range(7, 14)])
        + _ad(3, range(14, 21), UTRECHT)
    )
    stays, moves = person_trail(sightings)
    assert [s.place for s in stays] == [VENLO, "BE", UTRECHT]
    figures = carousel_figures(stays, moves)
    assert figures == {"n_municipalities": 3, "median_stay_days": 7.0, "border_crossings": 2}


def test_build_trails_writes_stays_moves_and_figures(engine: Engine) -> None:
    store(
        engine,
        [
            AdSpec("roodlicht", "r1", range(0, 13), "Utrecht", "+31612345671", [(1, 0)]),
            AdSpec("nachtvlinder", "n1", range(10, 20), "Zwolle", "+31612345671", [(1, 1)]),
            AdSpec("escortgids", "e1", range(20, 26), "Antwerpen", "+31612345671", [(1, 2)]),
        ],
    )
    link(engine)
    result = build_trails(engine)
    assert (result.persons, result.stays, result.moves) == (1, 3, 2)
    person = persons(engine)["r1"]
    with engine.connect() as conn:
        stays = conn.execute(
            select(
                models.TrailStay.municipality_code,
                models.TrailStay.country,
                models.TrailStay.arrived_at,
                models.TrailStay.left_at,
                models.TrailStay.n_ads,
                models.TrailStay.sites,
                models.TrailStay.place_name,
            ).order_by(models.TrailStay.arrived_at)
        ).all()
        moves = conn.execute(
            select(
                models.TrailMove.from_municipality_code,
                models.TrailMove.to_country,
                models.TrailMove.left_at,
                models.TrailMove.arrived_at,
            ).order_by(models.TrailMove.arrived_at)
        ).all()
        row = conn.execute(select(models.Person).where(models.Person.id == person)).one()
    assert [tuple(s) for s in stays] == [
        ("GM0344", "NL", date(2026, 11, 2), date(2026, 11, 11), 1, "roodlicht", "Utrecht"),
        ("GM0193", "NL", date(2026, 11, 12), date(2026, 11, 21), 1, "nachtvlinder", "Zwolle"),
        (None, "BE", date(2026, 11, 22), date(2026, 11, 27), 1, "escortgids", "België"),
    ]
    assert [tuple(m) for m in moves] == [
        ("GM0344", "NL", date(2026, 11, 11), date(2026, 11, 12)),
        ("GM0193", "BE", date(2026, 11, 21), date(2026, 11, 22)),
    ]
    assert (row.n_ads, row.n_municipalities, row.median_stay_days, row.border_crossings) == (
        3,
        3,
        10.0,
        1,
    )
    again = build_trails(engine)
    assert (again.stays, again.moves) == (3, 2)
