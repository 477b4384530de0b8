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
