"""Stores items in the database from a writer thread, in batches, and records the crawl run.

Database writes never run on the reactor thread: items queue up, and one writer thread (a
Twisted thread pool of one) stores whatever has queued while it was busy, up to
``LOVITURA_STORE_BATCH`` items, in one transaction (group commit). An item is acknowledged to
Scrapy (``item_scraped``, ``item_scraped_count``) only when its transaction has committed; a
crawl killed before that loses the item from memory only, and the rerun fetches it again.

The run row is opened when the spider opens and closed from the ``spider_closed`` signal, whose
reason is the crawl's outcome (``finished``, ``shutdown``, ``closespider_timeout`` ...): the
pipeline's own ``close_spider`` runs before Scrapy knows it. After a crawl that finished by
itself with a complete listing (the spider sets the stat ``lovitura/listing/complete``), ads of
that site that were not seen get ``gone_at``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.exceptions import DropItem
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from lovitura_crawl.anomalies import Anomaly, note_anomaly
from lovitura_crawl.clock import crawl_now
from lovitura_crawl.db.engine import make_engine, masked, resolve_url
from lovitura_crawl.db.store import AdStore, StoreResult

logger = logging.getLogger(__name__)


class _Queued:
    """An item waiting for its transaction: its row data and the Deferred Scrapy waits on."""

    __slots__ = ("data", "done", "item")

    def __init__(self, item: Any) -> None:
        self.item = item
        # A shallow copy: the nested values (photos, phones, location, fields) are plain
        # dicts and lists already, and storage is the last pipeline, so nothing changes them
        # while they wait. ItemAdapter.asdict() walked every fingerprint on the reactor
        # thread (5 ms an ad).
        self.data = dict(ItemAdapter(item).items())
        self.done: Deferred[Any] = Deferred()


class StoragePipeline:
    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.url = resolve_url(crawler.settings.get("LOVITURA_DATABASE_URL"))
        self.batch_size = crawler.settings.getint("LOVITURA_STORE_BATCH", 200)
        if self.batch_size < 1:
            raise ValueError(
                f"LOVITURA_STORE_BATCH={self.batch_size}: a batch must hold at least one item"
            )
        self.store = AdStore(make_engine(self.url))
        self.pending: list[_Queued] = []
        self.writing = False
        self.drained: list[Deferred[None]] = []  # fired when nothing is pending or writing
        self.result = StoreResult()
        self.n_items = 0  # items committed
        self.n_failed = 0  # items whose transaction failed
        self.run_id: int | None = None
        self.pool = ThreadPool(minthreads=1, maxthreads=1, name="lovitura-store")
        self._trigger: Any = None  # the reactor's shutdown trigger that stops the pool
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Any) -> StoragePipeline:
        return cls(crawler)

    # --- the writer thread -------------------------------------------------------------------

    def _in_writer(self, function: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        from twisted.internet import reactor

        return deferToThreadPool(reactor, self.pool, function, *args, **kwargs)

    async def open_spider(self, spider: Any = None) -> None:
        from twisted.internet import reactor as installed

        reactor: Any = installed
        self.pool.start()
        # Its thread is not a daemon: stop it with the reactor too, should spider_closed never
        # come (the process would not exit).
        self._trigger = reactor.addSystemEventTrigger("during", "shutdown", self._stop_pool)
        # Nothing is stored without a registered, open purpose, however the crawl was started
        # (`lovitura crawl` checks it first; `scrapy crawl` and Scrapyd come straight here).
        from lovitura_crawl.privacy.purpose import PurposeError, open_purpose, record_crawl_run

        given = self.crawler.settings.get("LOVITURA_PURPOSE")
        try:
            purpose = await maybe_deferred_to_future(
                self._in_writer(open_purpose, self.store.engine, given)
            )
        except PurposeError as exc:
            self._stop_pool()
            raise PurposeError(
                f"this crawl stores into {masked(self.url)} and is refused: {exc} (with scrapy "
                "crawl: -s LOVITURA_PURPOSE=CODE)"
            ) from None
        site = self._site()
        clock = crawl_now(self.crawler.settings)
        self.run_id = await maybe_deferred_to_future(
            self._in_writer(self.store.start_run, site, clock)
        )
        await maybe_deferred_to_future(
            self._in_writer(record_crawl_run, self.store.engine, self.run_id, purpose)
        )
        logger.info("crawl run %s of %s stores into %s", self.run_id, site, masked(self.url))

    # --- items -------------------------------------------------------------------------------

    async def process_item(self, item: Any, spider: Any = None) -> Any:
        queued = _Queued(item)
        self.pending.append(queued)
        self._write_next()
        return await maybe_deferred_to_future(queued.done)

    def _write_next(self) -> None:
        """Start a transaction of what is pending, unless one runs (it starts the next)."""
        if self.writing:
            return
        if not self.pending:
            drained, self.drained = self.drained, []
            for waiter in drained:
                waiter.callback(None)
            return
        batch = self.pending[: self.batch_size]
        del self.pending[: self.batch_size]
        self.writing = True
        written = self._in_writer(self.store.save, [q.data for q in batch], self.run_id)
        written.addCallbacks(
            self._stored, self._not_stored, callbackArgs=(batch,), errbackArgs=(batch,)
        )

    def _stored(self, result: StoreResult, batch: list[_Queued]) -> None:
        self.writing = False
        self.result += result
        self.n_items += len(batch)
        stats = self.crawler.stats
        if stats:
            stats.set_value("lovitura/store/new", self.result.new)
            stats.set_value("lovitura/store/changed", self.result.updated)
        self._write_next()  # keep the writer busy while Scrapy takes the stored items
        for queued in batch:
            queued.done.callback(queued.item)

    def _not_stored(self, failure: Failure, batch: list[_Queued]) -> None:
        self.writing = False
        self.n_failed += len(batch)
        # The exception's text may hold the statement's parameters (ad text, numbers): only its
        # type is logged.
        logger.error(
            "crawl run %s: a transaction of %d items failed (%s) and was rolled back; they are "
            "not stored and the next crawl fetches them again. Check that the database at %s is "
            "reachable, writable and migrated (lovitura db upgrade).",
            self.run_id,
            len(batch),
            failure.type.__name__ if failure.type else "error",
            masked(self.url),
        )
        kind = failure.type.__name__ if failure.type else "error"
        for queued in batch:
            note_anomaly(
                self.crawler,
                Anomaly(
                    "store",
                    "write-failed",
                    url=queued.data.get("url"),
                    site=queued.data.get("site"),
                    site_ad_id=queued.data.get("site_ad_id"),
                    detail=f"transaction failed: {kind}",
                ),
            )
        self._write_next()
        # Scrapy logs a dropped item with its content: only at DEBUG (the ERROR above says it).
        dropped = DropItem(f"not stored: the transaction failed ({kind})", log_level="DEBUG")
        for queued in batch:
            queued.done.errback(Failure(dropped))

    async def close_spider(self, spider: Any = None) -> None:
        """Wait until every queued item is committed (or has failed)."""
        logger.debug("closing: %d items pending, writing: %s", len(self.pending), self.writing)
        if self.writing or self.pending:
            waiter: Deferred[None] = Deferred()
            self.drained.append(waiter)
            await maybe_deferred_to_future(waiter)

    # --- the end of the run ------------------------------------------------------------------

    async def spider_closed(self, spider: Any = None, reason: str = "finished") -> None:
        """Record the run's outcome, now that Scrapy gives the reason the crawl closed."""
        try:
            if self.run_id is not None:
                await self._finish(str(reason))
        finally:
            self._stop_pool()
            self.store.engine.dispose()

    def _stop_pool(self) -> None:
        if self._trigger is not None:
            from twisted.internet import reactor as installed

            reactor: Any = installed
            # Also called by the trigger itself, during shutdown, when it is already gone.
            with contextlib.suppress(ValueError, KeyError):
                reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None
        if self.pool.started:
            self.pool.stop()

    async def _finish(self, reason: str) -> None:
        """Mark unseen ads gone after a complete crawl that finished by itself; close the run."""
        stats = self.crawler.stats
        snapshot = dict(stats.get_stats()) if stats else {}
        complete = bool(snapshot.get("lovitura/listing/complete")) and reason == "finished"
        gone = 0
        if complete:
            clock = crawl_now(self.crawler.settings)
            gone = await maybe_deferred_to_future(
                self._in_writer(self.store.mark_gone, self._site(), clock)
            )
        snapshot.update({"lovitura/store/gone": gone, "finish_reason": reason})
        if self.n_failed:
            snapshot["lovitura/store/failed"] = self.n_failed
        if stats:
            stats.set_value("lovitura/store/gone", gone)
            if self.n_failed:
                stats.set_value("lovitura/store/failed", self.n_failed)
        await maybe_deferred_to_future(
            self._in_writer(
                self.store.finish_run,
                self.run_id,
                outcome=reason,
                stats=snapshot,
                listing_complete=complete,
                n_items=self.n_items,
                anomalies=list(getattr(self.crawler, "lovitura_anomalies", [])),
            )
        )
        logger.info(
            "crawl run %s (%s) stored %d items: %d new, %d changed, %d unchanged, %d gone",
            self.run_id,
            reason,
            self.n_items,
            self.result.new,
            self.result.updated,
            self.result.unchanged,
            gone,
        )

    def _site(self) -> str:
        spider = getattr(self.crawler, "spider", None)
        return str(getattr(spider, "site", None) or getattr(spider, "name", "unknown"))
