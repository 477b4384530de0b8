"""The four demo sites: served on loopback, showing exactly what the world's snapshots say.

Most tests serve the tiny world; the ones about pagination and rare faults serve the demo world,
which has enough ads to fill several listing pages and enough photos to break a few.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from parsel import Selector
from PIL import Image

from fixtures.bodylinks import link_targets, plain_text, split_links
from fixtures.model import SITES, AdSnapshot
from fixtures.sites import DayError, DemoSites, serve
from fixtures.sites.faults import SLOW_SECONDS, FaultPlan, PhotoFault
from fixtures.sites.prikbord import RATE_LIMIT, RETRY_AFTER_SECONDS, Prikbord
from fixtures.sites.ratelimit import SlidingWindowLimiter
from fixtures.sites.server import Request, SiteApp, SiteServer
from fixtures.sites.textformat import dutch_date, paragraphs, slugify, tel_href
from fixtures.sites.worldview import WorldView
from fixtures.world import World, build_world

FREE_PORTS = dict.fromkeys(SITES, 0)
CHROMIUM = "/usr/bin/chromium"
AD_PATHS = {  # where each site shows (or redirects to) the ad with an id
    "roodlicht": "advertentie/{}",
    "nachtvlinder": "api/ads/{}",
    "escortgids": "profile/{}/x.html",
    "prikbord": "viewtopic.php?t={}",
}


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(1, scale="tiny")


@pytest.fixture(scope="module")
def big_world() -> World:
    return build_world(1, scale="demo")


@pytest.fixture
def sites(world: World) -> Iterator[DemoSites]:
    with serve(world, ports=FREE_PORTS, fast=True) as running:
        yield running


@pytest.fixture
def big_sites(big_world: World) -> Iterator[DemoSites]:
    with serve(big_world, ports=FREE_PORTS, fast=True) as running:
        yield running


class Fetched:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        charset = re.search(r"charset=([\w-]+)", self.headers.get("content-type", ""))
        return self.body.decode(charset.group(1) if charset else "utf-8")

    def html(self) -> Selector:
        return Selector(text=self.text)

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, retry: bool = True
) -> Fetched:
    """A request, redirects not followed; a 500 is retried once, as prikbord fails some once."""
    fetched = _fetch_once(url, method, headers)
    if fetched.status == 500 and retry:
        fetched = _fetch_once(url, method, headers)
    return fetched


def _fetch_once(url: str, method: str, headers: dict[str, str] | None) -> Fetched:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    connection.request(method, target, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return Fetched(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def follow(url: str) -> Fetched:
    """GET ``url``, following one redirect."""
    page = fetch(url)
    if page.status in (301, 302):
        page = fetch(urljoin(url, page.headers["location"]))
    return page


def crawl_links(start: str, follow_xpath: str, ads_xpath: str) -> list[str]:
    """Every ad link found from ``start`` by following ``follow_xpath`` links, in order."""
    seen, queue, found = {start}, [start], []
    while queue:
        url = queue.pop(0)
        page = fetch(url)
        assert page.status == 200, url
        html = page.html()
        found += [urljoin(url, href) for href in html.xpath(ads_xpath).getall()]
        for href in html.xpath(follow_xpath).getall():
            target = urljoin(url, href)
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return found


def ids_in(urls: list[str], pattern: str) -> list[str]:
    return [re.search(pattern, url).group(1) for url in urls]  # type: ignore[union-attr]


def day_ids(world: World, site: str, day: int = 0) -> list[str]:
    return [ad.site_ad_id for ad in world.ads_on(site, day)]


def pick(world: World, site: str, wanted: Callable[[AdSnapshot], bool]) -> tuple[int, AdSnapshot]:
    """The first day and ad of ``site`` that is ``wanted``."""
    return next(
        (day, ad) for day in range(world.days) for ad in world.ads_on(site, day) if wanted(ad)
    )


def rich(ad: AdSnapshot) -> bool:
    """An ad that shows every field a site can have."""
    return len(ad.photo_ids) >= 2 and ad.age is not None and ad.phone_text is not None


def paragraph_texts(html: Selector, css: str) -> list[str]:
    """The text of each paragraph, link labels included."""
    return [node.xpath("string()").get("") for node in html.css(css)]


def change(world: World, site: str, leaves: bool) -> tuple[int, str]:
    """A day and an ad online that day but not the next (``leaves``), or the other way round."""
    for day in range(world.days - 1):
        today, tomorrow = set(day_ids(world, site, day)), set(day_ids(world, site, day + 1))
        changed = today - tomorrow if leaves else tomorrow - today
        if changed:
            return day, min(changed)
    raise AssertionError(f"{site}: no ad {'leaves' if leaves else 'arrives'} in this world")


# --- all sites ---------------------------------------------------------------------------------


def test_each_site_serves_its_home_page_and_robots_txt(sites: DemoSites) -> None:
    assert set(sites.urls) == set(SITES)
    assert len({urlsplit(url).port for url in sites.urls.values()}) == 4
    for name, url in sites.urls.items():
        assert urlsplit(url).hostname == "127.0.0.1"
        assert fetch(url).status == 200, name
        robots = fetch(url + "robots.txt")
        assert robots.status == 200 and robots.text.startswith("User-agent: *"), name


def test_the_same_seed_serves_identical_pages(world: World) -> None:
    """Two builds of one seed serve byte-identical listings, ad pages and API answers."""
    served = []
    for built in (world, build_world(1, scale="tiny")):
        with serve(built, day=5, ports=FREE_PORTS, fast=True) as running:
            pages = []
            for site in SITES:
                ad = built.ads_on(site, 5)[0]
                for path in ("", AD_PATHS[site].format(ad.site_ad_id)):
                    page = follow(running.urls[site] + path)
                    pages.append((site, path, page.status, page.body))
            served.append(pages)
    assert served[0] == served[1]
    assert all(status == 200 for _, _, status, _ in served[0])


def test_serve_refuses_unknown_sites_and_days(world: World) -> None:
    with pytest.raises(ValueError, match="unknown site"):
        serve(world, ports={"nosuchsite": 0})
    with pytest.raises(DayError, match="outside the world"):
        serve(world, day=world.days, ports=FREE_PORTS)


def test_day_change_removes_and_adds_ads_on_every_site(
    big_sites: DemoSites, big_world: World
) -> None:
    sites, world = big_sites, big_world
    for site, path in AD_PATHS.items():
        for leaves in (True, False):
            day, ad_id = change(world, site, leaves)
            url = sites.urls[site] + path.format(ad_id)
            sites.set_day(day)
            assert sites.day == day
            assert follow(url).status == (200 if leaves else 404), site
            sites.set_day(day + 1)
            assert follow(url).status == (404 if leaves else 200), site


def test_edited_ads_show_their_new_version_the_next_day(
    big_sites: DemoSites, big_world: World
) -> None:
    edited = None
    for day in range(big_world.days - 1):
        tomorrow = {ad.site_ad_id: ad for ad in big_world.ads_on("roodlicht", day + 1)}
        for ad in big_world.ads_on("roodlicht", day):
            later = tomorrow.get(ad.site_ad_id)
            if later is not None and later.title != ad.title:
                edited = (day, ad, later)
                break
        if edited:
            break
    assert edited is not None, "the demo world should edit some roodlicht titles"
    day, before, after = edited
    url = big_sites.urls["roodlicht"] + f"advertentie/{before.site_ad_id}"
    big_sites.set_day(day)
    assert follow(url).html().css("h1.ad-title::text").get() == before.title
    big_sites.set_day(day + 1)
    moved = fetch(url + "-" + slugify(before.title))
    assert moved.status == 301 and moved.headers["location"].endswith(slugify(after.title))
    assert follow(url).html().css("h1.ad-title::text").get() == after.title


def _content(ad: AdSnapshot) -> tuple[Any, ...]:
    return (ad.title, ad.text, ad.place_text, ad.phone_text, ad.nickname, ad.age, ad.photo_ids)


def test_nachtvlinder_listing_tells_an_edit_from_a_bump(big_world: World) -> None:
    """The API's "edited" day moves on an edit only; "updated" (the bump time) moves on both."""
    counts = {"edits": 0, "bumps": 0}
    before: dict[str, tuple[dict[str, Any], AdSnapshot]] = {}
    with serve(big_world, ports=FREE_PORTS, fast=True) as running:
        for day in range(6):
            running.set_day(day)
            base, today = running.urls["nachtvlinder"], big_world.start_date + timedelta(days=day)
            listing = fetch(base + "api/ads?page=1").json()
            pages = [listing] + [
                fetch(base + f"api/ads?page={n}").json() for n in range(2, listing["pages"] + 1)
            ]
            ads = {ad.site_ad_id: ad for ad in big_world.ads_on("nachtvlinder", day)}
            cards = {card["id"]: card for page in pages for card in page["ads"]}
            for ad_id, card in cards.items():
                if ad_id not in before:
                    continue
                old_card, old_ad = before[ad_id]
                if _content(ads[ad_id]) != _content(old_ad):
                    counts["edits"] += 1
                    assert card["edited"] == today.isoformat()
                elif ads[ad_id].bumped_on > old_ad.bumped_on:
                    counts["bumps"] += 1
                    assert card["edited"] == old_card["edited"], f"day {day}: bump of {ad_id}"
                    assert card["updated"] != old_card["updated"]
            before = {ad_id: (cards[ad_id], ads[ad_id]) for ad_id in cards}
    assert counts["edits"] > 0 and counts["bumps"] > 0, counts


def test_photos_of_ads_offline_today_are_404(big_sites: DemoSites, big_world: World) -> None:
    sites, world = big_sites, big_world
    day, gone = change(world, "roodlicht", leaves=True)
    leaving = next(ad for ad in world.ads_on("roodlicht", day) if ad.site_ad_id == gone)
    still_shown = {p for ad in world.ads_on("roodlicht", day + 1) for p in ad.photo_ids}
    photo = next(p for p in leaving.photo_ids if p not in still_shown)
    url = sites.urls["roodlicht"] + f"foto/{photo}.jpg"
    sites.set_day(day)
    assert fetch(url).status == 200
    assert fetch(sites.urls["roodlicht"] + "foto/no-such-photo.jpg").status == 404
    sites.set_day(day + 1)
    assert fetch(url).status == 404


# --- roodlicht ----------------------------------------------------------------------------------


def test_roodlicht_listings_paginate_and_cover_every_ad_once(
    big_sites: DemoSites, big_world: World
) -> None:
    base = big_sites.urls["roodlicht"]
    in_region = [
        ad.site_ad_id for ad in big_world.ads_on("roodlicht", 0) if ad.region == "Zuid-Holland"
    ]
    assert len(in_region) > 40, "the demo world should fill three pages of Zuid-Holland"
    first = fetch(base + "regio/zuid-holland").html()
    assert len(first.css("li.ad-row")) == 20
    assert first.xpath('normalize-space(//a[@rel="next"])').get("").startswith("volgende")
    last = -(-len(in_region) // 20)
    assert fetch(base + f"regio/zuid-holland?page={last}").status == 200
    assert fetch(base + f"regio/zuid-holland?page={last + 1}").status == 404
    assert fetch(base + "regio/zuid-holland?page=x").status == 404
    region_links = crawl_links(
        base + "regio/zuid-holland", '//a[@rel="next"]/@href', '//a[@class="ad-link"]/@href'
    )
    assert ids_in(region_links, r"/advertentie/(\d+)-") == in_region  # newest bump first
    links = crawl_links(
        base,
        '//a[@class="region"]/@href | //a[@rel="next"]/@href',
        '//ol[@class="ads"]//a[@class="ad-link"]/@href',
    )
    assert sorted(ids_in(links, r"/advertentie/(\d+)-")) == sorted(day_ids(big_world, "roodlicht"))


def test_roodlicht_detail_shows_the_snapshot(sites: DemoSites, world: World) -> None:
    day, ad = pick(world, "roodlicht", rich)
    sites.set_day(day)
    page = fetch(sites.urls["roodlicht"] + f"advertentie/{ad.site_ad_id}-old-slug")
    assert page.status == 301
    location = urljoin(sites.urls["roodlicht"], page.headers["location"])
    html = fetch(location).html()

    def field(label: str) -> str:
        return html.xpath(f'normalize-space(//dt[.="{label}"]/following-sibling::dd[1])').get("")

    assert html.css("h1.ad-title::text").get() == ad.title
    assert field("Naam") == ad.nickname
    assert field("Leeftijd") == f"{ad.age} jaar"
    assert field("Plaats") == (ad.place_text or "")
    assert field("Telefoon") == ad.phone_text
    assert field("Geplaatst") == dutch_date(ad.posted_on)
    assert paragraph_texts(html, ".ad-text p") == paragraphs(plain_text(ad.text))
    photos = html.css("ul.thumbs img::attr(src)").getall()
    assert photos == [f"/foto/{photo}.jpg" for photo in ad.photo_ids]
    served = fetch(urljoin(location, photos[0]))
    data, content_type = world.photo_bytes(ad.photo_ids[0])
    assert served.body == data and served.headers["content-type"] == content_type


# --- nachtvlinder --------------------------------------------------------------------------------


def test_nachtvlinder_shell_has_no_ad_data_but_the_api_has(
    big_sites: DemoSites, big_world: World
) -> None:
    base = big_sites.urls["nachtvlinder"]
    ad = big_world.ads_on("nachtvlinder", 0)[0]
    for path in ("", f"ad/{ad.site_ad_id}", "?page=2"):
        shell = fetch(base + path)
        assert shell.status == 200
        assert ad.title not in shell.text and ad.site_ad_id not in shell.text
        assert shell.html().css("main#app").get() is not None
    listed: list[dict[str, Any]] = []
    number = 1
    while (page := fetch(base + f"api/ads?page={number}")).status == 200:
        data = page.json()
        assert len(data["ads"]) == (24 if number < data["pages"] else data["total"] - len(listed))
        listed += data["ads"]
        number += 1
    assert number - 1 == data["pages"] > 1
    assert [entry["id"] for entry in listed] == day_ids(big_world, "nachtvlinder")
    assert listed[0]["title"] == ad.title and listed[0]["updated"].startswith(str(ad.bumped_on))


def test_nachtvlinder_phone_needs_the_token_of_the_ad(sites: DemoSites, world: World) -> None:
    base = sites.urls["nachtvlinder"]
    day, ad = pick(world, "nachtvlinder", rich)
    sites.set_day(day)
    detail = fetch(base + f"api/ads/{ad.site_ad_id}")
    assert ad.phone_text is not None and ad.phone_text not in detail.text
    data = detail.json()
    assert (data["text"], data["nickname"], data["age"]) == (
        plain_text(ad.text),
        ad.nickname,
        ad.age,
    )
    assert data["posted"] == ad.posted_on.isoformat() and data["has_phone"]
    phone_url = base + f"api/ads/{ad.site_ad_id}/phone"
    assert fetch(phone_url, "POST").status == 403
    assert fetch(phone_url, "POST", {"X-Phone-Token": "0" * 16}).status == 403
    assert fetch(phone_url, "GET").status == 405
    answer = fetch(phone_url, "POST", {"X-Phone-Token": data["phone_token"]})
    assert answer.status == 200 and answer.json()["phone"] == ad.phone_text


# --- escortgids ---------------------------------------------------------------------------------


def test_escortgids_countries_paginate_and_cover_every_ad_once(
    big_sites: DemoSites, big_world: World
) -> None:
    base = big_sites.urls["escortgids"]
    countries = fetch(base).html().xpath('//div[@class="eg-country"]/h2/a/@href').getall()
    assert countries == ["/nl/", "/be/", "/de/"]
    found = []
    for country in countries:
        found += crawl_links(
            urljoin(base, country),
            '//a[@rel="next"]/@href',
            '//div[@class="eg-cards"]/a[@class="eg-card"]/@href',
        )
    assert ids_in(found, r"/profile/([^/]+)/") == [
        ad.site_ad_id
        for country in ("NL", "BE", "DE")
        for ad in big_world.ads_on("escortgids", 0)
        if ad.region.startswith(country + "/")
    ]
    dutch = fetch(base + "nl/").html()
    assert len(dutch.css("a.eg-card")) == 24
    assert dutch.css('a[rel="next"]::attr(href)').get() == "/nl/page/2/"
    assert fetch(base + "nl/page/1/").status == 404
    assert fetch(base + "nl/page/99/").status == 404
    city = dutch.css("a.eg-city::attr(href)").get("")
    name = dutch.css("a.eg-city .name::text").get()
    in_city = [ad for ad in big_world.ads_on("escortgids", 0) if ad.region == f"NL/{name}"]
    assert len(fetch(urljoin(base, city)).html().css("a.eg-card")) == len(in_city) > 0


def test_escortgids_profile_and_watermarked_photo(sites: DemoSites, world: World) -> None:
    day, ad = pick(world, "escortgids", rich)
    sites.set_day(day)
    base = sites.urls["escortgids"]
    assert fetch(base + f"profile/{ad.site_ad_id}/wrong.html").status == 301
    page = fetch(base + f"profile/{ad.site_ad_id}/{slugify(ad.nickname)}.html")
    html = page.html()
    assert html.css("a.phone::text").get() == ad.phone_text
    assert html.css("a.phone::attr(href)").get() == tel_href(ad.phone_text or "")
    assert html.css(".eg-nickname::text").get() == ad.nickname
    assert html.css("p.eg-headline::text").get() == ad.title
    assert html.css("td.posted time::attr(datetime)").get() == ad.posted_on.isoformat()
    assert paragraph_texts(html, ".eg-text p") == paragraphs(plain_text(ad.text))
    src = html.css(".eg-photos img::attr(src)").get("")
    photo = fetch(urljoin(base, src))
    original = Image.open(io.BytesIO(world.photo_bytes(ad.photo_ids[0])[0]))
    stamped = Image.open(io.BytesIO(photo.body))
    assert photo.headers["content-type"] == "image/jpeg" and stamped.format == "JPEG"
    assert stamped.size == original.size
    width, height = stamped.size
    corner = (int(width * 0.6), int(height * 0.85), width, height)
    difference = [
        abs(a - b)
        for a, b in zip(
            stamped.convert("L").crop(corner).tobytes(),
            original.convert("L").crop(corner).tobytes(),
            strict=True,
        )
    ]
    assert max(difference) > 60, "the watermark should mark the bottom right corner"
    assert fetch(urljoin(base, src)).body == photo.body  # the same stamp every time


# --- prikbord -----------------------------------------------------------------------------------


def test_prikbord_topics_cover_every_ad_once(big_sites: DemoSites, big_world: World) -> None:
    base = big_sites.urls["prikbord"]
    links = crawl_links(
        base,
        '//a[@class="forumlink"]/@href | //a[@class="next"]/@href',
        '//a[@class="topictitle"]/@href',
    )
    assert sorted(ids_in(links, r"t=([^&]+)")) == sorted(day_ids(big_world, "prikbord"))
    board = fetch(base + "viewforum.php?f=1").html()
    assert len(board.css("a.topictitle")) == 25
    assert board.css("a.next::attr(href)").get() == "/viewforum.php?f=1&start=25"
    assert fetch(base + "viewforum.php?f=1&start=7").status == 404


def test_prikbord_is_windows_1252_with_text_only_fields(
    big_sites: DemoSites, big_world: World
) -> None:
    sites = big_sites
    day, ad = pick(
        big_world,
        "prikbord",
        lambda ad: bool(ad.photo_ids) and any(not c.encode("cp1252", "ignore") for c in ad.text),
    )
    sites.set_day(day)
    page = fetch(sites.urls["prikbord"] + f"viewtopic.php?t={ad.site_ad_id}")
    assert page.headers["content-type"] == "text/html; charset=windows-1252"
    assert (
        b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">' in page.body
    )
    outside = next(char for char in ad.text if not char.encode("cp1252", "ignore"))
    assert f"&#{ord(outside)};".encode() in page.body  # not in windows-1252: a reference
    assert "België".encode("cp1252") in fetch(sites.urls["prikbord"]).body
    html = page.html()
    assert html.css(".postername a::text").get() == ad.nickname
    postbody = html.xpath('string(//tr[@id="p1"]//div[@class="postbody"])').get()
    assert postbody == plain_text(ad.text)
    assert ad.place_text is None and html.css(".place").get() is None
    assert ad.phone_text is None and html.css(".phone").get() is None
    album = fetch(urljoin(sites.urls["prikbord"], html.css("a.album-link::attr(href)").get("")))
    assert album.html().css(".albumpic img::attr(src)").getall() == [
        f"/files/{photo}.jpg" for photo in ad.photo_ids
    ]


def test_prikbord_robots_txt_disallows_member_pages(sites: DemoSites) -> None:
    robots = fetch(sites.urls["prikbord"] + "robots.txt").text
    for path in ("/zoeken", "/admin/", "/profiel"):
        assert f"Disallow: {path}" in robots
    for site in ("roodlicht", "nachtvlinder", "escortgids"):
        assert "Disallow" not in fetch(sites.urls[site] + "robots.txt").text


def test_prikbord_answers_a_burst_with_429_and_retry_after(world: World) -> None:
    plan = FaultPlan(world.seed, "prikbord")
    targets = (f"/viewforum.php?f=1&sid={n}" for n in range(500))
    quiet = [t for t in targets if not plan.draws_error(0, t) and not plan.slow(0, t)]
    quiet = [t for t in quiet if not plan.draws_busy(0, t)]
    with serve(world, ports=FREE_PORTS) as running:
        base = running.urls["prikbord"].rstrip("/")
        answers = [fetch(base + target) for target in quiet[: RATE_LIMIT + 5]]
    statuses = [answer.status for answer in answers]
    assert statuses[:RATE_LIMIT] == [200] * RATE_LIMIT
    assert 429 in statuses
    refused = next(answer for answer in answers if answer.status == 429)
    assert int(refused.headers["retry-after"]) >= 1


def test_rate_limiter_forgets_requests_older_than_its_window() -> None:
    now = [0.0]
    limiter = SlidingWindowLimiter(3, window=1.0, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")
    now[0] = 1.5
    assert limiter.allow("a")


def test_prikbord_fails_some_urls_once_and_a_retry_succeeds(sites: DemoSites, world: World) -> None:
    plan = FaultPlan(world.seed, "prikbord")
    ad_id = sorted(set(day_ids(world, "prikbord", 0)) & set(day_ids(world, "prikbord", 1)))[0]
    failing = next(
        t for n in range(500) if plan.draws_error(0, t := f"/viewtopic.php?t={ad_id}&sid={n}")
    )
    url = sites.urls["prikbord"].rstrip("/") + failing
    assert fetch(url, retry=False).status == 500
    assert fetch(url, retry=False).status == 200
    sites.set_day(1)
    failing_tomorrow = plan.draws_error(1, failing)
    assert fetch(url, retry=False).status == (500 if failing_tomorrow else 200)


def test_prikbord_is_slow_on_some_pages_unless_fast(world: World) -> None:
    plan = FaultPlan(world.seed, "prikbord")
    slow = next(
        t
        for n in range(500)
        if plan.slow(0, t := f"/viewforum.php?f=2&sid={n}") and not plan.draws_busy(0, t)
    )
    request = Request("GET", "/viewforum.php", {"f": ["2"]}, {}, "127.0.0.1", slow)
    view = WorldView(world)
    assert not plan.draws_error(0, slow) or Prikbord(view).handle(request).status == 500
    assert Prikbord(view, fast=False).handle(request).delay == SLOW_SECONDS
    assert Prikbord(view, fast=True).handle(request).delay == 0
    assert Prikbord(view, pace=0.25).handle(request).delay == SLOW_SECONDS / 4


def test_prikbord_sheds_load_with_a_429_once_a_day_on_some_urls(world: World) -> None:
    """However slowly it is asked: a crawler that waits out Retry-After then gets the page."""
    plan = FaultPlan(world.seed, "prikbord")
    ad_id = day_ids(world, "prikbord", 0)[0]
    busy = next(
        t
        for n in range(2000)
        if plan.draws_busy(0, t := f"/viewtopic.php?t={ad_id}&sid={n}")
        and not plan.draws_error(0, t)
    )
    request = Request("GET", "/viewtopic.php", {"t": [ad_id]}, {}, "127.0.0.1", busy)
    for pace, wait in ((1.0, RETRY_AFTER_SECONDS), (0.25, 1)):
        site = Prikbord(WorldView(world), pace=pace)
        refused = site.handle(request)
        assert refused.status == 429 and refused.headers["Retry-After"] == str(wait)
        assert site.handle(request).status == 200
    assert Prikbord(WorldView(world), fast=True).handle(request).status == 200
    share = sum(plan.draws_busy(0, f"/viewtopic.php?t={n}") for n in range(4000)) / 4000
    assert 0 < share < 0.02


def test_prikbord_at_the_demos_pace_still_refuses_a_burst(world: World) -> None:
    """Scaled in time, the rate limit allows four times the rate and asks for a shorter wait."""
    site = Prikbord(WorldView(world), pace=0.25)
    site.limiter = SlidingWindowLimiter(site.limiter.limit, clock=lambda: 0.0)  # one instant
    plan = FaultPlan(world.seed, "prikbord")
    targets = (f"/viewforum.php?f=1&sid={n}" for n in range(500))
    quiet = [t for t in targets if not plan.draws_error(0, t) and not plan.draws_busy(0, t)]
    quiet = quiet[: RATE_LIMIT * 4 + 1]
    statuses = [
        site.handle(Request("GET", "/viewforum.php", {"f": ["1"]}, {}, "127.0.0.1", t))
        for t in quiet
    ]
    assert [answer.status for answer in statuses] == [200] * RATE_LIMIT * 4 + [429]
    assert statuses[-1].headers["Retry-After"] == "1"


def test_prikbord_serves_broken_photos(big_sites: DemoSites, big_world: World) -> None:
    plan = FaultPlan(big_world.seed, "prikbord")
    photos = [photo for ad in big_world.ads_on("prikbord", 0) for photo in ad.photo_ids]
    bomb = next(p for p in photos if plan.photo_fault(p) is PhotoFault.PIXEL_BOMB)
    cut = next(p for p in photos if plan.photo_fault(p) is PhotoFault.TRUNCATED)
    base = big_sites.urls["prikbord"]
    served = fetch(base + f"files/{bomb}.jpg")
    assert served.status == 200 and served.headers["content-type"] == "image/png"
    assert len(served.body) < 1_000_000
    with pytest.warns(Image.DecompressionBombWarning), Image.open(io.BytesIO(served.body)) as image:
        assert image.width * image.height >= 100_000_000
    truncated = fetch(base + f"files/{cut}.jpg")
    whole = big_world.photo_bytes(cut)[0]
    assert 0 < len(truncated.body) < len(whole) and whole.startswith(truncated.body)
    with pytest.raises(OSError), Image.open(io.BytesIO(truncated.body)) as image:
        image.load()
    fine = next(p for p in photos if plan.photo_fault(p) is PhotoFault.NONE)
    assert fetch(base + f"files/{fine}.jpg").body == big_world.photo_bytes(fine)[0]


# --- in a real browser --------------------------------------------------------------------------

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "img"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.mark.browser
def test_sites_in_chromium_with_screenshots(
    big_sites: DemoSites, big_world: World, tmp_path: Path
) -> None:
    """Each site renders in headless Chromium; B's phone click works.

    The screenshots go to docs/img only with LOVITURA_UPDATE_SCREENSHOTS=1, so a test run
    does not rewrite the repository.
    """
    import playwright.sync_api as playwright_api

    assert Path(CHROMIUM).exists(), f"the chromium package is not installed at {CHROMIUM}"
    shots = SCREENSHOTS if os.environ.get("LOVITURA_UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for name in SITES:
            page.goto(big_sites.urls[name], wait_until="networkidle")
            page.screenshot(path=str(shots / f"site-{name}.png"))
        _nachtvlinder_click_flow(page, big_sites.urls["nachtvlinder"], big_world)
        page.screenshot(path=str(shots / "site-nachtvlinder-ad.png"))
        for name in ("roodlicht", "escortgids", "prikbord"):
            ad = next(ad for ad in big_world.ads_on(name, 0) if len(ad.photo_ids) >= 3)
            url = big_sites.urls[name] + AD_PATHS[name].format(ad.site_ad_id)
            page.goto(url, wait_until="networkidle")
            page.screenshot(path=str(shots / f"site-{name}-ad.png"))
        browser.close()
    for name in SITES:
        with Image.open(SCREENSHOTS / f"site-{name}.png") as shot:
            assert shot.size == (1280, 900)


def _nachtvlinder_click_flow(page: Any, base: str, world: World) -> None:
    """Open the listing, click an ad with a phone, click "toon nummer": the phone shows."""
    page.goto(base, wait_until="networkidle")
    page.wait_for_selector("a.nv-card")
    shown = page.eval_on_selector_all("a.nv-card", "cards => cards.map(c => c.dataset.id)")
    ads = world.ads_on("nachtvlinder", 0)
    assert shown == [ad.site_ad_id for ad in ads[: len(shown)]]
    ad = next(ad for ad in ads[: len(shown)] if ad.phone_text and len(ad.photo_ids) > 1)
    page.click(f'a.nv-card[data-id="{ad.site_ad_id}"]')
    page.wait_for_selector(f'article.nv-ad[data-id="{ad.site_ad_id}"]')
    assert page.text_content("h1.nv-title") == ad.title
    assert page.query_selector("#phone") is None
    page.click("#show-phone")
    page.wait_for_selector("#phone")
    assert page.text_content("#phone") == ad.phone_text


# --- links in the body ------------------------------------------------------------------------

BODIES = {
    "roodlicht": '//div[@class="ad-text"]',
    "escortgids": '//div[@class="eg-text"]',
    "prikbord": '//tr[@id="p1"]//div[@class="postbody"]',
}


@pytest.mark.parametrize("site", sorted(BODIES))
def test_body_links_are_real_links(site: str, big_sites: DemoSites, big_world: World) -> None:
    """A number written as a tel: or WhatsApp link is a link on the page, its label the text."""
    day, ad = pick(big_world, site, lambda ad: '<a href="' in ad.text)
    big_sites.set_day(day)
    page = follow(big_sites.urls[site] + AD_PATHS[site].format(ad.site_ad_id))
    body = page.html().xpath(BODIES[site])
    assert body.xpath(".//a/@href").getall() == link_targets(ad.text)
    assert body.xpath(".//a/@rel").getall() == ["nofollow"] * len(link_targets(ad.text))
    labels = [run for run, href in split_links(ad.text) if href is not None]
    assert body.xpath(".//a").xpath("string()").getall() == labels
    assert all(
        re.match(r"(tel:|(https?://)?(wa\.me|api\.whatsapp\.com)/)", href)
        for href in link_targets(ad.text)
    )


def test_nachtvlinder_api_gives_the_body_as_runs_with_links(
    big_sites: DemoSites, big_world: World
) -> None:
    day, ad = pick(big_world, "nachtvlinder", lambda ad: '<a href="' in ad.text)
    big_sites.set_day(day)
    data = fetch(big_sites.urls["nachtvlinder"] + f"api/ads/{ad.site_ad_id}").json()
    runs = [run for paragraph in data["body"] for run in paragraph]
    assert [run["href"] for run in runs if run["href"]] == link_targets(ad.text)
    assert ["".join(run["text"] for run in paragraph) for paragraph in data["body"]] == paragraphs(
        plain_text(ad.text)
    )


@pytest.mark.browser
def test_nachtvlinder_script_renders_body_links(big_sites: DemoSites, big_world: World) -> None:
    """In Chromium, nachtvlinder's script turns the API's runs into the body's links."""
    import playwright.sync_api as playwright_api

    assert Path(CHROMIUM).exists(), f"the chromium package is not installed at {CHROMIUM}"
    day, ad = pick(big_world, "nachtvlinder", lambda ad: '<a href="' in ad.text)
    big_sites.set_day(day)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(big_sites.urls["nachtvlinder"] + f"ad/{ad.site_ad_id}")
        page.wait_for_selector("article.nv-ad")
        hrefs = page.eval_on_selector_all(
            ".nv-text a", "links => links.map(a => a.getAttribute('href'))"
        )
        texts = page.eval_on_selector_all(".nv-text p", "ps => ps.map(p => p.textContent)")
        browser.close()
    assert hrefs == link_targets(ad.text)
    assert texts == paragraphs(plain_text(ad.text))


def test_new_photos_are_made_ahead_in_a_child_process() -> None:
    """With a recipe, a day's new photos come from the maker: the view's world is not asked."""
    world = build_world(1, scale="tiny")
    new = [
        photo
        for site in SITES
        for ad in world.ads_on(site, 1)
        for photo in ad.photo_ids
        if photo not in {p for old in world.ads_on(site, 0) for p in old.photo_ids}
    ]
    assert new, "the tiny world shows no new photo on day 1: the test proves nothing"
    expected = {photo: world.photo_bytes(photo) for photo in new}
    view = WorldView(world, 0, recipe=partial(build_world, 1, scale="tiny"))
    try:
        view.set_day(1)
        view.photos_made()

        def refuse(photo_id: str) -> tuple[bytes, str]:
            raise AssertionError(f"photo {photo_id} made on demand, not ahead")

        world.photo_bytes = refuse  # type: ignore[method-assign]
        assert {photo: view.photo(photo) for photo in new} == expected
    finally:
        view.stop()


def test_a_crawler_hanging_up_is_not_reported_as_a_server_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A crawler that timed out closes its connection; the site's write then fails with a
    broken pipe, which is no error of the site's (it printed a traceback per request)."""
    server = SiteServer(SiteApp(), "127.0.0.1", 0)
    try:
        for error in (BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset")):
            try:
                raise error
            except ConnectionError:
                server.handle_error(None, ("127.0.0.1", 40000))
        assert capsys.readouterr().err == ""
        try:
            raise ValueError("a bug in a site")
        except ValueError:
            server.handle_error(None, ("127.0.0.1", 40000))
        assert "a bug in a site" in capsys.readouterr().err
    finally:
        server.server_close()


def test_connections_wait_for_a_busy_site_instead_of_being_dropped() -> None:
    """While the serving thread is busy, new connections queue in the kernel: with
    socketserver's default backlog of 5 the kernel dropped them, and a crawler's connect
    backed off past its download timeout."""
    server = SiteServer(SiteApp(), "127.0.0.1", 0)  # not started: nobody accepts
    clients: list[socket.socket] = []
    try:
        for _ in range(40):
            clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=2))
    finally:
        for client in clients:
            client.close()
        server.server_close()
    assert len(clients) == 40
