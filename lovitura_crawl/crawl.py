"""Running spiders from the ``lovitura`` command: one or several sites, one or several days.

Scrapy's reactor can start only once per process, so every crawl of a command runs inside one
reactor session (:func:`run_reactor`); the demo runs all its simulated days in it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from scrapy.settings import Settings

logger = logging.getLogger(__name__)

REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
T = TypeVar("T")


@dataclass
class CrawlJob:
    """One crawl of one site."""

    site: str
    clock: datetime | None = None  # stamp observations with this time (replays, simulated days)
    base_url: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class CrawlOutcome:
    site: str
    finish_reason: str
    items: int
    stats: dict[str, Any]


def project_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """The project's Scrapy settings, wherever the command runs from, plus ``overrides``."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "lovitura_crawl.settings")
    from scrapy.utils.project import get_project_settings

    settings = get_project_settings()
    for name, value in (overrides or {}).items():
        settings.set(name, value, priority="cmdline")
    return settings


def run_reactor(main: Callable[[], Awaitable[T]], settings: Settings) -> T:
    """Install the asyncio reactor, run ``main()`` to completion in it, return its result."""
    from scrapy.utils.log import configure_logging
    from scrapy.utils.reactor import install_reactor

    configure_logging(settings)
    install_reactor(REACTOR)
    from scrapy.utils.defer import deferred_from_coro
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    outcome: dict[str, Any] = {}

    async def wrapper() -> None:
        try:
            outcome["value"] = await main()
        except BaseException as exc:  # re-raised below, outside the reactor
            outcome["error"] = exc
        finally:
            reactor.callLater(0, reactor.stop)

    reactor.callWhenRunning(lambda: deferred_from_coro(wrapper()))
    reactor.run(installSignalHandlers=True)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


async def crawl_jobs(settings: Settings, jobs: list[CrawlJob]) -> list[CrawlOutcome]:
    """Run ``jobs`` concurrently inside a running reactor; return each crawl's outcome."""
    from scrapy.crawler import AsyncCrawlerRunner, Crawler

    runner = AsyncCrawlerRunner(settings)
    crawlers: list[Crawler] = []
    tasks = []
    for job in jobs:
        job_settings = settings.copy()
        if job.clock is not None:
            job_settings.set("LOVITURA_CLOCK", job.clock.isoformat(), priority="cmdline")
        for name, value in job.settings.items():
            job_settings.set(name, value, priority="cmdline")
        spidercls = runner.spider_loader.load(job.site)
        crawler = Crawler(spidercls, job_settings)
        crawlers.append(crawler)
        kwargs = {"base_url": job.base_url} if job.base_url else {}
        tasks.append(runner.crawl(crawler, **kwargs))
    await asyncio.gather(*tasks, return_exceptions=False)
    return [_outcome(job, crawler) for job, crawler in zip(jobs, crawlers, strict=True)]


def _outcome(job: CrawlJob, crawler: Any) -> CrawlOutcome:
    stats = dict(crawler.stats.get_stats()) if crawler.stats else {}
    return CrawlOutcome(
        site=job.site,
        finish_reason=str(stats.get("finish_reason", "unknown")),
        items=int(stats.get("item_scraped_count", 0)),
        stats=stats,
    )


def crawl(jobs: list[CrawlJob], overrides: Mapping[str, Any] | None = None) -> list[CrawlOutcome]:
    """Run ``jobs`` to completion (a blocking call that owns the reactor of this process)."""
    settings = project_settings(overrides)
    return run_reactor(lambda: crawl_jobs(settings, jobs), settings)
