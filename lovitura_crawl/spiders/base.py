"""The generic spider: crawls one site as its ``SiteDefinition`` says.

From the start pages it follows listing links (regions, cities, boards) and "next page" links,
visits every ad page once, reads the fields the definition points at, follows a separate photo
page when the site has one, and yields one ``AdItem`` per ad. Sites that only render in a
browser get their pages through scrapy-playwright; all other requests are plain HTTP.

Crawls are incremental (``lovitura_crawl.spiders.incremental``): an ad whose listing entry shows
no change since its last full fetch is recorded from the listing alone. When the spider has
walked every listing page without a failure it sets the stat ``lovitura/listing/complete``, and
the storage pipeline then marks the site's unseen ads gone. With ``LOVITURA_REDIS_URL`` several
processes share one crawl (``lovitura_crawl.spiders.shared``).
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import scrapy
from parsel import Selector, SelectorList
from scrapy import signals
from scrapy.exceptions import DontCloseSpider
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from lovitura_crawl.anomalies import Anomaly, note_anomaly
from lovitura_crawl.clock import crawl_now
from lovitura_crawl.dates import iso_date
from lovitura_crawl.db.store import LISTING_ONLY, LISTING_SIGNATURE
from lovitura_crawl.items import AdItem
from lovitura_crawl.sitedefs import Field, ListingEntry, SiteDefinition
from lovitura_crawl.spiders.browser import BROWSER_PAGES, PagePool
from lovitura_crawl.spiders.incremental import (
    REFETCH_DAYS,
    DetailPolicy,
    ListedAd,
    load_known_ads,
    signature,
    storage_enabled,
)

logger = logging.getLogger(__name__)

ASSETS = frozenset({"image", "media", "font", "stylesheet"})  # not needed to read a page
LISTING_PAGE = "lovitura_listing_page"  # request meta: a listing page (its failure matters)
LISTED = "lovitura_listed"  # request meta of an ad page: the ListedAd it came from
COMPLETE_STAT = "lovitura/listing/complete"
SHARED_PART_STAT = "lovitura/shared/part-ok"  # a worker of a shared crawl: no listing failure
GONE_ANSWERS = frozenset({"http-404", "http-410"})
UNREAD = "unread"  # stored as the signature of a known ad whose page failed (signatures are hex)


class SiteSpider(scrapy.Spider):
    """Runs ``definition``. Subclasses set it (and ``name``); see docs/adding-a-site.md."""

    definition: ClassVar[SiteDefinition]

    def __init__(self, *args: Any, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._base_url_arg = base_url
        # Read by lovitura_crawl.middlewares.SafeDestinationMiddleware.
        self.allowed_private_hosts = self.definition.allowed_private_hosts
        self._seen_ads: set[str] = set()  # ads yielded (from their page or their listing entry)
        self._policy: DetailPolicy | None = None  # None: every ad page is fetched
        self._decided: set[str] = set()  # listed ads whose page was skipped or requested
        self._listing_pages = 0  # listing pages read
        self._listing_failures = 0  # listing pages that failed for good
        self.shared: Any = None  # lovitura_crawl.spiders.shared.SharedCrawl with Redis
        self.pages: PagePool | None = None  # the browser tabs, on sites that need a browser

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> SiteSpider:
        spider: SiteSpider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.on_idle, signal=signals.spider_idle)
        if cls.definition.browser is not None:
            size = crawler.settings.getint("LOVITURA_BROWSER_PAGES", BROWSER_PAGES)
            spider.pages = PagePool(size)
        if crawler.settings.get("LOVITURA_REDIS_URL"):
            from lovitura_crawl.spiders.shared import SharedCrawl

            spider.shared = SharedCrawl.from_settings(crawler.settings, spider.name)
            spider.shared.open()  # the heartbeat, from now on: the crawl may be slow to start
            # spider_closed comes after the pipelines closed: this worker's items are stored.
            crawler.signals.connect(spider.shared.close, signal=signals.spider_closed)
        return spider

    @classmethod
    def update_settings(cls, settings: Any) -> None:
        super().update_settings(settings)
        settings.setdict(cls.definition.custom_settings, priority="spider")
        if settings.get("LOVITURA_REDIS_URL"):
            from lovitura_crawl.spiders.shared import join_settings

            join_settings(settings, cls.name)  # also sets the shared crawl's clock
        elif not settings.get("LOVITURA_CLOCK"):
            # One clock for the whole run: gone-marking compares it with last_seen_at.
            now = datetime.now(UTC).isoformat()
            settings.set("LOVITURA_CLOCK", now, priority="spider")
        if cls.definition.browser is not None:
            handlers = settings.getdict("PLAYWRIGHT_DOWNLOAD_HANDLERS")
            settings.set("DOWNLOAD_HANDLERS", handlers, priority="spider")
            if cls.definition.browser.skip_assets:
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
        self._policy = self.detail_policy()
        for path in self.definition.start_paths:
            yield self.listing_request(self.base_url + path)

    def detail_policy(self) -> DetailPolicy | None:
        """What the database knows of this site's ads (one query), or None to fetch every page."""
        settings = self.settings
        if (
            self.definition.listing_entry is None
            or not settings.getbool("LOVITURA_INCREMENTAL", True)
            or not storage_enabled(settings)
        ):
            return None
        clock = crawl_now(settings)
        days = settings.getint("LOVITURA_REFETCH_DAYS", REFETCH_DAYS)
        known = load_known_ads(settings.get("LOVITURA_DATABASE_URL"), self.name, clock, days)
        logger.info("%s: %d ads known from earlier crawls", self.name, len(known))
        marker_only = self.definition.listing_entry.updated_today is not None
        return DetailPolicy(known, clock, days, marker_only)

    def listing_request(self, url: str) -> scrapy.Request:
        return self.page_request(url, self.parse_listing, meta={LISTING_PAGE: True})

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
        page = self.decoded(response)
        self._listing_pages += 1
        if self.shared is not None:
            self.shared.listing_read()
        definition = self.definition
        listed = {ad.url: ad for ad in self.listed_ads(page)}
        for href in _hrefs(page, definition.ad_links):
            url = page.urljoin(href)
            for output in self.follow_ad(url, listed.get(url)):
                yield output
        for xpath in (definition.listing_links, definition.next_page):
            for href in _hrefs(page, xpath):
                yield self.listing_request(page.urljoin(href))

    def listed_ads(self, page: TextResponse) -> list[ListedAd]:
        """The ads the page shows, with their listing signatures (none without a definition)."""
        entry = self.definition.listing_entry
        return [] if entry is None else read_entries(page, entry)

    def follow_ad(self, url: str, listed: ListedAd | None) -> Iterator[Any]:
        """The request for an ad page, or a listing-only item when the page need not be read."""
        stats = self.crawler.stats
        if listed is not None and self._policy is not None:
            if listed.ad_id in self._decided:
                return  # listed twice (the listing moved while it was read)
            self._decided.add(listed.ad_id)
            reason = self._policy.fetch_reason(listed)
            if reason is None:
                stats.inc_value("lovitura/detail/skipped")
                self._seen_ads.add(listed.ad_id)
                yield self.listing_item(listed)
                return
            stats.inc_value(f"lovitura/detail/fetch/{reason}")
        meta = {LISTED: listed} if listed is not None else {}
        yield self.page_request(url, self.parse_ad, ad_page=True, meta=meta)

    def listing_item(self, listed: ListedAd) -> AdItem:
        """An observation of ``listed`` from its listing entry alone: seen today, unchanged."""
        return AdItem(
            site=self.name,
            site_ad_id=listed.ad_id,
            url=listed.url,
            observed_at=crawl_now(self.settings).isoformat(),
            extra={LISTING_ONLY: True, LISTING_SIGNATURE: listed.signature},
        )

    def on_idle(self) -> None:
        """The crawl ran out of requests: say whether the whole listing was read.

        Only reached when the crawl ends by itself (not when it is stopped), so a stopped
        crawl never claims a complete listing. A shared crawl waits here for its other workers.
        """
        complete = self._listing_failures == 0 and self._listing_pages > 0
        if self.shared is not None:
            if not self.shared.finished():
                raise DontCloseSpider
            # Only the finisher speaks for the whole crawl (and marks gone); the others say
            # whether their own part went well.
            self.crawler.stats.set_value(SHARED_PART_STAT, self._listing_failures == 0)
            complete = self.shared.marks_gone
        self.crawler.stats.set_value(COMPLETE_STAT, complete)
        self.crawler.stats.set_value("lovitura/listing/pages", self._listing_pages)
        self.crawler.stats.set_value("lovitura/listing/failed", self._listing_failures)

    # --- ads ----------------------------------------------------------------------------------

    async def parse_ad(self, response: Response) -> AsyncIterator[Any]:
        page = self.decoded(response)
        item = self.read_ad(page)
        if item is None:
            return
        self.note_listing(item, response.meta.get(LISTED))
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

    def note_listing(self, item: AdItem, listed: ListedAd | None) -> None:
        """Keep the listing signature with a fetched ad; flag a listing that names another id."""
        if listed is None:
            return
        if listed.ad_id != item["site_ad_id"]:
            # The definition reads ids differently on listings and ad pages: the ad would be
            # fetched every day. Worth fixing in the site definition.
            note_anomaly(
                self.crawler,
                Anomaly("page", "listing-id-mismatch", url=item["url"], site=self.name),
            )
            return
        item["extra"] = {**(item.get("extra") or {}), LISTING_SIGNATURE: listed.signature}

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

    def on_error(self, failure: Failure) -> Iterator[AdItem]:
        """A page that failed after the retries: counted and recorded, the crawl goes on.

        A failed listing page makes the listing incomplete (no ad is marked gone). A failed ad
        page of a known ad still counts as seen, the listing showed it, unless the page answered
        that the ad is gone (404, 410).
        """
        request = failure.request  # type: ignore[attr-defined]
        error = failure.value
        if isinstance(error, HttpError):
            reason = f"http-{error.response.status}"
        else:
            reason = type(error).__name__
        note_anomaly(self.crawler, Anomaly("page", reason, url=request.url, site=self.name))
        if request.meta.get(LISTING_PAGE):
            self._listing_failures += 1
            if self.shared is not None:
                self.shared.listing_failed()
        listed: ListedAd | None = request.meta.get(LISTED)
        if (
            listed is not None
            and reason not in GONE_ANSWERS  # the page says the ad went since it was listed
            and self._policy is not None
            and listed.ad_id in self._policy.known
            and listed.ad_id not in self._seen_ads
        ):
            self._seen_ads.add(listed.ad_id)
            self.crawler.stats.inc_value("lovitura/detail/failed-known")
            # The page was not read: a signature no entry has makes the next crawl fetch it.
            item = self.listing_item(listed)
            item["extra"] = {LISTING_ONLY: True, LISTING_SIGNATURE: UNREAD}
            yield item

    def on_gallery_error(self, failure: Failure) -> AdItem:
        """A photo page that failed: the ad is still yielded, without photos."""
        for _ in self.on_error(failure):
            pass
        item: AdItem = failure.request.cb_kwargs["item"]  # type: ignore[attr-defined]
        return item


def read_entries(page: TextResponse, entry: ListingEntry) -> list[ListedAd]:
    """The ads a listing page shows, as ``entry`` reads them; entries without an id are left out."""
    listed = []
    for node in page.xpath(entry.node):
        ad_id = extract(node, entry.ad_id)
        href = (node.xpath(entry.link).get() or "").strip()
        if not ad_id or not href:
            continue
        marker = entry.updated_today is not None and bool(node.xpath(entry.updated_today))
        listed.append(ListedAd(ad_id, page.urljoin(href), signature(node, entry.signature), marker))
    return listed


def skip_asset(request: Any) -> bool:
    """PLAYWRIGHT_ABORT_REQUEST of browser sites: skip pictures, fonts and style sheets."""
    return bool(request.resource_type in ASSETS)


def extract(page: TextResponse | Selector, rule: Field) -> str | None:
    """The value ``rule`` points at on ``page``, or None."""
    nodes = page.xpath(rule.xpath)
    texts = [_node_text(node, rule.keep_lines) for node in nodes]
    joined = rule.join.join(text for text in texts if text)
    if rule.pattern is not None and joined:
        match = re.search(rule.pattern, joined)
        if match is None:
            return None
        joined = match.group(1) if match.groups() else match.group(0)
    if rule.links:
        joined = _with_link_targets(joined, nodes)
    return joined or None


def _with_link_targets(text: str, nodes: SelectorList[Selector]) -> str:
    """``text`` followed by the targets of the links inside ``nodes``, one per line, each once."""
    targets = dict.fromkeys(href.strip() for href in nodes.xpath(".//a/@href").getall())
    shown = "\n".join(target for target in targets if target)
    if not shown:
        return text
    return f"{text}\n\n{shown}" if text else shown


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
