"""Crawl throughput: the full pipeline against a bare Scrapy spider on the same demo pages.

Serves day 0 of the demo world's three plain-HTTP sites (roodlicht, escortgids, prikbord; the
browser site's cost is Chromium's) from memory, in a child process (bench/crawl_sites.py: every
photo made or loaded from ``var/bench-crawl-photos/`` before anything is timed, every answer
kept once made), so that the sites' own work is not what is measured. Then, in one reactor
session, an untimed warm-up of each crawler, and ``--rounds`` rounds that alternate:

* **bare**: a minimal spider that follows the same listing, ad, photo-page and photo URLs and
  yields one dict per ad, with no item pipelines;
* **full**: the sites' spiders with every pipeline (fields, phones, places, photo fingerprints
  in a process pool of ``LOVITURA_PHOTO_WORKERS``, storage into a fresh SQLite database), on a
  first crawl, where every ad is new and every photo is fetched.

Items per second is ads per second of wall time from the first request to the last item; the
figure to hold is the ratio full / bare, target >= 0.8. Two figures are printed: the ratio of
each kind's best round, and the median of the rounds' own ratios (a round's two crawls ran
under similar load, so on a busy machine it is the steadier figure; 5 rounds by default). Per
round, CPU seconds of the crawler process (reactor and writer threads), of the photo workers and
of the sites; peak memory of the crawler process and of the photo workers (their sum is an upper
bound of the two together).

Two modes, ``--mode``:

* ``polite`` (the default, and the mode of the 0.8 target): how the product crawls, one request
  at a time per site, the three sites concurrently, no pause between requests (as the demo
  crawls its own sites) and no AutoThrottle. The question it answers is whether the pipelines
  keep up with the crawl: the sites answer from memory within a millisecond, so the crawl is
  as fast as the reactor thread can send requests and take responses, and whatever the
  pipelines do on that thread (or take from it through the GIL) shows in the ratio. Photo
  hashing runs on the second core.
* ``saturated``: 8 requests at a time per site. Both crawlers are CPU-bound on this 2-core
  machine, and the full crawl necessarily spends more CPU per ad than the bare one (it hashes
  about 3 photos per ad and stores the ad), so the ratio is the bare crawl's CPU per ad over the
  full one's, bounded well below 1: it measures what the pipelines cost, not whether they keep
  up with a polite crawl.

Figures (2-core machine shared with other work; the load averages are ``uptime``'s): see
docs/crawling.md, "Throughput benchmark".

    .venv/bin/python bench/crawl.py
    .venv/bin/python bench/crawl.py --rounds 3 --mode saturated

Known shortcoming: the CPU and memory of the photo workers and of the sites are read from
``/proc``, so on a system without it (macOS) they are printed as not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
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
COMMON = {"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False, "LOG_LEVEL": "WARNING"}
MODES = {
    "polite": {**COMMON, "CONCURRENT_REQUESTS_PER_DOMAIN": 1},
    "saturated": {**COMMON, "CONCURRENT_REQUESTS_PER_DOMAIN": 8},
}
TARGET = 0.8
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


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


class SitesProcess:
    """bench/crawl_sites.py in a child process: the three sites, answering from memory."""

    def __init__(self, seed: int) -> None:
        command = [sys.executable, str(Path(__file__).with_name("crawl_sites.py"))]
        self.proc = subprocess.Popen(
            [*command, "--seed", str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark's sites did not start: see the error above")
        self.urls: dict[str, str] = json.loads(line)["urls"]

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the sites stop when their standard input closes
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=10)


# --- CPU and memory of processes -------------------------------------------------------------


def _proc_cpu(pid: int) -> float | None:
    """User and system CPU seconds of a live process, from /proc (None: not available)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _children(exclude: int) -> list[int]:
    """The live child processes of this process (the photo workers), but ``exclude``."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").glob("[0-9]*") if Path("/proc").is_dir() else []:
        try:
            parent = int(entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == me and int(entry.name) != exclude:
            found.append(int(entry.name))
    return found


def _peak_mib(pid: int) -> float:
    """The resident set high-water mark of a live process (0 when unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Snapshot:
    wall: float
    crawler: float
    workers: float | None  # live children but the sites, plus the reaped ones
    sites: float | None

    @classmethod
    def take(cls, sites_pid: int) -> Snapshot:
        workers = None
        if Path("/proc").is_dir():
            reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
            live = (_proc_cpu(pid) for pid in _children(exclude=sites_pid))
            workers = sum(c or 0.0 for c in live) + reaped.ru_utime + reaped.ru_stime
        return cls(time.monotonic(), time.process_time(), workers, _proc_cpu(sites_pid))


@dataclass
class Round:
    kind: str
    items: int
    wall: float
    crawler_cpu: float
    workers_cpu: float | None
    sites_cpu: float | None

    @classmethod
    def between(cls, kind: str, items: int, start: Snapshot, end: Snapshot) -> Round:
        def delta(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else b - a

        return cls(
            kind,
            items,
            end.wall - start.wall,
            end.crawler - start.crawler,
            delta(start.workers, end.workers),
            delta(start.sites, end.sites),
        )

    @property
    def rate(self) -> float:
        return self.items / self.wall

    def line(self) -> str:
        def cpu(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.1f}"

        return (
            f"{self.kind}: {self.items} ads in {self.wall:.1f} s = {self.rate:.1f} ads/s; "
            f"CPU s: crawler {cpu(self.crawler_cpu)}, photo workers {cpu(self.workers_cpu)}, "
            f"sites {cpu(self.sites_cpu)}"
        )


# --- the crawls ------------------------------------------------------------------------------


async def bare_crawl(settings: Settings, urls: dict[str, str]) -> int:
    runner = AsyncCrawlerRunner(settings)
    crawlers = [Crawler(BareSpider, settings.copy()) for _ in HTTP_SITES]
    await asyncio.gather(
        *(
            runner.crawl(crawler, definition=SITE_DEFINITIONS[site], base_url=urls[site])
            for crawler, site in zip(crawlers, HTTP_SITES, strict=True)
        )
    )
    counts = [c.stats.get_value("item_scraped_count", 0) for c in crawlers if c.stats is not None]
    return sum(int(count or 0) for count in counts)


async def full_crawl(settings: Settings, urls: dict[str, str], db_url: str) -> int:
    jobs = [CrawlJob(site, None, urls[site]) for site in HTTP_SITES]
    full = settings.copy()
    full.set("LOVITURA_DATABASE_URL", db_url, priority="cmdline")
    outcomes = await crawl_jobs(full, jobs)
    return sum(o.items for o in outcomes)


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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mode", choices=sorted(MODES), default="polite")
    args = parser.parse_args(argv)
    print(f"mode {args.mode}; load average {_load()}", flush=True)
    sites = SitesProcess(args.seed)
    rounds: list[tuple[Round, Round]] = []
    workers_peak = 0.0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            databases = [fresh_database(Path(tmp), f"full-{n}") for n in range(args.rounds + 1)]
            settings = project_settings({**MODES[args.mode], "LOVITURA_PURPOSE": DEMO_PURPOSE})

            async def timed(kind: str, n: int) -> Round:
                start = Snapshot.take(sites.proc.pid)
                if kind == "bare":
                    items = await bare_crawl(settings, sites.urls)
                else:
                    items = await full_crawl(settings, sites.urls, databases[n])
                return Round.between(kind, items, start, Snapshot.take(sites.proc.pid))

            async def run() -> None:
                nonlocal workers_peak
                # Untimed: fills the sites' memo, starts the photo workers, imports everything.
                for kind in ("bare", "full"):
                    print(f"warm-up {(await timed(kind, args.rounds)).line()}", flush=True)
                for n in range(args.rounds):
                    bare = await timed("bare", n)
                    full = await timed("full", n)
                    rounds.append((bare, full))
                    for done in (bare, full):
                        print(f"round {n + 1} {done.line()}", flush=True)
                    print(
                        f"round {n + 1} ratio full / bare: {full.rate / bare.rate:.2f}; "
                        f"load average {_load()}",
                        flush=True,
                    )
                workers = _children(exclude=sites.proc.pid)
                workers_peak = sum(_peak_mib(pid) for pid in workers)

            run_reactor(run, settings)
    finally:
        sites.stop()
    report(rounds, workers_peak)


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def report(rounds: list[tuple[Round, Round]], workers_peak: float) -> None:
    best_bare = max(bare.rate for bare, _ in rounds)
    best_full = max(full.rate for _, full in rounds)
    print(f"bare spider:   {best_bare:6.1f} ads/s (best round)")
    print(f"full pipeline: {best_full:6.1f} ads/s (best round)")
    print(f"ratio of the best rounds full / bare: {best_full / best_bare:.2f} (target >= {TARGET})")
    ratios = [full.rate / bare.rate for bare, full in rounds]
    print(f"median of the rounds' ratios: {statistics.median(ratios):.2f}")
    for kind, index in (("bare", 0), ("full", 1)):
        done = [pair[index] for pair in rounds]
        median = statistics.median(
            (r.crawler_cpu + (r.workers_cpu or 0.0)) / max(r.items, 1) * 1000 for r in done
        )
        print(f"CPU per ad, {kind} (crawler and photo workers, median): {median:.1f} ms")
    crawler_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak memory: crawler process {crawler_peak:.0f} MiB (both crawlers), photo workers "
        f"{workers_peak:.0f} MiB; together at most {crawler_peak + workers_peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
