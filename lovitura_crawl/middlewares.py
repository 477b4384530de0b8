"""Downloader middlewares that keep the crawler safe and polite.

``SafeDestinationMiddleware`` lets only http and https requests through, and refuses requests
to private, loopback, link-local and other non-public addresses unless the spider's site
definition names the host in ``allowed_private_hosts`` (the demo sites do: they run on
loopback). A hostname is resolved once per process to check where it points.

Cookie and Authorization headers are already dropped by Scrapy's RedirectMiddleware when a
redirect leaves the domain (and Proxy-Authorization when the scheme changes); the tests hold it.

``RetryAfterMiddleware`` honours ``Retry-After`` on 429 (and 503) answers, and
``RobotsTxtMiddleware`` replaces Scrapy's, which lets some requests through unchecked.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from time import monotonic
from typing import Any

from scrapy.downloadermiddlewares import robotstxt
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.misc import load_object
from twisted.internet.defer import Deferred

from lovitura_crawl.anomalies import Anomaly, note_anomaly

logger = logging.getLogger(__name__)

ALLOWED_SCHEMES = frozenset({"http", "https"})


class UnsafeDestination(IgnoreRequest):
    """A request to a scheme or an address the crawler must not reach."""

    def __init__(self, reason: str, url: str) -> None:
        super().__init__(f"refused {url}: {reason}")
        self.reason = reason


@lru_cache(maxsize=4096)
def _addresses(host: str) -> tuple[str, ...]:
    try:
        return (str(ipaddress.ip_address(host.strip("[]"))),)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return ()  # unresolvable: the download itself will fail with a DNS error
    return tuple(sorted({str(info[4][0]) for info in infos}))


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_global and not ip.is_multicast


def check_destination(url_scheme: str, host: str, allowed_private: frozenset[str]) -> str | None:
    """The reason a destination is refused, or None when it may be crawled."""
    if url_scheme not in ALLOWED_SCHEMES:
        return f"scheme-{url_scheme or 'none'}"
    if host in allowed_private:
        return None
    for address in _addresses(host):
        if not is_public_address(address):
            return "private-address"
    return None


class SafeDestinationMiddleware:
    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.extra_allowed = frozenset(crawler.settings.getlist("LOVITURA_ALLOWED_PRIVATE_HOSTS"))

    @classmethod
    def from_crawler(cls, crawler: Any) -> SafeDestinationMiddleware:
        return cls(crawler)

    def _allowed(self, spider: Any) -> frozenset[str]:
        hosts = getattr(spider, "allowed_private_hosts", None) or ()
        return self.extra_allowed | frozenset(hosts)

    def process_request(self, request: Request, spider: Any = None) -> None:
        spider = spider or getattr(self.crawler, "spider", None)
        parsed = urlparse_cached(request)
        reason = check_destination(parsed.scheme, parsed.hostname or "", self._allowed(spider))
        if reason is None:
            return
        note_anomaly(
            self.crawler,
            Anomaly("request", reason, url=request.url, site=getattr(spider, "name", None)),
        )
        raise UnsafeDestination(reason, request.url)


class RetryAfterMiddleware:
    """Waits out a refusal (429, or 503 with ``Retry-After``) before asking the site again.

    Scrapy's retry middleware asks again at once and ignores ``Retry-After``. This middleware
    pauses the site's download slot for as long as the header asks (``LOVITURA_RETRY_AFTER_MAX``
    seconds at most; 429 without the header: ``LOVITURA_RETRY_AFTER_DEFAULT``), so no request
    of the crawl reaches the site meanwhile, then schedules the refused request again, at most
    ``LOVITURA_RETRY_AFTER_TIMES`` times. After that the refusal goes on to the request's
    errback (an ``http-429`` anomaly). It must sit above RetryMiddleware (550): responses pass
    the middlewares from the highest number down. Stat: ``lovitura/spider/retry-after``.
    """

    def __init__(self, crawler: Any) -> None:
        settings = crawler.settings
        self.crawler = crawler
        self.max_wait = settings.getfloat("LOVITURA_RETRY_AFTER_MAX", 60.0)
        self.default_wait = settings.getfloat("LOVITURA_RETRY_AFTER_DEFAULT", 2.0)
        self.times = settings.getint("LOVITURA_RETRY_AFTER_TIMES", 4)
        self._paused_until: dict[str, float] = {}

    @classmethod
    def from_crawler(cls, crawler: Any) -> RetryAfterMiddleware:
        return cls(crawler)

    def process_response(self, request: Request, response: Any, spider: Any = None) -> Any:
        header = response.headers.get(b"Retry-After")
        if response.status != 429 and not (response.status == 503 and header):
            return response
        attempts = int(request.meta.get("lovitura_refusals", 0)) + 1
        if attempts > self.times:
            return response
        wait = retry_after_seconds(header, self.default_wait, self.max_wait)
        self._pause_slot(request, wait)
        self.crawler.stats.inc_value("lovitura/spider/retry-after")
        logger.debug("%s answered %d: waiting %.1f s", request.url, response.status, wait)
        retry = request.replace(dont_filter=True, priority=request.priority + 1)
        retry.meta["lovitura_refusals"] = attempts
        return retry

    def _pause_slot(self, request: Request, wait: float) -> None:
        """Let the request's download slot start nothing for ``wait`` seconds."""
        from scrapy.utils.asyncio import call_later

        downloader = self.crawler.engine.downloader
        key = downloader.get_slot_key(request)
        slot = downloader.slots.get(key)
        until = monotonic() + wait
        if slot is None or until <= self._paused_until.get(key, 0.0):
            return
        self._paused_until[key] = until
        # Scrapy starts nothing from a slot while its ``latercall`` is pending.
        if slot.latercall is not None:
            slot.latercall.cancel()
        slot.latercall = call_later(wait, downloader._latercall, slot)


def retry_after_seconds(header: bytes | None, default: float, maximum: float) -> float:
    """Seconds a ``Retry-After`` value asks for (delta-seconds or an HTTP date), bounded."""
    raw = (header or b"").decode("latin-1").strip()
    seconds = default
    if raw.isdigit():
        seconds = float(raw)
    elif raw:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.1), maximum)


class RobotsTxtMiddleware(robotstxt.RobotsTxtMiddleware):
    """Scrapy's robots.txt middleware, with every request waiting for robots.txt checked.

    In Scrapy 2.19 with the asyncio reactor, requests that arrive while a site's robots.txt is
    being downloaded all await the same Deferred; turning it into a future consumes its result,
    so only the first of them is checked and the others pass as if there were no robots.txt
    (a disallowed start page of a crawl with several start pages was fetched). Here each
    waiting request gets the parser through its own Deferred.
    """

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        kinds = tuple(load_object(kind) for kind in crawler.settings.getlist("RETRY_EXCEPTIONS"))
        _quiet_network_errors(logging.getLogger(robotstxt.__name__), kinds)

    async def robot_parser(self, request: Request) -> Any:
        netloc = urlparse_cached(request).netloc
        pending = self._parsers.get(netloc)
        if not isinstance(pending, Deferred):
            return await super().robot_parser(request)
        mine: Deferred[Any] = Deferred()

        def relay(parser: Any) -> Any:
            mine.callback(parser)
            return parser  # for the next waiting request

        pending.addCallback(relay)
        return await maybe_deferred_to_future(mine)


class NetworkErrorsWithoutTraceback(logging.Filter):
    """Drops the traceback from a record about a network error (a site down, a refused
    connection, a timeout): Scrapy's robots.txt middleware logs one of some sixty lines for an
    unreachable site, after the retry middleware has said what failed. Tracebacks of other
    errors, which are bugs, are kept."""

    def __init__(self, kinds: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.kinds = kinds

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.kinds):
            record.exc_info = None
            record.exc_text = None
        return True


def _quiet_network_errors(target: logging.Logger, kinds: tuple[type[BaseException], ...]) -> None:
    """One such filter on ``target``, however many crawls a process runs."""
    for old in [f for f in target.filters if isinstance(f, NetworkErrorsWithoutTraceback)]:
        target.removeFilter(old)
    target.addFilter(NetworkErrorsWithoutTraceback(kinds))
