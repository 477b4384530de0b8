"""Skip photos that an earlier crawl already fingerprinted.

A photo URL that the database already holds a fingerprint for is not downloaded again: daily
crawls see the same photos for weeks, and downloading and hashing them again would cost the
site's bandwidth and our CPU for nothing. The fingerprints of all the photos of an item are
looked up in one query, in a thread, so the reactor never waits on the database.
"""

from __future__ import annotations

from typing import Any

from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.db.store import AdStore
from pipelines.photos import PhotosPipeline, downloadable


class StoredPhotosPipeline(PhotosPipeline):
    """The photos pipeline, with :meth:`known_fingerprint` answered from the database."""

    _store: AdStore | None = None

    def open_spider(self, spider: Any = None) -> None:
        super().open_spider(spider)
        url = self.crawler.settings.get("LOVITURA_DATABASE_URL")
        self._store = AdStore(make_engine(url))
        # Fingerprints found for photos of items in progress, by URL; taken by
        # known_fingerprint when the media pipeline asks for the URL.
        self._known: dict[str, dict[str, Any]] = {}

    def close_spider(self, spider: Any = None) -> None:
        super().close_spider(spider)
        self._known = {}
        if self._store is not None:
            self._store.engine.dispose()

    async def process_item(self, item: Any, spider: Any = None) -> Any:
        photos = item.get("photos") if hasattr(item, "get") else None
        urls = [p["url"] for p in photos or [] if downloadable(p)]
        if urls and self._store is not None:
            found = await maybe_deferred_to_future(
                deferToThread(self._store.known_photo_fingerprints, urls)
            )
            self._known.update(found)
            if self.crawler.stats is not None:
                self.crawler.stats.inc_value("lovitura/photo/lookups")
        return await super().process_item(item, spider)

    def known_fingerprint(self, url: str) -> dict[str, Any] | None:
        # The media pipeline asks once per URL and crawl (it keeps the result), so the entry
        # is taken out here.
        return self._known.pop(url, None)
