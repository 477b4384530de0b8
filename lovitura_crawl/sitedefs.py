"""Site definitions: what the generic spider needs to know to crawl one ad site.

A ``SiteDefinition`` says where a crawl starts, which links lead to more listings, to the next
page and to ads, and where each item field sits on an ad page (XPath). Adding a site is mostly
writing one of these; ``lovitura_crawl.spiders.base.SiteSpider`` runs it. See
docs/adding-a-site.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Field:
    """Where one value sits on a page.

    ``xpath`` selects elements, text or attributes; the text of every selected node is taken
    (whitespace collapsed, unless ``keep_lines``), empty ones dropped, and the rest joined with
    ``join``. ``pattern`` then keeps its first group (or whole match); no match gives no value.
    """

    xpath: str
    join: str = " "
    pattern: str | None = None
    keep_lines: bool = False  # keep line breaks inside each node's text (body texts)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            re.compile(self.pattern)


@dataclass(frozen=True)
class PairFields:
    """Site-specific "label: value" fields kept in the item's ``extra``.

    ``nodes`` selects one node per pair; ``key`` and ``value`` are XPaths relative to it.
    """

    nodes: str
    key: str
    value: str


@dataclass(frozen=True)
class BrowserSteps:
    """How to render a site that needs a browser: the pages are ready when ``ready`` shows."""

    ready: str  # CSS selector present once the page's script has rendered its content
    gone: str | None = None  # CSS selector shown instead when the ad is offline
    skip_assets: bool = True  # load no images, media, fonts or stylesheets: not needed to read


@dataclass(frozen=True)
class SiteDefinition:
    name: str  # the spider's name and the site name in items
    default_base_url: str  # where the demo serves the site; override per crawl
    start_paths: tuple[str, ...]  # relative to the base URL
    ad_links: str  # XPath of the hrefs of ad pages on a listing page
    listing_links: str | None = None  # XPath of hrefs of further listings (regions, cities...)
    next_page: str | None = None  # XPath of the href of the next listing page
    ad_id_field: Field | None = None  # the site's id of the ad on the ad page ...
    ad_id_in_url: str | None = None  # ... or a regex whose group 1 is the id in the ad's URL
    fields: dict[str, Field] = field(default_factory=dict)  # AdItem field -> where it is
    photos: str | None = None  # XPath of photo URLs on the ad page
    gallery_link: str | None = None  # XPath of the href of a separate photo page
    gallery_photos: str | None = None  # XPath of photo URLs on that page
    extra_fields: dict[str, Field] = field(default_factory=dict)  # named extras
    extra_pairs: PairFields | None = None
    browser: BrowserSteps | None = None  # set when the site only renders in a browser
    encoding: str | None = None  # decode pages with this, whatever they declare
    allowed_private_hosts: tuple[str, ...] = LOOPBACK_HOSTS  # the demo runs on loopback
    custom_settings: dict[str, Any] = field(default_factory=dict)  # politeness per site

    def __post_init__(self) -> None:
        if (self.ad_id_field is None) == (self.ad_id_in_url is None):
            raise ValueError(
                f"site {self.name!r}: give exactly one of ad_id_field and ad_id_in_url"
            )
        if (self.gallery_link is None) != (self.gallery_photos is None):
            raise ValueError(f"site {self.name!r}: gallery_link needs gallery_photos and back")
        if self.ad_id_in_url is not None and re.compile(self.ad_id_in_url).groups < 1:
            raise ValueError(f"site {self.name!r}: ad_id_in_url needs a group for the id")


def _dd(label: str) -> str:
    """The definition-list value next to a label, as on roodlicht."""
    return f'//dl[@class="kenmerken"]/dt[normalize-space()="{label}"]/following-sibling::dd[1]'


ROODLICHT = SiteDefinition(
    name="roodlicht",
    default_base_url="http://127.0.0.1:8401/",
    start_paths=("",),
    listing_links='//ul[@class="region-grid"]//a[@class="region"]/@href',
    next_page='//nav[@class="pagination"]/a[@rel="next"]/@href',
    ad_links='//ol[@class="ads"]//a[@class="ad-link"]/@href',
    ad_id_field=Field('//article[@class="advertentie"]/@data-id'),
    fields={
        "title": Field('//h1[@class="ad-title"]'),
        "text": Field('//div[@class="ad-text"]/p', join="\n\n", keep_lines=True),
        "place": Field(_dd("Plaats")),
        "phone_text": Field(_dd("Telefoon")),
        "nickname": Field(_dd("Naam")),
        "age": Field(_dd("Leeftijd"), pattern=r"\d+"),
        "posted_at": Field(_dd("Geplaatst") + "/time/@datetime"),
    },
    photos='//section[@class="gallery"]/ul[@class="thumbs"]//img/@src',
    extra_fields={"region": Field(_dd("Regio"))},
    extra_pairs=PairFields('//dl[@class="extra"]/dt', ".", "following-sibling::dd[1]"),
)

NACHTVLINDER = SiteDefinition(
    name="nachtvlinder",
    default_base_url="http://127.0.0.1:8402/",
    start_paths=("",),
    next_page='//nav[@class="nv-pager"]/a[@class="next"]/@href',
    ad_links='//div[@class="nv-grid"]/a[contains(@class, "nv-card")]/@href',
    ad_id_field=Field('//article[@class="nv-ad"]/@data-id'),
    fields={
        "title": Field('//h1[@class="nv-title"]'),
        "text": Field('//div[@class="nv-text"]/p', join="\n\n", keep_lines=True),
        "place": Field('//dl[@class="nv-facts"]/dd[@class="nv-place"]'),
        "phone_text": Field('//a[@id="phone"]'),
        "nickname": Field('//dl[@class="nv-facts"]/dd[@class="nv-nickname"]'),
        "age": Field('//dl[@class="nv-facts"]/dd[@class="nv-age"]', pattern=r"\d+"),
        "posted_at": Field('//time[@class="nv-posted"]/@datetime'),
    },
    photos='//div[@class="nv-thumbs"]/img/@src',
    extra_fields={
        "region": Field('//dl[@class="nv-facts"]/dd[@class="nv-region"]'),
        "updated_at": Field('//p[@class="nv-dates"]/time[@class="nv-updated"]/@datetime'),
    },
    extra_pairs=PairFields('//dl[@class="nv-facts"]/dd[@data-key]', "@data-key", "."),
    browser=BrowserSteps(ready='main#app:not([data-state="loading"])', gone=".nv-gone"),
)

ESCORTGIDS = SiteDefinition(
    name="escortgids",
    default_base_url="http://127.0.0.1:8403/",
    start_paths=("",),
    listing_links='//div[@class="eg-country"]/h2/a/@href',  # a country lists all its ads
    next_page='//nav[@class="eg-pages"]/a[@rel="next"]/@href',
    ad_links='//div[@class="eg-cards"]/a[@class="eg-card"]/@href',
    ad_id_field=Field('//article[@class="eg-profile"]/@data-id'),
    fields={
        "title": Field('//p[@class="eg-headline"]'),
        "text": Field('//div[@class="eg-text"]/p', join="\n\n", keep_lines=True),
        "place": Field('//table[@class="eg-facts"]//td[@class="location"]'),
        "phone_text": Field('//a[contains(@class, "phone")]'),
        "nickname": Field('//h1/span[@class="eg-nickname"]'),
        "age": Field('//table[@class="eg-facts"]//td[@class="age"]', pattern=r"\d+"),
        "posted_at": Field('//td[@class="posted"]/time/@datetime'),
    },
    photos='//section[@class="eg-photos"]/a/img/@src',
    extra_fields={
        "city": Field('//table[@class="eg-facts"]//td[@class="city"]'),
        "country": Field('//table[@class="eg-facts"]//td[@class="country"]'),
        "language": Field('//table[@class="eg-facts"]//td[@class="language"]'),
        "updated_at": Field('//td[@class="updated"]/time/@datetime'),
    },
    extra_pairs=PairFields('//table[@class="eg-facts"]//tr[@class="extra"]', "th", "td"),
)

PRIKBORD = SiteDefinition(
    name="prikbord",
    default_base_url="http://127.0.0.1:8404/",
    start_paths=("",),
    listing_links='//a[@class="forumlink"]/@href',
    next_page='//a[@class="next"]/@href',
    ad_links='//a[@class="topictitle"]/@href',
    ad_id_in_url=r"[?&]t=([^&#]+)",
    fields={
        "title": Field('//h2[@class="topic-title"]/a'),
        "text": Field('//tr[@id="p1"]//div[@class="postbody"]', keep_lines=True),
        "place": Field('//tr[@id="p1"]//span[@class="place"]'),
        "phone_text": Field('//tr[@id="p1"]//span[@class="phone"]'),
        "nickname": Field('//tr[@id="p1"]//b[@class="postername"]/a'),
        "age": Field('//tr[@id="p1"]//span[@class="postdetails"]', pattern=r"Leeftijd:\s*(\d+)"),
        "posted_at": Field('//tr[@id="p1"]//span[@class="postdate"]'),
    },
    gallery_link='//tr[@id="p1"]//a[@class="album-link"]/@href',
    gallery_photos='//div[@class="albumpic"]/a/img/@src',
    extra_pairs=PairFields(
        '//tr[@id="p1"]//div[@class="postextra"]/span[@class="extra"]',
        "@data-key",
        'substring-after(., ": ")',
    ),
    encoding="cp1252",
    custom_settings={
        # The board answers more than 10 requests a second with 429: stay well under.
        "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
        "DOWNLOAD_DELAY": 0.25,
    },
)

SITE_DEFINITIONS: dict[str, SiteDefinition] = {
    site.name: site for site in (ROODLICHT, NACHTVLINDER, ESCORTGIDS, PRIKBORD)
}
