"""Dropped and failed items are logged by site and ad id, never with their content."""

from __future__ import annotations

import logging

from scrapy.exceptions import DropItem
from scrapy.utils.project import get_project_settings

from lovitura_crawl.items import AdItem
from lovitura_crawl.logformat import PrivateLogFormatter

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
