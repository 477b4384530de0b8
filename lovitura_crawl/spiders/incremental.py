"""Incremental crawling: which ad pages a daily crawl must download again.

A listing shows every ad online, with a little of what it says (title, place, a bump or
"updated" date, the first photo). The crawl reads, per ad, the signature of that listing entry
(``ListingEntry`` in ``lovitura_crawl.sitedefs``) and compares it with what the database stored
at the ad's last full fetch. An ad whose entry is unchanged is recorded as seen today from the
listing alone (a *listing-only* item); its page is downloaded only when:

* the ad is new, or was never fetched in full;
* its listing signature changed (an edit, a bump, a new photo ...);
* the site marks it "updated today" and it was not fetched in full today;
* the site only has such a marker and the crawl did not see the ad the day before (a missed
  day may have hidden a change);
* its last full fetch is ``LOVITURA_REFETCH_DAYS`` or more old (edits a listing does not show).

The database is read once, when the spider opens (:func:`load_known_ads`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from parsel import Selector

from lovitura_crawl.db.store import ListingState

REFETCH_DAYS = 7  # default of the setting LOVITURA_REFETCH_DAYS
STORAGE_PIPELINE = "pipelines.storage.StoragePipeline"


@dataclass(frozen=True)
class ListedAd:
    """One ad as a listing page shows it."""

    ad_id: str
    url: str
    signature: str
    updated_today: bool


class DetailPolicy:
    """Decides, per listed ad, whether its page must be fetched, and says why."""

    def __init__(
        self,
        known: dict[str, ListingState],
        clock: datetime,
        refetch_days: int = REFETCH_DAYS,
        marker_only: bool = False,
    ) -> None:
        self.known = known
        self.clock = clock
        self.refetch_after = timedelta(days=refetch_days)
        # True when the site's listing has an "updated today" marker instead of a date.
        self.marker_only = marker_only

    def fetch_reason(self, listed: ListedAd) -> str | None:
        """Why the ad page must be downloaded, or None when the listing entry is enough."""
        state = self.known.get(listed.ad_id)
        if state is None:
            return "new"
        if state.detail_fetched_at is None:
            return "never-fetched"
        if state.signature != listed.signature:
            return "changed"
        if self.clock - state.detail_fetched_at >= self.refetch_after:
            return "refetch"
        today = self.clock.date()
        if listed.updated_today and self._day(state.detail_fetched_at) < today:
            return "updated-today"
        if self.marker_only and self._day(state.last_seen_at) < today - timedelta(days=1):
            return "missed-day"
        return None

    def _day(self, moment: datetime) -> date:
        """The calendar day of ``moment`` where the crawl's clock is (its time zone)."""
        return moment.astimezone(self.clock.tzinfo).date()


def signature(node: Selector, xpaths: Iterable[str]) -> str:
    """A digest of the values the XPaths select in ``node`` (whitespace collapsed)."""
    parts = []
    for xpath in xpaths:
        values = node.xpath(xpath).getall()
        parts.append("\x1f".join(" ".join(str(value).split()) for value in values))
    return hashlib.sha256("\x1e".join(parts).encode("utf-8")).hexdigest()


def storage_enabled(settings: object) -> bool:
    """Whether the crawl stores its items: without storage nothing is known to skip."""
    getdict = getattr(settings, "getdict", None)
    pipelines = getdict("ITEM_PIPELINES") if getdict else {}
    return any(
        (path if isinstance(path, str) else f"{path.__module__}.{path.__qualname__}")
        == STORAGE_PIPELINE
        and order is not None
        for path, order in pipelines.items()
    )


def load_known_ads(
    db_url: str | None, site: str, clock: datetime, refetch_days: int
) -> dict[str, ListingState]:
    """What the database knows of the ads of ``site`` seen in the last ``refetch_days`` days.

    Older ads need a full fetch anyway, so they are not read.
    """
    from lovitura_crawl.db.engine import make_engine
    from lovitura_crawl.db.store import AdStore

    engine = make_engine(db_url)
    try:
        return AdStore(engine).listing_state(site, clock - timedelta(days=refetch_days + 1))
    finally:
        engine.dispose()
