"""`lovitura demo`'s own settings: the run's log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import scrapy.utils.log as scrapy_log

from lovitura_crawl.crawl import project_settings
from lovitura_crawl.demo import log_settings


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
