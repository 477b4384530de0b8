"""Politeness: robots.txt is obeyed, Retry-After is waited out, the settings stay polite.

The crawls run a spider in a child process (Scrapy's reactor starts once per process) against
the tiny world's prikbord served by this process; the server's own request log (the DEBUG
records of ``fixtures.sites.server``) says what reached the site and when.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from fixtures.model import SITES
from fixtures.sites import serve
from fixtures.sites.faults import SLOW_SECONDS, FaultPlan
from fixtures.sites.prikbord import RETRY_AFTER_SECONDS
from fixtures.world import World, build_world
from lovitura_crawl.crawl import project_settings
from lovitura_crawl.middlewares import retry_after_seconds
from lovitura_crawl.sitedefs import PRIKBORD, SITE_DEFINITIONS, SiteDefinition

ROOT = Path(__file__).resolve().parent.parent
DISALLOWED = ("zoeken", "profiel.php?u=1", "admin/")

# Runs one prikbord crawl, optionally with extra start pages, and prints its stats as JSON.
PROBE = """
import dataclasses, json, sys
from scrapy.crawler import CrawlerProcess
from lovitura_crawl.crawl import project_settings
from lovitura_crawl.sitedefs import PRIKBORD
from lovitura_crawl.spiders.prikbord import PrikbordSpider

class Probe(PrikbordSpider):
    definition = dataclasses.replace(PRIKBORD, start_paths=("", *json.loads(sys.argv[2])))

settings = project_settings(json.loads(sys.argv[3]))
process = CrawlerProcess(settings)
crawler = process.create_crawler(Probe)
process.crawl(crawler, base_url=sys.argv[1])
process.start()
print(json.dumps(crawler.stats.get_stats(), default=str))
"""
QUICK = {
    "ITEM_PIPELINES": {},
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
    "LOVITURA_CLOCK": "2026-11-03T12:00:00+01:00",
    "LOG_LEVEL": "INFO",
}
SERVED = re.compile(r'prikbord: "GET (?P<target>\S+) HTTP/1\.1" (?P<status>\d{3})')


class ServerLog(logging.Handler):
    """Collects (time, target, status) of every request the demo sites answered."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.served: list[tuple[float, str, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = SERVED.search(record.getMessage())
        if match:
            self.served.append((record.created, match["target"], int(match["status"])))


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(1, scale="tiny")


@pytest.fixture
def server_log() -> Iterator[ServerLog]:
    handler = ServerLog()
    logger = logging.getLogger("fixtures.sites.server")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def probe(base_url: str, extra_paths: tuple[str, ...] = ()) -> dict[str, object]:
    command = [sys.executable, "-c", PROBE, base_url, json.dumps(extra_paths), json.dumps(QUICK)]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "SCRAPY_SETTINGS_MODULE": "lovitura_crawl.settings"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    stats: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return stats


def test_robots_txt_of_prikbord_is_obeyed(world: World, server_log: ServerLog) -> None:
    with serve(world, day=1, ports=dict.fromkeys(SITES, 0), fast=True) as running:
        stats = probe(running.urls["prikbord"], DISALLOWED)
    targets = [target for _, target, _ in server_log.served]
    assert "/robots.txt" in targets
    assert stats["robotstxt/forbidden"] == len(DISALLOWED), stats
    forbidden = ("/zoeken", "/profiel", "/admin/", "/memberlist.php")
    assert not [t for t in targets if t.startswith(forbidden)], "a disallowed page was fetched"
    # A listing page the crawl may not read leaves the listing incomplete: nothing goes gone.
    assert stats["lovitura/listing/complete"] is False
    assert stats["item_scraped_count"] == len(world.ads_on("prikbord", 1))


def test_retry_after_is_waited_out_and_nothing_is_lost(world: World, server_log: ServerLog) -> None:
    """Crawling far too fast against the board's rate limit (10 requests a second)."""
    with serve(world, day=1, ports=dict.fromkeys(SITES, 0)) as running:
        stats = probe(running.urls["prikbord"])
    refusals = [when for when, _, status in server_log.served if status == 429]
    assert refusals, "the crawl never hit the rate limit: the test proves nothing"
    assert stats["lovitura/spider/retry-after"] == len(refusals)
    assert stats["item_scraped_count"] == len(world.ads_on("prikbord", 1))
    assert stats["lovitura/listing/complete"] is True
    # The log is written when a page is answered: a slow page arrived SLOW_SECONDS earlier.
    slow = FaultPlan(world.seed, "prikbord").slow
    arrivals = [
        (when - (SLOW_SECONDS if status == 200 and slow(1, target) else 0.0), target)
        for when, target, status in server_log.served
    ]
    # Requests already on their way may arrive just after a 429; then the site is left alone
    # for the Retry-After seconds.
    grace, wait = 0.3, float(RETRY_AFTER_SECONDS)
    for refused in refusals:
        during = [t for when, t in arrivals if refused + grace < when < refused + wait - grace]
        assert during == [], f"requests within Retry-After of a 429: {during}"


def test_retry_after_values_are_read_and_bounded() -> None:
    assert retry_after_seconds(b"2", 1.0, 60.0) == 2.0
    assert retry_after_seconds(b"3600", 1.0, 60.0) == 60.0
    assert retry_after_seconds(None, 1.5, 60.0) == 1.5
    assert retry_after_seconds(b"soon", 1.5, 60.0) == 1.5
    assert retry_after_seconds(b"0", 1.5, 60.0) == 0.1
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True).encode()
    assert 8.0 <= retry_after_seconds(in_ten, 1.0, 60.0) <= 10.0


def test_settings_are_polite() -> None:
    settings = project_settings()
    assert settings.getbool("ROBOTSTXT_OBEY")
    assert "LovituraCrawl" in settings.get("USER_AGENT")
    assert settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN") == 1
    assert settings.getfloat("DOWNLOAD_DELAY") > 0
    assert settings.getbool("AUTOTHROTTLE_ENABLED")
    assert 429 not in [int(code) for code in settings.getlist("RETRY_HTTP_CODES")]
    middlewares = settings.getdict("DOWNLOADER_MIDDLEWARES")
    retry = settings.getdict("DOWNLOADER_MIDDLEWARES_BASE")[
        "scrapy.downloadermiddlewares.retry.RetryMiddleware"
    ]
    assert middlewares["lovitura_crawl.middlewares.RetryAfterMiddleware"] > retry


def test_no_site_turns_robots_txt_off_without_a_reason() -> None:
    for definition in SITE_DEFINITIONS.values():
        obeys = definition.custom_settings.get("ROBOTSTXT_OBEY", True)
        assert obeys or definition.robots_txt_reason, definition.name
    with pytest.raises(ValueError, match="robots_txt_reason"):
        SiteDefinition(
            name="x",
            default_base_url="http://x/",
            start_paths=("",),
            ad_links="//a",
            ad_id_in_url=r"(\d+)",
            custom_settings={"ROBOTSTXT_OBEY": False},
        )
    assert PRIKBORD.custom_settings.get("ROBOTSTXT_OBEY", True) is True
