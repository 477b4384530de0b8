"""`lovitura demo` end to end on the tiny world: the main job of the README, in a child process."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from tests.crawlruns import run_module

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def test_tiny_demo_crawls_links_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    out.mkdir()
    stale = out / "report-GM9999.csv"  # a report of an earlier run, on data the run replaces
    stale.write_text("old\n", encoding="utf-8")
    args = ("demo", "--scale", "tiny", "--days", "3", "--out", str(out))
    done = run_module("lovitura_crawl.cli", *args, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout
    persons = re.search(r"persons\D+(\d+)", summary)
    assert persons is not None and int(persons.group(1)) > 0, summary

    database = out / "demo.sqlite"
    assert database.stat().st_mode & 0o777 == 0o600  # phone numbers and ad text inside
    assert not stale.exists()
    reports = sorted(out.glob("report-GM*.csv"))
    assert reports, summary
    for report in reports:
        assert report.stat().st_mode & 0o777 == 0o600
        with report.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.reader(handle):
                assert not [cell for cell in row if cell.startswith(FORMULA_STARTS)], report
