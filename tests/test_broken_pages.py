"""A crawl of the demo world meets an ad without any phone and a broken page, counts each with
its reason, and goes on (issue 5).

prikbord of the tiny world of seed 8, with ``no_phone_share=1.0`` (every board ad of an
independent gives no number; the default world has such ads at the demo scale), is crawled
through a proxy that cuts one ad page off in the middle of its transfer, every time it is asked
(a truncated page). The crawl runs the whole pipeline chain into a database, in a child process
(``tests.daycrawls``).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from fixtures.model import SITES
from fixtures.sites import serve
from fixtures.world import World, build_world
from lovitura_crawl.db.engine import make_engine
from tests.crawlruns import QUICK, day_clock, prepare, run_module

SEED = 8  # its tiny world shows a board ad without a number on day 0


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(SEED, scale="tiny", no_phone_share=1.0)


class CuttingProxy(ThreadingHTTPServer):
    """Forwards GETs to ``upstream``; the page at ``cut`` arrives with only half its bytes."""

    daemon_threads = True

    def __init__(self, upstream: str, cut: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream.rstrip("/")
        self.cut = cut
        self.cuts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _Forward(BaseHTTPRequestHandler):
    server: CuttingProxy

    def do_GET(self) -> None:
        try:
            with urllib.request.urlopen(self.server.upstream + self.path) as answer:
                status, headers, body = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            status, headers, body = error.code, error.headers, error.read()
        self.send_response(status)
        for name in ("Content-Type", "Retry-After"):
            if headers.get(name):
                self.send_header(name, headers[name])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == self.server.cut:
            self.server.cuts += 1
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def proxy(world: World, no_phone_ad: str, cut_ad: str) -> Iterator[CuttingProxy]:
    with serve(world, day=0, ports=dict.fromkeys(SITES, 0), fast=True) as running:
        server = CuttingProxy(running.urls["prikbord"], f"/viewtopic.php?t={cut_ad}")
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            server.server_close()


@pytest.fixture
def no_phone_ad(world: World) -> str:
    without = {r["site_ad_id"] for r in world.truth_ads() if not r["phones"]}
    return next(a.site_ad_id for a in world.ads_on("prikbord", 0) if a.site_ad_id in without)


@pytest.fixture
def cut_ad(world: World, no_phone_ad: str) -> str:
    return next(a.site_ad_id for a in world.ads_on("prikbord", 0) if a.site_ad_id != no_phone_ad)


@pytest.mark.slow
def test_crawl_counts_an_ad_without_phone_and_a_broken_page_and_goes_on(
    world: World, proxy: CuttingProxy, no_phone_ad: str, cut_ad: str, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'crawl.sqlite'}"
    settings = {
        **QUICK,
        "LOG_LEVEL": "WARNING",
        "RETRY_TIMES": 1,
        "LOVITURA_DATABASE_URL": db_url,
        "LOVITURA_PURPOSE": prepare(db_url),
    }
    plan = {
        "site": "prikbord",
        "out": str(tmp_path),
        "settings": settings,
        "days": [{"day": 0, "base_url": proxy.url, "clock": day_clock(world, 0)}],
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    done = run_module("tests.daycrawls", str(tmp_path / "plan.json"))
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads((tmp_path / "day0.stats.json").read_text(encoding="utf-8"))
    assert proxy.cuts == 2  # asked, retried once, given up
    assert stats["lovitura/page/ResponseDataLossError"] == 1
    assert stats["lovitura/phone/none"] >= 1
    # Stored fingerprints are looked up once per ad with photos, not once per photo.
    assert (
        stats["lovitura/photo/lookups"] <= stats["item_scraped_count"] < stats["lovitura/photo/ok"]
    )

    shown = {ad.site_ad_id for ad in world.ads_on("prikbord", 0)}
    engine = make_engine(db_url)
    with engine.connect() as conn:
        stored = set(conn.execute(text("SELECT site_ad_id FROM ads")).scalars())
        phones = conn.execute(
            text(
                "SELECT count(*) FROM ad_phones p JOIN ads a ON a.id = p.ad_id "
                "WHERE a.site_ad_id = :ad"
            ),
            {"ad": no_phone_ad},
        ).scalar_one()
        outcome = conn.execute(text("SELECT outcome FROM crawl_runs")).scalar_one()
        anomalies = conn.execute(
            text("SELECT stage, reason, url FROM crawl_anomalies WHERE stage = 'page'")
        ).all()
    engine.dispose()
    assert outcome == "finished"
    # Every other ad is stored: the crawl went on after the broken page.
    assert stored == shown - {cut_ad}
    assert no_phone_ad in stored and phones == 0
    assert [(a.reason, a.url.endswith(f"t={cut_ad}")) for a in anomalies] == [
        ("ResponseDataLossError", True)
    ]
