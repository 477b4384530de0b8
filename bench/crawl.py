"""Crawl throughput: the full pipeline against a bare Scrapy spider on the same demo pages.

Serves day 0 of the demo world (``--fast``: no rate limit or slow pages) in a child process and,
in one reactor session, crawls roodlicht, escortgids and prikbord (the plain-HTTP sites; the
browser site's cost is Chromium's) alternately with:

* **bare**: a minimal spider that follows the same listing, ad, photo-page and photo URLs and
  yields one dict per ad, with no item pipelines;
* **full**: the sites' spiders with every pipeline (fields, phones, places, photo fingerprints
  in a process pool of ``LOVITURA_PHOTO_WORKERS``, storage into a fresh SQLite database), on a
  first crawl, where every ad is new and every photo is fetched.

Items per second is ads per second of wall time from the first request to the last item. The
ratio full / bare is the figure to hold (target >= 0.8); each figure is the best of
``--rounds``, and the median of the rounds' own ratios is printed too (on a busy machine it is
the steadier figure). The CPU time of the crawler process per round (reactor and writer
threads; not the photo workers or the sites) shows what the pipelines themselves cost. Peak
memory is the resident set high-water mark of this process (both crawlers; the photo worker
processes are not included).

    .venv/bin/python bench/crawl.py --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import scrapy
from scrapy.crawler import AsyncCrawlerRunner, Crawler
from scrapy.http import Response, TextResponse
from scrapy.settings import Settings

from lovitura_crawl.crawl import CrawlJob, crawl_jobs, project_settings, run_reactor
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.db.migrate import upgrade
from lovitura_crawl.db.reference import load_municipalities
from lovitura_crawl.privacy.purpose import DEMO_PURPOSE, demo_purpose
from lovitura_crawl.sitedefs import SITE_DEFINITIONS, SiteDefinition

HTTP_SITES = ("roodlicht", "escortgids", "prikbord")
QUICK = {
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
    "LOG_LEVEL": "WARNING",
}


class BareSpider(scrapy.Spider):
    """Fetches what the site spider fetches (listings, ads, photo pages, photos), nothing else."""

    name = "bare"
    custom_settings = {"ITEM_PIPELINES": {}}  # noqa: RUF012 (Scrapy reads it as is)

    def __init__(self, definition: SiteDefinition, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.definition = definition
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.allowed_private_hosts = definition.allowed_private_hosts

    async def start(self) -> AsyncIterator[Any]:
        for path in self.definition.start_paths:
            yield scrapy.Request(self.base_url + path, self.parse_listing)

    def parse_listing(self, response: Response) -> Iterator[Any]:
        page = _text(response)
        for href in page.xpath(self.definition.ad_links).getall():
            yield scrapy.Request(page.urljoin(href), self.parse_ad)
        for xpath in (self.definition.listing_links, self.definition.next_page):
            for href in page.xpath(xpath).getall() if xpath else []:
                yield scrapy.Request(page.urljoin(href), self.parse_listing)

    def parse_ad(self, response: Response) -> Iterator[Any]:
        page = _text(response)
        gallery = self.definition.gallery_link
        link = page.xpath(gallery).get() if gallery else None
        if link:
            yield scrapy.Request(page.urljoin(link), self.parse_gallery, cb_kwargs={"ad": page.url})
            return
        yield from self.photos(page, self.definition.photos, page.url)

    def parse_gallery(self, response: Response, ad: str) -> Iterator[Any]:
        yield from self.photos(_text(response), self.definition.gallery_photos, ad)

    def photos(self, page: TextResponse, xpath: str | None, ad: str) -> Iterator[Any]:
        for src in dict.fromkeys(page.xpath(xpath).getall() if xpath else []):
            yield scrapy.Request(page.urljoin(src), self.photo_done)
        yield {"ad": ad}

    def photo_done(self, response: Response) -> None:
        return None


def _text(response: Response) -> TextResponse:
    assert isinstance(response, TextResponse), response.url
    return response


class DemoSitesProcess:
    """``lovitura sites serve --fast --control`` in a child process, showing day 0."""

    def __init__(self, seed: int) -> None:
        command = [sys.executable, "-m", "lovitura_crawl.cli", "sites", "serve", "--seed"]
        command += [str(seed), "--scale", "demo", "--days", "1", "--fast", "--control"]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self.proc.stdout is not None
        self.urls: dict[str, str] = json.loads(self.proc.stdout.readline())["urls"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


Round = tuple[int, float, float]  # ads, wall seconds, CPU seconds of this process


async def bare_round(settings: Settings, urls: dict[str, str]) -> Round:
    runner = AsyncCrawlerRunner(settings)
    crawlers = [Crawler(BareSpider, settings.copy()) for _ in HTTP_SITES]
    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(
        *(
            runner.crawl(crawler, definition=SITE_DEFINITIONS[site], base_url=urls[site])
            for crawler, site in zip(crawlers, HTTP_SITES, strict=True)
        )
    )
    counts = [c.stats.get_value("item_scraped_count", 0) for c in crawlers if c.stats is not None]
    items: int = sum(int(count or 0) for count in counts)
    return items, time.monotonic() - started, time.process_time() - cpu


async def full_round(settings: Settings, urls: dict[str, str], db_url: str) -> Round:
    jobs = [CrawlJob(site, None, urls[site]) for site in HTTP_SITES]
    full = settings.copy()
    full.set("LOVITURA_DATABASE_URL", db_url, priority="cmdline")
    started, cpu = time.monotonic(), time.process_time()
    outcomes = await crawl_jobs(full, jobs)
    return sum(o.items for o in outcomes), time.monotonic() - started, time.process_time() - cpu


def fresh_database(folder: Path, name: str) -> str:
    """A new SQLite database in ``folder``, migrated, with the gazetteer and the demo purpose."""
    url = f"sqlite:///{folder / name}.sqlite"
    upgrade(url)
    engine = make_engine(url)
    load_municipalities(engine)
    demo_purpose(engine)
    engine.dispose()
    return url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    sites = DemoSitesProcess(args.seed)
    results: dict[str, list[Round]] = {"bare": [], "full": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            databases = [fresh_database(Path(tmp), f"full-{n}") for n in range(args.rounds)]
            settings = project_settings({**QUICK, "LOVITURA_PURPOSE": DEMO_PURPOSE})

            async def rounds() -> None:
                for n in range(args.rounds):
                    results["bare"].append(await bare_round(settings, sites.urls))
                    results["full"].append(await full_round(settings, sites.urls, databases[n]))
                    for kind in ("bare", "full"):
                        items, seconds, cpu = results[kind][-1]
                        print(
                            f"round {n + 1} {kind}: {items} ads in {seconds:.1f} s "
                            f"(crawler process CPU {cpu:.1f} s)",
                            flush=True,
                        )
                    bare, full = results["bare"][-1], results["full"][-1]
                    ratio = (full[0] / full[1]) / (bare[0] / bare[1])
                    print(f"round {n + 1} ratio full / bare: {ratio:.2f}", flush=True)

            run_reactor(rounds, settings)
    finally:
        sites.stop()
    report(results)


def report(results: dict[str, list[Round]]) -> None:
    best = {
        kind: max(items / seconds for items, seconds, _ in runs) for kind, runs in results.items()
    }
    main_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bare spider:   {best['bare']:6.1f} ads/s")
    print(f"full pipeline: {best['full']:6.1f} ads/s")
    print(f"ratio full / bare: {best['full'] / best['bare']:.2f} (target >= 0.8)")
    # The rounds alternate, so a round's ratio compares crawls made under similar load.
    ratios = sorted(
        (f[0] / f[1]) / (b[0] / b[1]) for b, f in zip(results["bare"], results["full"], strict=True)
    )
    print(f"median of the rounds' ratios: {ratios[len(ratios) // 2]:.2f}")
    # The photo workers are spawned processes, not waited for here: not included.
    print(f"peak memory: {main_peak:.0f} MiB (the crawler process, photo workers not included)")


if __name__ == "__main__":
    main()
