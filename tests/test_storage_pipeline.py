"""The storage pipeline: items acknowledged only when committed, and the run's true outcome.

The crawls run in a child process (``tests.storeruns``): Scrapy's reactor starts once per
process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lovitura_crawl.db import models
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.db.store import AdStore
from tests.crawlruns import run_module
from tests.storeruns import ADS, BROKEN, SECRET

ROOT = Path(__file__).resolve().parent.parent


def test_run_outcome_is_how_the_crawl_closed(db_url: str) -> None:
    engine = make_engine(db_url)
    # Seen the day before and not since: gone after a complete crawl that finished by itself.
    old = {"site": "roodlicht", "site_ad_id": "old", "url": "http://127.0.0.1:9/ad/old"}
    AdStore(engine).save([{**old, "observed_at": "2026-11-02T12:00:00+01:00"}])
    done = run_module("tests.storeruns", db_url, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    crawls = {r["crawl"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert {name: r["reason"] for name, r in crawls.items()} == {
        "closespider": "closespider_itemcount",
        "stop": "shutdown",
        "finished": "finished",
        "broken": "finished",
    }
    assert all(r["stored_when_scraped"] and r["scraped"] > 0 for r in crawls.values())
    assert [crawls[name]["gone"] for name in crawls] == [0, 0, 1, 0]
    # The broken ad's transaction failed (with whatever queued with it), the rest is stored,
    # and no ad text reached the log.
    broken = crawls["broken"]
    assert broken["failed"] >= 1 and broken["scraped"] + broken["failed"] == ADS
    assert SECRET not in done.stderr and "failed (ValueError)" in done.stderr

    runs = models.CrawlRun.__table__
    ads = models.Ad.__table__
    anomalies = models.CrawlAnomaly.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(runs.c.outcome, runs.c.listing_complete, runs.c.n_items, runs.c.stats).order_by(
                runs.c.id
            )
        ).all()
    assert [(r.outcome, r.listing_complete) for r in rows] == [
        ("closespider_itemcount", False),
        ("shutdown", False),
        ("finished", True),
        ("finished", True),
    ]
    for row, name in zip(rows, crawls, strict=True):
        assert row.n_items == crawls[name]["scraped"]
        assert row.stats["finish_reason"] == row.outcome
    with engine.connect() as conn:
        stored = set(
            conn.execute(select(ads.c.site_ad_id).where(ads.c.site_ad_id.like("b%"))).scalars()
        )
        failed = (
            conn.execute(select(anomalies.c.site_ad_id).where(anomalies.c.reason == "write-failed"))
            .scalars()
            .all()
        )
    assert f"b{BROKEN}" in failed and f"b{BROKEN}" not in stored
    assert len(stored) + len(failed) == ADS and not stored & set(failed)
    engine.dispose()


@pytest.mark.parametrize("purpose", [None, "ZAAK-ONBEKEND"])
def test_scrapy_crawl_without_a_registered_purpose_stores_nothing(
    db_url: str, purpose: str | None
) -> None:
    """`scrapy crawl` (and Scrapyd) skip the `lovitura` command's checks: the pipeline refuses."""
    command = [sys.executable, "-m", "scrapy", "crawl", "roodlicht"]
    command += ["-s", "LOVITURA_CLOCK=2026-11-03T12:00:00+01:00"]
    command += ["-s", 'LOVITURA_SITE_URLS={"roodlicht": "http://127.0.0.1:9/"}']
    if purpose:
        command += ["-s", f"LOVITURA_PURPOSE={purpose}"]
    env = {k: v for k, v in os.environ.items() if k != "LOVITURA_PURPOSE"}
    env["LOVITURA_DATABASE_URL"] = db_url
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0
    expected = "not registered" if purpose else "no purpose given"
    assert "is refused" in done.stderr and expected in done.stderr
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(models.CrawlRun)).scalar_one() == 0
    engine.dispose()
