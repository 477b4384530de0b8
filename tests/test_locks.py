"""Crawls of one site cannot overlap, and a killed crawl leaves no lock behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lovitura_crawl.locks import SiteLocked, site_lock

HOLDER = """
import sys, time
from lovitura_crawl.locks import site_lock
with site_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_second_holder_is_refused(db_url: str) -> None:
    with site_lock("roodlicht", db_url):
        with pytest.raises(SiteLocked), site_lock("roodlicht", db_url):
            pass
        with site_lock("prikbord", db_url):
            pass
    with site_lock("roodlicht", db_url):
        pass


def test_killed_holder_releases_the_lock(db_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "roodlicht", db_url], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(SiteLocked), site_lock("roodlicht", db_url):
        pass

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()

    deadline = time.monotonic() + 10
    while True:
        try:
            with site_lock("roodlicht", db_url):
                break
        except SiteLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_two_sqlite_databases_in_one_folder_lock_apart(tmp_path: Path) -> None:
    first, second = (f"sqlite:///{tmp_path / name}" for name in ("a.sqlite", "b.sqlite"))
    with site_lock("roodlicht", first):
        with site_lock("roodlicht", second):  # another database: its own lock
            pass
        with pytest.raises(SiteLocked), site_lock("roodlicht", first):
            pass
