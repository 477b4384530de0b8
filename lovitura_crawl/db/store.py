"""Writing observations of ads to the database, idempotently.

Every write is keyed on (site, site_ad_id), so storing the same observation twice (a rerun after
a crash, a re-ingested file, two workers racing) changes nothing the second time. An ad's
content is kept as dated versions in ``ad_versions``; every day it was seen is a row in
``ad_observations``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, bindparam, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from lovitura_crawl.anomalies import Anomaly
from lovitura_crawl.db import models

logger = logging.getLogger(__name__)

ADS: Table = models.Ad.__table__  # type: ignore[assignment]
VERSIONS: Table = models.AdVersion.__table__  # type: ignore[assignment]
OBSERVATIONS: Table = models.AdObservation.__table__  # type: ignore[assignment]
PHONES: Table = models.AdPhone.__table__  # type: ignore[assignment]
PHOTOS: Table = models.AdPhoto.__table__  # type: ignore[assignment]
RUNS: Table = models.CrawlRun.__table__  # type: ignore[assignment]
ANOMALIES: Table = models.CrawlAnomaly.__table__  # type: ignore[assignment]

CONTENT_FIELDS = ("title", "text", "place", "phone_text", "nickname", "age")
# Keys of an item's ``extra`` that tell the store how the crawl saw the ad, not what it says.
LISTING_ONLY = "listing_only"
LISTING_SIGNATURE = "listing_signature"
CRAWL_KEYS = (LISTING_ONLY, LISTING_SIGNATURE)


def is_listing_only(item: Any) -> bool:
    """Whether ``item`` (a dict, an item or an ItemAdapter) records an ad from its listing
    entry alone: seen, with no content of its own to extract or store."""
    return bool((item.get("extra") or {}).get(LISTING_ONLY))


@dataclass(frozen=True)
class ListingState:
    """What the database knows of one ad, for deciding whether to fetch its page again."""

    signature: str | None  # the listing entry's signature when the ad was last seen
    detail_fetched_at: datetime | None  # last full fetch of the ad page
    last_seen_at: datetime


@dataclass
class StoreResult:
    new: int = 0
    updated: int = 0  # content changed: a new version
    unchanged: int = 0

    def __iadd__(self, other: StoreResult) -> StoreResult:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self


def parse_time(value: str | datetime) -> datetime:
    """An aware datetime from an ISO 8601 string (naive times are taken as UTC)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def content_hash(item: Mapping[str, Any]) -> str:
    """A digest of what an ad says: a new version is stored when it changes."""
    content = {name: item.get(name) for name in CONTENT_FIELDS}
    content["photos"] = sorted(p.get("url", "") for p in item.get("photos") or [])
    encoded = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _insert(conn: Connection, table: Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _age(value: Any) -> int | None:
    try:
        age = int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None
    return age if age is not None and 14 <= age <= 99 else None


def _location(item: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    location = item.get("location") or {}
    return location.get("code"), location.get("country"), location.get("method")


class AdStore:
    """Stores items (dicts in the schema of docs/items.md) and crawl runs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- crawl runs ----------------------------------------------------------------------
    def start_run(self, site: str, clock: datetime) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                RUNS.insert().values(
                    site=site,
                    started_at=datetime.now(UTC),
                    clock=clock,
                    outcome="running",
                    listing_complete=False,
                    n_items=0,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish_run(
        self,
        run_id: int,
        *,
        outcome: str,
        stats: Mapping[str, Any],
        listing_complete: bool,
        n_items: int,
        anomalies: Iterable[Anomaly] = (),
    ) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(
                    finished_at=now,
                    outcome=outcome,
                    stats=json.loads(json.dumps(dict(stats), default=str)),
                    listing_complete=listing_complete,
                    n_items=n_items,
                )
            )
            rows = [
                {
                    "crawl_run_id": run_id,
                    "stage": a.stage,
                    "reason": a.reason,
                    "site": a.site,
                    "site_ad_id": a.site_ad_id,
                    "url": a.url,
                    "detail": a.detail,
                    "at": now,
                }
                for a in anomalies
            ]
            if rows:
                conn.execute(ANOMALIES.insert(), rows)

    def mark_gone(self, site: str, clock: datetime) -> int:
        """After a complete listing crawl: ads of ``site`` not seen at ``clock`` are gone."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(ADS)
                .where(
                    and_(ADS.c.site == site, ADS.c.last_seen_at < clock, ADS.c.gone_at.is_(None))
                )
                .values(gone_at=clock)
            )
            return int(result.rowcount or 0)

    def close_stale_runs(self, site: str) -> int:
        """Mark runs of ``site`` still ``running`` as ``killed``; returns how many.

        Call only while holding the site's crawl lock: then no other crawl of the site runs,
        and a ``running`` row is what a killed process left behind.
        """
        with self.engine.begin() as conn:
            result = conn.execute(
                update(RUNS)
                .where(RUNS.c.site == site, RUNS.c.outcome == "running")
                .values(outcome="killed")
            )
            return int(result.rowcount or 0)

    def listing_state(self, site: str, since: datetime) -> dict[str, ListingState]:
        """Ads of ``site`` seen at or after ``since``, by site_ad_id: one query."""
        query = select(
            ADS.c.site_ad_id, ADS.c.listing_signature, ADS.c.detail_fetched_at, ADS.c.last_seen_at
        ).where(ADS.c.site == site, ADS.c.last_seen_at >= since)
        with self.engine.connect() as conn:
            return {
                row.site_ad_id: ListingState(
                    row.listing_signature,
                    parse_time(row.detail_fetched_at) if row.detail_fetched_at else None,
                    parse_time(row.last_seen_at),
                )
                for row in conn.execute(query)
            }

    # --- observations --------------------------------------------------------------------
    def save(self, items: Sequence[Mapping[str, Any]], run_id: int | None = None) -> StoreResult:
        """Store a batch of observations in one transaction.

        Each kind of row is written with one statement per batch (executemany), not one per
        item. Two observations of one ad in a batch are stored one after the other, in their
        order: the batch is cut into rounds in which every ad appears at most once.
        """
        total = StoreResult()
        if not items:
            return total
        with self.engine.begin() as conn:
            existing = self._existing(conn, items)
            for group in _rounds(items):
                total += self._save_round(conn, group, existing, run_id)
        return total

    def _existing(
        self, conn: Connection, items: Sequence[Mapping[str, Any]]
    ) -> dict[tuple[str, str], Any]:
        keys = list({(str(i["site"]), str(i["site_ad_id"])) for i in items})
        found: dict[tuple[str, str], Any] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = conn.execute(
                select(
                    ADS.c.id,
                    ADS.c.site,
                    ADS.c.site_ad_id,
                    ADS.c.content_hash,
                    ADS.c.first_seen_at,
                    ADS.c.last_seen_at,
                ).where(tuple_(ADS.c.site, ADS.c.site_ad_id).in_(chunk))
            )
            for row in rows:
                found[(row.site, row.site_ad_id)] = row
        return found

    def _save_round(
        self,
        conn: Connection,
        items: Sequence[Mapping[str, Any]],
        existing: dict[tuple[str, str], Any],
        run_id: int | None,
    ) -> StoreResult:
        """Store observations of distinct ads: each kind of row in one statement."""
        result = StoreResult()
        new = [item for item in items if _key(item) not in existing]
        ids = self._insert_ads(conn, new)
        writes = _Writes()
        for item in items:
            key = _key(item)
            seen = parse_time(item["observed_at"])
            listing_only = is_listing_only(item)
            code, country, method = _location(item)
            row = existing.get(key)
            if row is None:
                ad_id = ids[key]
                digest = content_hash(item)
                existing[key] = _Row(ad_id, digest, seen, seen)
                result.new += 1
            else:
                ad_id = row.id
                digest = content_hash(item)
                older = seen < parse_time(row.last_seen_at)
                # An older observation (a re-ingested file, a replay of old pages) is compared
                # with the version valid when it was made, not with the ad's latest content.
                then = self._content_at(conn, ad_id, seen) if older else row.content_hash
                changed = not listing_only and digest != then
                writes.touch(ad_id, _touched(item, seen, row, changed, code, country, method))
                if changed:
                    result.updated += 1
                else:
                    result.unchanged += 1
                existing[key] = _Row(
                    ad_id,
                    digest if changed and not older else row.content_hash,
                    min(parse_time(row.first_seen_at), seen),
                    max(parse_time(row.last_seen_at), seen),
                )
                if not changed:
                    digest = ""
            if digest:
                writes.versions.append(_version_row(ad_id, item, seen, digest, code, country))
            place = None if listing_only else (code, country)
            writes.observations.append((ad_id, seen, run_id, place))
            if not listing_only:
                writes.phones.extend(_phone_rows(ad_id, item, seen))
                writes.photos.extend(_photo_rows(ad_id, item, seen))
        writes.execute(conn)
        return result

    def _insert_ads(
        self, conn: Connection, items: Sequence[Mapping[str, Any]]
    ) -> dict[tuple[str, str], int]:
        """Insert new ads (one statement); their ids by key, whoever inserted them first."""
        if not items:
            return {}
        rows = []
        for item in items:
            seen = parse_time(item["observed_at"])
            values = _ad_values(item, *_location(item))
            values.update(
                site=str(item["site"]),
                site_ad_id=str(item["site_ad_id"]),
                first_seen_at=seen,
                last_seen_at=seen,
                content_hash=content_hash(item),
                detail_fetched_at=None,
                listing_signature=None,
            )
            values.update(_crawl_values(item, seen))
            rows.append(values)
        stmt = _insert(conn, ADS).on_conflict_do_nothing(index_elements=["site", "site_ad_id"])
        conn.execute(stmt, rows)
        # Another worker may have inserted some first: read the ids back either way.
        keys = [(row["site"], row["site_ad_id"]) for row in rows]
        ids: dict[tuple[str, str], int] = {}
        for start in range(0, len(keys), 500):
            found = conn.execute(
                select(ADS.c.id, ADS.c.site, ADS.c.site_ad_id).where(
                    tuple_(ADS.c.site, ADS.c.site_ad_id).in_(keys[start : start + 500])
                )
            )
            ids.update({(r.site, r.site_ad_id): int(r.id) for r in found})
        return ids

    def _content_at(self, conn: Connection, ad_id: int, seen: datetime) -> str | None:
        """The content hash of the version of ``ad_id`` valid at ``seen`` (None: none yet)."""
        return conn.execute(
            select(VERSIONS.c.content_hash)
            .where(VERSIONS.c.ad_id == ad_id, VERSIONS.c.valid_from <= seen)
            .order_by(VERSIONS.c.valid_from.desc())
            .limit(1)
        ).scalar()

    def known_photo_fingerprints(self, urls: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Fingerprints already stored for these photo URLs (so they are not fetched again)."""
        wanted = list(set(urls))
        found: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                rows = conn.execute(
                    select(PHOTOS.c.url, PHOTOS.c.fingerprint).where(
                        PHOTOS.c.url.in_(wanted[start : start + 500]),
                        PHOTOS.c.fingerprint.is_not(None),
                    )
                )
                for url, fingerprint in rows:
                    found[url] = fingerprint
        return found


@dataclass
class _Row:
    id: int
    content_hash: str
    first_seen_at: datetime
    last_seen_at: datetime


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    return str(item["site"]), str(item["site_ad_id"])


def _rounds(items: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """``items`` cut into rounds, in order, with every ad at most once per round."""
    rounds: list[list[Mapping[str, Any]]] = []
    seen: dict[tuple[str, str], int] = {}
    for item in items:
        key = _key(item)
        n = seen.get(key, 0)
        seen[key] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(item)
    return rounds


def _touched(
    item: Mapping[str, Any],
    seen: datetime,
    row: Any,
    changed: bool,
    code: str | None,
    country: str | None,
    method: str | None,
) -> dict[str, Any]:
    """The columns of a known ad that this observation changes."""
    values: dict[str, Any] = {}
    last = parse_time(row.last_seen_at)
    if seen >= last:
        values.update(last_seen_at=seen, **_crawl_values(item, seen))
        if seen > last:  # seen again after it was marked gone (the same sighting is not)
            values["gone_at"] = None
        if changed:
            values.update(_ad_values(item, code, country, method))
            values["content_hash"] = content_hash(item)
    if seen < parse_time(row.first_seen_at):
        values["first_seen_at"] = seen
    return values


# Columns of ad_versions -> the item's fields they hold.
_VERSION_TEXTS = {
    "title": "title",
    "text": "text",
    "place_text": "place",
    "phone_text": "phone_text",
}


def _version_row(
    ad_id: int,
    item: Mapping[str, Any],
    seen: datetime,
    digest: str,
    code: str | None,
    country: str | None,
) -> dict[str, Any]:
    row = {column: item.get(name) for column, name in _VERSION_TEXTS.items()}
    row.update(ad_id=ad_id, valid_from=seen, content_hash=digest)
    row.update(municipality_code=code, country=country)
    row["phones"] = [p["e164"] for p in item.get("phones") or []]
    row["photo_urls"] = [p.get("url") for p in item.get("photos") or []]
    return row


def _phone_rows(ad_id: int, item: Mapping[str, Any], seen: datetime) -> list[dict[str, Any]]:
    # One row per number: its first place in the ad (the phone field comes first), so that
    # field, start and end always describe one and the same occurrence.
    first: dict[str, Mapping[str, Any]] = {}
    for phone in item.get("phones") or []:
        first.setdefault(phone["e164"], phone)
    return [
        {
            "ad_id": ad_id,
            "phone": phone["e164"],
            "field": phone.get("field"),
            "start": phone.get("start"),
            "end": phone.get("end"),
            "first_seen_at": seen,
            "last_seen_at": seen,
        }
        for phone in first.values()
    ]


def _photo_rows(ad_id: int, item: Mapping[str, Any], seen: datetime) -> list[dict[str, Any]]:
    rows = []
    for position, photo in enumerate(item.get("photos") or []):
        fingerprint = photo.get("fingerprint")
        rows.append(
            {
                "ad_id": ad_id,
                "url": photo["url"],
                "position": position,
                "phash": (fingerprint or {}).get("phash"),
                "fingerprint": fingerprint,
                "error": photo.get("error"),
                "first_seen_at": seen,
                "last_seen_at": seen,
            }
        )
    return rows


@dataclass
class _Writes:
    """The rows of one round of a batch, written with one statement per kind of row."""

    updates: dict[tuple[str, ...], list[dict[str, Any]]] = field(default_factory=dict)
    versions: list[dict[str, Any]] = field(default_factory=list)
    # ad id, time, run, and (code, country), or None to keep the ad's current place
    observations: list[tuple[int, datetime, int | None, tuple[str | None, str | None] | None]] = (
        field(default_factory=list)
    )
    phones: list[dict[str, Any]] = field(default_factory=list)
    photos: list[dict[str, Any]] = field(default_factory=list)

    def touch(self, ad_id: int, values: dict[str, Any]) -> None:
        if values:
            columns = tuple(sorted(values))
            self.updates.setdefault(columns, []).append({"_ad": ad_id, **values})

    def execute(self, conn: Connection) -> None:
        for columns, rows in self.updates.items():
            # Bound as _<column>: SQLAlchemy keeps the columns' own names for itself.
            stmt = (
                update(ADS)
                .where(ADS.c.id == bindparam("_ad"))
                .values({c: bindparam(f"_{c}", type_=ADS.c[c].type) for c in columns})
            )
            conn.execute(
                stmt, [{f"_{c}": row[c] for c in columns} | {"_ad": row["_ad"]} for row in rows]
            )
        if self.versions:
            stmt = _insert(conn, VERSIONS).on_conflict_do_nothing(
                index_elements=["ad_id", "valid_from"]
            )
            conn.execute(stmt, self.versions)
        self._observe(conn)
        if self.phones:
            phones = _insert(conn, PHONES)
            conn.execute(
                phones.on_conflict_do_update(
                    index_elements=["ad_id", "phone"],
                    set_={
                        "last_seen_at": phones.excluded.last_seen_at,
                        "field": phones.excluded.field,
                        "start": phones.excluded.start,
                        "end": phones.excluded.end,
                    },
                ),
                self.phones,
            )
        # A photo seen again keeps its fingerprint when this observation has none.
        fingerprinted = [row for row in self.photos if row["fingerprint"]]
        bare = [row for row in self.photos if not row["fingerprint"]]
        for rows, fingerprints in ((fingerprinted, True), (bare, False)):
            if not rows:
                continue
            photos = _insert(conn, PHOTOS)
            set_: dict[str, Any] = {
                "last_seen_at": photos.excluded.last_seen_at,
                "position": photos.excluded.position,
            }
            if fingerprints:
                set_.update(fingerprint=photos.excluded.fingerprint, phash=photos.excluded.phash)
            stmt = photos.on_conflict_do_update(index_elements=["ad_id", "url"], set_=set_)
            conn.execute(stmt, rows)

    def _observe(self, conn: Connection) -> None:
        if not self.observations:
            return
        # A listing-only observation is placed where the ad is now (written above).
        keep = [ad_id for ad_id, _, _, place in self.observations if place is None]
        current: dict[int, tuple[str | None, str | None]] = {}
        for start in range(0, len(keep), 500):
            found = conn.execute(
                select(ADS.c.id, ADS.c.municipality_code, ADS.c.country).where(
                    ADS.c.id.in_(keep[start : start + 500])
                )
            )
            current.update({r.id: (r.municipality_code, r.country) for r in found})
        rows = []
        for ad_id, seen, run_id, place in self.observations:
            code, country = place if place is not None else current[ad_id]
            rows.append(
                {
                    "ad_id": ad_id,
                    "observed_on": seen.date(),
                    "observed_at": seen,
                    "crawl_run_id": run_id,
                    "municipality_code": code,
                    "country": country,
                }
            )
        stmt = _insert(conn, OBSERVATIONS).on_conflict_do_nothing(
            index_elements=["ad_id", "observed_on"]
        )
        conn.execute(stmt, rows)


def _ad_values(
    item: Mapping[str, Any], code: str | None, country: str | None, method: str | None
) -> dict[str, Any]:
    return {
        "url": item["url"],
        "title": item.get("title"),
        "text": item.get("text"),
        "nickname": item.get("nickname"),
        "age": _age(item.get("age")),
        "place_text": item.get("place"),
        "posted_at": item.get("posted_at"),
        "municipality_code": code,
        "country": country,
        "place_method": method,
        "fields": item.get("fields"),
        "extra": _site_extra(item),
    }


def _site_extra(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """The item's ``extra`` without the crawl's own keys (they have columns)."""
    extra = item.get("extra")
    if not extra:
        return extra
    kept = {key: value for key, value in extra.items() if key not in CRAWL_KEYS}
    return kept or None


def _crawl_values(item: Mapping[str, Any], seen: datetime) -> dict[str, Any]:
    """Incremental-crawl columns: a full observation is a fetch of the ad page."""
    extra = item.get("extra") or {}
    values: dict[str, Any] = {}
    if not extra.get(LISTING_ONLY):
        values["detail_fetched_at"] = seen
    if extra.get(LISTING_SIGNATURE):
        values["listing_signature"] = str(extra[LISTING_SIGNATURE])
    return values
