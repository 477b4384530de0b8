"""``lovitura demo``: the whole chain on the demo world.

Starts the four demo sites in a child process, crawls them once per simulated day, runs the
pipelines, links the ads into persons and networks after each day, builds the trails, and writes
action-day reports and the world's truth into the output folder.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from lovitura_crawl.crawl import (
    CrawlJob,
    check_interrupted,
    crawl_jobs,
    project_settings,
    run_reactor,
)
from lovitura_crawl.db import models
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.db.migrate import downgrade, upgrade
from lovitura_crawl.db.reference import load_municipalities

logger = logging.getLogger(__name__)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
CRAWL_HOUR = dtime(12, 0)
# The demo sites serve prikbord's deliberate slowness four times shorter: slow pages, the
# Retry-After wait, and a rate limit of 40 instead of 10 requests a second. All of it still
# happens and is still handled; 28 simulated days just take minutes, not most of an hour.
DEMO_PACE = 0.25
# The demo sites are local processes of ours, not somebody's server: the demo crawls them without
# the production pause between requests and without AutoThrottle (which doubles the time per page
# when the machine is busy), two requests at a time per site, so that one request is downloaded
# while the crawler parses the other (nachtvlinder gets a third browser tab, as its ad pages keep
# theirs for the "toon nummer" click). Prikbord keeps a pause that stays below its (scaled) rate
# limit of 40 requests a second (0.035 s, varied 0.5x-1.5x by DOWNLOAD_DELAY_JITTER: 29 a second on
# average); it still sheds load with a 429 now and then, which the crawler waits out. Nachtvlinder
# is served over http only, so only the http download handler drives a browser: scrapy-playwright
# starts a Playwright driver for every handler it is set for, each day. Measured with `lovitura demo
# --days 3` at load 11-15 (other work on the machine; before the sites' listen backlog was raised):
# one request at a time 4:15 min, two at a time 3:28, plus the sites making each day's new photos
# ahead in a child process (`sites serve --photos-ahead`) 2:54; the first day, when all four sites
# ask for 1,400 new photos at once, gains the most. The whole default demo (28 days) took 13:21 min
# and 538 s of CPU at load 11-16 (mean 13), against 18:45 min and 685 s before these settings and
# cheaper photos, at load 15-20; on a quiet machine 8:03 min and 551 s of CPU, a day after the
# first taking 12 to 19 s: nachtvlinder's browser is the longest crawl of most days (median
# 12.9 s), then prikbord's deliberate slowness (10.5 s), roodlicht 3.1 s, escortgids 1.8 s.
_HTTP_BROWSER = {"http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"}
DEMO_SITE_SETTINGS: dict[str, dict[str, Any]] = {
    "roodlicht": {"DOWNLOAD_DELAY": 0, "CONCURRENT_REQUESTS_PER_DOMAIN": 2},
    "nachtvlinder": {
        "DOWNLOAD_DELAY": 0,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
        "LOVITURA_BROWSER_PAGES": 3,
        "PLAYWRIGHT_DOWNLOAD_HANDLERS": _HTTP_BROWSER,
    },
    "escortgids": {"DOWNLOAD_DELAY": 0, "CONCURRENT_REQUESTS_PER_DOMAIN": 2},
    "prikbord": {"DOWNLOAD_DELAY": 0.035, "CONCURRENT_REQUESTS_PER_DOMAIN": 2},
}


class DemoError(RuntimeError):
    """The demo could not run (the sites did not start, or the database is not empty)."""


@dataclass
class DemoSummary:
    seed: int
    days: int
    db_url: str
    out_dir: Path
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    reports: list[Path] = field(default_factory=list)
    evaluation: dict[str, Any] | None = None


class SiteProcess:
    """The demo sites, served by ``lovitura sites serve --control`` in a child process."""

    def __init__(self, seed: int, scale: str, days: int, pace: float = DEMO_PACE) -> None:
        command = [
            sys.executable,
            "-m",
            "lovitura_crawl.cli",
            "sites",
            "serve",
            "--seed",
            str(seed),
            "--scale",
            scale,
            "--days",
            str(days),
            "--day",
            "0",
            "--pace",
            str(pace),
            "--free-ports",
            "--control",
            "--photos-ahead",
        ]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        ready = self._read()
        self.urls: dict[str, str] = ready["urls"]
        self.start_date = date.fromisoformat(ready["start_date"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait(timeout=10)
            raise DemoError(f"the demo sites exited with code {code} before they were ready")
        return dict(json.loads(line))

    def set_day(self, day: int) -> None:
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(f"day {day}\n")
        stdin.flush()
        answer = self._read()
        if answer.get("day") != day:
            raise DemoError(f"the demo sites did not switch to day {day}: {answer}")

    def stop(self) -> None:
        """Ask the sites to stop (they stop their photo maker too), else terminate them."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("stop\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
                return
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def log_settings(path: Path, level: str) -> dict[str, Any]:
    """Scrapy log settings that keep the whole run's log in ``path``, emptied here, once.

    Every crawler (four a day) re-opens the log file with the settings it is given: in append
    mode, so that each day's crawl adds to the file instead of replacing it.
    """
    path.write_text("", encoding="utf-8")
    return {"LOG_FILE": str(path), "LOG_FILE_APPEND": True, "LOG_LEVEL": level}


def prepare_database(url: str, reset: bool) -> Engine:
    """Migrate ``url`` to head; refuse one that already holds ads unless ``reset``."""
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        n_ads = conn.execute(select(func.count()).select_from(models.Ad)).scalar_one()
    if n_ads and not reset:
        raise DemoError(
            f"the database already holds {n_ads} ads; give --reset to wipe it for the demo, "
            "or --db with another database"
        )
    if n_ads:
        engine.dispose()
        downgrade(url)
        upgrade(url)
        engine = make_engine(url)
    load_municipalities(engine)
    return engine


def crawl_clock(start_date: date, day: int) -> datetime:
    """The moment the daily crawl of simulated ``day`` is stamped with (noon, Amsterdam)."""
    return datetime.combine(start_date + timedelta(days=day), CRAWL_HOUR, tzinfo=AMSTERDAM)


def link_day(engine: Engine, purpose: str, key: bytes) -> None:
    """Link the new ads into persons and networks, rebuild the trails, refresh pseudonyms."""
    from lovitura_crawl.privacy import identifiers
    from lovitura_crawl.privacy.purpose import record_link_run
    from matching.link import link
    from matching.trails import build_trails

    link(engine)
    build_trails(engine)
    with engine.connect() as conn:
        run_id = conn.execute(select(func.max(models.LinkRun.id))).scalar_one()
    if run_id is not None:
        record_link_run(engine, int(run_id), purpose)
    identifiers.sync(engine, key)


def count_rows(engine: Engine) -> dict[str, int]:
    tables = {
        "ads": models.Ad,
        "phones": models.AdPhone,
        "photos": models.AdPhoto,
        "persons": models.Person,
        "networks": models.Network,
        "stays": models.TrailStay,
        "moves": models.TrailMove,
        "anomalies": models.CrawlAnomaly,
    }
    with engine.connect() as conn:
        counts = {
            name: int(conn.execute(select(func.count()).select_from(model)).scalar_one())
            for name, model in tables.items()
        }
        counts["distinct phones"] = int(
            conn.execute(select(func.count(func.distinct(models.AdPhone.phone)))).scalar_one()
        )
    return counts


def busiest_municipalities(engine: Engine, limit: int = 3) -> list[str]:
    """The municipalities where most persons stayed: the demo writes a report for each."""
    query = (
        select(
            models.TrailStay.municipality_code,
            func.count(func.distinct(models.TrailStay.person_id)),
        )
        .where(models.TrailStay.municipality_code.is_not(None))
        .group_by(models.TrailStay.municipality_code)
        .order_by(
            func.count(func.distinct(models.TrailStay.person_id)).desc(),
            models.TrailStay.municipality_code,
        )
        .limit(limit)
    )
    with engine.connect() as conn:
        return [code for code, _ in conn.execute(query) if code is not None]


def run_demo(
    *,
    seed: int,
    days: int,
    scale: str,
    db_url: str,
    out_dir: Path,
    reset: bool,
    on_day: Callable[[int, list[Any]], None] | None = None,
    on_stage: Callable[[int, str], None] | None = None,
    log_level: str = "INFO",
) -> DemoSummary:
    """Run the demo end to end and return its summary.

    ``on_stage(day, stage)`` is called when a stage starts: "crawl" and "link" for each day,
    then "report" (with ``day`` equal to ``days``); ``on_day(day, outcomes)`` when a day is done.
    """
    stage = on_stage or (lambda day, name: None)
    from lovitura_crawl.privacy.pseudonym import demo_key
    from lovitura_crawl.privacy.purpose import demo_purpose

    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = prepare_database(db_url, reset)
    for stale in out_dir.glob("report-GM*.csv"):  # of an earlier run, on data now gone
        stale.unlink()
    key = demo_key(out_dir)
    purpose = demo_purpose(engine)
    sites = SiteProcess(seed, scale, days)
    try:
        settings = project_settings(
            {
                "LOVITURA_DATABASE_URL": db_url,
                "LOVITURA_PURPOSE": purpose,
                **log_settings(out_dir / "crawl.log", log_level),
                "AUTOTHROTTLE_ENABLED": False,  # see DEMO_SITE_SETTINGS
            }
        )

        async def all_days() -> None:
            import asyncio

            for day in range(days):
                stage(day, "crawl")
                await asyncio.to_thread(sites.set_day, day)
                clock = crawl_clock(sites.start_date, day)
                jobs = [
                    CrawlJob(site, clock, url, settings=DEMO_SITE_SETTINGS.get(site, {}))
                    for site, url in sorted(sites.urls.items())
                ]
                outcomes = await crawl_jobs(settings, jobs)
                stage(day, "link")
                await asyncio.to_thread(link_day, engine, purpose, key)
                if on_day is not None:
                    on_day(day, outcomes)
                check_interrupted()  # a first Ctrl-C or SIGTERM: stop after the day's linking

        run_reactor(all_days, settings)
    finally:
        sites.stop()

    stage(days, "report")
    summary = DemoSummary(seed, days, db_url, out_dir)
    summary.reports.extend(_reports(engine, out_dir, purpose, key))
    summary.reports.extend(_truth_and_evaluation(engine, seed, scale, days, out_dir, summary))
    summary.counts = count_rows(engine)
    summary.seconds = time.monotonic() - started
    engine.dispose()
    return summary


def _reports(engine: Engine, out_dir: Path, purpose: str, key: bytes) -> list[Path]:
    """Action-day reports for the busiest municipalities, pseudonymised and audited."""
    from lovitura_crawl.privacy import audit
    from lovitura_crawl.report import municipality_report, pseudonym_labels

    paths = []
    for code in busiest_municipalities(engine):
        result = municipality_report(
            engine, code, out_dir / f"report-{code}.csv", phone_label=pseudonym_labels(key)
        )
        audit.append(
            engine,
            audit.current_actor(),
            purpose,
            "demo report",
            {"municipality": code},
            result.rows,
            result.sha256,
            file_path=result.path,
        )
        paths.append(result.path)
    return paths


def _truth_and_evaluation(
    engine: Engine, seed: int, scale: str, days: int, out_dir: Path, summary: DemoSummary
) -> list[Path]:
    from fixtures.truth import write_truth
    from fixtures.world import build_world
    from matching.evaluate import evaluate

    truth_dir = out_dir / "truth"
    write_truth(build_world(seed, scale=scale, days=days), truth_dir)
    summary.evaluation = evaluate(engine, truth_dir)
    path = out_dir / "evaluation.json"
    path.write_text(json.dumps(summary.evaluation, indent=2, default=str), encoding="utf-8")
    return [path]
