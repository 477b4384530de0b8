"""The four spiders, each crawling its demo site served from the tiny world.

Every crawl runs ``scrapy crawl`` in a child process (Scrapy's reactor starts once per process)
against sites served by this process, with the pipelines off, and must yield every ad online
that day exactly once, with the fields the site shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.model import SITES, AdSnapshot
from fixtures.sites import DemoSites, serve
from fixtures.sites.faults import FaultPlan
from fixtures.sites.prikbord import BOARDS
from fixtures.sites.textformat import paragraphs
from fixtures.world import World, build_world
from lovitura_crawl.sitedefs import SITE_DEFINITIONS, Field, SiteDefinition
from lovitura_crawl.spiders.base import SiteSpider, extract

CLOCK = "2026-11-03T12:00:00+01:00"
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
def sites(world: World) -> Iterator[DemoSites]:
    with serve(world, day=1, ports=dict.fromkeys(SITES, 0), fast=True) as running:
        yield running


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
        "observed_at": CLOCK,
        "title": ad.title,
        "text": normalised(ad.text),
        "nickname": ad.nickname,
        "posted_at": ad.posted_on.isoformat(),
        "photos": [{"url": url, "path": None} for url in photos],
    }
    if ad.age is not None:
        wanted["age"] = str(ad.age)
    if ad.phone_text is not None:
        wanted["phone_text"] = ad.phone_text
    if ad.place_text is not None:
        wanted["place"] = " ".join(ad.place_text.split())
    return wanted


def check_items(
    items: list[dict[str, Any]], world: World, site: str, base_url: str, day: int = 1
) -> None:
    ads = world.ads_on(site, day)
    ids = [item["site_ad_id"] for item in items]
    assert sorted(ids) == sorted(ad.site_ad_id for ad in ads), "every ad exactly once"
    by_id = {item["site_ad_id"]: item for item in items}
    for ad in ads:
        item = by_id[ad.site_ad_id]
        got = {key: item.get(key) for key in expected(ad, base_url)}
        if item.get("text") is not None:
            got["text"] = normalised(item["text"])
        assert got == expected(ad, base_url), ad.site_ad_id
        assert item["url"].startswith(base_url)


@pytest.mark.parametrize("site", ["roodlicht", "escortgids", "prikbord"])
def test_spider_yields_every_ad_of_the_day_once(
    site: str, sites: DemoSites, world: World, tmp_path: Path
) -> None:
    items, _ = crawl(site, sites.urls[site], tmp_path, QUICK)
    check_items(items, world, site, sites.urls[site])


@pytest.mark.browser
def test_nachtvlinder_spider_clicks_for_the_phone_in_chromium(
    sites: DemoSites, world: World, tmp_path: Path
) -> None:
    items, log = crawl("nachtvlinder", sites.urls["nachtvlinder"], tmp_path, QUICK)
    check_items(items, world, "nachtvlinder", sites.urls["nachtvlinder"])
    assert any(item.get("phone_text") for item in items)
    assert "'playwright/request_count/method/POST'" in log  # the "toon nummer" calls


def failing_day(world: World) -> int:
    """A day on which one of the pages the prikbord spider reads answers 500 at first."""
    plan = FaultPlan(world.seed, "prikbord")
    for day in range(world.days):
        ids = day_ids(world, "prikbord", day)
        pages = ["/", *(f"/viewforum.php?f={board.number}" for board in BOARDS)]
        pages += [f"/{page}.php?t={ad_id}" for ad_id in ids for page in ("viewtopic", "album")]
        if any(plan.draws_error(day, page) for page in pages):
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
    from parsel import Selector

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
