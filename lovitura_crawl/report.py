"""CSV trail reports for action days.

``municipality_report`` gives one row per person seen in a municipality in a window: her stay
there, where she came from (previous stays and dates), her phones and sites, and the evidence
that links her ads. ``person_report`` gives one person's whole trail, one row per stay.

Every cell passes through :func:`safe_cell`, so no spreadsheet reads one as a formula.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from lovitura_crawl.db import models
from matching.trails import COUNTRY_NAMES

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")

MUNICIPALITY_COLUMNS = (
    "person_id",
    "network_id",
    "municipality_code",
    "municipality",
    "arrived_at",
    "left_at",
    "n_ads_here",
    "sites_here",
    "came_from",
    "came_from_left_at",
    "previous_stays",
    "n_municipalities",
    "phones",
    "sites",
    "evidence",
)
PERSON_COLUMNS = (
    "person_id",
    "network_id",
    "stay",
    "municipality_code",
    "municipality",
    "province_or_country",
    "arrived_at",
    "left_at",
    "days",
    "n_ads",
    "sites",
    "phones",
    "evidence",
)


class ReportError(ValueError):
    """The report cannot be made as asked (unknown municipality or person)."""


def _no_clear_phones(phone: str) -> str:
    raise ReportError(
        "a report shows phone numbers as pseudonyms: configure the pseudonym key "
        "(LOVITURA_PSEUDONYM_KEY_FILE or LOVITURA_PSEUDONYM_KEY), or ask for clear numbers "
        "explicitly (audited)"
    )


def pseudonym_labels(key: bytes) -> Callable[[str], str]:
    """Show each phone number as its keyed pseudonym (the default in every report)."""
    from lovitura_crawl.privacy.pseudonym import pseudonymise_phone

    return lambda phone: pseudonymise_phone(phone, key)


def clear_labels(phone: str) -> str:
    """Show phone numbers in clear (only on explicit, audited request)."""
    return phone


def safe_cell(value: Any) -> str:
    """A cell no spreadsheet evaluates: text starting with = + - @ tab or CR gets a leading '."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


@dataclass(frozen=True)
class Stay:
    person_id: int
    code: str | None
    country: str
    arrived_at: date
    left_at: date
    n_ads: int
    sites: str


@dataclass
class ReportResult:
    path: Path
    rows: int
    sha256: str


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> ReportResult:
    """Write ``rows`` as UTF-8 CSV (with BOM, which spreadsheets use to detect UTF-8).

    The file is readable by its owner only (mode 600, also when it existed): a report holds
    personal data, pseudonymised or, with ``--clear-phones``, not.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with open(fd, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([safe_cell(v) for v in row])
            count += 1
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ReportResult(path, count, digest)


class TrailData:
    """Stays, phones, sites, networks and evidence of persons, loaded once for a report."""

    def __init__(
        self,
        engine: Engine,
        person_ids: Iterable[int] | None = None,
        phone_label: Callable[[str], str] | None = None,
    ) -> None:
        self.engine = engine
        self.phone_label = phone_label or _no_clear_phones
        self.names = self._municipality_names()
        self.provinces = self._provinces()
        self.stays: dict[int, list[Stay]] = defaultdict(list)
        self.networks: dict[int, int | None] = {}
        self.phones: dict[int, list[str]] = defaultdict(list)
        self.sites: dict[int, list[str]] = defaultdict(list)
        self.evidence: dict[int, str] = {}
        self._load(None if person_ids is None else sorted(set(person_ids)))

    def place_name(self, stay: Stay) -> str:
        if stay.code:
            return self.names.get(stay.code, stay.code)
        return COUNTRY_NAMES.get(stay.country, stay.country)

    def _municipality_names(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(models.Municipality.code, models.Municipality.name))
            return {code: name for code, name in rows}

    def _provinces(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(models.Municipality.code, models.Municipality.province))
            return {code: province for code, province in rows}

    def _load(self, person_ids: list[int] | None) -> None:
        stay_q = select(models.TrailStay).order_by(
            models.TrailStay.person_id, models.TrailStay.arrived_at
        )
        ad_q = select(models.Ad.id, models.Ad.person_id, models.Ad.network_id, models.Ad.site)
        if person_ids is not None:
            stay_q = stay_q.where(models.TrailStay.person_id.in_(person_ids))
            ad_q = ad_q.where(models.Ad.person_id.in_(person_ids))
        else:
            ad_q = ad_q.where(models.Ad.person_id.is_not(None))
        with self.engine.connect() as conn:
            for stay_row in conn.execute(stay_q):
                self._add_stay(stay_row)
            ads = conn.execute(ad_q).all()
            ad_person = {row.id: row.person_id for row in ads}
            sites: dict[int, set[str]] = defaultdict(set)
            for row in ads:
                self.networks[row.person_id] = row.network_id
                sites[row.person_id].add(row.site)
            self.sites = {p: sorted(s) for p, s in sites.items()}
            self._load_phones(conn, ad_person)
            self._load_evidence(conn, ad_person)

    def _add_stay(self, row: Any) -> None:
        self.stays[row.person_id].append(
            Stay(
                row.person_id,
                row.municipality_code,
                row.country,
                row.arrived_at,
                row.left_at,
                row.n_ads,
                row.sites,
            )
        )

    def _load_phones(self, conn: Any, ad_person: dict[int, int]) -> None:
        phones: dict[int, set[str]] = defaultdict(set)
        rows = conn.execute(select(models.AdPhone.ad_id, models.AdPhone.phone))
        for ad_id, phone in rows:
            person = ad_person.get(ad_id)
            if person is not None:
                phones[person].add(self.phone_label(phone))
        self.phones = {p: sorted(v) for p, v in phones.items()}

    def _load_evidence(self, conn: Any, ad_person: dict[int, int]) -> None:
        counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        rows = conn.execute(
            select(models.Link.ad_a, models.Link.ad_b, models.Link.kind, models.Link.level)
        )
        for ad_a, ad_b, kind, level in rows:
            person = ad_person.get(ad_a)
            if person is not None and person == ad_person.get(ad_b):
                counts[person][f"{kind}/{level}"] += 1
        self.evidence = {
            p: "; ".join(f"{k} x{n}" for k, n in sorted(c.items())) for p, c in counts.items()
        }


def _stay_rows_from_db(engine: Engine, code: str, since: date | None) -> list[Any]:
    query = select(models.TrailStay).where(models.TrailStay.municipality_code == code)
    if since is not None:
        query = query.where(models.TrailStay.left_at >= since)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(models.TrailStay.arrived_at)))


def municipality_report(
    engine: Engine,
    code: str,
    out: Path,
    since: date | None = None,
    phone_label: Callable[[str], str] | None = None,
) -> ReportResult:
    """Persons seen in municipality ``code`` (GMxxxx) since ``since``, and where they came from."""
    with engine.connect() as conn:
        known = conn.execute(
            select(models.Municipality.code).where(models.Municipality.code == code)
        ).first()
    if known is None:
        raise ReportError(
            f"unknown municipality code {code!r}: use a CBS code such as GM0363 (Amsterdam); "
            "`lovitura db upgrade` loads the list"
        )
    hits = _stay_rows_from_db(engine, code, since)
    data = TrailData(engine, [row.person_id for row in hits], phone_label)
    rows = [_municipality_row(data, row) for row in hits]
    return write_csv(out, MUNICIPALITY_COLUMNS, rows)


def _municipality_row(data: TrailData, row: Any) -> list[Any]:
    person = row.person_id
    before = [s for s in data.stays.get(person, []) if s.arrived_at < row.arrived_at]
    came_from = before[-1] if before else None
    previous = " | ".join(
        f"{data.place_name(s)} ({s.code or s.country}) {s.arrived_at}..{s.left_at}" for s in before
    )
    places = {(s.code, s.country) for s in data.stays.get(person, [])}
    return [
        person,
        data.networks.get(person),
        row.municipality_code,
        data.names.get(row.municipality_code, ""),
        row.arrived_at,
        row.left_at,
        row.n_ads,
        row.sites,
        data.place_name(came_from) if came_from else "",
        came_from.left_at if came_from else "",
        previous,
        len(places),
        " ".join(data.phones.get(person, [])),
        ",".join(data.sites.get(person, [])),
        data.evidence.get(person, ""),
    ]


def person_report(
    engine: Engine, person_id: int, out: Path, phone_label: Callable[[str], str] | None = None
) -> ReportResult:
    """One person's whole trail, one row per stay."""
    data = TrailData(engine, [person_id], phone_label)
    stays = data.stays.get(person_id)
    if not stays and person_id not in data.networks:
        raise ReportError(f"no person with id {person_id}; `lovitura link` builds persons")
    rows = [
        [
            person_id,
            data.networks.get(person_id),
            number,
            s.code or "",
            data.place_name(s),
            data.provinces.get(s.code, "") if s.code else s.country,
            s.arrived_at,
            s.left_at,
            (s.left_at - s.arrived_at).days + 1,
            s.n_ads,
            s.sites,
            " ".join(data.phones.get(person_id, [])),
            data.evidence.get(person_id, ""),
        ]
        for number, s in enumerate(stays or [], start=1)
    ]
    return write_csv(out, PERSON_COLUMNS, rows)
