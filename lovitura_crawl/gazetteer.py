"""Loaders for the gazetteer files shipped in ``lovitura_crawl/data/gazetteer``.

The files and their sources and licences are listed in ``lovitura_crawl/data/NOTICE.md``.
Each loader reads its file once per process and returns immutable records.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Municipality:
    code: str  # CBS code, "GM0363"
    name: str
    province: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Woonplaats:
    name: str
    alias: str
    gm_code: str
    municipality: str
    province: str
    lat: float
    lon: float
    pc4: tuple[str, ...]


@dataclass(frozen=True)
class Postcode:
    pc4: str
    gm_code: str
    municipality: str
    province: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Station:
    code: str
    name: str
    gm_code: str
    lat: float
    lon: float


@dataclass(frozen=True)
class ForeignPlace:
    country: str  # "BE", "DE", "RO" or "MD"
    name: str
    population: int
    lat: float
    lon: float
    alternate_names: tuple[str, ...]


def _rows(filename: str) -> Iterator[dict[str, str]]:
    path = resources.files("lovitura_crawl") / "data" / "gazetteer" / filename
    with resources.as_file(path) as real, open(real, encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


@cache
def municipalities() -> tuple[Municipality, ...]:
    """The 2025 municipalities (342), from Kadaster boundaries, CC0."""
    return tuple(
        Municipality(r["gm_code"], r["gemeente"], r["provincie"], float(r["lat"]), float(r["lon"]))
        for r in _rows("nl_gemeenten_2025.csv")
    )


@cache
def municipality_by_code() -> dict[str, Municipality]:
    return {m.code: m for m in municipalities()}


@cache
def woonplaatsen() -> tuple[Woonplaats, ...]:
    """All 2,501 BAG woonplaatsen with their 2025 municipality (CBS, CC BY 4.0; GeoNames)."""
    return tuple(
        Woonplaats(
            r["woonplaats"],
            r["alias"],
            r["gm_code"],
            r["gemeente"],
            r["provincie"],
            float(r["lat"]),
            float(r["lon"]),
            tuple(r["pc4"].split()),
        )
        for r in _rows("nl_woonplaatsen_2025.csv")
    )


@cache
def postcodes() -> tuple[Postcode, ...]:
    """4-digit postcodes with their majority municipality (GeoNames, CC BY 4.0)."""
    return tuple(
        Postcode(
            r["pc4"], r["gm_code"], r["gemeente"], r["provincie"], float(r["lat"]), float(r["lon"])
        )
        for r in _rows("nl_pc4_2024.csv")
    )


@cache
def stations() -> tuple[Station, ...]:
    """Dutch railway stations (Rijden de Treinen)."""
    return tuple(
        Station(r["code"], r["name"], r["gm_code"], float(r["lat"]), float(r["lon"]))
        for r in _rows("nl_railway_stations_2023.csv")
    )


def _foreign(filename: str) -> tuple[ForeignPlace, ...]:
    return tuple(
        ForeignPlace(
            r["country"],
            r["name"],
            int(r["population"] or 0),
            float(r["lat"]),
            float(r["lon"]),
            tuple(n for n in r["alternatenames"].split("|") if n),
        )
        for r in _rows(filename)
    )


@cache
def border_places() -> tuple[ForeignPlace, ...]:
    """Belgian and German places near the border, and large cities within 200 km (GeoNames)."""
    return _foreign("be_de_border_places.csv")


@cache
def origin_places() -> tuple[ForeignPlace, ...]:
    """Romanian and Moldovan places over 500 inhabitants (GeoNames)."""
    return _foreign("ro_md_places.csv")


@dataclass(frozen=True)
class SpellingVariant:
    variant: str  # lower case, as people write the name: "den bos", "alphen ad rijn"
    woonplaats: str  # the 2015 woonplaats it names; "" when it names a municipality
    municipality: str  # the 2015 municipality
    gm_code: str  # CBS code of the 2015 municipality (may no longer exist)
    province: str


@cache
def spelling_variants() -> tuple[SpellingVariant, ...]:
    """Spelling variants of Dutch place names, on the 2015 municipalities (CBS, CC BY 4.0)."""
    return tuple(
        SpellingVariant(
            r["Variant"], r["Woonplaats"], r["Gemeente"], r["Gemeente_code"], r["Provincie"]
        )
        for r in _rows("nl_place_spelling_variants.csv")
    )
