"""Evaluation against truth files: the figures, the baseline, and the matching rules."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from matching.evaluate import (
    TruthError,
    cluster_scores,
    evaluate,
    format_table,
    move_scores,
    render_table,
)
from matching.link import link
from matching.trails import Move, build_trails
from tests.adfactory import START, AdSpec, store

D0 = START.toordinal()


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _truth(folder: Path) -> Path:
    folder.mkdir()
    (folder / "world.json").write_text(
        json.dumps({"start_date": START.isoformat(), "days": 20}), encoding="utf-8"
    )
    ad = {"site": "", "site_ad_id": "", "kind": "network", "persona_id": "", "network_id": ""}
    _write(
        folder / "ads.csv",
        [
            {**ad, "site": "roodlicht", "site_ad_id": "r1", "persona_id": "P1", "network_id": "N1"},
            {**ad, "site": "nachtvlinder", "site_ad_id": "n1", "persona_id": "P1",
             "network_id": "N1"},
            {**ad, "site": "roodlicht", "site_ad_id": "x1", "persona_id": "P2",
             "kind": "independent"},
            {**ad, "site": "prikbord", "site_ad_id": "s1", "kind": "scam", "network_id": "S1"},
        ],
    )  # fmt: skip
    stay = {"persona_id": "", "municipality_code": "", "country": "NL", "first_day": 0}
    _write(
        folder / "stays.csv",
        [
            {**stay, "persona_id": "P1", "municipality_code": "GM0344", "last_day": 9},
            {**stay, "persona_id": "P1", "municipality_code": "GM0193", "first_day": 10,
             "last_day": 25},
            {**stay, "persona_id": "P2", "municipality_code": "GM0983", "first_day": -30,
             "last_day": 60},
        ],
    )  # fmt: skip
    return folder


def test_cluster_scores_by_hand() -> None:
    scores = cluster_scores(list("aaabb"), list("xxyyy"))
    assert (scores["pairwise_precision"], scores["pairwise_recall"]) == (0.5, 0.5)
    assert scores["bcubed_precision"] == scores["bcubed_recall"] == round(11 / 15, 4)
    assert cluster_scores(list("abc"), list("abc"))["pairwise_precision"] == 1.0


def test_moves_match_within_two_days_one_to_one() -> None:
    truth = [("P1", "GM0344", "GM0193", D0 + 10)]
    near = ("P1", Move("GM0344", "GM0193", D0 + 11, D0 + 12))
    far = ("P1", Move("GM0344", "GM0193", D0 + 12, D0 + 13))
    assert move_scores([near], truth)["recall"] == 1.0
    assert move_scores([far], truth)["recall"] == 0.0
    twice = move_scores([near, near], truth)
    assert (twice["precision"], twice["recall"]) == (0.5, 1.0)


def test_evaluate_compares_with_truth_and_the_phone_baseline(
    engine: Engine, tmp_path: Path
) -> None:
    store(
        engine,
        [
            AdSpec("roodlicht", "r1", range(0, 11), "Utrecht", "+31612345671", [(1, 0), (2, 0)]),
            # Her new number, her photos, her next place: the baseline cannot join it.
            AdSpec("nachtvlinder", "n1", range(10, 20), "Zwolle", "+31612345672", [(1, 1), (2, 1)]),
            AdSpec("roodlicht", "x1", range(0, 20), "Venlo", "+31633333333", [(5, 0)], age=35),
            AdSpec("prikbord", "s1", range(3, 7), "Amsterdam", "+31687654321", [(1, 2)]),
        ],
    )  # fmt: skip
    link(engine)
    build_trails(engine)
    figures = evaluate(engine, _truth(tmp_path / "truth"))

    assert figures["ads"] == {"in_database": 4, "in_truth": 4, "matched": 4, "database_only": 0}
    product, baseline = figures["product"], figures["baseline"]
    assert product["person"]["pairwise_precision"] == 1.0
    assert product["person"]["pairwise_recall"] == 1.0
    assert baseline["person"]["pairwise_recall"] == 0.0
    assert product["moves"]["recall"] == 1.0 and product["moves"]["precision"] == 1.0
    assert baseline["moves"]["recall"] == 0.0
    assert product["stays"]["recall"] == 1.0 and product["stays"]["precision"] == 1.0
    assert product["stays"]["stays_of_scam_clusters"] == 1
    json.dumps(figures)
    assert "moves: recall" in format_table(figures)
    assert render_table(figures).row_count == len(format_table(figures).splitlines()) - 1


def test_evaluate_says_what_is_missing(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(TruthError, match=r"world\.json"):
        evaluate(engine, tmp_path)


def test_a_stay_no_ad_named_is_skipped_and_moves_join_the_stays_around_it(
    engine: Engine, tmp_path: Path
) -> None:
    # She went from Utrecht (days 0-9) to Belgium (10-14, no ad there) to Zwolle (15-20); her
    # Utrecht ad lingered until day 12. Nothing could show the Belgian stay.
    store(
        engine,
        [
            AdSpec("roodlicht", "r1", range(0, 13), "Utrecht", "+31612345671", [(1, 0), (2, 0)]),
            AdSpec("roodlicht", "r2", range(15, 21), "Zwolle", "+31612345671", [(1, 1), (2, 1)]),
        ],
    )
    link(engine)
    build_trails(engine)
    folder = tmp_path / "truth"
    folder.mkdir()
    (folder / "world.json").write_text(
        json.dumps({"start_date": START.isoformat(), "days": 21}), encoding="utf-8"
    )
    ad = {"site": "roodlicht", "kind": "network", "persona_id": "P1", "network_id": "N1"}
    _write(
        folder / "ads.csv",
        [
            {**ad, "site_ad_id": "r1", "places": "0:GM0344/Utrecht"},
            {**ad, "site_ad_id": "r2", "places": "15:GM0193/Zwolle"},
        ],
    )
    stay = {"persona_id": "P1", "country": "NL"}
    _write(
        folder / "stays.csv",
        [
            {**stay, "municipality_code": "GM0344", "first_day": 0, "last_day": 9},
            {**stay, "municipality_code": "", "country": "BE", "first_day": 10, "last_day": 14},
            {**stay, "municipality_code": "GM0193", "first_day": 15, "last_day": 20},
        ],
    )
    product = evaluate(engine, folder)["product"]
    assert (product["stays"]["true"], product["stays"]["recall"]) == (2, 1.0)
    assert product["moves"]["true"] == 1
    assert (product["moves"]["precision"], product["moves"]["recall"]) == (1.0, 1.0)
