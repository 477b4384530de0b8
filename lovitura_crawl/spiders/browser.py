"""Browser tabs for sites that only render in a browser: a few tabs, opened once and reused.

scrapy-playwright opens a new tab for every request and closes it after. For Chromium a new tab
is a new renderer to start and tear down, which made a page about twice as slow as a navigation
in a tab that is already open (measured on the demo's nachtvlinder: 0.8 to 1.1 s against 0.4 to
0.5 s per ad page, on a busy 2-core machine). ``PagePool`` keeps up to
``LOVITURA_BROWSER_PAGES`` tabs of the crawl's one browser context and ``BrowserPageMiddleware``
hands an idle one to each browser request, or lets scrapy-playwright open one while there are
fewer. A tab goes back to the pool as soon as its response is read, unless the spider still
works in it (nachtvlinder clicks "toon nummer" in the ad's tab): then the spider gives it back
with :meth:`PagePool.release` when done, also when the request failed.

A tab that belongs to a request stays in its ``meta["playwright_page"]`` until it is released,
so a retried copy of the request (Scrapy copies the meta) goes on in the same tab.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from scrapy.http import Request

logger = logging.getLogger(__name__)

PAGE = "playwright_page"  # scrapy-playwright's meta key of the tab a request used
KEEP_PAGE = "lovitura_keep_page"  # request meta: the spider works in the tab after the download
RESERVED = "lovitura_page_reserved"  # request meta: may open one tab of the pool
POOLED = "lovitura_page_pooled"  # request meta: its tab belongs to the pool
BROWSER_PAGES = 2  # default of LOVITURA_BROWSER_PAGES


class PagePool:
    """Up to ``size`` open tabs; the requests of one crawl take turns in them."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"LOVITURA_BROWSER_PAGES must be at least 1, not {size}")
        self.size = size
        self._idle: list[Any] = []
        self._open = 0  # tabs of the pool: idle, held by a request, or about to be opened
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def acquire(self, request: Request) -> None:
        """Give ``request`` an idle tab, or the right to open one; wait while all are busy."""
        request.meta[POOLED] = True
        page = request.meta.get(PAGE)
        if page is not None and not page.is_closed():
            return  # a retried copy goes on in its tab
        if request.meta.get(RESERVED):
            return  # a retried copy of a request whose tab was never opened
        while True:
            while self._idle:
                page = self._idle.pop()
                if not page.is_closed():
                    request.meta[PAGE] = page
                    return
                self._dropped()
            if self._open < self.size:
                self._open += 1
                request.meta[RESERVED] = True
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            await waiter

    def release(self, request: Request) -> None:
        """``request`` is done with its tab: back to the pool (a closed tab makes room)."""
        page = request.meta.pop(PAGE, None)
        reserved = request.meta.pop(RESERVED, False)
        request.meta.pop(POOLED, None)
        if page is None:
            if reserved:
                self._dropped()  # the tab was never opened (the browser failed first)
            return
        if page.is_closed():
            self._dropped()
        else:
            self._idle.append(page)
            self._wake()

    def _dropped(self) -> None:
        self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class BrowserPageMiddleware:
    """Downloader middleware: browser requests take a tab of the spider's ``PagePool``.

    Placed just before the download handler, after the robots.txt and safety checks, so only
    requests that will really be downloaded hold a tab.
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> BrowserPageMiddleware:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        pool = self._pool(request)
        if pool is not None:
            request.meta["playwright_include_page"] = True  # the pool closes tabs, not the handler
            await pool.acquire(request)

    def process_response(self, request: Request, response: Any) -> Any:
        pool = self._pool(request)
        if pool is not None and not request.meta.get(KEEP_PAGE):
            pool.release(request)  # the response holds the page's HTML: the tab is free
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        pool = self._pool(request)
        if pool is not None and not request.meta.get(KEEP_PAGE):
            pool.release(request)

    def _pool(self, request: Request) -> PagePool | None:
        if not request.meta.get("playwright"):
            return None
        return getattr(self.crawler.spider, "pages", None)
