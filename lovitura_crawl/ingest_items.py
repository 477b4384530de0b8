"""``lovitura ingest ITEMS.jsonl``: items from a JSON Lines file through the crawl's pipelines.

The file is read by :class:`IngestSpider`, a Scrapy spider whose ``start()`` yields one checked
item per line (:mod:`lovitura_crawl.itemschema`). It runs in an ordinary Scrapy crawler with the
project's settings, so every item passes the very ``ITEM_PIPELINES`` a crawl runs (fields,
phones, places, photos, storage), and photos given by URL are fetched through the crawl's
downloader with its safety rules (destination checks, robots.txt, politeness). Each item keeps
its own ``observed_at``; the storage is idempotent, so ingesting a file twice changes nothing.

A bad line is counted by reason, recorded as an ``ingest`` anomaly with its line number, and
skipped; the rest of the file goes in. Lines of one ad enter the pipelines one after another,
in file order (a later line waits while an earlier line of the same ad is in the pipelines), so
the store sees an ad's observations in the order the file gives them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import scrapy
from scrapy import signals

from lovitura_crawl.anomalies import Anomaly, note_anomaly
from lovitura_crawl.itemschema import ItemError, check_item

logger = logging.getLogger(__name__)

KNOWN_PHOTOS = 50_000  # fingerprints kept in memory by photo URL (the database has them all)
IN_FLIGHT = 64  # items in the pipelines at once: enough to keep the photo workers busy
SHOWN_ERRORS = 1000  # bad lines kept with their message for the summary (all are counted)
INGEST_SITE = "ingest"  # the crawl_runs.site of an ingest run
Progress = Callable[[int, int], None]  # (bytes read, lines read)


@dataclass
class LineError:
    line: int
    reason: str
    message: str


@dataclass
class IngestSummary:
    """What an ingest did: lines read, ads new and updated, rejected lines by reason."""

    source: str
    lines: int = 0
    blank: int = 0
    stored: int = 0  # items that went through every pipeline
    new: int = 0  # ads added to the database
    updated: int = 0  # versions added to ads by edits (a new ad's first version not counted)
    observations: int = 0  # ad-days added
    rejected: Counter[str] = field(default_factory=Counter)
    errors: list[LineError] = field(default_factory=list)
    photo_files: int = 0
    photos_known: int = 0  # photos whose URL had a fingerprint already: not read again
    photos: Counter[str] = field(default_factory=Counter)  # photo outcomes by reason
    finish_reason: str = ""
    seconds: float = 0.0

    def reject(self, line: int, reason: str, message: str) -> None:
        self.rejected[reason] += 1
        if len(self.errors) < SHOWN_ERRORS:
            self.errors.append(LineError(line, reason, message))

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "lines": self.lines,
            "blank": self.blank,
            "stored": self.stored,
            "new": self.new,
            "updated": self.updated,
            "observations": self.observations,
            "rejected": dict(self.rejected),
            "photo_files": self.photo_files,
            "photos_known": self.photos_known,
            "photos": dict(self.photos),
            "finish_reason": self.finish_reason,
        }


class IngestSpider(scrapy.Spider):
    """Yields the items of one JSON Lines file (not a site: it has no pages of its own)."""

    name = INGEST_SITE
    site = INGEST_SITE

    def __init__(
        self,
        *args: Any,
        path: str,
        summary: IngestSummary,
        on_progress: Progress | None = None,
        in_flight: int = IN_FLIGHT,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.path = Path(path)
        self.summary = summary
        self.on_progress = on_progress
        self.limit = max(1, in_flight)
        self._running: dict[int, tuple[int, tuple[str, str]]] = {}  # id(item) -> line, ad
        self._ads: Counter[tuple[str, str]] = Counter()
        self._wakeup: asyncio.Event | None = None
        self._prints: OrderedDict[str, dict[str, Any]] = OrderedDict()  # photo URL -> print
        self._store: Any = None

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> IngestSpider:
        spider: IngestSpider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider._scraped, signal=signals.item_scraped)
        crawler.signals.connect(spider._dropped, signal=signals.item_dropped)
        crawler.signals.connect(spider._failed, signal=signals.item_error)
        return spider

    # Known shortcoming: items whose photos must be fetched by URL (no local file) finish only
    # at Scrapy's 5 s engine heartbeat, because no page keeps the engine busy while the photo
    # downloads end: 0.6 items/s measured on 300 such items (bench/ingest.py --http-photos).
    # Items with local photo files are not affected.
    async def start(self) -> AsyncIterator[Any]:
        from lovitura_crawl.db.engine import make_engine
        from lovitura_crawl.db.store import AdStore

        self._wakeup = asyncio.Event()
        self._store = AdStore(make_engine(self.settings.get("LOVITURA_DATABASE_URL")))
        try:
            async for item in self._items():
                yield item
        finally:
            self._store.engine.dispose()

    async def _items(self) -> AsyncIterator[Any]:
        base = PurePosixPath(self.path.resolve().parent.as_posix())
        done = 0
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                done += len(raw)
                self.summary.lines = number
                if self.on_progress is not None:
                    self.on_progress(done, number)
                checked = self._read(number, raw, base)
                if checked is None:
                    continue
                self._use_known_photos(checked)
                await self._wait_for_room(checked)
                self._running[id(checked)] = (number, _ad_key(checked))
                self._ads[_ad_key(checked)] += 1
                yield checked

    def _read(self, number: int, raw: bytes, base: PurePosixPath) -> Any:
        """The checked item of one line; None for a blank or bad line (counted, recorded)."""
        if not raw.strip():
            self.summary.blank += 1
            return None
        try:
            data = json.loads(raw)
        except UnicodeDecodeError:
            return self._reject(number, "bad-encoding", "the line is not UTF-8")
        except json.JSONDecodeError as exc:
            return self._reject(
                number, "bad-json", f"not JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}"
            )
        try:
            checked = check_item(data, base)
        except ItemError as exc:
            return self._reject(number, exc.reason, str(exc), data)
        self.summary.photo_files += checked.photo_files
        return checked.item

    def _reject(self, number: int, reason: str, message: str, data: Any = None) -> None:
        self.summary.reject(number, reason, message)
        site = data.get("site") if isinstance(data, dict) else None
        site_ad_id = data.get("site_ad_id") if isinstance(data, dict) else None
        note_anomaly(
            self.crawler,
            Anomaly(
                "ingest",
                reason,
                url=str(self.path),
                site=str(site)[:50] if isinstance(site, str) else None,
                site_ad_id=str(site_ad_id)[:200] if isinstance(site_ad_id, str | int) else None,
                detail=f"line {number}: {message}",
            ),
        )
        return None

    def _use_known_photos(self, item: Any) -> None:
        """Give local photos whose URL already has a fingerprint that fingerprint, as a crawl
        does not fetch a known photo URL again (pipelines.photo_reuse): re-ingesting a file, or
        a file where an ad shows the same photos every day, reads each photo once."""
        local = [p for p in item.get("photos") or [] if p.get("path")]
        wanted = [p["url"] for p in local if p["url"] not in self._prints]
        if wanted:
            for url, print_ in self._store.known_photo_fingerprints(wanted).items():
                self._remember(url, print_)
        for photo in local:
            known = self._prints.get(photo["url"])
            if known is not None:
                self._prints.move_to_end(photo["url"])
                photo["fingerprint"] = known
                self.summary.photos_known += 1

    def _remember(self, url: str, print_: dict[str, Any]) -> None:
        self._prints[url] = print_
        if len(self._prints) > KNOWN_PHOTOS:
            self._prints.popitem(last=False)

    async def _wait_for_room(self, item: Any) -> None:
        """Wait until fewer than ``limit`` items are in the pipelines and none of this ad."""
        assert self._wakeup is not None
        key = _ad_key(item)
        while len(self._running) >= self.limit or self._ads[key]:
            self._wakeup.clear()
            await self._wakeup.wait()

    # --- the pipelines' outcome -------------------------------------------------------------

    def _release(self, item: Any) -> tuple[int, tuple[str, str]] | None:
        entry = self._running.pop(id(item), None)
        if entry is not None:
            self._ads[entry[1]] -= 1
            if self._ads[entry[1]] <= 0:
                del self._ads[entry[1]]
        if self._wakeup is not None:
            self._wakeup.set()
        return entry

    def _scraped(self, item: Any, **_: Any) -> None:
        self._release(item)
        for photo in item.get("photos") or []:
            if photo.get("fingerprint") and photo["url"] not in self._prints:
                self._remember(photo["url"], photo["fingerprint"])

    def _dropped(self, item: Any, exception: BaseException, **_: Any) -> None:
        entry = self._release(item)
        if entry is not None:
            self.summary.reject(entry[0], "dropped", f"a pipeline dropped the item: {exception}")

    def _failed(self, item: Any, failure: Any, **_: Any) -> None:
        entry = self._release(item)
        if entry is not None:
            reason = f"pipeline-error-{type(failure.value).__name__}"
            self.summary.reject(entry[0], reason, f"a pipeline failed: {failure.getErrorMessage()}")


def _ad_key(item: Any) -> tuple[str, str]:
    return (str(item["site"]), str(item["site_ad_id"]))


def table_counts(db_url: str) -> dict[str, int]:
    """Rows of ads, versions and observations: what an ingest added is the difference.

    (The store's own counters count an older observation of an edited ad as a change even
    when its version is already stored, so they are not used for the summary.)
    """
    from sqlalchemy import func, select

    from lovitura_crawl.db import models
    from lovitura_crawl.db.engine import make_engine

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return {
                name: int(conn.execute(select(func.count()).select_from(model)).scalar_one())
                for name, model in (
                    ("ads", models.Ad),
                    ("versions", models.AdVersion),
                    ("observations", models.AdObservation),
                )
            }
    finally:
        engine.dispose()


def ingest_settings(db_url: str, purpose: str, extra: dict[str, Any] | None = None) -> Any:
    """The project's settings for an ingest into ``db_url`` under ``purpose``."""
    from lovitura_crawl.crawl import project_settings

    return project_settings(
        {
            "LOVITURA_DATABASE_URL": db_url,
            "LOVITURA_PURPOSE": purpose,
            **(extra or {}),
        }
    )


async def ingest_async(
    settings: Any, path: Path, on_progress: Progress | None = None
) -> IngestSummary:
    """Ingest ``path`` inside a running reactor (see :func:`lovitura_crawl.crawl.run_reactor`)."""
    import time

    from scrapy.crawler import AsyncCrawlerRunner, Crawler

    from lovitura_crawl.crawl import check_interrupted, track

    started = time.monotonic()
    summary = IngestSummary(source=str(path))
    before = table_counts(settings.get("LOVITURA_DATABASE_URL"))
    runner = track(AsyncCrawlerRunner(settings))  # a first Ctrl-C or SIGTERM stops it gracefully
    crawler = Crawler(IngestSpider, settings.copy())
    await runner.crawl(crawler, path=str(path), summary=summary, on_progress=on_progress)
    check_interrupted()
    stats = crawler.stats.get_stats() if crawler.stats else {}
    after = table_counts(settings.get("LOVITURA_DATABASE_URL"))
    summary.stored = int(stats.get("item_scraped_count", 0))
    summary.new = after["ads"] - before["ads"]
    summary.updated = after["versions"] - before["versions"] - summary.new
    summary.observations = after["observations"] - before["observations"]
    summary.finish_reason = str(stats.get("finish_reason", "unknown"))
    prefix = "lovitura/photo/"
    summary.photos = Counter(
        {k[len(prefix) :]: int(v) for k, v in stats.items() if k.startswith(prefix)}
    )
    summary.seconds = time.monotonic() - started
    return summary


def ingest_file(
    path: Path,
    db_url: str,
    purpose: str,
    *,
    extra_settings: dict[str, Any] | None = None,
    on_progress: Progress | None = None,
) -> IngestSummary:
    """Ingest ``path`` into ``db_url`` (a blocking call that owns this process's reactor)."""
    from lovitura_crawl.crawl import run_reactor

    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file: give the JSON Lines file to ingest")
    settings = ingest_settings(db_url, purpose, extra_settings)
    return run_reactor(lambda: ingest_async(settings, path, on_progress), settings)
