"""``lovitura export --format jsonl``: the stored observations written back in the item schema.

One line per ad per day seen (``ad_observations``), with what the ad said that day (the version
valid then), so another deployment can ``lovitura ingest`` the file and store the same ads,
versions and observations. Photos carry their stored fingerprint, so the receiver need not
fetch them.

Pseudonymised by default: every phone number, e-mail address, messaging handle and web address
in the title, text, place, phone field, nickname and extra fields is replaced by its keyed
pseudonym (``ph_...``, ``em_...``, ``hd_...``, ``id_...``, docs/privacy.md), and photo URLs by
``pf_...``; a receiver with the same key can match them, nobody else can read them. The file is
written readable by its owner only and recorded in the audit log with its SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, select

from lovitura_crawl.db import models
from lovitura_crawl.db.store import parse_time
from lovitura_crawl.items import ITEM_SCHEMA_VERSION
from lovitura_crawl.itemschema import SCHEMA_KEY
from lovitura_crawl.privacy.pseudonym import key_id, pseudonymise, pseudonymise_phone

ADS: Table = models.Ad.__table__  # type: ignore[assignment]
VERSIONS: Table = models.AdVersion.__table__  # type: ignore[assignment]
OBSERVATIONS: Table = models.AdObservation.__table__  # type: ignore[assignment]
PHOTOS: Table = models.AdPhoto.__table__  # type: ignore[assignment]
CHUNK = 500  # ads read at once
TEXT_FIELDS = ("title", "text", "place", "phone_text", "nickname")
# Identifiers the fields extractor finds, and the pseudonym kind of each.
FOUND_KINDS = {"email": "email", "handle": "handle", "url": "url"}
PSEUDONYMISED_KEY = "pseudonymised_with"  # extra field: the id (not the key) of the key used


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    sha256: str


class Pseudonymiser:
    """Replaces the identifiers in an item's texts by their keyed pseudonyms."""

    def __init__(self, key: bytes, regions: Mapping[str, str]) -> None:
        self.key = key
        self.regions = regions

    def text(self, value: str | None, site: str) -> str | None:
        if not value:
            return value
        from pipelines.fields import extract_fields
        from pipelines.phones import find_phones

        spans = [
            (m.start, m.end, pseudonymise_phone(m.e164, self.key))
            for m in find_phones(value, self.regions.get(site, "NL"))
        ]
        for found in extract_fields("", value).evidence:
            kind = FOUND_KINDS.get(found.kind)
            if kind is not None and found.source == "text":
                spans.append((found.start, found.end, pseudonymise(kind, found.value, self.key)))
        return _replace(value, spans)

    def item(self, item: dict[str, Any]) -> dict[str, Any]:
        site = item["site"]
        for name in TEXT_FIELDS:
            if name in item:
                item[name] = self.text(item[name], site)
        extra = dict(item.get("extra") or {})
        for name, value in extra.items():
            if isinstance(value, str):
                extra[name] = self.text(value, site)
        extra[PSEUDONYMISED_KEY] = key_id(self.key)
        item["extra"] = extra
        for photo in item.get("photos") or []:
            photo["url"] = pseudonymise("photo", photo["url"], self.key)
        return item


def _replace(value: str, spans: list[tuple[int, int, str]]) -> str:
    """``value`` with each span replaced; of overlapping spans the first (longest) wins."""
    parts: list[str] = []
    position = 0
    for start, end, replacement in sorted(spans, key=lambda s: (s[0], -s[1])):
        if start < position:
            continue
        parts += [value[position:start], replacement]
        position = end
    return "".join(parts) + value[position:]


def observation_items(engine: Engine, site: str | None = None) -> Iterator[dict[str, Any]]:
    """Every stored observation as an item (clear), ad by ad, each ad's days in order."""
    query = select(ADS.c.id).order_by(ADS.c.id)
    if site is not None:
        query = query.where(ADS.c.site == site)
    with engine.connect() as conn:
        ad_ids = list(conn.execute(query).scalars())
        for start in range(0, len(ad_ids), CHUNK):
            yield from _chunk_items(conn, ad_ids[start : start + CHUNK])


def _chunk_items(conn: Any, ad_ids: list[int]) -> Iterator[dict[str, Any]]:
    ads = {row.id: row for row in conn.execute(select(ADS).where(ADS.c.id.in_(ad_ids)))}
    versions: dict[int, list[Any]] = {}
    for row in conn.execute(
        select(VERSIONS).where(VERSIONS.c.ad_id.in_(ad_ids)).order_by(VERSIONS.c.valid_from)
    ):
        versions.setdefault(row.ad_id, []).append(row)
    prints: dict[tuple[int, str], Any] = {
        (row.ad_id, row.url): row.fingerprint
        for row in conn.execute(
            select(PHOTOS.c.ad_id, PHOTOS.c.url, PHOTOS.c.fingerprint).where(
                PHOTOS.c.ad_id.in_(ad_ids)
            )
        )
    }
    observations = conn.execute(
        select(OBSERVATIONS.c.ad_id, OBSERVATIONS.c.observed_at)
        .where(OBSERVATIONS.c.ad_id.in_(ad_ids))
        .order_by(OBSERVATIONS.c.ad_id, OBSERVATIONS.c.observed_at)
    )
    for ad_id, observed_at in observations:
        seen = parse_time(observed_at)
        version = _valid_at(versions.get(ad_id, []), seen)
        yield _item(ads[ad_id], version, seen, prints)


def _valid_at(versions: list[Any], seen: datetime) -> Any:
    """The version valid at ``seen``: the last one from before it (else the first)."""
    valid = [v for v in versions if parse_time(v.valid_from) <= seen]
    return valid[-1] if valid else (versions[0] if versions else None)


def _item(
    ad: Any, version: Any, seen: datetime, prints: Mapping[tuple[int, str], Any]
) -> dict[str, Any]:
    source = version if version is not None else ad
    photos = []
    for url in (version.photo_urls if version is not None else None) or []:
        photo: dict[str, Any] = {"url": url}
        if prints.get((ad.id, url)):
            photo["fingerprint"] = prints[(ad.id, url)]
        photos.append(photo)
    values: dict[str, Any] = {
        SCHEMA_KEY: ITEM_SCHEMA_VERSION,
        "site": ad.site,
        "site_ad_id": ad.site_ad_id,
        "url": ad.url,
        "observed_at": seen.isoformat(),
        "title": source.title,
        "text": source.text,
        "place": source.place_text,
        "phone_text": version.phone_text if version is not None else None,
        # Known limit: nickname, age and posting date are not versioned in the database; every
        # line of an ad carries the latest ones.
        "nickname": ad.nickname,
        "age": str(ad.age) if ad.age is not None else None,
        "posted_at": ad.posted_at,
        "photos": photos,
        "extra": ad.extra,
    }
    return {name: value for name, value in values.items() if value is not None}


def write_export(
    engine: Engine,
    out: Path,
    *,
    key: bytes | None,
    regions: Mapping[str, str],
    site: str | None = None,
) -> ExportResult:
    """Write the export to ``out`` (mode 600, replaced at once); ``key=None`` writes clear."""
    pseudonymiser = Pseudonymiser(key, regions) if key is not None else None
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    digest = hashlib.sha256()
    rows = 0
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            for item in observation_items(engine, site):
                if pseudonymiser is not None:
                    item = pseudonymiser.item(item)
                line = (json.dumps(item, ensure_ascii=False, default=_json) + "\n").encode()
                digest.update(line)
                handle.write(line)
                rows += 1
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(out, rows, digest.hexdigest())


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
