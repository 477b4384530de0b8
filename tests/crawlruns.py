"""Helpers of the crawl-operation tests: run `lovitura crawl` in a child process against demo
sites served by the test, and read back what the database holds in comparable form."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import text

from fixtures.world import World
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.db.migrate import upgrade
from lovitura_crawl.db.reference import load_municipalities
from lovitura_crawl.demo import crawl_clock
from lovitura_crawl.privacy.purpose import demo_purpose

QUICK = {  # the test sites run with fast=True: no need to be polite to them
    "DOWNLOAD_DELAY": "0",
    "AUTOTHROTTLE_ENABLED": "False",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "8",
    "LOVITURA_PHOTO_WORKERS": "1",
    "LOG_LEVEL": "INFO",
}
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Finished:
    returncode: int
    seconds: float
    log: str


def prepare(db_url: str) -> str:
    """Migrate the database and register the demo purpose; returns the purpose's code."""
    engine = make_engine(db_url)
    upgrade(db_url)
    load_municipalities(engine)
    purpose = demo_purpose(engine)
    engine.dispose()
    return purpose


def crawl_command(
    sites: list[str],
    urls: dict[str, str],
    db_url: str,
    clock: str,
    settings: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> list[str]:
    command = [sys.executable, "-m", "lovitura_crawl.cli", "crawl", *sites, "--db", db_url]
    command += ["--purpose", prepare(db_url), "--clock", clock, *extra]
    for site in sites:
        command += ["--site-url", f"{site}={urls[site]}"]
    for name, value in {**QUICK, **(settings or {})}.items():
        command += ["-s", f"{name}={value}"]
    return command


def start(command: list[str], cwd: Path, log: Path | None = None) -> subprocess.Popen[str]:
    """Start a crawl in its own process group (so a kill reaches its photo workers too).

    Its output goes to pipes, or to the file ``log`` when several crawls run at once: a crawl
    whose pipe nobody reads blocks when the pipe is full.
    """
    output: Any = subprocess.PIPE if log is None else log.open("w", encoding="utf-8")
    return subprocess.Popen(
        command,
        cwd=cwd,
        stdout=output,
        stderr=subprocess.STDOUT if log is not None else subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def run(command: list[str], cwd: Path, timeout: float = 300) -> Finished:
    started = time.monotonic()
    proc = start(command, cwd)
    try:
        _, log = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        raise
    return Finished(proc.returncode, time.monotonic() - started, log)


def run_module(module: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``python -m module args...`` from the project folder, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the crawl and every process of its group, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def day_clock(world: World, day: int) -> str:
    return crawl_clock(world.start_date, day).isoformat()


def truth_observations(world: World, site: str, days: range) -> set[tuple[str, int]]:
    """(site_ad_id, day) of every ad the world shows on ``site`` on those days."""
    return {(ad.site_ad_id, day) for day in days for ad in world.ads_on(site, day)}


def found_observations(db_url: str, world: World, site: str) -> Counter[tuple[str, int]]:
    """(site_ad_id, day) of every stored observation of ``site``, counted."""
    query = text(
        "SELECT a.site_ad_id, o.observed_on FROM ad_observations o "
        "JOIN ads a ON a.id = o.ad_id WHERE a.site = :site"
    )
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(query, {"site": site}).all()
    engine.dispose()
    return Counter((ad_id, (_day(on) - world.start_date).days) for ad_id, on in rows)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# What a crawl stored, without the ids and run ids that differ between equal crawls.
SNAPSHOT_QUERIES = {
    "ads": "SELECT site, site_ad_id, url, title, text, nickname, age, place_text, posted_at, "
    "first_seen_at, last_seen_at, gone_at, municipality_code, country, content_hash, "
    "listing_signature, detail_fetched_at FROM ads",
    "ad_observations": "SELECT a.site, a.site_ad_id, o.observed_on, o.observed_at, "
    "o.municipality_code, o.country FROM ad_observations o JOIN ads a ON a.id = o.ad_id",
    "ad_versions": "SELECT a.site, a.site_ad_id, v.valid_from, v.content_hash, v.title, v.text, "
    "v.place_text, v.phone_text, v.municipality_code FROM ad_versions v JOIN ads a "
    "ON a.id = v.ad_id",
    "ad_phones": "SELECT a.site, a.site_ad_id, p.phone, p.field, p.start, p.end, "
    "p.first_seen_at, p.last_seen_at FROM ad_phones p JOIN ads a ON a.id = p.ad_id",
    "ad_photos": "SELECT a.site, a.site_ad_id, p.url, p.position, p.phash, p.error, "
    "p.first_seen_at, p.last_seen_at FROM ad_photos p JOIN ads a ON a.id = p.ad_id",
}


def snapshot(db_url: str) -> dict[str, Counter[tuple[Any, ...]]]:
    """Every row of the crawl tables, as multisets of comparable tuples."""
    engine = make_engine(db_url)
    tables: dict[str, Counter[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table, query in SNAPSHOT_QUERIES.items():
            rows = conn.execute(text(query)).all()
            tables[table] = Counter(tuple(str(value) for value in row) for row in rows)
    engine.dispose()
    return tables


def difference(
    reference: dict[str, Counter[tuple[Any, ...]]], other: dict[str, Counter[tuple[Any, ...]]]
) -> dict[str, tuple[int, int]]:
    """Per table: (rows of the reference missing from ``other``, rows ``other`` has in excess)."""
    return {
        table: (
            sum((reference[table] - other[table]).values()),
            sum((other[table] - reference[table]).values()),
        )
        for table in reference
    }
