"""Downloader middlewares that keep the crawler safe.

``SafeDestinationMiddleware`` lets only http and https requests through, and refuses requests
to private, loopback, link-local and other non-public addresses unless the spider's site
definition names the host in ``allowed_private_hosts`` (the demo sites do: they run on
loopback). A hostname is resolved once per process to check where it points.

Cookie and Authorization headers are already dropped by Scrapy's RedirectMiddleware when a
redirect leaves the domain (and Proxy-Authorization when the scheme changes); the tests hold it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from functools import lru_cache
from typing import Any

from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request
from scrapy.utils.httpobj import urlparse_cached

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
