"""Running spiders from the ``lovitura`` command: one or several sites, one or several days.

Scrapy's reactor can start only once per process, so every crawl of a command runs inside one
reactor session (:func:`run_reactor`); the demo runs all its simulated days in it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, TypeVar

from scrapy.settings import Settings

logger = logging.getLogger(__name__)

REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
# Seconds a graceful stop may take before the command stops at once, as after a second signal.
# A crawl stops in a second or two; one waiting on a helper process that the same signal killed
# (`timeout` and some schedulers signal the whole process group, so the Playwright driver dies
# while its browser is starting) would wait for ever.
SHUTDOWN_GRACE = 75.0  # above a download's timeout (60 s), under systemd's 90 s TimeoutStopSec
T = TypeVar("T")


class Interrupted(Exception):
    """The command was stopped by SIGINT (Ctrl-C) or SIGTERM.

    The first signal stops the crawls gracefully (their runs are recorded as ``shutdown``);
    ``forced`` when a second one stopped the reactor at once. ``exit_code`` is 128 + signal.
    """

    def __init__(
        self, signum: int, forced: bool = False, outcomes: list[CrawlOutcome] | None = None
    ) -> None:
        self.signum = signum
        self.forced = forced
        self.outcomes = outcomes or []  # the crawls that ended, each with its finish reason
        self.signame = signal.Signals(signum).name
        super().__init__(self.message())

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def message(self) -> str:
        if self.forced:
            return (
                f"interrupted by {self.signame} twice, or not stopped within "
                f"{SHUTDOWN_GRACE:.0f} s of it: stopped at once; crawls still running are "
                "recorded as killed by the next crawl of their site"
            )
        return (
            f"interrupted by {self.signame}: the crawls stopped gracefully and are recorded as "
            "shutdown; the next crawl fetches what they missed"
        )


class _Shutdown:
    """Signal handling of one reactor session: first signal graceful, second forced."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.forced = False
        self.runners: weakref.WeakSet[Any] = weakref.WeakSet()

    def check(self) -> None:
        """Raise :class:`Interrupted` once a signal asked the command to stop."""
        if self.signum is not None:
            raise Interrupted(self.signum, self.forced)


_shutdown = _Shutdown()


def track(runner: T) -> T:
    """Register a crawler runner: the first SIGINT or SIGTERM stops its crawls gracefully."""
    _shutdown.runners.add(runner)
    return runner


def check_interrupted() -> None:
    """Raise :class:`Interrupted` when a signal asked the command to stop (between stages)."""
    _shutdown.check()


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


def set_up_reactor(reactor: Any, settings: Settings) -> None:
    """Install Scrapy's DNS resolver and size the reactor's thread pool, as the settings say.

    Scrapy's ``CrawlerProcess`` does this when it starts the reactor; a crawler runner in a
    reactor started by us does not. Without it, every connection resolved its host name anew
    in a thread (Twisted's default resolver): no ``DNSCACHE_ENABLED`` cache, no ``DNS_TIMEOUT``,
    and on the demo sites about a tenth of the reactor thread's time went into thread hops.
    """
    from scrapy.utils.misc import build_from_crawler, load_object

    resolver_class = load_object(settings["TWISTED_DNS_RESOLVER"])
    # The resolvers read only ``crawler.settings`` (Scrapy's own CrawlerProcess passes itself).
    holder: Any = SimpleNamespace(settings=settings)
    resolver = build_from_crawler(resolver_class, holder, reactor=reactor)
    resolver.install_on_reactor()
    reactor.getThreadPool().adjustPoolsize(maxthreads=settings.getint("REACTOR_THREADPOOL_MAXSIZE"))


def run_reactor(main: Callable[[], Awaitable[T]], settings: Settings) -> T:
    """Install the asyncio reactor, run ``main()`` to completion in it, return its result."""
    from scrapy.utils.log import configure_logging
    from scrapy.utils.reactor import install_reactor

    configure_logging(settings)
    install_reactor(REACTOR)
    from scrapy.utils.defer import deferred_from_coro
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    set_up_reactor(reactor, settings)
    outcome: dict[str, Any] = {}
    global _shutdown
    _shutdown = _Shutdown()

    async def wrapper() -> None:
        try:
            outcome["value"] = await main()
        except BaseException as exc:  # re-raised below, outside the reactor
            outcome["error"] = exc
        finally:
            reactor.callLater(0, reactor.stop)

    def graceful(signum: int) -> None:
        logger.info(
            "Received %s, shutting down gracefully. Send again to force",
            signal.Signals(signum).name,
        )
        for runner in list(_shutdown.runners):
            deferred_from_coro(runner.stop())
        reactor.callLater(SHUTDOWN_GRACE, too_slow, signum)

    def too_slow(signum: int) -> None:
        if reactor.running and not _shutdown.forced:
            logger.warning(
                "The crawls did not stop within %.0f s of %s; stopping at once",
                SHUTDOWN_GRACE,
                signal.Signals(signum).name,
            )
            _shutdown.forced = True
            reactor.stop()

    def force(signum: int) -> None:
        logger.info("Received %s twice, forcing unclean shutdown", signal.Signals(signum).name)
        if reactor.running:
            reactor.stop()

    def on_signal(signum: int, _frame: Any) -> None:
        # Only flags here: the work runs in the reactor thread (logging in a handler can fail).
        if _shutdown.signum is None:
            _shutdown.signum = signum
            reactor.callFromThread(graceful, signum)
        else:
            _shutdown.forced = True
            for name in ("SIGINT", "SIGTERM"):  # a third signal ends the process at once
                signal.signal(getattr(signal, name), signal.SIG_DFL)
            reactor.callFromThread(force, signum)

    def install_handlers() -> None:
        for name in ("SIGINT", "SIGTERM"):
            signal.signal(getattr(signal, name), on_signal)

    reactor.callWhenRunning(lambda: deferred_from_coro(wrapper()))
    # Twisted's own SIGINT/SIGTERM handlers stop the reactor at once; ours replace them.
    reactor.addSystemEventTrigger("after", "startup", install_handlers)
    reactor.run(installSignalHandlers=True)
    if "error" in outcome:
        raise outcome["error"]
    if "value" not in outcome:  # the reactor stopped before main() ended
        if _shutdown.signum is not None:
            raise Interrupted(_shutdown.signum, forced=True)
        raise RuntimeError("the reactor stopped before the command's work was done")
    return outcome["value"]


async def crawl_jobs(settings: Settings, jobs: list[CrawlJob]) -> list[CrawlOutcome]:
    """Run ``jobs`` concurrently inside a running reactor; return each crawl's outcome."""
    from scrapy.crawler import AsyncCrawlerRunner, Crawler

    _shutdown.check()
    runner = track(AsyncCrawlerRunner(settings))
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
    outcomes = [_outcome(job, crawler) for job, crawler in zip(jobs, crawlers, strict=True)]
    if _shutdown.signum is not None:
        raise Interrupted(_shutdown.signum, _shutdown.forced, outcomes)
    return outcomes


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
