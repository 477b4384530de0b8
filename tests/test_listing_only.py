"""Listing-only items (an unchanged ad recorded from its listing entry) skip extraction.

They carry no title, text, place or phone of their own: reading them would count every one
as an ad without a phone and without a place.
"""

from __future__ import annotations

from typing import Any

from scrapy.utils.test import get_crawler

from lovitura_crawl.db.store import LISTING_ONLY, LISTING_SIGNATURE, is_listing_only
from lovitura_crawl.items import AdItem
from pipelines.fields import FieldsPipeline
from pipelines.geo import GeoPipeline
from pipelines.phones import PhonesPipeline


def _item(ad_id: str, **fields: Any) -> AdItem:
    return AdItem(
        site="roodlicht",
        site_ad_id=ad_id,
        url=f"http://127.0.0.1:8401/ad/{ad_id}",
        observed_at="2026-11-03T12:00:00+01:00",
        **fields,
    )


def test_extraction_skips_listing_only_items_and_counts_only_read_ads() -> None:
    crawler = get_crawler()
    chain = [cls.from_crawler(crawler) for cls in (FieldsPipeline, PhonesPipeline, GeoPipeline)]
    items = [
        _item("1", title="Nieuw in Zwolle", text="Bel 06-38274915"),
        _item("2", title="Lieve dame", text="Alleen via de site"),  # no phone, no place
        _item("3", extra={LISTING_ONLY: True, LISTING_SIGNATURE: "ab12"}),
        _item("4", extra={LISTING_ONLY: True, LISTING_SIGNATURE: "cd34"}),
    ]
    for item in items:
        for pipeline in chain:
            assert pipeline.process_item(item) is item
    stats = crawler.stats.get_stats()
    assert stats["lovitura/phone/found"] == 1
    assert stats["lovitura/phone/none"] == 1
    assert stats["lovitura/place/found"] == 1
    assert stats["lovitura/place/none"] == 1
    for item in items[2:]:
        assert is_listing_only(item)
        assert not {"fields", "phones", "location"} & set(item.keys())
    for item in items[:2]:
        assert not is_listing_only(item)
        assert {"fields", "phones", "location"} <= set(item.keys())
