"""Reads what the linker needs from the database into compact in-memory records.

One query per table, streamed; nothing here decides anything. Days become date ordinals and
places become :mod:`matching.timeline` place keys, so the rest of the matching stage does integer
arithmetic on plain tuples.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, select

from lovitura_crawl.db import models
from matching.timeline import Place, Sighting, ad_sightings, place_key

logger = logging.getLogger(__name__)

ADS: Table = models.Ad.__table__  # type: ignore[assignment]
OBSERVATIONS: Table = models.AdObservation.__table__  # type: ignore[assignment]
PHONES: Table = models.AdPhone.__table__  # type: ignore[assignment]
PHOTOS: Table = models.AdPhoto.__table__  # type: ignore[assignment]
OVERRIDES: Table = models.LinkOverride.__table__  # type: ignore[assignment]

_STREAM = 20_000  # rows fetched per round trip


class PhoneUse(NamedTuple):
    """A number on an ad: the days it was first and last seen there, and where in which field."""

    first_day: int
    last_day: int
    field: str | None
    start: int | None
    end: int | None


@dataclass(slots=True)
class AdRecord:
    """One ad as the linker sees it."""

    id: int
    site: str
    age: int | None
    nickname: str | None
    first_day: int
    last_day: int
    person_id: int | None
    network_id: int | None
    first_seen_at: datetime
    last_seen_at: datetime
    posted_day: int | None = None  # the posting date the site shows, when it could be read
    emails: tuple[str, ...] = ()
    handles: tuple[str, ...] = ()
    phones: dict[str, PhoneUse] = field(default_factory=dict)
    days: tuple[int, ...] = ()  # every day it was seen, in order
    sightings: list[Sighting] = field(default_factory=list)  # the days it named a place


@dataclass(frozen=True, slots=True)
class PhotoRecord:
    id: int
    ad_id: int
    url: str
    fingerprint: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Override:
    ad_a: int
    ad_b: int
    action: str  # "suppress" or "force"
    reason: str


def day_of(moment: datetime | date | str) -> int:
    """The date ordinal of a timestamp, date or ISO string."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment) if "T" in moment else date.fromisoformat(moment)
    if isinstance(moment, datetime):
        return moment.date().toordinal()
    return moment.toordinal()


def _posted_day(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10]).toordinal()
    except ValueError:
        return None  # the site's own wording ("gisteren"), not normalised by the spider


def _contacts(fields: dict[str, Any] | None, name: str) -> tuple[str, ...]:
    values = (fields or {}).get(name) or []
    found = []
    for value in values:
        text = value.get("value") if isinstance(value, dict) else value
        if isinstance(text, str) and text.strip():
            found.append(text.strip().lower())
    return tuple(sorted(set(found)))


def load_ads(conn: Connection) -> dict[int, AdRecord]:
    """Every ad with its phones and its sightings (the days it was seen, with places)."""
    ads: dict[int, AdRecord] = {}
    posted: dict[int, int | None] = {}
    query = select(
        ADS.c.id,
        ADS.c.site,
        ADS.c.age,
        ADS.c.nickname,
        ADS.c.posted_at,
        ADS.c.first_seen_at,
        ADS.c.last_seen_at,
        ADS.c.person_id,
        ADS.c.network_id,
        ADS.c.fields,
    )
    for row in conn.execution_options(yield_per=_STREAM).execute(query):
        ads[row.id] = AdRecord(
            id=row.id,
            site=row.site,
            age=row.age,
            nickname=(row.nickname or "").strip().lower() or None,
            first_day=day_of(row.first_seen_at),
            last_day=day_of(row.last_seen_at),
            person_id=row.person_id,
            network_id=row.network_id,
            first_seen_at=row.first_seen_at,
            last_seen_at=row.last_seen_at,
            posted_day=_posted_day(row.posted_at),
            emails=_contacts(row.fields, "emails"),
            handles=_contacts(row.fields, "handles"),
        )
        posted[row.id] = ads[row.id].posted_day
    _add_phones(conn, ads)
    _add_sightings(conn, ads, posted)
    return ads


def _add_phones(conn: Connection, ads: dict[int, AdRecord]) -> None:
    query = select(
        PHONES.c.ad_id,
        PHONES.c.phone,
        PHONES.c.first_seen_at,
        PHONES.c.last_seen_at,
        PHONES.c.field,
        PHONES.c.start,
        PHONES.c.end,
    )
    for row in conn.execution_options(yield_per=_STREAM).execute(query):
        ad = ads.get(row.ad_id)
        if ad is not None:
            ad.phones[row.phone] = PhoneUse(
                day_of(row.first_seen_at), day_of(row.last_seen_at), row.field, row.start, row.end
            )


def _add_sightings(
    conn: Connection, ads: dict[int, AdRecord], posted: dict[int, int | None]
) -> None:
    days: dict[int, list[tuple[int, Place | None]]] = defaultdict(list)
    query = select(
        OBSERVATIONS.c.ad_id,
        OBSERVATIONS.c.observed_on,
        OBSERVATIONS.c.municipality_code,
        OBSERVATIONS.c.country,
    )
    for ad_id, observed_on, code, country in conn.execution_options(yield_per=_STREAM).execute(
        query
    ):
        days[ad_id].append((observed_on.toordinal(), place_key(code, country)))
    for ad_id, seen in days.items():
        ad = ads.get(ad_id)
        if ad is None:
            continue
        ad.sightings = ad_sightings(ad_id, ad.site, seen, posted.get(ad_id))
        ad.days = tuple(sorted({d for d, _ in seen}))
        ad.first_day = min(ad.first_day, ad.days[0])
        ad.last_day = max(ad.last_day, ad.days[-1])


def load_photos(conn: Connection, min_id: int = 0) -> list[PhotoRecord]:
    """Fingerprinted photos with an id above ``min_id``, in id order."""
    query = (
        select(PHOTOS.c.id, PHOTOS.c.ad_id, PHOTOS.c.url, PHOTOS.c.fingerprint)
        .where(PHOTOS.c.fingerprint.is_not(None), PHOTOS.c.id > min_id)
        .order_by(PHOTOS.c.id)
    )
    return [
        PhotoRecord(row.id, row.ad_id, row.url, row.fingerprint)
        for row in conn.execution_options(yield_per=_STREAM).execute(query)
        if row.fingerprint
    ]


def load_overrides(conn: Connection) -> list[Override]:
    """The analysts' decisions, with ``ad_a`` < ``ad_b``."""
    rows = conn.execute(
        select(OVERRIDES.c.ad_a, OVERRIDES.c.ad_b, OVERRIDES.c.action, OVERRIDES.c.reason)
    )
    overrides = []
    for ad_a, ad_b, action, reason in rows:
        if action not in ("suppress", "force"):
            logger.warning(
                "link override of ads %s and %s has unknown action %r (use suppress or force); "
                "ignored",
                ad_a,
                ad_b,
                action,
            )
            continue
        low, high = sorted((ad_a, ad_b))
        overrides.append(Override(low, high, action, reason))
    return overrides
