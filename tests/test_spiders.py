"""The four spiders, each crawling its demo site served from the tiny world, on every day of it.

Every crawl runs ``scrapy crawl`` in a child process (Scrapy's reactor starts once per process)
against sites served by this process, with the pipelines off, and must yield every ad online
that day exactly once, with the fields the site shows, every ad it yields online that day by
the truth, and every number the ad shows findable by ``extract_phones``. The demo world's ad
pages are also read offline, through the site definitions, for their numbers.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from parsel import Selector

from fixtures.bodylinks import observed_text
from fixtures.model import SITES, AdSnapshot
from fixtures.sites import SITE_CLASSES, DemoSites, serve
from fixtures.sites.faults import FaultPlan
from fixtures.sites.prikbord import BOARDS
from fixtures.sites.server import Request
from fixtures.sites.textformat import paragraphs
from fixtures.sites.worldview import WorldView
from fixtures.world import World, build_world
from lovitura_crawl.sitedefs import SITE_DEFINITIONS, Field, SiteDefinition
from lovitura_crawl.spiders.base import SiteSpider, extract
from lovitura_crawl.spiders.browser import BROWSER_PAGES, PAGE, PagePool
from pipelines.phones import extract_phones

CLOCK = "2026-11-03T12:00:00+01:00"
ROOT = str(Path(__file__).resolve().parent.parent)
QUICK = {  # the sites run with fast=True here: no need to be polite to them
    "DOWNLOAD_DELAY": "0",
    "AUTOTHROTTLE_ENABLED": "False",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "8",
}
PHOTO_PATHS = {
    "roodlicht": "foto/{}.jpg",
    "nachtvlinder": "media/{}",
    "escortgids": "media/{}/wm.jpg",
    "prikbord": "files/{}.jpg",
}


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(1, scale="tiny")


@pytest.fixture(scope="module")
def week(world: World) -> Iterator[list[DemoSites]]:
    """The four sites once per day of the world, each showing its day, so days crawl at once."""
    running: list[DemoSites] = []
    try:
        for day in range(world.days):
            running.append(serve(world, day=day, ports=dict.fromkeys(SITES, 0), fast=True))
        yield running
    finally:
        for sites in running:
            sites.stop()


def day_ids(world: World, site: str, day: int) -> list[str]:
    return [ad.site_ad_id for ad in world.ads_on(site, day)]


def crawl(
    site: str, base_url: str, out: Path, settings: dict[str, str], timeout: float = 300
) -> tuple[list[dict[str, Any]], str]:
    """Run ``scrapy crawl site`` in a child process; its items and its log."""
    command = [sys.executable, "-m", "scrapy", "crawl", site, "-a", f"base_url={base_url}"]
    every = {"ITEM_PIPELINES": "{}", "EXTENSIONS": "{}", "LOVITURA_CLOCK": CLOCK, **settings}
    for name, value in every.items():
        command += ["-s", f"{name}={value}"]
    items = out / f"{site}.jsonl"
    command += ["-O", str(items)]
    env = {**os.environ, "SCRAPY_SETTINGS_MODULE": "lovitura_crawl.settings"}
    done = subprocess.run(
        command, cwd=out, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = items.read_text(encoding="utf-8").splitlines() if items.exists() else []
    return [json.loads(line) for line in lines], done.stderr


def normalised(text: str) -> str:
    """Body text as the spiders give it: paragraphs, each line's spaces collapsed."""
    return "\n\n".join(
        "\n".join(" ".join(line.split()) for line in paragraph.split("\n"))
        for paragraph in paragraphs(text)
    )


def expected(ad: AdSnapshot, base_url: str) -> dict[str, Any]:
    photos = dict.fromkeys(base_url + PHOTO_PATHS[ad.site].format(p) for p in ad.photo_ids)
    wanted: dict[str, Any] = {
        "site": ad.site,
        "site_ad_id": ad.site_ad_id,
        "title": ad.title,
        "text": normalised(observed_text(ad.text)),
        "nickname": ad.nickname,
        "posted_at": ad.posted_on.isoformat(),
        "photos": [{"url": url, "path": None} for url in photos],
    }
    if ad.age is not None:
        wanted["age"] = str(ad.age)
    if ad.phone_text is not None:
        wanted["phone_text"] = ad.phone_text
    if ad.place_text is not None:  # an empty field is not shown
        wanted["place"] = " ".join(ad.place_text.split()) or None
    return wanted


def shown_numbers(world: World, site: str, site_ad_id: str, day: int) -> set[str]:
    """Every number (E.164) the ad shows on ``day``: its number and a second one, if any."""
    ad = world.ad(site, site_ad_id)
    version = ad.versions[ad.version_on(day)]
    return {phone for phone in (version.phone, version.second_phone) if phone}


def found_numbers(fields: dict[str, Any]) -> set[str]:
    """The numbers ``extract_phones`` finds in the fields the phone pipeline reads."""
    return {
        phone
        for name in ("phone_text", "title", "text")
        for phone in extract_phones(str(fields.get(name) or ""))
    }


def check_items(
    items: list[dict[str, Any]],
    world: World,
    site: str,
    base_url: str,
    day: int = 1,
    clock: str = CLOCK,
) -> None:
    """A crawl of ``site`` on ``day``: every ad the truth says is online, each once and nothing
    else, with the fields its page shows and every number it shows findable."""
    truth = {row["site_ad_id"]: row for row in world.truth_ads() if row["site"] == site}
    ids = Counter(item["site_ad_id"] for item in items)
    assert not set(ids) - set(truth), f"{site} served ads the truth lacks on day {day}"
    online = {
        ad_id
        for ad_id, row in truth.items()
        if int(row["day_posted"]) <= day <= int(row["day_removed"])
    }
    assert sorted(ids.elements()) == sorted(online), f"{site} day {day}: every ad exactly once"
    assert sorted(online) == sorted(ad.site_ad_id for ad in world.ads_on(site, day))
    by_id = {item["site_ad_id"]: item for item in items}
    for ad in world.ads_on(site, day):
        item = by_id[ad.site_ad_id]
        got = {key: item.get(key) for key in expected(ad, base_url)}
        if item.get("text") is not None:
            got["text"] = normalised(item["text"])
        assert got == expected(ad, base_url), ad.site_ad_id
        assert item["url"].startswith(base_url) and item["observed_at"] == clock
        assert found_numbers(item) == shown_numbers(world, site, ad.site_ad_id, day), ad.site_ad_id


def crawl_every_day(
    site: str, world: World, week: list[DemoSites], out: Path, at_once: int
) -> dict[int, tuple[list[dict[str, Any]], dict[str, Any]]]:
    """Items and stats of a crawl of ``site`` on each day, all in one child process
    (``tests.daycrawls``), ``at_once`` days at a time."""
    plan = {
        "site": site,
        "out": str(out),
        "at_once": at_once,
        "settings": {**QUICK, "ITEM_PIPELINES": {}, "EXTENSIONS": {}},
        "days": [
            {"day": day, "base_url": sites.urls[site], "clock": world.observed_at(day)}
            for day, sites in enumerate(week)
        ],
    }
    (out / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    env = {**os.environ, "SCRAPY_SETTINGS_MODULE": "lovitura_crawl.settings", "PYTHONPATH": ROOT}
    command = [sys.executable, "-m", "tests.daycrawls", str(out / "plan.json")]
    done = subprocess.run(
        command, cwd=out, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    crawls = {}
    for day in range(len(week)):
        feed = out / f"day{day}.jsonl"
        lines = feed.read_text(encoding="utf-8").splitlines() if feed.exists() else []
        stats = json.loads((out / f"day{day}.stats.json").read_text(encoding="utf-8"))
        crawls[day] = ([json.loads(line) for line in lines], stats)
    return crawls


@pytest.mark.parametrize("site", ["roodlicht", "escortgids", "prikbord"])
def test_spider_yields_every_ad_online_each_day_once(
    site: str, week: list[DemoSites], world: World, tmp_path: Path
) -> None:
    crawls = crawl_every_day(site, world, week, tmp_path, at_once=world.days)
    for day, (items, _) in crawls.items():
        check_items(items, world, site, week[day].urls[site], day, world.observed_at(day))


@pytest.mark.browser
@pytest.mark.slow
def test_nachtvlinder_spider_clicks_for_the_phone_in_chromium(
    week: list[DemoSites], world: World, tmp_path: Path
) -> None:
    crawls = crawl_every_day("nachtvlinder", world, week, tmp_path, at_once=2)
    for day, (items, stats) in crawls.items():
        base = week[day].urls["nachtvlinder"]
        check_items(items, world, "nachtvlinder", base, day, world.observed_at(day))
        if any(ad.phone_text for ad in world.ads_on("nachtvlinder", day)):
            assert any(item.get("phone_text") for item in items)
            assert stats.get("playwright/request_count/method/POST")  # "toon nummer" clicks
        assert stats["playwright/page_count"] <= BROWSER_PAGES  # tabs reused, not one per page


LINK_STYLES = frozenset({"tel_link", "whatsapp_link", "whatsapp_api"})


def test_the_crawled_world_has_numbers_in_links_and_ads_with_two(world: World) -> None:
    """The crawls above meet numbers written as links, and ads that show two numbers."""
    linked = {
        row["site"]
        for row in world.truth_ads()
        if LINK_STYLES & {part.split(":")[1] for part in row["phone_styles"].split()}
    }
    assert linked & {"roodlicht", "escortgids", "prikbord"}
    assert any(row["second_phone"] for row in world.truth_ads())


def failing_day(world: World) -> int:
    """A day on which one of the pages the prikbord spider reads answers 500 at first."""
    plan = FaultPlan(world.seed, "prikbord")
    for day in range(world.days):
        ids = day_ids(world, "prikbord", day)
        pages = ["/", *(f"/viewforum.php?f={board.number}" for board in BOARDS)]
        pages += [f"/{page}.php?t={ad_id}" for ad_id in ids for page in ("viewtopic", "album")]
        if any(plan.draws_error(day, page) and not plan.draws_busy(day, page) for page in pages):
            return day
    raise AssertionError("no day of the tiny world has a failing prikbord page; pick another")


def test_prikbord_spider_waits_out_429s_and_retries_500s(world: World, tmp_path: Path) -> None:
    """Against the board's real rate limit, crawling far too fast: nothing may be lost."""
    day = failing_day(world)
    with serve(world, day=day, ports=dict.fromkeys(SITES, 0)) as running:
        base = running.urls["prikbord"]
        items, log = crawl("prikbord", base, tmp_path, QUICK)
    check_items(items, world, "prikbord", base, day)
    assert "'lovitura/spider/retry-after'" in log
    assert "'retry/reason_count/500 Internal Server Error'" in log


def test_base_url_comes_from_the_argument_the_setting_or_the_definition() -> None:
    from scrapy.settings import Settings

    from lovitura_crawl.spiders.roodlicht import RoodlichtSpider

    settings = Settings({"LOVITURA_SITE_URLS": {"roodlicht": "http://127.0.0.1:9000"}})
    spider = RoodlichtSpider()
    spider.settings = settings
    assert spider.base_url == "http://127.0.0.1:9000/"
    spider = RoodlichtSpider(base_url="http://127.0.0.1:9100/")
    spider.settings = settings
    assert spider.base_url == "http://127.0.0.1:9100/"
    spider = RoodlichtSpider()
    spider.settings = Settings()
    assert spider.base_url == SITE_DEFINITIONS["roodlicht"].default_base_url
    assert spider.allowed_private_hosts == ("127.0.0.1", "localhost", "::1")


def test_every_site_has_a_definition_and_a_spider_of_its_name() -> None:
    from scrapy.settings import Settings
    from scrapy.spiderloader import SpiderLoader

    loader = SpiderLoader.from_settings(Settings({"SPIDER_MODULES": ["lovitura_crawl.spiders"]}))
    assert sorted(loader.list()) == sorted(SITES) == sorted(SITE_DEFINITIONS)
    for site in SITES:
        spider = loader.load(site)
        assert issubclass(spider, SiteSpider) and spider.definition is SITE_DEFINITIONS[site]


def test_a_definition_needs_one_way_to_find_the_ad_id() -> None:
    with pytest.raises(ValueError, match="exactly one of ad_id_field and ad_id_in_url"):
        SiteDefinition(name="x", default_base_url="http://x/", start_paths=("",), ad_links="//a")
    with pytest.raises(ValueError, match="group"):
        SiteDefinition(
            name="x",
            default_base_url="http://x/",
            start_paths=("",),
            ad_links="//a",
            ad_id_in_url=r"\d+",
        )


def test_extract_joins_nodes_and_applies_the_pattern() -> None:
    page = Selector(
        text="<div><p>Hallo  daar</p><p>Bel\n  06 12</p><p></p><span class=a>23 jaar</span></div>"
    )
    assert extract(page, Field("//p", join=" | ")) == "Hallo daar | Bel 06 12"
    assert extract(page, Field("//p", join="\n\n", keep_lines=True)) == "Hallo daar\n\nBel\n06 12"
    assert extract(page, Field('//span[@class="a"]', pattern=r"(\d+) jaar")) == "23"
    assert extract(page, Field('//span[@class="a"]', pattern=r"\d+")) == "23"
    assert extract(page, Field('//span[@class="a"]', pattern=r"age (\d+)")) is None
    assert extract(page, Field("//em")) is None
    assert extract(page, Field("//span/@class")) == "a"


# --- the demo world's ad pages, offline ------------------------------------------------------

SERVER_RENDERED = ("roodlicht", "escortgids", "prikbord")


@pytest.fixture(scope="module")
def demo() -> World:
    return build_world(7, scale="demo")


def ad_path(site: Any, ad: AdSnapshot) -> str:
    """The path and query of an ad's page on a server-rendered site."""
    if site.name == "prikbord":
        return f"/viewtopic.php?t={ad.site_ad_id}"
    return str(site.ad_url(ad))


def ad_page(site: Any, target: str) -> Selector:
    """The page ``site`` answers for ``target``, without a server (a first 500 is retried)."""
    parts = urlsplit(target)
    request = Request("GET", unquote(parts.path), parse_qs(parts.query), {}, "127.0.0.1", target)
    response = site.handle(request)
    if response.status == 500:  # prikbord fails some URLs on their first request of a day
        response = site.handle(request)
    assert response.status == 200, target
    charset = re.search(r"charset=([\w-]+)", response.content_type)
    return Selector(text=response.body.decode(charset.group(1) if charset else "utf-8"))


@pytest.mark.parametrize("site", SERVER_RENDERED)
def test_demo_world_ad_pages_give_the_spiders_every_number(site: str, demo: World) -> None:
    """Every version of every demo-world ad, read from its page through the site definition:
    the body with its link targets, and exactly the numbers the ad shows."""
    definition = SITE_DEFINITIONS[site]
    view = WorldView(demo)
    app = SITE_CLASSES[site](view, fast=True)
    seen: set[tuple[str, int]] = set()
    links = pairs = 0
    for day in range(demo.days):
        view.set_day(day)
        for ad in demo.ads_on(site, day):
            version = (ad.site_ad_id, demo.ad(site, ad.site_ad_id).version_on(day))
            if version in seen:
                continue
            seen.add(version)
            page = ad_page(app, ad_path(app, ad))
            fields = {name: extract(page, rule) for name, rule in definition.fields.items()}
            assert normalised(fields["text"] or "") == normalised(observed_text(ad.text))
            numbers = shown_numbers(demo, site, ad.site_ad_id, day)
            assert found_numbers(fields) == numbers, (ad.site_ad_id, day)
            links += '<a href="' in ad.text
            pairs += len(numbers) == 2
    assert links >= 10 and pairs >= 10, (links, pairs)


class FakeTab:
    """Stands in for a Playwright page: the pool only asks whether it is closed."""

    def __init__(self) -> None:
        self.closed = False

    def is_closed(self) -> bool:
        return self.closed


def test_browser_tabs_are_reused_and_shared_in_turn() -> None:
    from scrapy import Request as ScrapyRequest

    async def scenario() -> None:
        pool = PagePool(2)
        first, second, third = (ScrapyRequest(f"http://x/{n}") for n in range(3))
        await pool.acquire(first)
        await pool.acquire(second)
        assert PAGE not in first.meta  # fewer tabs than the pool's size: the handler opens one
        tab_a, tab_b = FakeTab(), FakeTab()
        first.meta[PAGE], second.meta[PAGE] = tab_a, tab_b  # as scrapy-playwright does
        waiting = asyncio.ensure_future(pool.acquire(third))
        await asyncio.sleep(0)
        assert not waiting.done()  # both tabs busy: the third request waits its turn
        retried = first.copy()  # a retry goes on in its own tab without waiting
        await asyncio.wait_for(pool.acquire(retried), 1)
        assert retried.meta[PAGE] is tab_a
        pool.release(second)
        await asyncio.wait_for(waiting, 1)
        assert third.meta[PAGE] is tab_b  # the freed tab, not a new one
        tab_a.closed = True
        pool.release(retried)  # a closed tab makes room for a new one
        fourth = ScrapyRequest("http://x/4")
        await asyncio.wait_for(pool.acquire(fourth), 1)
        assert PAGE not in fourth.meta
        pool.release(fourth)  # its tab was never opened (the browser failed): room again
        fifth = ScrapyRequest("http://x/5")
        await asyncio.wait_for(pool.acquire(fifth), 1)
        assert PAGE not in fifth.meta

    asyncio.run(scenario())
    with pytest.raises(ValueError, match="at least 1"):
        PagePool(0)
