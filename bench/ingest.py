"""Ingest throughput: ``lovitura ingest`` against the crawl's item pipelines, on the same items.

Writes the first ``--items`` observations of the demo world (default 10,000) as a JSON Lines
file with local photo files (``fixtures.world_items``) and in one reactor session runs, each
into a fresh SQLite database:

* **ingest**: :class:`lovitura_crawl.ingest_items.IngestSpider` reading the file: parsing,
  checking, then every item pipeline, photos read from the local files;
* **crawl pipelines**: the same items handed to the same ``ITEM_PIPELINES`` (the crawl's own
  pipeline objects, built by Scrapy from the project settings) from memory, with the same flow
  control and the same photo files: what the crawl's pipelines cost per item, so the ratio
  ingest / crawl pipelines is the ingest's own overhead (reading, checking);
* with ``--http-photos``, also **crawl pipelines, photos by HTTP**: the same, with the photos
  fetched over HTTP (the files served on loopback by Python's ``http.server`` in a child
  process) as a crawl fetches them. Measured on 300 items it ran at 0.6 items/s against 12 for
  the ingest: after the photo downloads, items complete only at the engine's 5 s heartbeat
  when nothing else (no page) keeps the engine busy, so this figure says little about a crawl.

A warm-up run of 50 items (not measured) starts the photo worker process and loads the
pipelines' data first. Items per second is items stored over Scrapy's ``elapsed_time_seconds``
of the run (spider open to close, both ends included alike). The figure to hold is
ingest / crawl pipelines >= 1 (the issue's target; about 1 is the best to expect, as the
ingest runs these very pipelines).
Run it under ``nice`` on a shared machine:

    nice .venv/bin/python bench/ingest.py --items 10000
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from crawl import fresh_database  # bench/crawl.py
from scrapy.crawler import AsyncCrawlerRunner, Crawler
from scrapy.settings import Settings

from fixtures.world import build_world
from fixtures.world_items import write_world_items
from lovitura_crawl.crawl import run_reactor
from lovitura_crawl.ingest_items import IngestSpider, IngestSummary, ingest_settings
from lovitura_crawl.items import item_from_dict
from lovitura_crawl.privacy.purpose import DEMO_PURPOSE

QUICK = {  # the demo sites run with --fast here: no need to be polite to them
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
    "LOG_LEVEL": "WARNING",
    "LOVITURA_ALLOWED_PRIVATE_HOSTS": ["127.0.0.1"],
}


class MemorySpider(IngestSpider):
    """The ingest spider's flow control, with items from memory instead of a file."""

    name = "bench-items"

    def __init__(self, *args: Any, items: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.items = items

    async def _items(self) -> AsyncIterator[Any]:
        for number, data in enumerate(self.items, start=1):
            item = item_from_dict(json.loads(json.dumps(data)))  # a fresh copy per run
            self.summary.lines = number
            self._use_known_photos(item)  # as the ingest does (a no-op for photos by URL)
            await self._wait_for_room(item)
            self._running[id(item)] = (number, (item["site"], item["site_ad_id"]))
            self._ads[(item["site"], item["site_ad_id"])] += 1
            yield item


async def one_run(
    settings: Settings, spider: type[IngestSpider], **kwargs: Any
) -> tuple[int, float, IngestSummary]:
    summary = IngestSummary(source=spider.name)
    crawler = Crawler(spider, settings)
    await AsyncCrawlerRunner(settings).crawl(crawler, summary=summary, **kwargs)
    stats = crawler.stats.get_stats() if crawler.stats else {}
    prefix = "lovitura/photo/"
    summary.photos.update({k[len(prefix) :]: v for k, v in stats.items() if k.startswith(prefix)})
    return int(stats.get("item_scraped_count", 0)), float(stats["elapsed_time_seconds"]), summary


def with_local_paths(items: list[dict[str, Any]], folder: Path) -> list[dict[str, Any]]:
    for item in items:
        for photo in item.get("photos") or []:
            photo["path"] = str(folder / photo["path"])
    return items


def with_http_urls(items: list[dict[str, Any]], base: str) -> list[dict[str, Any]]:
    for item in items:
        for photo in item.get("photos") or []:
            photo.update(url=base + photo["path"].removeprefix("photos/"), path=None)
    return items


def photo_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m http.server`` serving ``folder`` on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    proc = subprocess.Popen(
        command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}/"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000, help="Items to ingest.")
    parser.add_argument("--seed", type=int, default=1, help="Seed of the demo world.")
    parser.add_argument(
        "--http-photos", action="store_true", help="Also the pipelines with photos by HTTP."
    )
    args = parser.parse_args()

    world = build_world(args.seed, scale="demo")
    with tempfile.TemporaryDirectory(prefix="lovitura-bench-ingest-") as tmp:
        folder = Path(tmp)
        items_file = folder / "in" / "items.jsonl"
        started = time.monotonic()
        count = write_world_items(world, items_file, limit=args.items)
        print(f"wrote {count} items in {time.monotonic() - started:.0f} s", file=sys.stderr)
        lines = items_file.read_text(encoding="utf-8").splitlines()
        server, base = photo_server(items_file.parent / "photos")
        try:
            figures = run_all(folder, items_file, lines, base if args.http_photos else None)
        finally:
            server.terminate()
            server.wait(timeout=10)
    figures["items_in_file"] = count
    for other in ("crawl_pipelines", "crawl_pipelines_http_photos"):
        if other in figures:
            figures[f"ratio_ingest_to_{other}"] = round(
                figures["ingest"]["items_per_second"] / figures[other]["items_per_second"], 2
            )
    print(json.dumps(figures, indent=2))
    return 0


def run_all(folder: Path, items_file: Path, lines: list[str], base: str | None) -> dict[str, Any]:
    base_settings = ingest_settings(fresh_database(folder, "unused"), DEMO_PURPOSE, QUICK)

    def settings_for(name: str) -> Settings:
        own = base_settings.copy()
        own.set("LOVITURA_DATABASE_URL", fresh_database(folder, name), priority="cmdline")
        return own

    async def runs() -> dict[str, Any]:
        results: dict[str, Any] = {}
        local = with_local_paths([json.loads(x) for x in lines], items_file.parent)
        plans: list[tuple[str, type[IngestSpider], dict[str, Any]]] = [
            ("ingest", IngestSpider, {"path": str(items_file)}),
            ("crawl_pipelines", MemorySpider, {"path": "-", "items": local}),
        ]
        if base is not None:
            by_http = with_http_urls([json.loads(x) for x in lines], base)
            plans.append(
                ("crawl_pipelines_http_photos", MemorySpider, {"path": "-", "items": by_http})
            )
        # Warm-up, not measured: the photo worker process starts, the pipelines load their data.
        warm = with_local_paths([json.loads(x) for x in lines[:50]], items_file.parent)
        await one_run(settings_for("warm-up"), MemorySpider, path="-", items=warm)
        for name, spider, kwargs in plans:
            stored, seconds, summary = await one_run(settings_for(name), spider, **kwargs)
            results[name] = {
                "items": stored,
                "seconds": round(seconds, 1),
                "items_per_second": round(stored / seconds, 1),
                "photos": dict(summary.photos),
                "photos_known": summary.photos_known,
            }
            print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
        return results

    return run_reactor(runs, base_settings)


if __name__ == "__main__":
    sys.exit(main())
