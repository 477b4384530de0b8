"""The item every spider yields and every importer accepts (documented in docs/items.md)."""

from __future__ import annotations

from typing import Any

import scrapy

ITEM_SCHEMA_VERSION = 1
REQUIRED_FIELDS = ("site", "site_ad_id", "url", "observed_at")


class AdItem(scrapy.Item):
    """One observation of one ad. Unknown fields go into ``extra``, never dropped."""

    site = scrapy.Field()
    site_ad_id = scrapy.Field()
    url = scrapy.Field()
    observed_at = scrapy.Field()  # ISO 8601 with time zone
    title = scrapy.Field()
    text = scrapy.Field()
    place = scrapy.Field()
    phone_text = scrapy.Field()
    nickname = scrapy.Field()
    age = scrapy.Field()
    posted_at = scrapy.Field()
    photos = scrapy.Field()  # [{"url": str, "path": str | None}]
    extra = scrapy.Field()
    # Added by the pipelines:
    phones = scrapy.Field()  # [{"e164", "start", "end", "field"}]
    location = scrapy.Field()  # pipelines.geo.Location as a dict, or None
    fields = scrapy.Field()  # pipelines.fields: nickname, age, cues ... with offsets


def item_from_dict(data: dict[str, Any]) -> AdItem:
    """Build an AdItem from a plain dict, moving unknown keys into ``extra``."""
    known = {k: v for k, v in data.items() if k in AdItem.fields}
    unknown = {k: v for k, v in data.items() if k not in AdItem.fields}
    item = AdItem(**known)
    if unknown:
        item["extra"] = {**(item.get("extra") or {}), **unknown}
    return item
