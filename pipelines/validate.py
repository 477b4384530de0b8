"""Rejects items that lack a required field, with a counted and recorded reason."""

from __future__ import annotations

from typing import Any

from itemadapter import ItemAdapter
from scrapy.exceptions import DropItem

from lovitura_crawl.anomalies import Anomaly, note_anomaly
from lovitura_crawl.items import REQUIRED_FIELDS


class ValidatePipeline:
    def __init__(self, crawler: Any = None) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> ValidatePipeline:
        return cls(crawler)

    def process_item(self, item: Any, spider: Any = None) -> Any:
        adapter = ItemAdapter(item)
        missing = [name for name in REQUIRED_FIELDS if not adapter.get(name)]
        if missing:
            reason = "missing-" + "-".join(missing)
            note_anomaly(
                self.crawler,
                Anomaly("item", reason, url=adapter.get("url"), site=adapter.get("site")),
            )
            raise DropItem(f"item lacks required field(s) {', '.join(missing)}")
        return item
