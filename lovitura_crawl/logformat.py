"""Scrapy's log messages without ad content.

Scrapy's own formatter writes a whole dropped or failed item into the log at WARNING or ERROR.
An item holds ad text and phone numbers, which the product never logs above DEBUG
(docs/privacy.md); this formatter names the item by site and ad id instead. It is the project's
``LOG_FORMATTER`` for every crawl, ingest and replay.
"""

from __future__ import annotations

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
