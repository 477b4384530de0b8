"""Tests of the demo world's market of places (fixtures.world_places)."""

from __future__ import annotations

import random
from collections import Counter

from fixtures.world_places import MARKET_POPULATION_K, market
from lovitura_crawl.gazetteer import municipalities


def test_every_market_city_is_a_municipality() -> None:
    names = {m.name for m in municipalities()}
    assert set(MARKET_POPULATION_K) <= names


def test_draws_favour_large_cities_but_reach_small_places() -> None:
    places = market()
    rng = random.Random(1)
    drawn = Counter(places.nl.draw(rng).city for _ in range(20_000))
    top = [city for city, _ in drawn.most_common(3)]
    assert top == ["Amsterdam", "Rotterdam", "Den Haag"]
    small = sum(
        n for city, n in drawn.items() if city not in {p.city for p in places.market_cities}
    )
    assert 0.05 < small / 20_000 < 0.4


def test_border_towns_weigh_more_than_their_size() -> None:
    places = market()
    by_city = {p.city: w for p, w in zip(places.municipal, places.weights, strict=True)}
    # Similar populations; Venlo lies on the German border, Deventer does not.
    assert by_city["Venlo"] > 1.5 * by_city["Deventer"]


def test_foreign_places_are_belgian_or_german_and_named_locally() -> None:
    keys = {p.key for p in market().foreign}
    assert {"BE/Antwerpen", "DE/Aachen"} <= keys
    assert all(key[:3] in ("BE/", "DE/") for key in keys)


def test_circuit_and_listing_city() -> None:
    places = market()
    circuit = places.circuit(random.Random(3), 10, 100.0)
    assert len({p.municipality_code for p in circuit}) == 10
    small = next(p for p in places.municipal if p.city == "Bornerbroek" or p.name == "Wierden")
    assert places.listing_city(small) in {c.city for c in places.market_cities}
    amsterdam = next(p for p in places.municipal if p.city == "Amsterdam")
    assert places.listing_city(amsterdam) == "Amsterdam"
