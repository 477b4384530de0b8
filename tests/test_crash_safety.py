"""`kill -9` at any moment followed by a rerun loses no ad and duplicates no row.

Two crawls of five days of the tiny world, each day a crawl of roodlicht and prikbord (its
photo page and broken photos included) by `lovitura crawl` in a child process:

* the reference: one uninterrupted crawl per day;
* the killed one: on each day the crawl is killed with SIGKILL (its whole process group) at
  seeded random moments between its start and the reference's duration, 20 kills in all, each
  followed by a rerun of the same day, which may itself be killed, until one finishes.

Every row of ads, observations, versions, phones and photos must be the same in both
databases; the killed runs must end up recorded as ``killed``, none left ``running``.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from fixtures.model import SITES
from fixtures.sites import DemoSites, serve
from fixtures.world import World, build_world
from lovitura_crawl.db.engine import make_engine
from tests.crawlruns import crawl_command, day_clock, difference, kill, run, snapshot, start

SITES_UNDER_TEST = ["roodlicht", "prikbord"]
KILLS = 20
DAYS = 5  # of the tiny world's seven: enough for new, changed, unchanged and gone ads
SEED = 20261102


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(1, scale="tiny")


def fresh_sites(world: World, ports: dict[str, int] | None = None) -> DemoSites:
    """New servers for each crawl (prikbord's first-request-of-the-day errors start over), on
    the same ports, so that URLs and content hashes compare."""
    return serve(world, day=0, ports=ports or dict.fromkeys(SITES, 0), fast=True)


def ports_of(running: DemoSites) -> dict[str, int]:
    return {name: int(url.rstrip("/").rsplit(":", 1)[1]) for name, url in running.urls.items()}


def kills_per_day(days: int, rng: random.Random) -> list[int]:
    """KILLS spread over the days, at least two a day."""
    counts = [2] * days
    for _ in range(KILLS - 2 * days):
        counts[rng.randrange(days)] += 1
    return counts


@pytest.mark.slow
def test_killed_crawls_rerun_to_the_same_rows(world: World, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    reference_db = f"sqlite:///{tmp_path / 'reference.sqlite'}"
    killed_db = f"sqlite:///{tmp_path / 'killed.sqlite'}"
    durations = []
    with fresh_sites(world) as running:
        ports = ports_of(running)
        for day in range(DAYS):
            running.set_day(day)
            command = crawl_command(
                SITES_UNDER_TEST, running.urls, reference_db, day_clock(world, day)
            )
            done = run(command, tmp_path)
            assert done.returncode == 0, done.log[-3000:]
            durations.append(done.seconds)

    moments = []
    with fresh_sites(world, ports) as running:
        for day, kills in enumerate(kills_per_day(DAYS, rng)):
            running.set_day(day)
            command = crawl_command(
                SITES_UNDER_TEST, running.urls, killed_db, day_clock(world, day)
            )
            for _ in range(kills):
                moment = rng.uniform(0, durations[day])
                proc = start(command, tmp_path)
                time.sleep(moment)
                kill(proc)
                moments.append(round(moment, 2))
            done = run(command, tmp_path)
            assert done.returncode == 0, done.log[-3000:]

    reference, survivor = snapshot(reference_db), snapshot(killed_db)
    lost_and_extra = difference(reference, survivor)
    print(f"\n{len(moments)} kills at {moments} s")
    print(f"reference rows: { {t: sum(c.values()) for t, c in reference.items()} }")
    print(f"(lost, duplicated or extra) per table: {lost_and_extra}")
    assert len(moments) == KILLS
    assert all(counts == (0, 0) for counts in lost_and_extra.values()), lost_and_extra
    assert sum(reference["ad_observations"].values()) > 0

    engine = make_engine(killed_db)
    with engine.connect() as conn:
        outcomes: dict[str, int] = dict(
            conn.execute(text("SELECT outcome, COUNT(*) FROM crawl_runs GROUP BY outcome")).all()
        )
    engine.dispose()
    print(f"crawl_runs outcomes: {outcomes}")
    assert "running" not in outcomes
    # A kill after a run was recorded finished leaves it finished: at least one a day and site.
    assert outcomes["finished"] >= DAYS * len(SITES_UNDER_TEST)
