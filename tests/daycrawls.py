"""Crawls one site once per simulated day, all in one process: ``python -m tests.daycrawls PLAN``.

Starting Scrapy costs about two seconds of CPU per process, more than a crawl of one day of the
tiny world; a week of crawls in one process pays it once. ``PLAN`` is a JSON file::

    {"site": "roodlicht", "out": "/tmp/x", "at_once": 3, "settings": {...},
     "days": [{"day": 0, "base_url": "http://127.0.0.1:40123/", "clock": "2026-11-02T12:..."}]}

Each day's crawl runs against the sites serving that day (the test serves them), stamps its
items with that day's clock and writes them to ``out/day<N>.jsonl`` and its stats to
``out/day<N>.stats.json``; ``at_once`` crawls run at the same time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from scrapy.utils.reactor import install_reactor

REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m tests.daycrawls PLAN.json", file=sys.stderr)
        return 2
    plan = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    install_reactor(REACTOR)
    from scrapy.utils.log import configure_logging
    from twisted.internet import reactor as installed

    reactor: Any = installed
    configure_logging()
    failures: list[str] = []
    done = _run(plan, failures)
    done.addBoth(lambda _: reactor.stop())
    reactor.run()
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


def _run(plan: dict[str, Any], failures: list[str]) -> Any:
    from scrapy.crawler import CrawlerRunner
    from scrapy.utils.project import get_project_settings
    from twisted.internet import defer

    settings = get_project_settings()
    settings.setdict(plan["settings"], priority="cmdline")
    runner = CrawlerRunner(settings)
    spider = runner.spider_loader.load(plan["site"])
    out = Path(plan["out"])

    @defer.inlineCallbacks
    def waves() -> Generator[Any, Any, None]:
        for wave in _batches(plan["days"], int(plan.get("at_once", 1))):
            crawls = []
            for entry in wave:
                crawler = _crawler(runner, spider, settings, entry, out)
                crawl = runner.crawl(crawler, base_url=entry["base_url"])
                crawl.addErrback(_note(failures, f"day {entry['day']}"))
                crawls.append(crawl)
            yield defer.DeferredList(crawls)

    return waves()


def _crawler(runner: Any, spider: type, settings: Any, entry: dict[str, Any], out: Path) -> Any:
    from scrapy import signals
    from scrapy.crawler import Crawler

    day = int(entry["day"])
    own = settings.copy()
    own.set("LOVITURA_CLOCK", entry["clock"], priority="cmdline")
    feed = {str(out / f"day{day}.jsonl"): {"format": "jsonlines", "overwrite": True}}
    own.set("FEEDS", feed, priority="cmdline")
    crawler = Crawler(spider, own)
    stats_path = out / f"day{day}.stats.json"

    def write_stats(spider: Any = None, reason: str = "") -> None:
        stats = crawler.stats.get_stats() if crawler.stats else {}
        stats_path.write_text(json.dumps(stats, default=str, sort_keys=True), encoding="utf-8")

    crawler.signals.connect(write_stats, signal=signals.spider_closed, weak=False)
    return crawler


def _batches(entries: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(entries), max(1, size)):
        yield entries[start : start + max(1, size)]


def _note(failures: list[str], label: str) -> Callable[[Any], None]:
    def record(failure: Any) -> None:
        failures.append(f"{label}: {failure.getTraceback()}")

    return record


if __name__ == "__main__":
    sys.exit(main(sys.argv))
