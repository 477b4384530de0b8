"""Stores items in the database in batches, and records the crawl run.

The run row is opened when the spider opens and closed with its stats and outcome. After a run
whose listing crawl was complete (the spider sets the stat ``lovitura/listing/complete``), ads of
that site that were not seen get ``gone_at``.
"""

from __future__ import annotations

import logging
from typing import Any

from itemadapter import ItemAdapter

from lovitura_crawl.clock import crawl_now
from lovitura_crawl.db.engine import make_engine, masked, resolve_url
from lovitura_crawl.db.store import AdStore, StoreResult

logger = logging.getLogger(__name__)


class StoragePipeline:
    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.url = resolve_url(crawler.settings.get("LOVITURA_DATABASE_URL"))
        self.batch_size = crawler.settings.getint("LOVITURA_STORE_BATCH", 200)
        self.store = AdStore(make_engine(self.url))
        self.pending: list[dict[str, Any]] = []
        self.result = StoreResult()
        self.n_items = 0
        self.run_id: int | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> StoragePipeline:
        return cls(crawler)

    def open_spider(self, spider: Any = None) -> None:
        site = self._site()
        self.run_id = self.store.start_run(site, crawl_now(self.crawler.settings))
        purpose = self.crawler.settings.get("LOVITURA_PURPOSE")
        if purpose:
            from lovitura_crawl.privacy.purpose import record_crawl_run

            record_crawl_run(self.store.engine, self.run_id, str(purpose))
        logger.info("crawl run %s of %s stores into %s", self.run_id, site, masked(self.url))

    def process_item(self, item: Any, spider: Any = None) -> Any:
        self.pending.append(ItemAdapter(item).asdict())
        self.n_items += 1
        if len(self.pending) >= self.batch_size:
            self._flush()
        return item

    def close_spider(self, spider: Any = None) -> None:
        self._flush()
        stats = self.crawler.stats.get_stats() if self.crawler.stats else {}
        reason = stats.get("finish_reason", "finished")
        complete = bool(stats.get("lovitura/listing/complete")) and reason == "finished"
        gone = 0
        if complete:
            gone = self.store.mark_gone(self._site(), crawl_now(self.crawler.settings))
        if self.crawler.stats:
            self.crawler.stats.set_value("lovitura/store/gone", gone)
        assert self.run_id is not None
        self.store.finish_run(
            self.run_id,
            outcome=str(reason),
            stats=stats,
            listing_complete=complete,
            n_items=self.n_items,
            anomalies=getattr(self.crawler, "lovitura_anomalies", []),
        )
        logger.info(
            "crawl run %s stored %d items: %d new, %d changed, %d unchanged, %d gone",
            self.run_id,
            self.n_items,
            self.result.new,
            self.result.updated,
            self.result.unchanged,
            gone,
        )
        self.store.engine.dispose()

    def _flush(self) -> None:
        if not self.pending:
            return
        self.result += self.store.save(self.pending, self.run_id)
        if self.crawler.stats:
            self.crawler.stats.set_value("lovitura/store/new", self.result.new)
            self.crawler.stats.set_value("lovitura/store/changed", self.result.updated)
        self.pending = []

    def _site(self) -> str:
        spider = getattr(self.crawler, "spider", None)
        return str(getattr(spider, "site", None) or getattr(spider, "name", "unknown"))
