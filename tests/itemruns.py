"""Helpers of the ingest and WARC tests: run `lovitura` in a child process, crawl demo sites day
by day into a database, and read back what an item leaves in the database in comparable form."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from fixtures.model import SITES
from fixtures.sites import DemoSites, serve
from fixtures.world import World
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.privacy.purpose import register
from tests.test_spiders import QUICK

ROOT = Path(__file__).resolve().parent.parent
PURPOSE = "TEST-INGEST"
# Everything an item leaves in the database, without row ids and run ids.
DATA_QUERIES = {
    "ads": "SELECT site, site_ad_id, url, title, text, nickname, age, place_text, posted_at, "
    "municipality_code, country, content_hash, first_seen_at, last_seen_at, gone_at FROM ads",
    "versions": "SELECT a.site, a.site_ad_id, v.valid_from, v.content_hash, v.title, "
    "v.place_text, v.phone_text FROM ad_versions v JOIN ads a ON a.id = v.ad_id",
    "observations": "SELECT a.site, a.site_ad_id, o.observed_on, o.observed_at, "
    "o.municipality_code FROM ad_observations o JOIN ads a ON a.id = o.ad_id",
    "phones": "SELECT a.site, a.site_ad_id, p.phone, p.first_seen_at, p.last_seen_at "
    "FROM ad_phones p JOIN ads a ON a.id = p.ad_id",
    "photos": "SELECT a.site, a.site_ad_id, p.url, p.phash, p.error, p.last_seen_at "
    "FROM ad_photos p JOIN ads a ON a.id = p.ad_id",
}


def lovitura(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``lovitura ARGS`` in a child process (without $LOVITURA_PURPOSE)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("LOVITURA_PURPOSE", None)
    command = [sys.executable, "-m", "lovitura_crawl.cli", *args]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def ingest(path: Path, db_url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``lovitura ingest PATH`` into ``db_url``, which must succeed."""
    done = lovitura(
        "ingest", str(path), "--db", db_url, "--purpose", PURPOSE, *extra, cwd=path.parent
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def registered(db_url: str, migrate: bool = False) -> str:
    """``db_url`` with the tests' purpose registered (migrated first with ``migrate``)."""
    if migrate:
        from lovitura_crawl.db.migrate import upgrade
        from lovitura_crawl.db.reference import load_municipalities

        upgrade(db_url)
        load_municipalities(make_engine(db_url))
    engine = make_engine(db_url)
    register(engine, PURPOSE, "ingest tests", "test data", "tests")
    engine.dispose()
    return db_url


def snapshot(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of :data:`DATA_QUERIES`, sorted."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        found = {
            name: sorted(map(tuple, conn.execute(text(sql)))) for name, sql in DATA_QUERIES.items()
        }
    engine.dispose()
    return found


def crawl_days(
    site: str,
    world: World,
    served: list[DemoSites],
    db_url: str,
    out: Path,
    settings: dict[str, Any] | None = None,
) -> None:
    """Crawl ``site`` once per served day into ``db_url`` (``tests.daycrawls``, pipelines on)."""
    folder = out / site
    folder.mkdir()
    plan = {
        "site": site,
        "out": str(folder),
        "at_once": 1,
        "settings": {
            **QUICK,
            "LOG_LEVEL": "WARNING",
            "LOVITURA_DATABASE_URL": db_url,
            "LOVITURA_PURPOSE": PURPOSE,
            **(settings or {}),
        },
        "days": [
            {"day": day, "base_url": sites.urls[site], "clock": world.observed_at(day)}
            for day, sites in enumerate(served)
        ],
    }
    (folder / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    env = {
        **os.environ,
        "SCRAPY_SETTINGS_MODULE": "lovitura_crawl.settings",
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "tests.daycrawls", str(folder / "plan.json")]
    done = subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]


@contextmanager
def serving(world: World, days: int) -> Iterator[list[DemoSites]]:
    """The four demo sites once per day ``0 .. days - 1``, each showing its day."""
    running: list[DemoSites] = []
    try:
        for day in range(days):
            running.append(serve(world, day=day, ports=dict.fromkeys(SITES, 0), fast=True))
        yield running
    finally:
        for sites in running:
            sites.stop()
