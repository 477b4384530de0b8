"""Daily crawls find every ad the truth says was online, once, and mark the rest gone.

The tiny world's seven days, one `lovitura crawl` a day of the three plain-HTTP sites with the
full pipeline (incremental: unchanged ad pages are not fetched again), against sites served by
this process with their faults on (prikbord: rate limit, slow pages, server errors). The demo
world over 28 days, nachtvlinder included, is ``bench/recall.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text

from fixtures.model import SITES
from fixtures.sites import serve
from fixtures.world import World, build_world
from lovitura_crawl.db.engine import make_engine
from tests.crawlruns import crawl_command, day_clock, found_observations, run, truth_observations

HTTP_SITES = ["roodlicht", "escortgids", "prikbord"]
SKIPPED = re.compile(r"'lovitura/detail/skipped': (\d+)")


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(1, scale="tiny")


@pytest.mark.slow
def test_daily_crawls_find_every_ad_once(world: World, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'recall.sqlite'}"
    skipped = 0
    with serve(world, day=0, ports=dict.fromkeys(SITES, 0)) as running:
        for day in range(world.days):
            running.set_day(day)
            # No politeness delays: prikbord's rate limit answers 429 and is waited out.
            command = crawl_command(HTTP_SITES, running.urls, db_url, day_clock(world, day))
            done = run(command, tmp_path)
            assert done.returncode == 0, done.log[-3000:]
            skipped += sum(int(n) for n in SKIPPED.findall(done.log))

    for site in HTTP_SITES:
        truth = truth_observations(world, site, range(world.days))
        found = found_observations(db_url, world, site)
        assert set(found) == truth, site
        assert max(found.values()) == 1, site

    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT site, site_ad_id, gone_at FROM ads")).all()
        incomplete = conn.execute(
            text("SELECT COUNT(*) FROM crawl_runs WHERE NOT listing_complete")
        ).scalar_one()
    engine.dispose()
    assert incomplete == 0
    for site in HTTP_SITES:
        online_last = {ad.site_ad_id for ad in world.ads_on(site, world.days - 1)}
        gone = {ad_id for s, ad_id, gone_at in rows if s == site and gone_at is not None}
        assert gone == {ad_id for s, ad_id, _ in rows if s == site} - online_last, site
    assert skipped > 0, "incremental crawls skipped no ad page"
