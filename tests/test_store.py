"""Storing observations: idempotent, versioned, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from lovitura_crawl.db import models
from lovitura_crawl.db.store import AdStore


def _item(day: int, **changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "site": "roodlicht",
        "site_ad_id": "1001",
        "url": "http://127.0.0.1/advertentie/1001",
        "observed_at": f"2026-11-{day:02d}T12:00:00+01:00",
        "title": "Nieuw in Zwolle",
        "text": "Alleen deze week",
        "place": "Zwolle",
        "phones": [{"e164": "+31612345678", "start": 0, "end": 10, "field": "phone_text"}],
        "photos": [{"url": "http://127.0.0.1/foto/a.jpg", "fingerprint": {"phash": "ff00"}}],
        "location": {"code": "GM0193", "country": "NL", "method": "woonplaats"},
    }
    item.update(changes)
    return item


def _count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def test_same_observation_twice_changes_nothing(engine: Engine) -> None:
    store = AdStore(engine)
    first = store.save([_item(2)])
    again = store.save([_item(2)])

    assert (first.new, again.new, again.unchanged) == (1, 0, 1)
    for model, expected in [
        (models.Ad, 1),
        (models.AdVersion, 1),
        (models.AdObservation, 1),
        (models.AdPhone, 1),
        (models.AdPhoto, 1),
    ]:
        assert _count(engine, model) == expected, model.__tablename__


def test_edit_makes_a_dated_version_and_keeps_first_seen(engine: Engine) -> None:
    store = AdStore(engine)
    store.save([_item(2)])
    store.save([_item(3)])
    result = store.save(
        [_item(4, place="Venlo", location={"code": "GM0983", "country": "NL", "method": "x"})]
    )

    assert result.updated == 1
    with engine.connect() as conn:
        ad = conn.execute(select(models.Ad)).one()
        versions = conn.execute(
            select(models.AdVersion.municipality_code).order_by(models.AdVersion.valid_from)
        ).scalars()
        days = conn.execute(
            select(models.AdObservation.municipality_code).order_by(
                models.AdObservation.observed_on
            )
        ).scalars()
        assert list(versions) == ["GM0193", "GM0983"]
        assert list(days) == ["GM0193", "GM0193", "GM0983"]
    assert ad.municipality_code == "GM0983"
    assert ad.first_seen_at.day == 2 and ad.last_seen_at.day == 4


def test_complete_listing_marks_unseen_ads_gone(engine: Engine) -> None:
    store = AdStore(engine)
    store.save([_item(2), _item(2, site_ad_id="1002")])
    store.save([_item(3)])
    from lovitura_crawl.db.store import parse_time

    gone = store.mark_gone("roodlicht", parse_time("2026-11-03T12:00:00+01:00"))

    assert gone == 1
    with engine.connect() as conn:
        rows = dict(conn.execute(select(models.Ad.site_ad_id, models.Ad.gone_at)).all())
    assert rows["1001"] is None and rows["1002"] is not None


def test_listing_only_observation_keeps_content(engine: Engine) -> None:
    store = AdStore(engine)
    store.save([_item(2)])
    store.save([{**_item(3, title=None, text=None), "extra": {"listing_only": True}}])

    with engine.connect() as conn:
        ad = conn.execute(select(models.Ad)).one()
        places = conn.execute(select(models.AdObservation.municipality_code)).scalars().all()
    assert ad.title == "Nieuw in Zwolle"
    assert places == ["GM0193", "GM0193"]


def _as_site(site: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**item, "site": site} for item in items]


def _rows_of(engine: Engine, site: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row stored for ``site``, without database ids, in a stable order."""
    ad, version = models.Ad, models.AdVersion
    observation, phone, photo = models.AdObservation, models.AdPhone, models.AdPhoto
    key = ad.site_ad_id
    queries = {
        "ads": select(
            key,
            ad.title,
            ad.first_seen_at,
            ad.last_seen_at,
            ad.gone_at,
            ad.content_hash,
            ad.municipality_code,
            ad.detail_fetched_at,
            ad.listing_signature,
        ),
        "versions": select(key, version.valid_from, version.content_hash, version.title).join(
            version, version.ad_id == ad.id
        ),
        "observations": select(key, observation.observed_on, observation.municipality_code).join(
            observation, observation.ad_id == ad.id
        ),
        "phones": select(
            key, phone.phone, phone.field, phone.start, phone.first_seen_at, phone.last_seen_at
        ).join(phone, phone.ad_id == ad.id),
        "photos": select(
            key, photo.url, photo.position, photo.phash, photo.error, photo.last_seen_at
        ).join(photo, photo.ad_id == ad.id),
    }
    with engine.connect() as conn:
        return {
            name: sorted(tuple(row) for row in conn.execute(query.where(ad.site == site)))
            for name, query in queries.items()
        }


def test_one_batch_stores_what_one_item_at_a_time_stores(engine: Engine) -> None:
    """Batched writes: an ad seen twice in a batch (newer, then older), a listing-only
    sighting, a photo seen again without its fingerprint, a number given twice."""
    two_phones = [
        {"e164": "+31612345678", "start": 0, "end": 10, "field": "phone_text"},
        {"e164": "+31612345678", "start": 30, "end": 40, "field": "text"},
    ]
    items = [
        _item(2),
        _item(2, site_ad_id="1002", extra={"listing_signature": "s1"}),
        _item(
            3,
            title="Weer in Zwolle",
            photos=[{"url": "http://127.0.0.1/foto/a.jpg"}, {"url": "http://127.0.0.1/foto/b.jpg"}],
            phones=[{"e164": "+31612345678", "start": 5, "end": 15, "field": "text"}],
        ),
        _item(1, title="Eerder in Zwolle"),
        {
            **_item(3, site_ad_id="1002", title=None, location=None),
            "extra": {"listing_only": True, "listing_signature": "s1"},
        },
        _item(2, site_ad_id="1003", phones=two_phones),
        _item(4),
    ]
    store = AdStore(engine)
    one_by_one = [store.save([item]) for item in _as_site("a", items)]
    batched = store.save(_as_site("b", items))

    for name in ("new", "updated", "unchanged"):
        assert getattr(batched, name) == sum(getattr(r, name) for r in one_by_one), name
    stored_a, stored_b = _rows_of(engine, "a"), _rows_of(engine, "b")
    assert stored_a["versions"], "the items stored nothing"
    assert stored_a == stored_b


def test_photo_seen_again_without_fingerprint_keeps_it(engine: Engine) -> None:
    again = _item(3, photos=[{"url": "http://127.0.0.1/foto/a.jpg", "error": "download-failed"}])
    AdStore(engine).save([_item(2), again])

    with engine.connect() as conn:
        photo = conn.execute(select(models.AdPhoto)).one()
    assert (photo.phash, photo.error) == ("ff00", None)
