"""A site that is down: the crawl fails (exit 1) and says why in one line, without tracebacks."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.crawlruns import ROOT, crawl_command, start


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_site_that_refuses_connections(tmp_path: Path) -> None:
    # A path as a site's own could be: the log must not show it above DEBUG.
    url = f"http://127.0.0.1:{_closed_port()}/escorts/anca-0612345678/"
    db_url = f"sqlite:///{tmp_path / 'crawl.sqlite'}"
    # Named twice by mistake: crawled once (not skipped as "another crawl is running").
    sites = ["roodlicht", "roodlicht"]
    command = crawl_command(sites, {"roodlicht": url}, db_url, "2026-11-02T12:00+01:00")
    log_path = tmp_path / "crawl.log"
    proc = start(command, ROOT, log=log_path)
    proc.wait(timeout=120)
    log = log_path.read_text(encoding="utf-8")
    assert proc.returncode == 1, log[-3000:]
    assert "Gave up retrying" in log  # the retry middleware says what failed ...
    assert "Traceback" not in log  # ... and nothing repeats it with Scrapy's internals
    assert "listing NOT complete: failed requests (DownloadConnectionRefusedError x" in log
    assert "is the site up, is its URL right?" in log
    assert "anca" not in log and "0612345678" not in log
    assert log.count("roodlicht: 0 ads, finished") == 1 and "another crawl" not in log
