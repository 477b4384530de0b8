"""Crawls without a network through the storage pipeline, closed in different ways.

``python -m tests.storeruns DB_URL`` runs, in one reactor session, three crawls of a probe
spider named ``roodlicht`` that yields ads from its start and claims a complete listing:

* ``closespider``: stopped by Scrapy's CloseSpider extension after two items;
* ``stop``: stopped (``Crawler.stop()``, as on Ctrl-C) after its first item;
* ``finished``: yields its ads and ends by itself;
* ``broken``: ends by itself, but one of its ads has an observation time the store cannot
  read, so the transaction holding it fails.

For every item Scrapy reports as scraped it checks that the ad's row is already committed
(read through a connection of its own). It prints one JSON object per crawl: its name, its
finish reason, the items Scrapy counted, whether every scraped item was already stored, and
how many ads it marked gone, and how many items the store failed to write.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy import signals
from sqlalchemy import text

from lovitura_crawl.crawl import project_settings, run_reactor
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.items import AdItem
from lovitura_crawl.privacy.purpose import demo_purpose
from lovitura_crawl.spiders.base import COMPLETE_STAT

ADS = 6
BROKEN = 3  # the ad of the "broken" crawl that cannot be stored
SECRET = "GEHEIM-7731"  # in every ad's text: must not reach the log above DEBUG
CLOCK = "2026-11-03T12:00:00+01:00"


class ProbeSpider(scrapy.Spider):
    name = "roodlicht"

    def __init__(self, prefix: str = "p", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix

    async def start(self) -> AsyncIterator[Any]:
        # Claimed at once: only the way the crawl closes decides whether unseen ads are gone.
        self.crawler.stats.set_value(COMPLETE_STAT, True)
        # Items from a response, as in a real crawl (not from start(): Scrapy 2.19 does not
        # close a crawl stopped while such items are in its pipelines).
        yield scrapy.Request("data:,listing", self.parse)

    def parse(self, response: Any) -> Iterator[Any]:
        for n in range(ADS):
            broken = self.prefix == "b" and n == BROKEN
            yield AdItem(
                site="roodlicht",
                site_ad_id=f"{self.prefix}{n}",
                url=f"http://127.0.0.1:9/ad/{self.prefix}{n}",
                observed_at="yesterday" if broken else CLOCK,
                title="Nieuw in Zwolle",
                text=f"Lieve dame, {SECRET}, bel 06 12 34 56 78",
                place="Zwolle",
            )


def main(argv: list[str]) -> int:
    db_url = argv[1]
    checker = make_engine(db_url)
    settings = project_settings(
        {
            "LOVITURA_DATABASE_URL": db_url,
            "LOVITURA_PURPOSE": demo_purpose(checker),
            "LOVITURA_CLOCK": CLOCK,
            "LOVITURA_STORE_BATCH": 2,
            "ITEM_PIPELINES": {"pipelines.storage.StoragePipeline": 900},
            "ROBOTSTXT_OBEY": False,
            # It refuses data: URLs, rightly; the probe fetches nothing else.
            "DOWNLOADER_MIDDLEWARES": {
                "lovitura_crawl.middlewares.SafeDestinationMiddleware": None
            },
            "LOG_LEVEL": "INFO",
        }
    )

    def stored(site_ad_id: str) -> bool:
        query = text("SELECT count(*) FROM ads WHERE site = 'roodlicht' AND site_ad_id = :id")
        with checker.connect() as conn:
            return bool(conn.execute(query, {"id": site_ad_id}).scalar_one())

    async def crawls() -> list[dict[str, Any]]:
        from scrapy.crawler import AsyncCrawlerRunner, Crawler

        results = []
        plans = [
            ("closespider", {"CLOSESPIDER_ITEMCOUNT": 2}),
            ("stop", {}),
            ("finished", {}),
            ("broken", {}),
        ]
        for name, extra in plans:
            crawl_settings = settings.copy()
            crawl_settings.setdict(extra, priority="cmdline")
            crawler = Crawler(ProbeSpider, crawl_settings)
            checks: list[bool] = []

            def scraped(
                item: Any, crawler: Any = crawler, name: str = name, checks: list[bool] = checks
            ) -> None:
                checks.append(stored(item["site_ad_id"]))
                if name == "stop" and len(checks) == 1:
                    crawler.stop()

            crawler.signals.connect(scraped, signal=signals.item_scraped)
            await AsyncCrawlerRunner(crawl_settings).crawl(crawler, prefix=name[0])
            assert crawler.stats is not None
            results.append(
                {
                    "crawl": name,
                    "reason": crawler.stats.get_value("finish_reason"),
                    "scraped": crawler.stats.get_value("item_scraped_count", 0),
                    "stored_when_scraped": all(checks),
                    "gone": crawler.stats.get_value("lovitura/store/gone"),
                    "failed": crawler.stats.get_value("lovitura/store/failed", 0),
                }
            )
        return results

    for result in run_reactor(crawls, settings):
        print(json.dumps(result))
    checker.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
