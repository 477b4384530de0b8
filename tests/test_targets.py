"""The matching targets on the demo world, with the same-phone baseline measured beside them.

The demo world of seeds 1 and 3 at its default scale (200 women, 30 networks, 28 days) goes through
the product's own extraction and ``AdStore``, one batch per simulated day, with real photo
fingerprints, and is linked after every day, as ``lovitura demo`` does (``bench/world_db.py``
does the ingestion; ``bench/link.py --evaluate --daily`` prints the same figures for any seed).
``matching.evaluate`` then scores Lovitura's persons, networks and moves against the world's
truth, and a baseline of connected components over exact shared phone numbers on the same ads.

The tiny world does not reach the targets (too few ads per woman to be sure of), so this takes
the default scale and the time it needs: fingerprints of every photo, computed here since CI
starts with no cache, and 28 incremental links.

The second part checks the incremental link against a full one on the tiny world: linking a
new day's ads into the existing persons and networks gives the same persons and networks as
throwing the links away and linking every ad at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from bench.world_db import PhotoPrints, ingest, prepare_database
from fixtures.truth import write_truth
from fixtures.world import build_world
from lovitura_crawl.db import models
from matching.evaluate import evaluate, format_table
from matching.link import link
from matching.trails import build_trails

# Seed 3 has networks whose text templates resemble other networks' (they joined at an average
# linkage threshold of 0.25: networks F1 0.890), so it holds the network merging to its target.
SEEDS = (1, 3)
DAYS = 28  # the demo scale's own number of days, stated so a change of the scale shows here

# The targets of issue #6.
PERSON_PRECISION = 0.99
PERSON_RECALL = 0.97
MOVES_PRECISION = 0.95
MOVES_RECALL = 0.95
NETWORK_F1 = 0.9


@pytest.fixture(scope="module", params=SEEDS, ids=lambda seed: f"seed{seed}")
def figures(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The evaluation of the demo world of a seed, linked after every day, on SQLite."""
    tmp = tmp_path_factory.mktemp("targets")
    world = build_world(request.param, scale="demo")
    assert world.days == DAYS
    engine = prepare_database(f"sqlite:///{tmp / 'demo.sqlite'}")
    prints = PhotoPrints(world, synthetic=False, cache=tmp / "fingerprints.jsonl")
    try:
        done = ingest(world, engine, prints, after_day=lambda _day: link(engine))
    finally:
        prints.close()
    assert done.days == DAYS
    build_trails(engine)
    write_truth(world, tmp / "truth")
    result = evaluate(engine, tmp / "truth")
    engine.dispose()
    print(format_table(result))  # shown by pytest when an assertion fails
    yield result


# The demo world at full size takes many minutes on a 2-core machine (its fixture runs within
# the first test's timeout); the suite's 900 s per test is for ordinary tests.
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_lovitura_meets_the_targets(figures: dict[str, Any]) -> None:
    product = figures["product"]
    assert figures["ads"]["matched"] == figures["ads"]["in_database"] > 1000
    assert product["person"]["pairwise_precision"] >= PERSON_PRECISION
    assert product["person"]["pairwise_recall"] >= PERSON_RECALL
    assert product["network"]["pairwise_f1"] >= NETWORK_F1
    assert product["moves"]["precision"] >= MOVES_PRECISION
    assert product["moves"]["recall"] >= MOVES_RECALL
    assert product["moves"]["true"] > 50  # enough moves for the figures to mean something


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_same_phone_baseline_is_far_below(figures: dict[str, Any]) -> None:
    """The baseline on the same ads: shared numbers alone join agency women and miss new
    numbers, so it misses the targets by far; a world where it did not would test nothing."""
    product, baseline = figures["product"], figures["baseline"]
    assert baseline["person"]["pairwise_precision"] < 0.9
    assert baseline["network"]["pairwise_f1"] < 0.8
    assert baseline["moves"]["recall"] < 0.8
    for level, figure in [
        ("person", "pairwise_precision"),
        ("network", "pairwise_f1"),
        ("moves", "precision"),
        ("moves", "recall"),
    ]:
        assert product[level][figure] > baseline[level][figure] + 0.1, (level, figure)


# --- incremental against full, on the tiny world -----------------------------------------------


@pytest.fixture(scope="module")
def tiny_prints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fingerprint cache shared by both backends' runs: the photos are fingerprinted once."""
    return tmp_path_factory.mktemp("tiny") / "fingerprints.jsonl"


def _partition(engine: Engine, column: Any) -> set[frozenset[tuple[str, str]]]:
    """The groups of (site, site_ad_id) that ``column`` makes; an ad without one is alone."""
    by: dict[object, set[tuple[str, str]]] = {}
    with engine.connect() as conn:
        for site, site_ad_id, group in conn.execute(
            select(models.Ad.site, models.Ad.site_ad_id, column)
        ):
            key = (site, site_ad_id)
            by.setdefault(group if group is not None else key, set()).add(key)
    return {frozenset(g) for g in by.values()}


@pytest.mark.slow
def test_daily_incremental_links_agree_with_one_full_link(
    engine: Engine, tiny_prints: Path
) -> None:
    world = build_world(SEEDS[0], scale="tiny")
    prints = PhotoPrints(world, synthetic=False, cache=tiny_prints)
    runs = []
    try:
        ingest(world, engine, prints, after_day=lambda _day: runs.append(link(engine)))
    finally:
        prints.close()
    assert len(runs) == world.days > 1
    assert all(r.new_ads < r.ads for r in runs[1:])  # later days look up only their new ads
    daily_persons = _partition(engine, models.Ad.person_id)
    daily_networks = _partition(engine, models.Ad.network_id)
    assert len(daily_persons) < len(_partition(engine, models.Ad.id))  # some ads were joined
    link(engine, full=True)
    assert _partition(engine, models.Ad.person_id) == daily_persons
    assert _partition(engine, models.Ad.network_id) == daily_networks
