"""The generic spider: crawls one site as its ``SiteDefinition`` says.

From the start pages it follows listing links (regions, cities, boards) and "next page" links,
visits every ad page once, reads the fields the definition points at, follows a separate photo
page when the site has one, and yields one ``AdItem`` per ad. Sites that only render in a
browser get their pages through scrapy-playwright; all other requests are plain HTTP.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import scrapy
from parsel import Selector, SelectorList
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from lovitura_crawl.anomalies import Anomaly, note_anomaly
from lovitura_crawl.clock import crawl_now
from lovitura_crawl.dates import iso_date
from lovitura_crawl.items import AdItem
from lovitura_crawl.sitedefs import Field, SiteDefinition

REFUSAL_RETRIES = 4  # attempts after a 429 before the page is given up
MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After is capped
ASSETS = frozenset({"image", "media", "font", "stylesheet"})  # not needed to read a page


class SiteSpider(scrapy.Spider):
    """Runs ``definition``. Subclasses set it (and ``name``); see docs/adding-a-site.md."""

    definition: ClassVar[SiteDefinition]

    def __init__(self, *args: Any, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._base_url_arg = base_url
        # Read by lovitura_crawl.middlewares.SafeDestinationMiddleware.
        self.allowed_private_hosts = self.definition.allowed_private_hosts
        self._seen_ads: set[str] = set()

    @classmethod
    def update_settings(cls, settings: Any) -> None:
        super().update_settings(settings)
        settings.setdict(cls.definition.custom_settings, priority="spider")
        # A 429 comes to the callbacks, which wait as long as Retry-After says; Scrapy's
        # retry middleware would ask again at once and be refused again.
        codes = [code for code in settings.getlist("RETRY_HTTP_CODES") if int(code) != 429]
        settings.set("RETRY_HTTP_CODES", codes, priority="spider")
        allowed = {int(code) for code in settings.getlist("HTTPERROR_ALLOWED_CODES")}
        settings.set("HTTPERROR_ALLOWED_CODES", sorted(allowed | {429}), priority="spider")
        if cls.definition.browser is not None and cls.definition.browser.skip_assets:
            settings.set(
                "PLAYWRIGHT_ABORT_REQUEST",
                "lovitura_crawl.spiders.base.skip_asset",
                priority="spider",
            )

    # --- where the crawl starts ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``-a base_url=...``, else the setting LOVITURA_SITE_URLS[name], else the demo's URL."""
        configured = self.settings.getdict("LOVITURA_SITE_URLS").get(self.name)
        url = self._base_url_arg or configured or self.definition.default_base_url
        return url if url.endswith("/") else url + "/"

    async def start(self) -> AsyncIterator[Any]:
        for path in self.definition.start_paths:
            yield self.page_request(self.base_url + path, self.parse_listing)

    def page_request(
        self, url: str, callback: Any, ad_page: bool = False, **kwargs: Any
    ) -> scrapy.Request:
        """A request for a site page, through the browser when the site needs one."""
        kwargs.setdefault("errback", self.on_error)
        if self.definition.browser is not None:
            kwargs["meta"] = {**kwargs.get("meta", {}), **self.browser_meta(ad_page)}
        return scrapy.Request(url, callback=callback, **kwargs)

    def browser_meta(self, ad_page: bool) -> dict[str, Any]:
        """scrapy-playwright meta: render, and wait until the page's script has drawn it."""
        from scrapy_playwright.page import PageMethod

        steps = self.definition.browser
        assert steps is not None
        return {
            "playwright": True,
            "playwright_page_methods": [PageMethod("wait_for_selector", steps.ready)],
        }

    # --- listings -----------------------------------------------------------------------------

    async def parse_listing(self, response: Response) -> AsyncIterator[Any]:
        if response.status == 429:
            async for retry in self.retry_later(response):
                yield retry
            return
        page = self.decoded(response)
        definition = self.definition
        for href in _hrefs(page, definition.ad_links):
            yield self.page_request(page.urljoin(href), self.parse_ad, ad_page=True)
        for xpath in (definition.listing_links, definition.next_page):
            for href in _hrefs(page, xpath):
                yield self.page_request(page.urljoin(href), self.parse_listing)

    # --- ads ----------------------------------------------------------------------------------

    async def parse_ad(self, response: Response) -> AsyncIterator[Any]:
        if response.status == 429:
            async for retry in self.retry_later(response):
                yield retry
            return
        page = self.decoded(response)
        item = self.read_ad(page)
        if item is None:
            return
        gallery = _hrefs(page, self.definition.gallery_link)
        if gallery:
            yield self.page_request(
                page.urljoin(gallery[0]),
                self.parse_gallery,
                cb_kwargs={"item": item},
                errback=self.on_gallery_error,
            )
            return
        yield item

    async def parse_gallery(self, response: Response, item: AdItem) -> AsyncIterator[Any]:
        if response.status == 429:
            async for retry in self.retry_later(response):
                yield retry
            return
        page = self.decoded(response)
        item["photos"] = _photos(page, self.definition.gallery_photos)
        yield item

    def read_ad(self, page: TextResponse) -> AdItem | None:
        """The item of an ad page; None when the page shows no ad or an ad already yielded."""
        browser = self.definition.browser
        if browser is not None and browser.gone and page.css(browser.gone):
            self.crawler.stats.inc_value("lovitura/spider/ad-gone")  # offline since listed
            return None
        ad_id = self.ad_id(page)
        if not ad_id:
            note_anomaly(self.crawler, Anomaly("page", "no-ad-id", url=page.url, site=self.name))
            return None
        if ad_id in self._seen_ads:
            self.crawler.stats.inc_value("lovitura/spider/duplicate-ad")
            return None
        self._seen_ads.add(ad_id)
        item = AdItem(
            site=self.name,
            site_ad_id=ad_id,
            url=page.url,
            observed_at=crawl_now(self.settings).isoformat(),
        )
        for name, rule in self.definition.fields.items():
            value = extract(page, rule)
            if value is not None:
                item[name] = value
        if "posted_at" in item:
            item["posted_at"] = iso_date(item["posted_at"]) or item["posted_at"]
        if self.definition.photos:
            item["photos"] = _photos(page, self.definition.photos)
        extra = self.extra(page)
        if extra:
            item["extra"] = extra
        return item

    def ad_id(self, page: TextResponse) -> str | None:
        definition = self.definition
        if definition.ad_id_field is not None:
            return extract(page, definition.ad_id_field)
        match = re.search(definition.ad_id_in_url or "", page.url)
        return match.group(1) if match else None

    def extra(self, page: TextResponse) -> dict[str, str]:
        extra: dict[str, str] = {}
        for name, rule in self.definition.extra_fields.items():
            value = extract(page, rule)
            if value is not None:
                extra[name] = value
        pairs = self.definition.extra_pairs
        if pairs is not None:
            for node in page.xpath(pairs.nodes):
                key, value = _text_of(node.xpath(pairs.key)), _text_of(node.xpath(pairs.value))
                if key and value:
                    extra.setdefault(key, value)
        return extra

    def decoded(self, response: Response) -> TextResponse:
        """The page as text, in the definition's encoding when it has one."""
        if not isinstance(response, TextResponse):
            raise TypeError(
                f"{response.url} is not a text page but {type(response).__name__}; check the "
                "site definition's links"
            )
        wanted = self.definition.encoding
        if wanted and _codec(response.encoding) != _codec(wanted):
            return response.replace(encoding=wanted)
        return response

    # --- errors and refusals --------------------------------------------------------------------

    def on_error(self, failure: Failure) -> None:
        """A page that failed after Scrapy's retries: counted and recorded, the crawl goes on."""
        request = failure.request  # type: ignore[attr-defined]
        error = failure.value
        if isinstance(error, HttpError):
            reason = f"http-{error.response.status}"
        else:
            reason = type(error).__name__
        note_anomaly(self.crawler, Anomaly("page", reason, url=request.url, site=self.name))

    def on_gallery_error(self, failure: Failure) -> AdItem:
        """A photo page that failed: the ad is still yielded, without photos."""
        self.on_error(failure)
        item: AdItem = failure.request.cb_kwargs["item"]  # type: ignore[attr-defined]
        return item

    async def retry_later(self, response: Response) -> AsyncIterator[scrapy.Request]:
        """After a 429: wait as long as Retry-After asks, then ask again (a few times at most)."""
        request = response.request
        assert request is not None
        attempts = int(request.meta.get("lovitura_refusals", 0)) + 1
        if attempts > REFUSAL_RETRIES:
            note_anomaly(self.crawler, Anomaly("page", "http-429", url=request.url, site=self.name))
            return
        self.crawler.stats.inc_value("lovitura/spider/retry-after")
        # Imported here: importing the reactor at module load could install the wrong one.
        from twisted.internet import reactor

        await maybe_deferred_to_future(deferLater(reactor, _retry_after(response), lambda: None))
        retry = request.replace(dont_filter=True)
        retry.meta["lovitura_refusals"] = attempts
        yield retry


def skip_asset(request: Any) -> bool:
    """PLAYWRIGHT_ABORT_REQUEST of browser sites: skip pictures, fonts and style sheets."""
    return bool(request.resource_type in ASSETS)


def extract(page: TextResponse | Selector, rule: Field) -> str | None:
    """The value ``rule`` points at on ``page``, or None."""
    texts = [_node_text(node, rule.keep_lines) for node in page.xpath(rule.xpath)]
    joined = rule.join.join(text for text in texts if text)
    if rule.pattern is not None and joined:
        match = re.search(rule.pattern, joined)
        if match is None:
            return None
        joined = match.group(1) if match.groups() else match.group(0)
    return joined or None


def _node_text(node: Selector, keep_lines: bool) -> str:
    raw = node.root if isinstance(node.root, str) else node.xpath("string(.)").get("")
    if keep_lines:
        lines = (" ".join(line.split()) for line in str(raw).strip().split("\n"))
        return "\n".join(lines)
    return " ".join(str(raw).split())


def _text_of(nodes: SelectorList[Selector]) -> str:
    return " ".join(_node_text(node, False) for node in nodes).strip()


def _hrefs(page: TextResponse, xpath: str | None) -> list[str]:
    return [href.strip() for href in page.xpath(xpath).getall() if href.strip()] if xpath else []


def _photos(page: TextResponse, xpath: str | None) -> list[dict[str, str | None]]:
    urls = dict.fromkeys(page.urljoin(src) for src in _hrefs(page, xpath))
    return [{"url": url, "path": None} for url in urls]


def _codec(name: str) -> str:
    return codecs.lookup(name).name


def _retry_after(response: Response) -> float:
    raw = (response.headers.get(b"Retry-After") or b"").decode("latin-1").strip()
    seconds = float(raw) if raw.replace(".", "", 1).isdigit() else 1.0
    return min(max(seconds, 0.1), MAX_RETRY_AFTER)
