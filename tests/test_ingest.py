"""``lovitura ingest ITEMS.jsonl``: the item schema, bad lines, idempotence, and the same persons
as a crawl of the same world.

Every ingest runs the ``lovitura`` command in a child process (Scrapy's reactor starts once per
process). The item files are the tiny demo world's observations with local photo files
(``fixtures.world_items``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from sqlalchemy import select

from fixtures.model import SITES
from fixtures.sites import DemoSites
from fixtures.world import World, build_world
from fixtures.world_items import write_world_items
from lovitura_crawl.db import models
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.itemschema import ItemError, check_item
from tests.itemruns import crawl_days, ingest, lovitura, registered, serving, snapshot

HTTP_SITES = ("roodlicht", "escortgids", "prikbord")


# --- the schema ------------------------------------------------------------------------------


def good() -> dict[str, Any]:
    return {
        "site": "roodlicht",
        "site_ad_id": "42",
        "url": "https://example.invalid/ad/42",
        "observed_at": "2026-11-02T12:00:00+01:00",
    }


def test_unknown_fields_go_into_extra_and_optional_fields_may_be_missing() -> None:
    checked = check_item({**good(), "colour": "red", "extra": {"region": "Utrecht"}})
    assert checked.item["extra"] == {"region": "Utrecht", "colour": "red"}
    assert "title" not in checked.item and checked.photo_files == 0


def test_numbers_are_read_as_text_and_derived_fields_are_left_to_the_pipelines() -> None:
    item = check_item({**good(), "site_ad_id": 42, "age": 23, "phones": [{"e164": "+1"}]}).item
    assert item["site_ad_id"] == "42" and item["age"] == "23" and "phones" not in item


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"observed_at": None}, "missing-observed_at"),
        ({"site": "", "url": None}, "missing-site-url"),
        ({"observed_at": "2026-11-02T12:00:00"}, "bad-observed_at"),
        ({"observed_at": "yesterday"}, "bad-observed_at"),
        ({"title": ["a"]}, "bad-title"),
        ({"photos": "x.jpg"}, "bad-photos"),
        ({"photos": [{"path": "x.jpg"}]}, "bad-photos"),
        ({"photos": [{"url": "u", "path": "/etc/passwd"}]}, "bad-photo-path"),
        ({"photos": [{"url": "u", "path": "../x.jpg"}]}, "bad-photo-path"),
        ({"extra": [1]}, "bad-extra"),
        ({"nickname": "x" * 201}, "too-long-nickname"),
        ({"schema_version": 2}, "unsupported-schema-version"),
    ],
)
def test_a_bad_item_is_refused_with_its_reason(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ItemError) as caught:
        check_item({**good(), **change})
    assert caught.value.reason == reason
    assert str(caught.value)


def test_photo_paths_are_taken_relative_to_the_input_folder() -> None:
    web = "https://example.invalid/p.jpg"
    data = {**good(), "photos": [{"url": "u1", "path": "photos/a.jpg"}, {"url": web}]}
    checked = check_item(data, PurePosixPath("/data/in"))
    assert checked.item["photos"] == [
        {"url": "u1", "path": "/data/in/photos/a.jpg"},
        {"url": web, "path": None},
    ]
    assert checked.photo_files == 1


def test_a_photo_with_a_fingerprint_or_nothing_to_fetch_is_not_fetched() -> None:
    from pipelines.photos import fingerprint

    world = build_world(1, scale="tiny")
    photo_id = next(iter(world.iter_observations()))["photos"][0]["url"].split("/")[-1]
    print_ = fingerprint(world.photo_bytes(photo_id)[0]).as_json()
    data = {**good(), "photos": [{"url": "pf_1", "fingerprint": print_}, {"url": "pf_2"}]}
    photos = check_item(data).item["photos"]
    assert photos[0]["fingerprint"] == print_ and "error" not in photos[0]
    assert photos[1]["error"] == "unfetchable-url"
    with pytest.raises(ItemError) as caught:
        check_item({**good(), "photos": [{"url": "pf_1", "fingerprint": {"v": 1}}]})
    assert caught.value.reason == "bad-fingerprint"


# --- ingest ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(1, scale="tiny")


def summary_count(output: str, label: str) -> int:
    for line in output.splitlines():
        if label in line:
            return int(line.strip(" │|").split("│")[-1].strip())
    raise AssertionError(f"{label!r} not in the summary:\n{output}")


def test_bad_lines_are_counted_and_the_rest_goes_in_and_a_second_ingest_changes_nothing(
    world: World, db_url: str, tmp_path: Path
) -> None:
    registered(db_url)
    items = tmp_path / "items.jsonl"
    count = write_world_items(world, items, days=range(0, 3))
    lines = items.read_text(encoding="utf-8").splitlines()
    bad = [
        "not json",
        json.dumps({"site": "roodlicht", "url": "u", "observed_at": "2026-11-02T12:00:00+01:00"}),
        "",
        json.dumps({**json.loads(lines[0]), "observed_at": "2026-11-02"}),
    ]
    lines[5:5] = bad  # lines 6 to 9
    items.write_text("\n".join(lines) + "\n", encoding="utf-8")

    first = ingest(items, db_url)
    assert "line 6: bad-json" in first.stderr
    assert "line 7: missing-site_ad_id" in first.stderr
    assert "line 9: bad-observed_at" in first.stderr
    assert summary_count(first.stdout, "lines read") == count + len(bad)
    assert summary_count(first.stdout, "items stored") == count
    expected_ads = {
        (i.site, i.site_ad_id) for d in range(3) for s in SITES for i in world.ads_on(s, d)
    }
    assert summary_count(first.stdout, "ads new") == len(expected_ads)
    assert summary_count(first.stdout, "observations new") == count
    assert summary_count(first.stdout, "rejected: bad-json") == 1
    stored = snapshot(db_url)
    assert len(stored["observations"]) == count
    assert all(row[3] is not None for row in stored["photos"]), "every photo fingerprinted"

    engine = make_engine(db_url)
    with engine.connect() as conn:
        anomalies = conn.execute(
            select(models.CrawlAnomaly.reason, models.CrawlAnomaly.detail).where(
                models.CrawlAnomaly.stage == "ingest"
            )
        ).all()
    engine.dispose()
    assert sorted(anomalies) == [
        ("bad-json", "line 6: not JSON: Expecting value at column 1"),
        (
            "bad-observed_at",
            "line 9: observed_at '2026-11-02' has no time zone; add one, e.g. +01:00",
        ),
        ("missing-site_ad_id", "line 7: required field(s) site_ad_id missing or empty"),
    ]

    again = ingest(items, db_url, "--quiet")
    for label in ("ads new", "ads updated", "observations new"):
        assert summary_count(again.stdout, label) == 0, label
    assert snapshot(db_url) == stored


def test_ingest_needs_a_registered_purpose(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps(good()) + "\n", encoding="utf-8")
    done = lovitura(
        "ingest", str(items), "--db", f"sqlite:///{tmp_path / 'x.sqlite'}", cwd=tmp_path
    )
    assert done.returncode != 0 and "purpose" in done.stderr


# --- the same persons as a crawl ---------------------------------------------------------------

DAYS = 3


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[list[DemoSites]]:
    with serving(world, DAYS) as running:
        yield running


def persons(db_url: str) -> set[frozenset[tuple[str, str]]]:
    from matching.link import link

    engine = make_engine(db_url)
    link(engine)
    groups: dict[int, set[tuple[str, str]]] = {}
    with engine.connect() as conn:
        for site, ad_id, person in conn.execute(
            select(models.Ad.site, models.Ad.site_ad_id, models.Ad.person_id)
        ):
            groups.setdefault(person, set()).add((site, ad_id))
    engine.dispose()
    return {frozenset(group) for group in groups.values()}


def test_ingesting_the_world_gives_the_same_persons_as_crawling_it(
    world: World, served: list[DemoSites], tmp_path: Path
) -> None:
    crawled = registered(f"sqlite:///{tmp_path / 'crawled.sqlite'}", migrate=True)
    for site in HTTP_SITES:
        crawl_days(site, world, served, crawled, tmp_path)
    items = tmp_path / "in" / "items.jsonl"
    write_world_items(world, items, days=range(DAYS))
    kept = [
        line
        for line in items.read_text(encoding="utf-8").splitlines()
        if json.loads(line)["site"] in HTTP_SITES
    ]
    items.write_text("\n".join(kept) + "\n", encoding="utf-8")
    ingested = registered(f"sqlite:///{tmp_path / 'ingested.sqlite'}", migrate=True)
    ingest(items, ingested, "--quiet")

    crawled_persons, ingested_persons = persons(crawled), persons(ingested)
    assert len(crawled_persons) > 5
    assert ingested_persons == crawled_persons
