"""Scrapy's downloader, with its per-site concurrency held when there is no download delay.

Scrapy 2.19 counts a request as transferring only once the task that downloads it has started,
one turn of the event loop after the request left its slot's queue. Without a download delay
(the demo and the throughput benchmark crawl their local sites without one; an operator may
set ``DOWNLOAD_DELAY = 0``), every request waiting in a slot's queue therefore started at once:
``CONCURRENT_REQUESTS_PER_DOMAIN = 1`` still sent bursts of up to ``CONCURRENT_REQUESTS``
requests to one site, and each of them opened a new connection, since none had been handed back
to the pool yet. With a delay, Scrapy starts one request per pass and the limit holds.

:class:`Downloader` lets Scrapy's pass start no more requests than the slot has free, and counts
those as transferring at once. ``tests/test_downloader.py`` crawls a server that records how
many requests it serves at the same time.
"""

from __future__ import annotations

from typing import Any

from scrapy.core.downloader import Downloader as ScrapyDownloader
from scrapy.core.downloader import Slot


class Downloader(ScrapyDownloader):
    """Scrapy's downloader; a slot never has more requests in flight than its concurrency."""

    def _process_queue(self, slot: Slot) -> None:
        free = slot.free_transfer_slots()
        if free <= 0 or not slot.queue:
            return
        # Scrapy's pass may take only the first ``free`` entries: the rest wait outside the
        # queue for the pass, in their order.
        held: list[Any] = []
        while len(slot.queue) > free:
            held.append(slot.queue.pop())
        offered = list(slot.queue)
        try:
            super()._process_queue(slot)
        finally:
            slot.queue.extend(reversed(held))
        # What the pass took is transferring from now on (Scrapy adds it again, a set, when
        # its download starts, and removes it when the download ends).
        still_queued = {id(entry) for entry in slot.queue}
        for entry in offered:
            if id(entry) not in still_queued:
                slot.transferring.add(entry[0])
