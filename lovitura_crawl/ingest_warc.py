"""Recording crawls as WARC files, and replaying them offline through a site's spider.

**Recording.** With the setting ``LOVITURA_WARC_DIR``, :class:`WarcRecorderMiddleware` (a
downloader middleware next to the download handler) writes every response of a crawl, pages,
robots.txt and photos, to ``<site>-<time>.warc.gz`` in that folder (mode 600: the file holds
everything the site showed, phone numbers and photos included; give the folder a retention term,
docs/privacy.md). Each record's ``WARC-Date`` is the capture time: the crawl's clock when the
crawl runs on a fixed clock (``--clock``, the demo's simulated days), else the time of the fetch.

**Replaying** (``lovitura ingest --warc FILE --site NAME``). :class:`WarcDownloadHandler` answers
the crawl's requests from the archive instead of the network, so the site's own spider, its
middlewares and every item pipeline run exactly as in a crawl: a corrected site definition can be
run again over old pages. Each file is one crawl, with the earliest capture time as its clock;
:class:`CaptureTimeMiddleware` stamps each item with the capture time of the page it was read
from. A page the archive lacks fails as :class:`NotInArchive` (recorded like any failed page);
records that cannot be read are counted by reason and skipped.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.http import Headers, Request, Response
from scrapy.responsetypes import responsetypes
from scrapy.settings import SETTINGS_PRIORITIES
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date, iso_date_to_datetime
from warcio.warcwriter import WARCWriter

from lovitura_crawl import __version__
from lovitura_crawl.clock import crawl_now

logger = logging.getLogger(__name__)

# Days are Amsterdam days (docs/pipelines.md): a capture time, UTC in a WARC, is written in it.
LOCAL_ZONE = ZoneInfo("Europe/Amsterdam")
CAPTURED = "lovitura_captured_at"  # request meta set by the replay: the page's capture time
REFUSED = frozenset({429, 500, 502, 503, 504, 522, 524, 408})  # answers a retry replaced
# Headers that describe the bytes on the wire, not the decoded payload a replay serves.
WIRE_HEADERS = (b"Transfer-Encoding", b"Content-Encoding", b"Content-Length")


class ReplayError(RuntimeError):
    """A WARC file that cannot be replayed as a crawl of the site."""


class NotInArchive(Exception):  # its name is the reason recorded for the page
    """The replayed crawl asked for a page the archive does not hold."""


# --- recording -------------------------------------------------------------------------------


class WarcRecorderMiddleware:
    """Writes every response of a crawl to a WARC file (enabled by ``LOVITURA_WARC_DIR``)."""

    def __init__(self, crawler: Any, folder: Path) -> None:
        self.crawler = crawler
        self.folder = folder
        self.writer: WARCWriter | None = None
        self.handle: Any = None
        self.path: Path | None = None
        settings = crawler.settings
        # A clock given to the crawl (--clock, simulated days) is the time the crawl believes
        # it is: its pages are captured then. Otherwise the real time of each fetch.
        priority = settings.getpriority("LOVITURA_CLOCK") or 0
        self.fixed_clock = priority >= SETTINGS_PRIORITIES["cmdline"]

    @classmethod
    def from_crawler(cls, crawler: Any) -> WarcRecorderMiddleware:
        folder = crawler.settings.get("LOVITURA_WARC_DIR")
        if not folder:
            raise NotConfigured  # no message: Scrapy would log every crawl as a warning
        middleware = cls(crawler, Path(folder))
        crawler.signals.connect(middleware.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        return middleware

    def spider_opened(self, spider: Any) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = crawl_now(self.crawler.settings).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        for attempt in range(1000):
            suffix = f"-{attempt}" if attempt else ""
            path = self.folder / f"{spider.name}-{stamp}{suffix}.warc.gz"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            break
        else:
            raise RuntimeError(f"too many WARC files named {spider.name}-{stamp} in {self.folder}")
        self.path = path
        self.handle = os.fdopen(fd, "wb")
        self.writer = WARCWriter(self.handle, gzip=True)
        info = {"software": f"Lovitura crawl {__version__}", "lovitura-site": spider.name}
        self.writer.write_record(self.writer.create_warcinfo_record(path.name, info))
        logger.info("recording the crawl of %s in %s", spider.name, path)

    def spider_closed(self, spider: Any) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = self.writer = None

    def process_response(self, request: Request, response: Response, spider: Any = None) -> Any:
        if self.writer is not None:
            self.writer.write_record(self.record(response))
        return response

    def record(self, response: Response) -> Any:
        assert self.writer is not None
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, values in response.headers.items()
            if name.title() != b"Transfer-Encoding"  # the body is stored de-chunked
            for value in values
        ]
        status = f"{response.status} {_reason(response.status)}"
        http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
        moment = crawl_now(self.crawler.settings) if self.fixed_clock else datetime.now(UTC)
        return self.writer.create_warc_record(
            response.url,
            "response",
            payload=io.BytesIO(response.body),
            http_headers=http,
            warc_headers_dict={"WARC-Date": datetime_to_iso_date(moment.astimezone(UTC))},
        )


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# --- the archive -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Capture:
    offset: int
    status: int
    captured_at: datetime


@dataclass
class ArchiveIndex:
    """Where each URL's response is in one WARC file, and what could not be read."""

    path: Path
    captures: dict[str, list[Capture]] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def records(self) -> int:
        return sum(len(found) for found in self.captures.values())

    @property
    def first_capture(self) -> datetime:
        return min(c.captured_at for found in self.captures.values() for c in found)

    def best(self, url: str) -> Capture | None:
        """The capture to serve: the last one a retry did not replace, else the last one."""
        found = self.captures.get(url) or []
        kept = [c for c in found if c.status not in REFUSED] or found
        return kept[-1] if kept else None

    def base_url(self, start_paths: Iterable[str]) -> str:
        """The site's base URL: the shortest one whose start page the archive holds."""
        bases = [
            url[: len(url) - len(path)]
            for url in self.captures
            for path in start_paths
            if url.endswith(path) and url[: len(url) - len(path)].endswith("/")
        ]
        if not bases:
            raise ReplayError(
                f"{self.path} holds none of the site's start pages: is it a crawl of this site? "
                "(check --site)"
            )
        return min(bases, key=len)


class QuietArchiveIterator(ArchiveIterator):
    """warcio's reader, without the bytes it prints to standard error.

    warcio writes a record that is not followed by a blank line straight to ``sys.stderr``,
    with the line after it (ad text, phone numbers): here only its offset is printed, and
    :func:`index_archive` counts such records.
    """

    INC_RECORD = "WARNING: a WARC record is not followed by a blank line, at offset {0}\n"


def _looks_like_warc(path: Path) -> bool:
    """Whether the file starts as a WARC does, plain or gzipped."""
    with path.open("rb") as handle:
        start = handle.read(2)
        handle.seek(0)
        if start == b"\x1f\x8b":
            try:
                with gzip.open(handle) as unzipped:
                    return unzipped.read(5) == b"WARC/"
            except (OSError, EOFError):
                return False
        return handle.read(5) == b"WARC/"


def index_archive(path: Path) -> ArchiveIndex:
    """Read every record header of ``path``; bad records are counted, never fatal."""
    index = ArchiveIndex(path)
    if not _looks_like_warc(path):
        index.rejected["not-a-warc"] += 1
        logger.warning("%s is not a WARC archive: it does not start with 'WARC/'", path)
        return index
    with path.open("rb") as handle:
        records = QuietArchiveIterator(handle)
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except (ArchiveLoadFailed, ValueError, OSError, EOFError) as exc:
                # Damaged bytes: nothing after them can be found again.
                index.rejected["damaged"] += 1
                # warcio's message may quote the damaged bytes (ad text, phone numbers): only
                # its kind at WARNING, the message itself at DEBUG.
                logger.warning(
                    "%s is damaged after %d records (%s; not a WARC file, or cut or corrupted)",
                    path,
                    index.records,
                    type(exc).__name__,
                )
                logger.debug("%s: %s", path, exc)
                break
            reason = _index_record(index, record, records)
            if reason:
                index.rejected[reason] += 1
    if not (index.rejected["damaged"] or index.rejected["truncated"]) and _gzip_cut_off(path):
        index.rejected["truncated"] += 1
        logger.warning("%s ends in the middle of a record after %d records", path, index.records)
    return index


def _gzip_cut_off(path: Path) -> bool:
    """True when a gzipped archive ends before its last member does (a cut-off copy): the
    reader then stops early without an error, having lost the records in that member."""
    with path.open("rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return False
    try:
        with gzip.open(path) as stream:
            while stream.read(1 << 20):
                pass
    except (EOFError, gzip.BadGzipFile):
        return True
    return False


def _index_record(index: ArchiveIndex, record: Any, records: ArchiveIterator) -> str | None:
    kind = record.rec_type
    if kind in ("warcinfo", "request", "metadata", "resource"):
        return None
    if kind != "response":
        return f"unsupported-{kind}"  # revisit and conversion records are not replayed
    url = record.rec_headers.get_header("WARC-Target-URI")
    if not url or not url.startswith(("http://", "https://")):
        return "no-http-url"
    http = record.http_headers
    try:
        status = int(http.get_statuscode()) if http is not None else 0
        captured = iso_date_to_datetime(record.rec_headers.get_header("WARC-Date"))
    except (TypeError, ValueError):
        return "bad-header"
    if not 100 <= status <= 599:
        return "no-http-status"
    # Read to the end of the record (so the next one can be read), counting what is there: a
    # file cut off in the middle of a record still yields its header, with a short body.
    expected = record.length - (getattr(http, "total_len", 0) or 0)
    if len(record.raw_stream.read()) < expected:
        return "truncated"
    offset = records.get_record_offset()  # (it reads the record to its end when not yet read)
    index.captures.setdefault(url, []).append(Capture(offset, status, captured.replace(tzinfo=UTC)))
    return None


def read_capture(path: Path, capture: Capture, request: Request) -> Response:
    """The response stored at ``capture``, as Scrapy's downloader would have given it."""
    with path.open("rb") as handle:
        handle.seek(capture.offset)
        record = next(iter(QuietArchiveIterator(handle)))
        body = record.content_stream().read()  # de-chunked and decoded
        headers = [
            (name, value)
            for name, value in record.http_headers.headers
            if name.encode("latin-1").title() not in WIRE_HEADERS
        ]
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name, []).append(value)
    scrapy_headers = Headers(grouped)
    cls = responsetypes.from_args(headers=scrapy_headers, url=request.url, body=body)
    request.meta[CAPTURED] = capture.captured_at.astimezone(LOCAL_ZONE).isoformat()
    return cls(
        url=request.url,
        status=capture.status,
        headers=scrapy_headers,
        body=body,
        request=request,
        flags=["warc"],
    )


# --- replaying -------------------------------------------------------------------------------


class WarcDownloadHandler:
    """A download handler for http and https that answers from ``crawler.lovitura_archive``."""

    lazy = False

    def __init__(self, crawler: Any) -> None:
        archive = getattr(crawler, "lovitura_archive", None)
        if archive is None:
            raise NotConfigured("no archive to replay (only `lovitura ingest --warc` sets one)")
        self.crawler = crawler
        self.archive: ArchiveIndex = archive

    @classmethod
    def from_crawler(cls, crawler: Any) -> WarcDownloadHandler:
        return cls(crawler)

    async def download_request(self, request: Request) -> Response:
        capture = self.archive.best(request.url)
        if capture is None:
            self.crawler.stats.inc_value("lovitura/replay/not-in-archive")
            raise NotInArchive(f"{request.url} is not in {self.archive.path.name}")
        self.crawler.stats.inc_value("lovitura/replay/served")
        return read_capture(self.archive.path, capture, request)

    async def close(self) -> None:
        return None


class CaptureTimeMiddleware:
    """Spider middleware of a replay: items are observed when their page was captured."""

    async def process_spider_output(
        self, response: Response, result: AsyncIterator[Any], spider: Any = None
    ) -> AsyncIterator[Any]:
        captured = getattr(response, "meta", {}).get(CAPTURED) if response is not None else None
        async for output in result:
            if captured and not isinstance(output, Request) and hasattr(output, "get"):
                output["observed_at"] = captured
            yield output


@dataclass
class ReplayOutcome:
    path: Path
    records: int
    items: int
    missing: int
    bad_records: int
    rejected: Counter[str]
    finish_reason: str


def replay_settings(settings: Any, clock: datetime) -> Any:
    """``settings`` for the replay of one archive whose crawl ran at ``clock``."""
    own = settings.copy()
    handler = f"{__name__}.WarcDownloadHandler"
    replay = {
        "DOWNLOAD_HANDLERS": {"http": handler, "https": handler},
        "LOVITURA_CLOCK": clock.astimezone(LOCAL_ZONE).isoformat(),
        "LOVITURA_WARC_DIR": None,  # a replay records nothing
        "SPIDER_MIDDLEWARES": {
            **settings.getdict("SPIDER_MIDDLEWARES"),
            f"{__name__}.CaptureTimeMiddleware": 10,
        },
        # Offline: no need to be polite to the archive.
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
        "LOVITURA_RETRY_AFTER_MAX": 0,
    }
    for name, value in replay.items():
        own.set(name, value, priority="cmdline")
    return own


async def replay_async(settings: Any, paths: list[Path], site: str) -> list[ReplayOutcome]:
    """Replay ``paths`` in order, one crawl each, inside a running reactor."""
    from scrapy.crawler import AsyncCrawlerRunner, Crawler

    from lovitura_crawl.crawl import check_interrupted, track
    from lovitura_crawl.spiders.base import SiteSpider

    runner = track(AsyncCrawlerRunner(settings))  # a first Ctrl-C or SIGTERM stops it gracefully
    try:
        spidercls = runner.spider_loader.load(site)
    except KeyError as exc:
        names = ", ".join(sorted(runner.spider_loader.list()))
        raise ReplayError(f"no site named {site!r}: use one of {names}") from exc
    if not issubclass(spidercls, SiteSpider):
        raise ReplayError(f"{site!r} is not a site spider with a site definition")
    if spidercls.definition.browser is not None:
        # Known limit: a browser site's archive holds each page as first rendered, before the
        # spider's clicks (nachtvlinder's phone behind "toon nummer"): those fields stay empty.
        logger.warning("%s is a browser site: what its spider clicks open is not replayed", site)
    outcomes = []
    for path in paths:
        check_interrupted()
        archive = index_archive(path)
        if not archive.captures:
            raise ReplayError(f"{path} holds no HTTP responses to replay")
        crawler = Crawler(spidercls, replay_settings(settings, archive.first_capture))
        crawler.lovitura_archive = archive  # type: ignore[attr-defined]
        await runner.crawl(crawler, base_url=archive.base_url(spidercls.definition.start_paths))
        stats = crawler.stats.get_stats() if crawler.stats else {}
        outcomes.append(
            ReplayOutcome(
                path=path,
                records=archive.records,
                items=int(stats.get("item_scraped_count", 0)),
                missing=int(stats.get("lovitura/replay/not-in-archive", 0)),
                bad_records=sum(archive.rejected.values()),
                rejected=archive.rejected,
                finish_reason=str(stats.get("finish_reason", "unknown")),
            )
        )
    check_interrupted()
    return outcomes


def replay_warcs(
    paths: list[Path], site: str, db_url: str, purpose: str, extra: dict[str, Any] | None = None
) -> list[ReplayOutcome]:
    """Replay ``paths`` through the spider of ``site`` into ``db_url`` (blocking)."""
    from lovitura_crawl.crawl import run_reactor
    from lovitura_crawl.ingest_items import ingest_settings

    settings = ingest_settings(db_url, purpose, extra)
    return run_reactor(lambda: replay_async(settings, paths, site), settings)
