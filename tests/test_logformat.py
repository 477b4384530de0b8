"""Dropped and failed items are logged by site and ad id, never with their content."""

from __future__ import annotations

import logging

from scrapy.exceptions import DropItem
from scrapy.utils.project import get_project_settings

from lovitura_crawl.items import AdItem
from lovitura_crawl.logformat import PrivateLogFormatter, PrivateUrlFilter

SECRET_TEXT = "Bel Anca op 06-12345678, alleen vandaag"


def _message(entry: dict) -> str:
    return entry["msg"] % entry["args"]


def _item() -> AdItem:
    return AdItem(site="roodlicht", site_ad_id="r-42", url="http://x/ad/42", text=SECRET_TEXT)


def test_dropped_item_is_named_not_printed() -> None:
    entry = PrivateLogFormatter().dropped(
        _item(), DropItem("no place", log_level="WARNING"), None, None
    )
    message = _message(entry)
    assert entry["level"] >= logging.WARNING
    assert "roodlicht/r-42" in message and "no place" in message
    assert "12345678" not in message and "Anca" not in message


def test_failed_item_is_named_not_printed() -> None:
    entry = PrivateLogFormatter().item_error(_item(), ValueError("boom"), None, None)
    message = _message(entry)
    assert "roodlicht/r-42" in message
    assert "12345678" not in message and "Anca" not in message


def test_project_uses_the_private_formatter() -> None:
    settings = get_project_settings()
    assert settings["LOG_FORMATTER"] == "lovitura_crawl.logformat.PrivateLogFormatter"


def _record(level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("scrapy.x", level, __file__, 1, msg, args or None, None)


def test_url_paths_are_hidden_at_info_and_above() -> None:
    url = "http://127.0.0.1:8401/advertentie/4180095-cristina-0612345678?x=1"
    record = _record(logging.ERROR, "Gave up retrying %(request)s", {"request": f"<GET {url}>"})
    assert PrivateUrlFilter().filter(record)
    message = record.getMessage()
    assert message.startswith("Gave up retrying <GET http://127.0.0.1:8401/…")
    assert "cristina" not in message and "0612345678" not in message
    # The same path gets the same mark, another path another one.
    again = _record(logging.INFO, "Ignoring response <404 %s>", url)
    other = _record(logging.INFO, "Ignoring response <404 %s>", url.replace("95-", "96-"))
    PrivateUrlFilter().filter(again)
    PrivateUrlFilter().filter(other)
    mark = message.split("8401/")[1].rstrip(">")
    assert mark in again.getMessage() and mark not in other.getMessage()


def test_debug_and_plain_urls_are_kept() -> None:
    url = "http://127.0.0.1:8401/advertentie/4180095-cristina"
    debug = _record(logging.DEBUG, "Crawled (200) <GET %s>", url)
    PrivateUrlFilter().filter(debug)
    assert url in debug.getMessage()
    plain = _record(
        logging.ERROR, "Error downloading <GET http://h:1/robots.txt> for <GET %s>", "https://h:1/"
    )
    PrivateUrlFilter().filter(plain)
    assert (
        plain.getMessage() == "Error downloading <GET http://h:1/robots.txt> for <GET https://h:1/>"
    )


def test_project_hides_urls_in_the_log() -> None:
    settings = get_project_settings()
    assert "lovitura_crawl.logformat.PrivateLogExtension" in settings.getdict("EXTENSIONS")
