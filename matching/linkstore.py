"""Reading and writing the linker's tables: links, persons, networks, person events, link runs.

Everything the linker writes in one run goes through one :class:`LinkWriter` inside one
transaction, so a failed run leaves the previous persons and networks as they were.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from lovitura_crawl.db import models

ADS: Table = models.Ad.__table__  # type: ignore[assignment]
VERSIONS: Table = models.AdVersion.__table__  # type: ignore[assignment]
PHONES: Table = models.AdPhone.__table__  # type: ignore[assignment]
PHOTOS: Table = models.AdPhoto.__table__  # type: ignore[assignment]
LINKS: Table = models.Link.__table__  # type: ignore[assignment]
PERSONS: Table = models.Person.__table__  # type: ignore[assignment]
NETWORKS: Table = models.Network.__table__  # type: ignore[assignment]
STAYS: Table = models.TrailStay.__table__  # type: ignore[assignment]
MOVES: Table = models.TrailMove.__table__  # type: ignore[assignment]
RUNS: Table = models.LinkRun.__table__  # type: ignore[assignment]
EVENTS: Table = models.PersonEvent.__table__  # type: ignore[assignment]

VALUE_LENGTH = 200  # links.value is VARCHAR(200)
MAX_PENDING_PHOTOS = 10_000  # photos awaiting a fingerprint remembered one by one
_CHUNK = 1_000


def evidence_value(kind: str, raw: str) -> str:
    """The value a link stores for the shared evidence ``raw`` (a number, photo URL, digest).

    This is the one place to swap in pseudonyms. Values longer than the column keep their start
    and a digest of the whole, so they stay unique.
    """
    if len(raw) <= VALUE_LENGTH:
        return raw
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:24]
    return f"{raw[: VALUE_LENGTH - 26]}~{digest}"


@dataclass(frozen=True)
class LinkRow:
    ad_a: int
    ad_b: int
    kind: str
    level: str
    value: str
    strength: float
    detail: dict[str, Any] | None

    @staticmethod
    def between(
        a: int, b: int, kind: str, level: str, value: str, strength: float, detail: dict[str, Any]
    ) -> LinkRow:
        """A link with ``ad_a`` < ``ad_b``; ``detail`` keys ending in _a/_b are swapped to match."""
        if a > b:
            a, b = b, a
            detail = {_swap(k): v for k, v in detail.items()}
        return LinkRow(a, b, kind, level, evidence_value(kind, value), round(strength, 4), detail)


def _swap(key: str) -> str:
    if key.endswith("_a"):
        return key[:-2] + "_b"
    if key.endswith("_b"):
        return key[:-2] + "_a"
    return key


# --- reading ---------------------------------------------------------------------------------


@dataclass
class Watermark:
    """Highest row ids the previous run searched for evidence."""

    ads: int = 0
    versions: int = 0
    phones: int = 0
    photos: int = 0
    pending_photos: tuple[int, ...] = ()  # ids at or below ``photos`` that had no fingerprint
    recheck_photos_from: int | None = None  # too many pending: look again from this id

    def as_json(self) -> dict[str, Any]:
        return {
            "ads": self.ads,
            "versions": self.versions,
            "phones": self.phones,
            "photos": self.photos,
            "pending_photos": list(self.pending_photos),
            "recheck_photos_from": self.recheck_photos_from,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Watermark:
        data = data or {}
        return cls(
            ads=int(data.get("ads", 0)),
            versions=int(data.get("versions", 0)),
            phones=int(data.get("phones", 0)),
            photos=int(data.get("photos", 0)),
            pending_photos=tuple(int(i) for i in data.get("pending_photos") or ()),
            recheck_photos_from=data.get("recheck_photos_from"),
        )


def previous_watermark(conn: Connection) -> Watermark:
    """The watermark of the last finished link run (zeros when there was none)."""
    row = conn.execute(
        select(RUNS.c.watermark)
        .where(RUNS.c.finished_at.is_not(None))
        .order_by(RUNS.c.id.desc())
        .limit(1)
    ).first()
    return Watermark.from_json(row.watermark if row else None)


def current_watermark(conn: Connection) -> Watermark:
    """The highest ids now, and which photos still wait for a fingerprint."""

    def highest(table: Table) -> int:
        return int(conn.execute(select(func.max(table.c.id))).scalar_one() or 0)

    mark = Watermark(highest(ADS), highest(VERSIONS), highest(PHONES), highest(PHOTOS))
    pending = [
        int(i)
        for i in conn.execute(
            select(PHOTOS.c.id)
            .where(PHOTOS.c.fingerprint.is_(None), PHOTOS.c.error.is_(None))
            .where(PHOTOS.c.id <= mark.photos)
            .order_by(PHOTOS.c.id)
            .limit(MAX_PENDING_PHOTOS + 1)
        ).scalars()
    ]
    if len(pending) > MAX_PENDING_PHOTOS:
        mark.recheck_photos_from = pending[0]
    else:
        mark.pending_photos = tuple(pending)
    return mark


def changed_ads(conn: Connection, since: Watermark) -> set[int]:
    """Ads added or given a new version since the watermark: their texts are looked up again."""
    new = set(conn.execute(select(ADS.c.id).where(ADS.c.id > since.ads)).scalars())
    new.update(
        conn.execute(
            select(VERSIONS.c.ad_id).where(VERSIONS.c.id > since.versions).distinct()
        ).scalars()
    )
    return new


def new_phone_uses(conn: Connection, since: Watermark) -> set[tuple[int, str]]:
    """(ad, phone) pairs stored since the watermark."""
    rows = conn.execute(select(PHONES.c.ad_id, PHONES.c.phone).where(PHONES.c.id > since.phones))
    return {(ad_id, phone) for ad_id, phone in rows}


def unlinked_ads(conn: Connection) -> set[int]:
    return set(conn.execute(select(ADS.c.id).where(ADS.c.person_id.is_(None))).scalars())


def ad_texts(conn: Connection) -> dict[int, str]:
    """Title and body of every ad, as one text."""
    rows = conn.execution_options(yield_per=20_000).execute(
        select(ADS.c.id, ADS.c.title, ADS.c.text)
    )
    return {ad_id: f"{title or ''}\n{text or ''}" for ad_id, title, text in rows}


def stored_links(conn: Connection, kinds: Sequence[str]) -> list[Any]:
    """Stored links of ``kinds`` (id, ad_a, ad_b, kind, level, value, strength, detail)."""
    query = select(
        LINKS.c.id,
        LINKS.c.ad_a,
        LINKS.c.ad_b,
        LINKS.c.kind,
        LINKS.c.level,
        LINKS.c.value,
        LINKS.c.strength,
        LINKS.c.detail,
    ).where(LINKS.c.kind.in_(list(kinds)))
    return list(conn.execution_options(yield_per=20_000).execute(query))


# --- writing ---------------------------------------------------------------------------------


def _insert(conn: Connection, table: Table) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def _chunks(rows: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


@dataclass
class PersonRow:
    ads: list[int]
    network: int | None  # index into the network list
    first_seen_at: datetime
    last_seen_at: datetime


class LinkWriter:
    """Writes one run's results on ``conn`` (inside the caller's transaction)."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now

    def start_run(self, full: bool) -> int:
        result = self.conn.execute(
            RUNS.insert().values(started_at=self.now, full=full, watermark=None, stats=None)
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def finish_run(self, run_id: int, watermark: Watermark, stats: dict[str, Any]) -> None:
        self.conn.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(finished_at=self.now, watermark=watermark.as_json(), stats=stats)
        )

    def delete_links(self) -> None:
        self.conn.execute(delete(LINKS))

    def insert_links(self, links: Sequence[LinkRow]) -> int:
        """Insert links that are not stored yet; returns how many were new."""
        added = 0
        for chunk in _chunks(links):
            rows = [
                {
                    "ad_a": r.ad_a,
                    "ad_b": r.ad_b,
                    "kind": r.kind,
                    "level": r.level,
                    "value": r.value,
                    "strength": r.strength,
                    "detail": r.detail,
                    "created_at": self.now,
                }
                for r in chunk
            ]
            stmt = _insert(self.conn, LINKS).on_conflict_do_nothing(
                index_elements=["ad_a", "ad_b", "kind", "value"]
            )
            result = self.conn.execute(stmt.returning(LINKS.c.id), rows)
            added += len(result.all())
        return added

    def relevel_links(self, changes: Sequence[tuple[int, str, float]]) -> None:
        """Set (link id, level, strength) of links whose evidence was judged anew."""
        stmt = (
            update(LINKS)
            .where(LINKS.c.id == bindparam("link_id"))
            .values(level=bindparam("new_level"), strength=bindparam("new_strength"))
        )
        for chunk in _chunks(changes):
            self.conn.execute(
                stmt,
                [{"link_id": i, "new_level": lv, "new_strength": s} for i, lv, s in chunk],
            )

    def insert_networks(self, count: int) -> list[int]:
        """``count`` new network rows; their ids in order."""
        return self._insert_ids(
            NETWORKS,
            [
                {"created_at": self.now, "updated_at": self.now, "n_persons": 0, "n_ads": 0}
                for _ in range(count)
            ],
        )

    def insert_persons(self, count: int) -> list[int]:
        """``count`` new person rows; their ids in order."""
        return self._insert_ids(
            PERSONS,
            [
                {
                    "created_at": self.now,
                    "updated_at": self.now,
                    "n_ads": 0,
                    "n_municipalities": 0,
                    "border_crossings": 0,
                }
                for _ in range(count)
            ],
        )

    def _insert_ids(self, table: Table, rows: list[dict[str, Any]]) -> list[int]:
        ids: list[int] = []
        for chunk in _chunks(rows):
            result = self.conn.execute(
                table.insert().returning(table.c.id, sort_by_parameter_order=True), list(chunk)
            )
            ids.extend(int(i) for i in result.scalars())
        return ids

    def update_networks(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of (network_id, n_persons, n_ads, evidence)."""
        stmt = (
            update(NETWORKS)
            .where(NETWORKS.c.id == bindparam("network_id"))
            .values(
                n_persons=bindparam("n_persons_"),
                n_ads=bindparam("n_ads_"),
                evidence=bindparam("evidence_"),
                updated_at=self.now,
            )
        )
        for chunk in _chunks(rows):
            self.conn.execute(
                stmt,
                [
                    {
                        "network_id": r["network_id"],
                        "n_persons_": r["n_persons"],
                        "n_ads_": r["n_ads"],
                        "evidence_": r["evidence"],
                    }
                    for r in chunk
                ],
            )

    def update_persons(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rows of (person_id, network_id, n_ads, first_seen_at, last_seen_at)."""
        stmt = (
            update(PERSONS)
            .where(PERSONS.c.id == bindparam("person_id"))
            .values(
                network_id=bindparam("network_id_"),
                n_ads=bindparam("n_ads_"),
                first_seen_at=bindparam("first_"),
                last_seen_at=bindparam("last_"),
                updated_at=self.now,
            )
        )
        for chunk in _chunks(rows):
            self.conn.execute(
                stmt,
                [
                    {
                        "person_id": r["person_id"],
                        "network_id_": r["network_id"],
                        "n_ads_": r["n_ads"],
                        "first_": r["first_seen_at"],
                        "last_": r["last_seen_at"],
                    }
                    for r in chunk
                ],
            )

    def assign_ads(self, changes: Sequence[tuple[int, int, int | None]]) -> None:
        """Set (ad id, person id, network id) of ads whose assignment changed."""
        stmt = (
            update(ADS)
            .where(ADS.c.id == bindparam("ad_id"))
            .values(person_id=bindparam("person_"), network_id=bindparam("network_"))
        )
        for chunk in _chunks(changes):
            self.conn.execute(
                stmt, [{"ad_id": a, "person_": p, "network_": n} for a, p, n in chunk]
            )

    def retire_persons(self, ids: Sequence[int]) -> None:
        """Delete persons no ad belongs to any more, with their trails."""
        for chunk in _chunks(list(ids)):
            self.conn.execute(delete(STAYS).where(STAYS.c.person_id.in_(chunk)))
            self.conn.execute(delete(MOVES).where(MOVES.c.person_id.in_(chunk)))
            self.conn.execute(delete(PERSONS).where(PERSONS.c.id.in_(chunk)))

    def retire_networks(self, ids: Sequence[int]) -> None:
        for chunk in _chunks(list(ids)):
            self.conn.execute(
                update(PERSONS).where(PERSONS.c.network_id.in_(chunk)).values(network_id=None)
            )
            self.conn.execute(
                update(ADS).where(ADS.c.network_id.in_(chunk)).values(network_id=None)
            )
            self.conn.execute(delete(NETWORKS).where(NETWORKS.c.id.in_(chunk)))

    def add_events(self, run_id: int, events: Sequence[dict[str, Any]]) -> None:
        rows = [{**e, "link_run_id": run_id, "at": self.now} for e in events]
        for chunk in _chunks(rows):
            self.conn.execute(EVENTS.insert(), list(chunk))
