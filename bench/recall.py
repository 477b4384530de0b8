"""Recall of daily crawls over the demo world, and what incremental crawling saves each day.

Serves the demo world's four sites in a child process (as ``lovitura demo`` does: prikbord
with its rate limit, 429s, slow pages and server errors, at the demo's pace, see
``lovitura_crawl.demo.DEMO_PACE``), crawls every simulated day once with the
full pipeline into a fresh SQLite database, and compares what was stored with the truth:

* recall per site: the share of (ad, day) pairs the truth says were online on a crawled day
  that have an observation; target 100 % for roodlicht, escortgids and prikbord, >= 99 % for
  nachtvlinder;
* phantom observations (none the truth lacks) and duplicate rows (none);
* per day: seconds, ad pages fetched and skipped (``lovitura/detail/...`` stats).

``--quick`` drops the politeness delays for the loopback sites, except prikbord's own
(its rate limit must be respected); without it the crawl is as polite as in production.

    .venv/bin/python bench/recall.py --days 28 --quick
    .venv/bin/python bench/recall.py --days 2 --quick --sites roodlicht,nachtvlinder
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import text

from fixtures.model import SITES
from fixtures.world import World, build_world
from lovitura_crawl.crawl import CrawlJob, crawl_jobs, project_settings, run_reactor
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.db.migrate import upgrade
from lovitura_crawl.db.reference import load_municipalities
from lovitura_crawl.demo import SiteProcess, crawl_clock
from lovitura_crawl.privacy.purpose import demo_purpose

QUICK = {"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False, "CONCURRENT_REQUESTS_PER_DOMAIN": 8}
POLITE_ANYWAY = {"prikbord"}  # rate-limited: keeps its site definition's politeness
TARGET = {"nachtvlinder": 0.99}  # the others: 1.0


def crawl_days(
    sites: SiteProcess, names: list[str], days: int, db_url: str, quick: bool
) -> list[dict[str, Any]]:
    """Crawl each day once, all sites together; per day, seconds and per-site stats."""
    purpose = demo_purpose(make_engine(db_url))
    settings = project_settings(
        {"LOVITURA_DATABASE_URL": db_url, "LOG_LEVEL": "WARNING", "LOVITURA_PURPOSE": purpose}
    )
    per_day: list[dict[str, Any]] = []

    async def all_days() -> None:
        for day in range(days):
            await asyncio.to_thread(sites.set_day, day)
            clock = crawl_clock(sites.start_date, day)
            jobs = [
                CrawlJob(
                    name,
                    clock,
                    sites.urls[name],
                    settings=QUICK if quick and name not in POLITE_ANYWAY else {},
                )
                for name in names
            ]
            started = time.monotonic()
            outcomes = await crawl_jobs(settings, jobs)
            seconds = time.monotonic() - started
            per_day.append({"day": day, "seconds": seconds, "sites": _day_stats(outcomes)})
            print(_day_line(per_day[-1]), flush=True)

    run_reactor(all_days, settings)
    return per_day


def _day_stats(outcomes: list[Any]) -> dict[str, dict[str, Any]]:
    stats: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        fetched = sum(
            int(v) for k, v in outcome.stats.items() if k.startswith("lovitura/detail/fetch/")
        )
        stats[outcome.site] = {
            "items": outcome.items,
            "finish": outcome.finish_reason,
            "fetched": fetched,
            "skipped": int(outcome.stats.get("lovitura/detail/skipped", 0)),
            "complete": bool(outcome.stats.get("lovitura/listing/complete")),
            "requests": int(outcome.stats.get("downloader/request_count", 0)),
            "seconds": float(outcome.stats.get("elapsed_time_seconds", 0.0)),
        }
    return stats


def _day_line(day: dict[str, Any]) -> str:
    parts = [
        f"{site} {s['items']} ads ({s['fetched']} fetched, {s['skipped']} skipped, "
        f"{s['requests']} requests, {s['seconds']:.0f} s)"
        for site, s in sorted(day["sites"].items())
    ]
    return f"day {day['day'] + 1:2d}: {day['seconds']:6.1f} s  " + "; ".join(parts)


def recall(db_url: str, world: World, names: list[str], days: int) -> dict[str, dict[str, Any]]:
    """Per site: truth (ad, day) pairs, found, missed, phantom, duplicate rows."""
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.site, a.site_ad_id, o.observed_on FROM ad_observations o "
                "JOIN ads a ON a.id = o.ad_id"
            )
        ).all()
        duplicate_ads = conn.execute(
            text(
                "SELECT COUNT(*) FROM (SELECT site, site_ad_id FROM ads "
                "GROUP BY site, site_ad_id HAVING COUNT(*) > 1) AS d"
            )
        ).scalar_one()
    engine.dispose()
    found: dict[str, Counter[tuple[str, int]]] = defaultdict(Counter)
    for site, ad_id, observed_on in rows:
        on = observed_on if isinstance(observed_on, date) else date.fromisoformat(observed_on)
        found[site][(ad_id, (on - world.start_date).days)] += 1
    figures = {}
    for site in names:
        truth = {(ad.site_ad_id, day) for day in range(days) for ad in world.ads_on(site, day)}
        seen = found[site]
        hit = len(truth & set(seen))
        figures[site] = {
            "truth": len(truth),
            "found": hit,
            "recall": hit / len(truth) if truth else 1.0,
            "missed": sorted(truth - set(seen))[:10],
            "phantom": len(set(seen) - truth),
            "duplicate_observations": sum(n - 1 for n in seen.values() if n > 1),
            "duplicate_ads": int(duplicate_ads),
        }
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", choices=["tiny", "demo"], default="demo")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--sites", default=",".join(SITES), help="comma-separated site names")
    parser.add_argument("--quick", action="store_true", help="no politeness delays (loopback)")
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    names = [name for name in args.sites.split(",") if name]
    world = build_world(args.seed, scale=args.scale, days=args.days)
    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.db or f"sqlite:///{Path(tmp) / 'recall.sqlite'}"
        upgrade(db_url)
        load_municipalities(make_engine(db_url))
        sites = SiteProcess(args.seed, args.scale, args.days)
        started = time.monotonic()
        try:
            per_day = crawl_days(sites, names, args.days, db_url, args.quick)
        finally:
            sites.stop()
        total = time.monotonic() - started
        figures = recall(db_url, world, names, args.days)
    print(f"\n{args.days} days, {len(names)} sites, {total:.0f} s in all")
    print(f"{'site':14} {'truth':>7} {'found':>7} {'recall':>8} {'target':>7} phantom dupl")
    for site, f in figures.items():
        target = TARGET.get(site, 1.0)
        print(
            f"{site:14} {f['truth']:7d} {f['found']:7d} {f['recall']:8.2%} {target:7.0%} "
            f"{f['phantom']:7d} {f['duplicate_observations'] + f['duplicate_ads']:4d}"
        )
        if f["missed"]:
            print(f"  first missed (ad, day): {f['missed']}")
    if args.json:
        result = {"seconds": total, "days": per_day, "recall": figures}
        args.json.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
