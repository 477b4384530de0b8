"""Stopping a crawl: SIGINT and SIGTERM stop it gracefully; a kill -9 leaves no process behind.

* SIGTERM or SIGINT sent to a running `lovitura crawl` closes its spider (the run is recorded
  as ``shutdown``), says so in one line, and exits with 128 + the signal (143, 130), as a
  shell reports a process ended by it.
* A process that owns the photo fingerprint pool and dies by SIGKILL takes its pool workers
  with it: they are not left to PID 1 for cron to pile up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from fixtures.model import SITES
from fixtures.sites import serve
from fixtures.world import World, build_world
from lovitura_crawl.db.engine import make_engine
from tests.crawlruns import ROOT, crawl_command, day_clock, kill, start

SITE = "escortgids"


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(1, scale="tiny")


def _wait_for(path: Path, needle: str, proc: subprocess.Popen[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        if needle in log:
            return log
        assert proc.poll() is None, f"the crawl ended before {needle!r}:\n{log[-3000:]}"
        time.sleep(0.1)
    raise AssertionError(f"no {needle!r} within {timeout} s")


@pytest.mark.parametrize(
    ("signum", "code", "group"),
    [
        (signal.SIGTERM, 143, False),
        (signal.SIGINT, 130, False),
        # A Ctrl-C in a terminal reaches every process of the group, the photo workers too.
        (signal.SIGINT, 130, True),
    ],
    ids=["SIGTERM", "SIGINT", "Ctrl-C"],
)
def test_signal_stops_the_crawl_gracefully(
    world: World, tmp_path: Path, signum: int, code: int, group: bool
) -> None:
    db_url = f"sqlite:///{tmp_path / 'crawl.sqlite'}"
    log_path = tmp_path / "crawl.log"
    with serve(world, day=0, ports=dict.fromkeys(SITES, 0), fast=True) as running:
        # Slow enough that the crawl is still reading ad pages when the signal comes.
        command = crawl_command(
            [SITE],
            running.urls,
            db_url,
            day_clock(world, 0),
            {"DOWNLOAD_DELAY": "0.3", "LOG_LEVEL": "DEBUG"},  # DEBUG: "Crawled (200)" shows
        )
        proc = start(command, ROOT, log=log_path)
        try:
            _wait_for(log_path, "Crawled (200)", proc, timeout=40)
            if group:
                _wait_until(lambda: len(_children(proc.pid)) >= 2, proc, timeout=40)
                os.killpg(proc.pid, signum)
            else:
                os.kill(proc.pid, signum)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                kill(proc)
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert proc.returncode == code, log[-3000:]
    assert "shutting down gracefully" in log
    assert "Dumping Scrapy stats" in log  # the spider closed
    assert "Interrupted: interrupted by" in log
    assert f"{SITE}: " in log and ", shutdown" in log
    assert "Error: value" not in log and "Traceback" not in log
    engine = make_engine(db_url)
    with engine.connect() as conn:
        outcomes = conn.execute(text("SELECT outcome FROM crawl_runs")).scalars().all()
    engine.dispose()
    assert outcomes == ["shutdown"]


OWNER = textwrap.dedent(
    """
    import sys
    from pipelines.photos import _shared_executor

    pool = _shared_executor(1)
    pool.submit(int, "1").result()  # the worker runs
    print(" ".join(str(pid) for pid in pool._processes), flush=True)
    sys.stdin.read()  # until killed
    """
)


def _alive(pid: int) -> bool:
    """The process runs (a zombie, dead but not reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(parent: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            pids.append(int(stat.parent.name))
    return pids


def _wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the crawl ended first"
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_photo_pool_workers_die_with_their_owner() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert owner.stdout is not None
        workers = [int(pid) for pid in owner.stdout.readline().split()]
        assert workers and all(_alive(pid) for pid in workers)
        children = _children(owner.pid)  # the workers and multiprocessing's resource tracker
        assert set(workers) <= set(children)
        workers = children
        owner.kill()
        owner.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in workers if _alive(pid)]
    finally:
        if owner.poll() is None:
            owner.kill()
    for pid in left:  # do not leave them behind ourselves
        os.kill(pid, signal.SIGKILL)
    assert not left, f"photo pool processes {left} outlived their owner"


STUCK = textwrap.dedent(
    """
    import asyncio, os, signal, threading
    from lovitura_crawl import crawl

    crawl.SHUTDOWN_GRACE = 1.0

    async def stuck():
        # Stands for a crawl waiting on a helper that the signal killed: it never ends.
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
        await asyncio.get_running_loop().create_future()

    try:
        crawl.run_reactor(stuck, crawl.project_settings())
    except crawl.Interrupted as exc:
        print("interrupted", exc.forced, exc.exit_code, flush=True)
    """
)


def test_a_graceful_stop_that_hangs_is_forced_after_the_grace(tmp_path: Path) -> None:
    """One signal, and a crawl that cannot stop: the command still ends (128 + SIGTERM)."""
    done = subprocess.run(
        [sys.executable, "-c", STUCK], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "interrupted True 143" in done.stdout, done.stdout + done.stderr[-3000:]
    assert "did not stop within 1 s of SIGTERM" in done.stderr
