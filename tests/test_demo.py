"""`lovitura demo`'s own settings: the run's log, and the pace it crawls prikbord at."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import scrapy.utils.log as scrapy_log

from fixtures.sites.prikbord import RATE_LIMIT
from lovitura_crawl.crawl import project_settings
from lovitura_crawl.demo import DEMO_PACE, DEMO_SITE_SETTINGS, log_settings


def test_the_crawl_log_keeps_every_days_crawl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each crawler re-opens the log file (Scrapy re-installs its root handler per crawler):
    the second day's crawl must add to the first day's log, and an older run's log is gone."""
    path = tmp_path / "crawl.log"
    path.write_text("a line of an earlier demo run\n", encoding="utf-8")
    # Restored at teardown: the root handler this test installs must not outlive it.
    monkeypatch.setattr(scrapy_log, "_scrapy_root_handler", scrapy_log._scrapy_root_handler)
    settings = project_settings(log_settings(path, "INFO"))
    logger = logging.getLogger("lovitura_crawl.demo.test")
    try:
        for day in (0, 1):
            scrapy_log.install_scrapy_root_handler(settings)  # as each day's crawler does
            logger.info("crawl of day %d", day)
    finally:
        handler = scrapy_log.get_scrapy_root_handler()
        if handler is not None:
            logging.root.removeHandler(handler)
            handler.close()
    log = path.read_text(encoding="utf-8")
    assert "crawl of day 0" in log
    assert "crawl of day 1" in log
    assert "earlier demo run" not in log


def test_the_demo_stays_below_prikbords_rate_limit() -> None:
    """prikbord answers 429 above its (paced) rate limit: the demo's pause keeps it below on
    average, so the 429s the demo meets are the board's own load shedding."""
    settings = DEMO_SITE_SETTINGS["prikbord"]
    assert 1 / settings["DOWNLOAD_DELAY"] < RATE_LIMIT / DEMO_PACE
