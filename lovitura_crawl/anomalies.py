"""Counting and recording bad input without losing the rest of the crawl.

A broken page, image or row is never dropped silently: it is counted in the crawler stats under
``lovitura/<stage>/<reason>`` and kept, with its reason, until the storage pipeline writes it to
the ``crawl_anomalies`` table at the end of the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Anomaly:
    stage: str  # "page", "photo", "phone", "place", "item" ...
    reason: str  # short slug: "truncated-image", "pixel-bomb", "bad-encoding" ...
    url: str | None = None
    site: str | None = None
    site_ad_id: str | None = None
    detail: str | None = None  # never personal data: no phone, no ad text


def note_anomaly(crawler: Any, anomaly: Anomaly) -> None:
    """Count ``anomaly`` in the stats of ``crawler`` and keep it for the storage pipeline."""
    if crawler is not None and crawler.stats is not None:
        crawler.stats.inc_value(f"lovitura/{anomaly.stage}/{anomaly.reason}")
    pending = getattr(crawler, "lovitura_anomalies", None)
    if pending is None and crawler is not None:
        pending = []
        crawler.lovitura_anomalies = pending
    if pending is not None:
        pending.append(anomaly)
    logger.debug("anomaly %s/%s at %s", anomaly.stage, anomaly.reason, anomaly.url)
