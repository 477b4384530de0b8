"""Skip photos that an earlier crawl already fingerprinted.

A photo URL that the database already holds a fingerprint for is not downloaded again: daily
crawls see the same photos for weeks, and downloading and hashing them again would cost the
site's bandwidth and our CPU for nothing.
"""

from __future__ import annotations

from typing import Any

from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.db.store import AdStore
from pipelines.photos import PhotosPipeline


class StoredPhotosPipeline(PhotosPipeline):
    """The photos pipeline, with :meth:`known_fingerprint` answered from the database."""

    _store: AdStore | None = None

    def open_spider(self, spider: Any = None) -> None:
        super().open_spider(spider)
        url = self.crawler.settings.get("LOVITURA_DATABASE_URL")
        self._store = AdStore(make_engine(url))

    def close_spider(self, spider: Any = None) -> None:
        super().close_spider(spider)
        if self._store is not None:
            self._store.engine.dispose()

    def known_fingerprint(self, url: str) -> dict[str, Any] | None:
        if self._store is None:
            return None
        return self._store.known_photo_fingerprints([url]).get(url)
