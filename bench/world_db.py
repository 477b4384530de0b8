"""A database of the demo world's observations, made without HTTP, for the linking benchmark.

The world's observations (``World.iter_observations``) go through the product's own extraction
(``pipelines.fields``, ``pipelines.phones``, ``pipelines.geo``, and photo fingerprints of
``World.photo_bytes``) and are stored day by day:

* :func:`ingest` stores them with ``AdStore.save``, one batch per simulated day, exactly as
  the daily crawls of ``lovitura demo`` would; accuracy is measured on databases made this way;
* :func:`bulk_ingest` writes the same tables (``ads``, ``ad_versions``, ``ad_observations``,
  ``ad_phones``, ``ad_photos``) in bulk at the end, for the bench scale, where ``AdStore``'s
  row-by-row upserts would take hours for a million observations. It extracts each distinct
  version of an ad once. Only the linker's input tables are written; crawl runs are not.

Photo fingerprints are real (:class:`PhotoPrints`, cached in a file by what the photo shows), or
synthetic for the bench scale: a fingerprint derived from the base photo's seed with a few
flipped bits per hash (placeholders identical). Synthetic fingerprints make the photo index and
the clustering do the same work as real ones of that structure, but accuracy figures measured
with them say nothing about photo matching.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, func, select

from fixtures.model import SITES
from fixtures.world import World, build_world
from lovitura_crawl.db import models
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.db.migrate import upgrade
from lovitura_crawl.db.reference import load_municipalities
from lovitura_crawl.db.store import AdStore, content_hash, parse_time
from pipelines.fields import FieldsPipeline
from pipelines.geo import GeoPipeline
from pipelines.phones import PhonesPipeline
from pipelines.photos import STRIP_BOXES, WINDOW_BOXES, Fingerprint, fingerprint

PHOTO_PREFIX = "demo://photo/"
SYNTHETIC_FLIPS = (0, 6)  # bits flipped per 64-bit hash of a synthetic repost (x4 for PDQ)
_CHUNK = 5_000

ADS: Table = models.Ad.__table__  # type: ignore[assignment]
VERSIONS: Table = models.AdVersion.__table__  # type: ignore[assignment]
OBSERVATIONS: Table = models.AdObservation.__table__  # type: ignore[assignment]
PHONES: Table = models.AdPhone.__table__  # type: ignore[assignment]
PHOTOS: Table = models.AdPhoto.__table__  # type: ignore[assignment]


# --- photos ----------------------------------------------------------------------------------

_WORKER_WORLD: World | None = None


def _init_worker(seed: int, scale: str, days: int | None) -> None:
    global _WORKER_WORLD
    _WORKER_WORLD = build_world(seed, scale=scale, days=days)


def _real_print(photo_id: str) -> tuple[str, dict[str, Any] | str]:
    assert _WORKER_WORLD is not None
    data, _type = _WORKER_WORLD.photo_bytes(photo_id)
    try:
        return photo_id, fingerprint(data).as_json()
    except ValueError as exc:
        return photo_id, getattr(exc, "reason", "corrupt")


def photo_contents(world: World) -> dict[str, str]:
    """What each photo id shows: its base photo's seed and its repost transformation.

    Fingerprints are cached under this, so a cache stays right when the world is rebuilt and
    its ids change.
    """
    contents = {}
    for row in world.truth_photos():
        base = row["base_photo"] if row["kind"] == "placeholder" else row["photo_seed"]
        contents[row["photo_id"]] = f"{base}|{row['transformation']}"
    return contents


class PhotoPrints:
    """Fingerprints of the world's photos: real (cached in a file) or synthetic."""

    def __init__(self, world: World, synthetic: bool, cache: Path | None, workers: int = 2) -> None:
        self.world = world
        self.synthetic = synthetic
        self.cache = cache
        self.workers = workers
        self.known: dict[str, dict[str, Any] | str] = {}
        self.contents: dict[str, str] = {}
        if cache is not None and not synthetic:
            self.contents = photo_contents(world)
            by_content: dict[str, Any] = {}
            if cache.is_file():
                for line in cache.read_text(encoding="utf-8").splitlines():
                    content, value = json.loads(line)
                    by_content[content] = value
            for photo_id, content in self.contents.items():
                if content in by_content:
                    self.known[photo_id] = by_content[content]
        self._pool: Any = None

    def prepare(self, photo_ids: list[str]) -> None:
        """Fingerprint the photos not known yet."""
        missing = [p for p in dict.fromkeys(photo_ids) if p not in self.known]
        if not missing:
            return
        if self.synthetic:
            for photo_id in missing:
                self.known[photo_id] = self._synthetic(photo_id)
            return
        if self._pool is None:
            self._pool = multiprocessing.get_context("fork").Pool(
                self.workers,
                _init_worker,
                (self.world.seed, self.world.scale, self.world.days),
            )
        found = self._pool.map(_real_print, missing, chunksize=8)
        self.known.update(found)
        if self.cache is not None:
            with self.cache.open("a", encoding="utf-8") as handle:
                for photo_id, value in found:
                    handle.write(json.dumps([self.contents[photo_id], value]) + "\n")

    def entry(self, photo_id: str) -> dict[str, Any]:
        value = self.known[photo_id]
        return {"fingerprint": value} if isinstance(value, dict) else {"error": value}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()

    def _synthetic(self, photo_id: str) -> dict[str, Any]:
        serial = self.world.photo_serial(photo_id)
        if serial < len(SITES):
            base, rng = random.Random(f"placeholder-{serial}"), random.Random(0)
            flips = 0
        else:
            base = random.Random(f"base-{self.world.photos.base[serial]}")
            rng = random.Random(f"repost-{serial}")
            flips = rng.randint(*SYNTHETIC_FLIPS)

        def bits(width: int, scale: int = 1) -> int:
            value = base.getrandbits(width)
            for position in rng.sample(range(width), flips * scale):
                value ^= 1 << position
            return value

        return Fingerprint(
            pdq=bits(256, 4),
            pdq_mirror=bits(256, 4),
            pdq_quality=100,
            phash=bits(64),
            phash_mirror=bits(64),
            windows=tuple(bits(64) for _ in WINDOW_BOXES),
            windows_mirror=tuple(bits(64) for _ in WINDOW_BOXES),
            strips=tuple(bits(64) for _ in STRIP_BOXES),
            strips_mirror=tuple(bits(64) for _ in STRIP_BOXES),
            width=800,
            height=600,
        ).as_json()


# --- extraction ------------------------------------------------------------------------------


class Extractor:
    """The product's item pipelines, without a crawler."""

    def __init__(self) -> None:
        self.pipelines: list[Any] = [FieldsPipeline(), PhonesPipeline(), GeoPipeline()]

    def process(self, item: dict[str, Any]) -> dict[str, Any]:
        for pipeline in self.pipelines:
            item = pipeline.process_item(item)
        return item


@dataclass
class Ingested:
    days: int
    observations: int
    seconds: float


def days_of(world: World, limit: int | None) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """The world's observations day by day, up to ``limit`` observations in all."""
    count = 0
    for day in range(world.days):
        items = list(world.iter_observations(range(day, day + 1)))
        if limit is not None and count + len(items) > limit:
            items = items[: limit - count]
        count += len(items)
        yield day, items
        if limit is not None and count >= limit:
            return


def _with_photos(items: list[dict[str, Any]], prints: PhotoPrints) -> None:
    prints.prepare(
        [p["url"][len(PHOTO_PREFIX) :] for item in items for p in item.get("photos") or []]
    )
    for item in items:
        for photo in item.get("photos") or []:
            photo.update(prints.entry(photo["url"][len(PHOTO_PREFIX) :]))


def ingest(
    world: World,
    engine: Engine,
    prints: PhotoPrints,
    *,
    limit: int | None = None,
    after_day: Callable[[int], None] | None = None,
) -> Ingested:
    """Extract and store the world's observations with ``AdStore``, calling ``after_day(day)``
    after each day."""
    started = time.monotonic()
    extractor = Extractor()
    store = AdStore(engine)
    total = days = 0
    for day, items in days_of(world, limit):
        _with_photos(items, prints)
        store.save([extractor.process(item) for item in items])
        total += len(items)
        days = day + 1
        if after_day is not None:
            after_day(day)
        print(f"  day {day}: {len(items)} observations stored", file=sys.stderr, flush=True)
    return Ingested(days, total, time.monotonic() - started)


# --- bulk ------------------------------------------------------------------------------------

Extracted = tuple[str, dict[str, Any]]  # an observation's content hash and the pipelines' fields
_EXTRACTED_KEYS = ("phones", "location", "fields")  # all that the pipelines add to an item


def extracted_fields(
    extractor: Extractor,
    cache: dict[tuple[tuple[str, str], str], dict[str, Any]],
    key: tuple[str, str],
    digest: str,
    item: dict[str, Any],
) -> dict[str, Any]:
    """The fields the pipelines add to ``item``, computed once per version (``cache``)."""
    done = cache.get((key, digest))
    if done is None:
        processed = extractor.process(dict(item))
        done = cache[(key, digest)] = {k: processed.get(k) for k in _EXTRACTED_KEYS}
    return done


_DAY_STATE: dict[str, Any] = {}  # the world, prints and extraction cache of a day worker


def _extract_day(day: int) -> list[tuple[dict[str, Any], Extracted]]:
    """A worker's share of :func:`bulk_ingest`: one day's observations, with their photos'
    fingerprints, content hashes and extracted fields (each version extracted once per
    worker). The world is inherited from the parent (fork)."""
    state = _DAY_STATE
    if "extractor" not in state:
        state["extractor"] = Extractor()
        state["prints"] = PhotoPrints(state["world"], True, None)
        state["cache"] = {}
    items = list(state["world"].iter_observations(range(day, day + 1)))
    _with_photos(items, state["prints"])
    done = []
    for item in items:
        key = (str(item["site"]), str(item["site_ad_id"]))
        digest = content_hash(item)
        fields = extracted_fields(state["extractor"], state["cache"], key, digest, item)
        done.append((item, (digest, fields)))
    return done


class BulkLoader:
    """Collects the rows ``AdStore`` would write for a chronological stream of observations."""

    def __init__(self) -> None:
        self.extractor = Extractor()
        self.ads: dict[tuple[str, str], dict[str, Any]] = {}
        self.versions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.observations: list[tuple[tuple[str, str], datetime, str | None, str | None]] = []
        self.phones: dict[tuple[tuple[str, str], str], dict[str, Any]] = {}
        self.photos: dict[tuple[tuple[str, str], str], dict[str, Any]] = {}
        self._extracted: dict[tuple[tuple[str, str], str], dict[str, Any]] = {}

    def add(self, item: dict[str, Any], extracted: Extracted | None = None) -> None:
        """One observation (with its photos' fingerprints); ``extracted``: its digest and the
        pipelines' fields when a worker has computed them (:func:`_extract_day`)."""
        key = (str(item["site"]), str(item["site_ad_id"]))
        seen = parse_time(item["observed_at"])
        if extracted is None:
            digest = content_hash(item)
            item = self._extract(key, digest, item)
        else:
            digest, fields = extracted
            item = {**item, **fields}
        location = item.get("location") or {}
        code, country = location.get("code"), location.get("country")
        ad = self.ads.get(key)
        if ad is None or ad["content_hash"] != digest:
            self._new_version(key, item, seen, digest, code, country)
        self.ads[key]["last_seen_at"] = seen
        self.observations.append((key, seen, code, country))
        for phone in item.get("phones") or []:
            row = self.phones.setdefault(
                (key, phone["e164"]), {"phone": phone["e164"], "first_seen_at": seen}
            )
            row.update(
                field=phone.get("field"),
                start=phone.get("start"),
                end=phone.get("end"),
                last_seen_at=seen,
            )
        for position, photo in enumerate(item.get("photos") or []):
            print_ = photo.get("fingerprint")
            row = self.photos.setdefault(
                (key, photo["url"]), {"url": photo["url"], "first_seen_at": seen}
            )
            row.update(
                position=position,
                phash=(print_ or {}).get("phash"),
                fingerprint=print_,
                error=photo.get("error"),
                last_seen_at=seen,
            )

    def _extract(self, key: tuple[str, str], digest: str, item: dict[str, Any]) -> dict[str, Any]:
        """The item with the pipelines' fields, computed once per version of an ad."""
        return {**item, **extracted_fields(self.extractor, self._extracted, key, digest, item)}

    def _new_version(
        self,
        key: tuple[str, str],
        item: dict[str, Any],
        seen: datetime,
        digest: str,
        code: str | None,
        country: str | None,
    ) -> None:
        location = item.get("location") or {}
        age = str(item.get("age") or "").strip()
        values = {
            "site": key[0],
            "site_ad_id": key[1],
            "url": item["url"],
            "title": item.get("title"),
            "text": item.get("text"),
            "nickname": item.get("nickname"),
            "age": int(age) if age.isdigit() and 14 <= int(age) <= 99 else None,
            "place_text": item.get("place"),
            "posted_at": item.get("posted_at"),
            "municipality_code": code,
            "country": country,
            "place_method": location.get("method"),
            "content_hash": digest,
            "fields": item.get("fields"),
            "extra": item.get("extra"),
        }
        previous = self.ads.get(key)
        values["first_seen_at"] = previous["first_seen_at"] if previous else seen
        self.ads[key] = values
        self.versions.setdefault(key, []).append(
            {
                "valid_from": seen,
                "content_hash": digest,
                "title": item.get("title"),
                "text": item.get("text"),
                "place_text": item.get("place"),
                "phone_text": item.get("phone_text"),
                "municipality_code": code,
                "country": country,
                "phones": [p["e164"] for p in item.get("phones") or []],
                "photo_urls": [p.get("url") for p in item.get("photos") or []],
            }
        )

    def write(self, engine: Engine) -> None:
        """Insert every collected row (the database must hold no ads yet)."""
        keys = list(self.ads)
        with engine.begin() as conn:
            ids: dict[tuple[str, str], int] = {}
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                result = conn.execute(
                    ADS.insert().returning(ADS.c.id, sort_by_parameter_order=True),
                    [self.ads[k] for k in chunk],
                )
                ids.update(zip(chunk, result.scalars(), strict=True))
            _insert_all(
                conn,
                VERSIONS,
                [{"ad_id": ids[k], **v} for k, rows in self.versions.items() for v in rows],
            )
            _insert_all(
                conn,
                OBSERVATIONS,
                [
                    {
                        "ad_id": ids[k],
                        "observed_on": seen.date(),
                        "observed_at": seen,
                        "municipality_code": code,
                        "country": country,
                    }
                    for k, seen, code, country in self.observations
                ],
            )
            _insert_all(
                conn, PHONES, [{"ad_id": ids[k], **v} for (k, _p), v in self.phones.items()]
            )
            _insert_all(
                conn, PHOTOS, [{"ad_id": ids[k], **v} for (k, _u), v in self.photos.items()]
            )


def _insert_all(conn: Any, table: Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), _CHUNK):
        conn.execute(table.insert(), rows[start : start + _CHUNK])


def bulk_ingest(
    world: World,
    engine: Engine,
    prints: PhotoPrints,
    *,
    limit: int | None = None,
    workers: int = 2,
) -> Ingested:
    """Extract the world's observations and write them in bulk (see the module docstring).

    With synthetic fingerprints and ``workers`` > 1, days are rendered, fingerprinted and
    extracted in a pool of forked processes (in order; each worker extracts a version once).
    """
    started = time.monotonic()
    loader = BulkLoader()
    total = days = 0
    if prints.synthetic and workers > 1:
        _DAY_STATE.clear()
        _DAY_STATE["world"] = world
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for day, extracted in enumerate(pool.imap(_extract_day, range(world.days))):
                if limit is not None:
                    extracted = extracted[: limit - total]
                for item, fields in extracted:
                    loader.add(item, fields)
                total += len(extracted)
                days = day + 1
                print(
                    f"  day {day}: {len(extracted)} observations extracted",
                    file=sys.stderr,
                    flush=True,
                )
                if limit is not None and total >= limit:
                    break
        _DAY_STATE.clear()
    else:
        for day, items in days_of(world, limit):
            _with_photos(items, prints)
            for item in items:
                loader.add(item)
            total += len(items)
            days = day + 1
            print(f"  day {day}: {len(items)} observations extracted", file=sys.stderr, flush=True)
    loader.write(engine)
    return Ingested(days, total, time.monotonic() - started)


def prepare_database(url: str) -> Engine:
    upgrade(url)
    engine = make_engine(url)
    load_municipalities(engine)
    return engine


def count_observations(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(models.AdObservation)).scalar_one()
        )
