"""Spider of ``nachtvlinder``: a single-page app, crawled in headless Chromium.

Listing and ad pages are rendered by the site's script, so every request goes through
scrapy-playwright, in the few tabs of the spider's ``PagePool`` (``spiders.browser``). The phone
number is only in the page after a click on "toon nummer": the spider keeps the tab of each ad
after its download, clicks, waits for the number, reads the page, and gives the tab back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from scrapy.http import Response
from twisted.python.failure import Failure

from lovitura_crawl.anomalies import Anomaly, note_anomaly
from lovitura_crawl.sitedefs import NACHTVLINDER
from lovitura_crawl.spiders.base import SiteSpider
from lovitura_crawl.spiders.browser import KEEP_PAGE, PAGE, POOLED

SHOW_PHONE = "#show-phone"  # the "toon nummer" button; absent when the ad has no phone
PHONE = "#phone"  # the number, once fetched
REVEAL_TIMEOUT_MS = 10_000


class NachtvlinderSpider(SiteSpider):
    name = NACHTVLINDER.name
    definition = NACHTVLINDER

    def browser_meta(self, ad_page: bool) -> dict[str, Any]:
        meta = super().browser_meta(ad_page)
        if ad_page:
            meta["playwright_include_page"] = True
            meta[KEEP_PAGE] = True  # parse_ad clicks in the tab, then gives it back
        return meta

    def page_request(self, url: str, callback: Any, ad_page: bool = False, **kwargs: Any) -> Any:
        if ad_page:
            kwargs.setdefault("errback", self.on_ad_error)
        return super().page_request(url, callback, ad_page=ad_page, **kwargs)

    async def parse_ad(self, response: Response) -> AsyncIterator[Any]:
        page = response.meta.get(PAGE)
        if page is not None:
            try:
                html = await self.reveal_phone(page, response.url)
            finally:
                await self.give_back(response.request)
            response = response.replace(body=html.encode("utf-8"), encoding="utf-8")
        async for output in super().parse_ad(response):
            yield output

    async def reveal_phone(self, page: Any, url: str) -> str:
        """Click "toon nummer" when the ad has it, wait for the number, return the page's HTML."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        button = await page.query_selector(SHOW_PHONE)
        if button is not None:
            await button.click()
            try:
                await page.wait_for_selector(PHONE, timeout=REVEAL_TIMEOUT_MS)
            except PlaywrightTimeout:
                note_anomaly(
                    self.crawler, Anomaly("page", "phone-not-revealed", url=url, site=self.name)
                )
        return str(await page.content())

    async def on_ad_error(self, failure: Failure) -> AsyncIterator[Any]:
        """Give back the kept tab of an ad request that failed, then record the failure."""
        await self.give_back(failure.request)  # type: ignore[attr-defined]
        for output in self.on_error(failure):
            yield output

    async def give_back(self, request: Any) -> None:
        """Return the kept tab of ``request`` to the pool, or close a tab not of the pool."""
        if self.pages is not None and request.meta.get(POOLED):
            self.pages.release(request)
            return
        page = request.meta.pop(PAGE, None)
        if page is not None:
            await page.close()
