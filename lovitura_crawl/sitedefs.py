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
    With ``links`` the targets of the links inside the selected nodes follow the text, after a
    blank line, one per line: a number may be only in a ``tel:`` or WhatsApp link's target.
    """

    xpath: str
    join: str = " "
    pattern: str | None = None
    keep_lines: bool = False  # keep line breaks inside each node's text (body texts)
    links: bool = False  # append the targets of links inside the nodes (body texts)

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
class ListingEntry:
    """How a listing page shows one ad: enough to tell whether its ad page changed.

    ``node`` selects one element per ad on a listing page; the other XPaths are relative to it.
    ``link`` is the ad page's href and ``ad_id`` the site's id of the ad (the same id the ad page
    gives). The values of the ``signature`` XPaths, joined, are the entry's signature: an ad
    whose signature is the one stored at its last full fetch shows no change, and its ad page is
    not downloaded again (see docs/crawling.md). Put in it everything the listing shows that an
    edit changes, above all a bump or "updated" date; leave out what changes without an edit
    (view counters, "online now"). ``updated_today`` matches when the site marks the ad as
    changed today without saying when (a badge instead of a date).
    """

    node: str
    link: str
    ad_id: Field
    signature: tuple[str, ...] = ("string(.)",)
    updated_today: str | None = None


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
    ad_links: str  # XPath of the hrefs of ad pages on a listing page: every one is an ad online
    listing_entry: ListingEntry | None = None  # lets a crawl skip unchanged ad pages
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
    # Why the site's robots.txt may be ignored (custom_settings ROBOTSTXT_OBEY=False); a site
    # definition cannot turn robots.txt off without saying why (docs/crawling.md).
    robots_txt_reason: str | None = None

    def __post_init__(self) -> None:
        if (self.ad_id_field is None) == (self.ad_id_in_url is None):
            raise ValueError(
                f"site {self.name!r}: give exactly one of ad_id_field and ad_id_in_url"
            )
        if (self.gallery_link is None) != (self.gallery_photos is None):
            raise ValueError(f"site {self.name!r}: gallery_link needs gallery_photos and back")
        if self.ad_id_in_url is not None and re.compile(self.ad_id_in_url).groups < 1:
            raise ValueError(f"site {self.name!r}: ad_id_in_url needs a group for the id")
        ignores_robots = str(self.custom_settings.get("ROBOTSTXT_OBEY", True)).lower() in (
            "false",
            "0",
        )
        if ignores_robots and not (self.robots_txt_reason or "").strip():
            raise ValueError(
                f"site {self.name!r} turns robots.txt off: give robots_txt_reason, the "
                "documented reason (see docs/crawling.md), or obey it"
            )


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
    listing_entry=ListingEntry(
        node='//ol[@class="ads"]/li[@class="ad-row"]',
        link='.//a[@class="ad-link"]/@href',
        ad_id=Field('.//a[@class="ad-link"]/@href', pattern=r"/advertentie/(\d+)-"),
        # What the row shows of the ad's content (title, nickname, age, place, text snippet,
        # photo count, first photo) and the date of its last edit ("gewijzigd"), which is
        # not in the text snippet or the photos alone (a new number, a second photo). Not
        # the bump date and "omhoog" marker: a paid bump moves the ad up without an edit.
        signature=(
            './/div[@class="summary"]',
            './/span[@class="edited"]',
            './/span[@class="photos"]',
            ".//img/@src",
        ),
    ),
    ad_id_field=Field('//article[@class="advertentie"]/@data-id'),
    fields={
        "title": Field('//h1[@class="ad-title"]'),
        "text": Field('//div[@class="ad-text"]/p', join="\n\n", keep_lines=True, links=True),
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
    listing_entry=ListingEntry(
        node='//div[@class="nv-grid"]/a[contains(@class, "nv-card")]',
        link="@href",
        ad_id=Field("@data-id"),
        # The card's content and the day of its last edit ("bewerkt"; the shown text is
        # formatted by the browser, so the machine-readable datetime is taken). Not the
        # "updated" time: a paid bump changes it without an edit.
        signature=(
            './/*[@class="nv-card-title"]',
            './/*[@class="nv-card-meta"]',
            './/time[@class="nv-edited"]/@datetime',
            ".//img/@src",
            './/*[@class="nv-count"]',
        ),
    ),
    ad_id_field=Field('//article[@class="nv-ad"]/@data-id'),
    fields={
        "title": Field('//h1[@class="nv-title"]'),
        "text": Field('//div[@class="nv-text"]/p', join="\n\n", keep_lines=True, links=True),
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
    listing_entry=ListingEntry(
        node='//div[@class="eg-cards"]/a[@class="eg-card"]',
        link="@href",
        ad_id=Field("@data-id"),
        # Cards show no date, only an "Updated today" badge on ads edited today (a bump
        # only moves the card up): the badge asks for a fetch and stays out of the
        # signature (it comes and goes without an edit).
        signature=(
            './/span[@class="eg-card-name"]',
            './/span[@class="eg-card-city"]',
            './/span[@class="eg-card-title"]',
            ".//img/@src",
        ),
        updated_today='.//span[@class="eg-badge"]',
    ),
    ad_id_field=Field('//article[@class="eg-profile"]/@data-id'),
    fields={
        "title": Field('//p[@class="eg-headline"]'),
        "text": Field('//div[@class="eg-text"]/p', join="\n\n", keep_lines=True, links=True),
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
    listing_entry=ListingEntry(
        node='//table[@class="forumline"]//tr[td/a[@class="topictitle"]]',
        link='.//a[@class="topictitle"]/@href',
        ad_id=Field('.//a[@class="topictitle"]/@href', pattern=r"[?&]t=([^&#]+)"),
        # Title, photo flag, replies, author and the time of the last post (an edit or an
        # "up" reply): not the view counter, which moves without an edit.
        signature=(
            './/a[@class="topictitle"]',
            './/span[@class="attach"]',
            "td[3]",
            "td[4]",
            "td[6]",
        ),
    ),
    ad_id_in_url=r"[?&]t=([^&#]+)",
    fields={
        "title": Field('//h2[@class="topic-title"]/a'),
        "text": Field('//tr[@id="p1"]//div[@class="postbody"]', keep_lines=True, links=True),
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
