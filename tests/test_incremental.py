"""Incremental crawling: which ad pages are fetched again, and what the store keeps for it.

The listing-signature property is checked on the demo sites themselves: over the tiny world's
days, an ad whose content changed always shows a changed listing entry (or the site's "updated
today" marker), so skipping unchanged entries never misses an edit.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from scrapy.http import HtmlResponse
from sqlalchemy import Engine, select

from fixtures.model import SITES, AdSnapshot
from fixtures.sites import DemoSites, serve
from fixtures.world import World, build_world
from lovitura_crawl.db import models
from lovitura_crawl.db.store import AdStore, ListingState
from lovitura_crawl.sitedefs import SITE_DEFINITIONS
from lovitura_crawl.spiders.base import _hrefs, read_entries
from lovitura_crawl.spiders.incremental import DetailPolicy, ListedAd, signature, storage_enabled

NOON = datetime(2026, 11, 10, 11, 0, tzinfo=UTC)
HTML_SITES = ["roodlicht", "escortgids", "prikbord"]  # nachtvlinder's listing needs a browser


def listed(ad_id: str = "1", sig: str = "s", updated_today: bool = False) -> ListedAd:
    return ListedAd(ad_id, f"http://x/{ad_id}", sig, updated_today)


def state(sig: str | None = "s", fetched_days_ago: float | None = 1, seen_days_ago: float = 1):
    fetched = None if fetched_days_ago is None else NOON - timedelta(days=fetched_days_ago)
    return ListingState(sig, fetched, NOON - timedelta(days=seen_days_ago))


@pytest.mark.parametrize(
    ("known", "entry", "marker_only", "reason"),
    [
        ({}, listed(), False, "new"),
        ({"1": state(fetched_days_ago=None)}, listed(), False, "never-fetched"),
        ({"1": state(sig="old")}, listed(), False, "changed"),
        ({"1": state(fetched_days_ago=7)}, listed(), False, "refetch"),
        ({"1": state()}, listed(updated_today=True), True, "updated-today"),
        ({"1": state(fetched_days_ago=0)}, listed(updated_today=True), True, None),
        ({"1": state(seen_days_ago=2)}, listed(), True, "missed-day"),
        ({"1": state(seen_days_ago=2)}, listed(), False, None),
        ({"1": state(fetched_days_ago=6)}, listed(), False, None),
    ],
)
def test_fetch_reasons(
    known: dict[str, ListingState], entry: ListedAd, marker_only: bool, reason: str | None
) -> None:
    policy = DetailPolicy(known, NOON, refetch_days=7, marker_only=marker_only)
    assert policy.fetch_reason(entry) == reason


def test_signature_ignores_layout_whitespace_only() -> None:
    from parsel import Selector

    a = Selector(text="<li><b>Anna</b> <i>23</i><img src='/f/1.jpg'></li>").xpath("//li")[0]
    b = Selector(text="<li>\n <b>Anna</b>\n\n <i>23</i> <img src='/f/1.jpg'></li>").xpath("//li")[0]
    c = Selector(text="<li><b>Anna</b> <i>24</i><img src='/f/1.jpg'></li>").xpath("//li")[0]
    parts = ("string(.)", ".//img/@src")
    assert signature(a, parts) == signature(b, parts) != signature(c, parts)


def test_incremental_needs_the_storage_pipeline() -> None:
    from scrapy.settings import Settings

    assert storage_enabled(Settings({"ITEM_PIPELINES": {"pipelines.storage.StoragePipeline": 9}}))
    assert not storage_enabled(Settings({"ITEM_PIPELINES": {}}))


# --- the site definitions on the demo sites ------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> World:
    # The demo world: the tiny one has too few edits (none on prikbord in its seven days).
    return build_world(1, scale="demo", days=8)


@pytest.fixture(scope="module")
def sites(world: World) -> Iterator[DemoSites]:
    with serve(world, day=0, ports=dict.fromkeys(SITES, 0), fast=True) as running:
        yield running


def listing_entries(site: str, base_url: str) -> dict[str, ListedAd]:
    """Every ad of the site's listing pages (walked as the spider does), by id."""
    definition = SITE_DEFINITIONS[site]
    assert definition.listing_entry is not None
    found: dict[str, ListedAd] = {}
    todo, done = [base_url + path for path in definition.start_paths], set()
    while todo:
        url = todo.pop()
        if url in done:
            continue
        done.add(url)
        with urllib.request.urlopen(url) as answer:
            page = HtmlResponse(url, body=answer.read(), encoding=definition.encoding or "utf-8")
        links = {page.urljoin(href) for href in _hrefs(page, definition.ad_links)}
        entries = read_entries(page, definition.listing_entry)
        assert {entry.url for entry in entries} == links, "an entry for every ad link"
        found.update({entry.ad_id: entry for entry in entries})
        for xpath in (definition.listing_links, definition.next_page):
            todo += [page.urljoin(href) for href in _hrefs(page, xpath)]
    return found


def content(ad: AdSnapshot) -> tuple[Any, ...]:
    return (ad.title, ad.text, ad.place_text, ad.phone_text, ad.nickname, ad.age, ad.photo_ids)


@pytest.mark.parametrize("site", HTML_SITES)
def test_every_edit_shows_on_the_listing(site: str, world: World, sites: DemoSites) -> None:
    marker = SITE_DEFINITIONS[site].listing_entry.updated_today  # type: ignore[union-attr]
    before: dict[str, tuple[ListedAd, tuple[Any, ...]]] = {}
    edits = 0
    for day in range(world.days):
        sites.set_day(day)
        entries = listing_entries(site, sites.urls[site])
        ads = {ad.site_ad_id: ad for ad in world.ads_on(site, day)}
        assert set(entries) == set(ads), "the listing's ids are the ads' ids"
        for ad_id, entry in entries.items():
            if ad_id in before and content(ads[ad_id]) != before[ad_id][1]:
                edits += 1
                shows = entry.signature != before[ad_id][0].signature or entry.updated_today
                assert shows, f"day {day}: edit of {ad_id} not visible on the listing"
            if marker is None:
                assert not entry.updated_today
        before = {ad_id: (entries[ad_id], content(ads[ad_id])) for ad_id in entries}
    assert edits > 0, "the world made no edit: the test proves nothing"


@pytest.mark.parametrize("site", ["roodlicht", "escortgids"])  # prikbord never bumps
def test_a_bump_alone_changes_no_listing_entry(site: str, world: World, sites: DemoSites) -> None:
    """A paid bump moves the ad up but edits nothing: its page need not be fetched again."""
    before: dict[str, tuple[ListedAd, AdSnapshot]] = {}
    bumps = 0
    for day in range(world.days):
        sites.set_day(day)
        entries = listing_entries(site, sites.urls[site])
        ads = {ad.site_ad_id: ad for ad in world.ads_on(site, day)}
        for ad_id, entry in entries.items():
            if ad_id not in before:
                continue
            old_entry, old_ad = before[ad_id]
            if content(ads[ad_id]) == content(old_ad) and ads[ad_id].bumped_on > old_ad.bumped_on:
                bumps += 1
                assert entry.signature == old_entry.signature, f"day {day}: bump of {ad_id}"
                assert not entry.updated_today, f"day {day}: bump of {ad_id} marked as updated"
        before = {ad_id: (entries[ad_id], ads[ad_id]) for ad_id in entries}
    assert bumps > 0, "the world bumped no ad: the test proves nothing"


# --- the store ---------------------------------------------------------------------------------


def _item(day: int, **changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "site": "roodlicht",
        "site_ad_id": "1001",
        "url": "http://127.0.0.1/advertentie/1001",
        "observed_at": f"2026-11-{day:02d}T12:00:00+01:00",
        "title": "Nieuw in Zwolle",
        "text": "Alleen deze week",
        "extra": {"region": "Overijssel", "listing_signature": f"sig-{day}"},
    }
    item.update(changes)
    return item


def _ad(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(models.Ad.__table__)).one()


def test_store_keeps_signature_and_last_full_fetch(engine: Engine) -> None:
    store = AdStore(engine)
    store.save([_item(2)])
    ad = _ad(engine)
    assert ad.listing_signature == "sig-2"
    assert ad.extra == {"region": "Overijssel"}, "crawl bookkeeping stays out of extra"
    fetched = ad.detail_fetched_at

    listing_only = {"listing_only": True, "listing_signature": "sig-2"}
    store.save([_item(3, title=None, text=None, extra=listing_only)])
    ad = _ad(engine)
    assert (ad.title, ad.detail_fetched_at, ad.listing_signature) == (
        "Nieuw in Zwolle",
        fetched,
        "sig-2",
    )
    assert ad.last_seen_at > fetched

    store.save([_item(4)])
    ad = _ad(engine)
    assert ad.detail_fetched_at == ad.last_seen_at and ad.listing_signature == "sig-4"

    known = store.listing_state("roodlicht", datetime(2026, 11, 3, tzinfo=UTC))
    assert known["1001"].signature == "sig-4"
    assert known["1001"].detail_fetched_at is not None
    assert store.listing_state("roodlicht", datetime(2026, 11, 5, tzinfo=UTC)) == {}


def test_stale_running_runs_become_killed(engine: Engine) -> None:
    store = AdStore(engine)
    killed = store.start_run("roodlicht", NOON)
    other_site = store.start_run("prikbord", NOON)
    done = store.start_run("roodlicht", NOON)
    store.finish_run(done, outcome="finished", stats={}, listing_complete=True, n_items=0)

    assert store.close_stale_runs("roodlicht") == 1
    with engine.connect() as conn:
        rows = dict(conn.execute(select(models.CrawlRun.id, models.CrawlRun.outcome)).all())
    assert rows == {killed: "killed", other_site: "running", done: "finished"}
