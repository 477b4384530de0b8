"""Scrapy's log messages without ad content.

Scrapy's own formatter writes a whole dropped or failed item into the log at WARNING or ERROR.
An item holds ad text and phone numbers, which the product never logs above DEBUG
(docs/privacy.md); this formatter names the item by site and ad id instead. It is the project's
``LOG_FORMATTER`` for every crawl, ingest and replay.

Scrapy's middlewares also name the request in their messages ("Gave up retrying <GET url>",
"Ignoring response <404 url>"), and an ad's URL often carries her nickname, the ad's title or a
phone number in its slug. :class:`PrivateUrlFilter`, which the extension
:class:`PrivateLogExtension` applies to every log record, hides the path and query of every URL
in a message at INFO or above; DEBUG keeps them whole.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from scrapy.logformatter import LogFormatter


class PrivateLogFormatter(LogFormatter):
    """Scrapy's log messages without the item: an item holds ad text and phone numbers, which
    may not be logged above DEBUG (docs/privacy.md)."""

    def dropped(self, item: Any, exception: BaseException, response: Any, spider: Any) -> Any:
        result = super().dropped(item, exception, response, spider)
        result["msg"] = "Dropped: %(exception)s (%(item)s)"
        result["args"] = {"exception": exception, "item": _label(item)}
        return result

    def item_error(self, item: Any, exception: BaseException, response: Any, spider: Any) -> Any:
        result = super().item_error(item, exception, response, spider)
        result["args"] = {"item": _label(item)}
        return result


def _label(item: Any) -> str:
    get = getattr(item, "get", None)
    if get is None:
        return type(item).__name__
    return f"{get('site')}/{get('site_ad_id')}"


# A URL in a message: scheme and host, then the path and query to hide.
_URL = re.compile(r"(https?://[^/\s<>\"']+)(/[^\s<>\"']*)")
# Paths that say nothing about an ad.
_PLAIN_PATHS = frozenset(("", "/", "/robots.txt"))


class PrivateUrlFilter(logging.Filter):
    """Hides the path and query of URLs in records at INFO and above (``/…`` and a short digest,
    so that the lines about one URL can still be told apart and matched with DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: logging reports it itself
            return True
        hidden = _URL.sub(_hide_path, message)
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


def _hide_path(match: re.Match[str]) -> str:
    path = match.group(2)
    if path in _PLAIN_PATHS:
        return match.group(0)
    digest = hashlib.sha256(path.encode("utf-8", "replace")).hexdigest()[:8]
    return f"{match.group(1)}/…{digest}"


def hide_urls_in_log() -> None:
    """From now on, every log record of this process passes :class:`PrivateUrlFilter`.

    At the making of the record, not on a handler: Scrapy replaces its root handler when a
    crawler starts, and a filter on a logger would miss the records of its children.
    """
    current = logging.getLogRecordFactory()
    if getattr(current, "hides_urls", False):
        return
    private = PrivateUrlFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        private.filter(record)
        return record

    factory.hides_urls = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class PrivateLogExtension:
    """Scrapy extension: hides URL paths in the crawl's log at INFO and above, for
    ``scrapy crawl`` too (:func:`hide_urls_in_log`)."""

    @classmethod
    def from_crawler(cls, crawler: Any) -> PrivateLogExtension:
        hide_urls_in_log()
        return cls()
