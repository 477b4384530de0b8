"""How well persons, networks, stays and moves in the database match the demo world's truth.

``evaluate(engine, truth_dir)`` reads the truth files written by ``fixtures.truth.write_truth``
(``ads.csv``, ``stays.csv``, ``world.json``) and compares. Ads are matched on (site,
site_ad_id); only ads both in the database and in the truth count. The definitions:

* **person level**: the truth person of an ad is its ``persona_id``; a scam ad (no woman behind
  it) belongs to its scammer (``scam:S01``), so joining it to any woman is an error. Pairwise
  precision/recall/F1 over pairs of ads, and B-cubed precision/recall (per ad, averaged).
* **network level**: the truth network of an ad is its ``network_id`` (network, agency or
  scammer), or its person when it has none (an independent is a network of one). The
  database's network of an ad is its ``network_id``, or its person when it has none.
* **stays**: each database person stands for the truth person most of her ads belong to. A
  database stay matches a truth stay of that woman in the same municipality (or country,
  abroad) when their dates overlap. Truth stays count when they could be seen: one of her ads
  was seen on a day of the stay *naming that place* (the truth's ``places``). A stay during
  which her only ads online were stale ones naming the place she had left (she was not
  advertised there, for instance abroad without an escortgids ad) cannot be seen. Truth files
  without ``places`` count a stay when any of her ads was seen during it. Precision counts
  stays of persons that stand for a woman; stays of scam clusters are counted apart.
* **moves**: a move is the change from one stay to the next. A database move matches a truth
  move of the same woman with the same from and to places when its arrival day is within
  :data:`MOVE_DAYS` days (one to one). Truth moves join consecutive stays that count (a stay
  that cannot be seen in between is skipped: ads show her going from the one to the other),
  with the arrival day inside the crawled window.

The same figures are computed for a **baseline**: connected components of ads that share an
exact phone number, as persons and as networks, with trails built the same way.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from networkx.utils import UnionFind
from rich.table import Table
from sqlalchemy import Engine, select
from sqlalchemy import Table as SqlTable

from lovitura_crawl.db import models
from matching.loader import AdRecord, load_ads
from matching.trails import Move, Stay, trails_of

MOVE_DAYS = 2

ADS: SqlTable = models.Ad.__table__  # type: ignore[assignment]
STAYS: SqlTable = models.TrailStay.__table__  # type: ignore[assignment]
MOVES: SqlTable = models.TrailMove.__table__  # type: ignore[assignment]


class TruthError(ValueError):
    """The truth folder is missing a file or a column."""


@dataclass(frozen=True)
class TruthAd:
    person: str
    network: str
    kind: str
    places: tuple[tuple[int, str], ...] = ()  # (from day, place) of each version; () unknown

    def place_on(self, day: int) -> str | None:
        """The place the ad named on ``day`` (date ordinal), when the truth says."""
        named = None
        for since, place in self.places:
            if since <= day:
                named = place
        return named


@dataclass(frozen=True)
class TruthStay:
    person: str
    place: str
    first: int  # date ordinal
    last: int


# --- reading the truth -----------------------------------------------------------------------


def _rows(path: Path, needed: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise TruthError(
            f"{path} is missing: write the truth with `lovitura sites truth --out {path.parent}`"
        )
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise TruthError(f"{path} lacks the column(s) {', '.join(missing)}")
        return list(reader)


def read_truth(truth_dir: Path) -> tuple[dict[tuple[str, str], TruthAd], list[TruthStay], int, int]:
    """Truth ads by (site, site_ad_id), stays, and the window's first and last day (ordinals)."""
    meta_path = truth_dir / "world.json"
    if not meta_path.is_file():
        raise TruthError(f"{meta_path} is missing: is {truth_dir} a truth folder?")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    start = date.fromisoformat(meta["start_date"]).toordinal()
    ads = {}
    for row in _rows(truth_dir / "ads.csv", ("site", "site_ad_id", "kind", "persona_id")):
        network = row.get("network_id", "")
        person = row["persona_id"] or f"{row['kind']}:{network or row['site_ad_id']}"
        ads[(row["site"], row["site_ad_id"])] = TruthAd(
            person, network or person, row["kind"], _places(row.get("places") or "", start)
        )
    stays = []
    columns = ("persona_id", "municipality_code", "country", "first_day", "last_day")
    for row in _rows(truth_dir / "stays.csv", columns):
        place = row["municipality_code"] or row["country"]
        stays.append(
            TruthStay(
                row["persona_id"],
                place,
                start + int(row["first_day"]),
                start + int(row["last_day"]),
            )
        )
    return ads, stays, start, start + int(meta["days"]) - 1


def _places(value: str, start: int) -> tuple[tuple[int, str], ...]:
    """``places`` of ads.csv (``3:GM0363/Amsterdam;9:BE/Antwerpen``) as (ordinal, place)."""
    places = []
    for entry in filter(None, value.split(";")):
        day, _, key = entry.partition(":")
        code = key.split("/", 1)[0]
        places.append((start + int(day), code))
    return tuple(sorted(places))


# --- clustering figures ----------------------------------------------------------------------


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def cluster_scores(predicted: Sequence[Hashable], truth: Sequence[Hashable]) -> dict[str, float]:
    """Pairwise precision/recall/F1 and B-cubed precision/recall of two labelings of items."""
    cells = Counter(zip(predicted, truth, strict=True))
    sizes_p, sizes_t = Counter(predicted), Counter(truth)
    same_both = sum(_pairs(n) for n in cells.values())
    same_p = sum(_pairs(n) for n in sizes_p.values())
    same_t = sum(_pairs(n) for n in sizes_t.values())
    precision = same_both / same_p if same_p else 1.0
    recall = same_both / same_t if same_t else 1.0
    total = len(predicted) or 1
    return {
        "pairwise_precision": round(precision, 4),
        "pairwise_recall": round(recall, 4),
        "pairwise_f1": round(_f1(precision, recall), 4),
        "bcubed_precision": round(
            sum(n * n / sizes_p[p] for (p, _t), n in cells.items()) / total, 4
        ),
        "bcubed_recall": round(sum(n * n / sizes_t[t] for (_p, t), n in cells.items()) / total, 4),
        "predicted_pairs": same_p,
        "true_pairs": same_t,
        "clusters": len(sizes_p),
        "true_clusters": len(sizes_t),
    }


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# --- trail figures ---------------------------------------------------------------------------


def stay_scores(
    stays: Iterable[tuple[str, Stay]],
    truth: Sequence[TruthStay],
    observable: set[int],
    window: tuple[int, int],
) -> dict[str, Any]:
    """``stays``: (truth person the stay's person stands for, stay). Date errors are measured
    against the truth stay cut to the crawled ``window`` (first and last day)."""
    by_person: dict[str, list[TruthStay]] = defaultdict(list)
    for t in truth:
        by_person[t.person].append(t)
    counted = [t for t in truth if id(t) in observable]
    found: set[int] = set()
    correct = total = 0
    arrival_errors, leave_errors = [], []
    for person, stay in stays:
        total += 1
        hits = [
            t
            for t in by_person.get(person, [])
            if t.place == stay.place and t.first <= stay.left and stay.arrived <= t.last
        ]
        if hits:
            correct += 1
            best = max(hits, key=lambda t: min(t.last, stay.left) - max(t.first, stay.arrived))
            found.update(id(t) for t in hits)
            arrival_errors.append(abs(stay.arrived - max(best.first, window[0])))
            leave_errors.append(abs(stay.left - min(best.last, window[1])))
    recall_hits = sum(1 for t in counted if id(t) in found)
    precision = correct / total if total else 1.0
    recall = recall_hits / len(counted) if counted else 1.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(_f1(precision, recall), 4),
        "predicted": total,
        "true": len(counted),
        "median_arrival_error_days": _median(arrival_errors),
        "median_leave_error_days": _median(leave_errors),
    }


def _median(values: list[int]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2


def truth_moves(
    truth: Sequence[TruthStay], observable: set[int], first_day: int, last_day: int
) -> list[tuple[str, str, str, int]]:
    """(person, from, to, arrival day) of consecutive truth stays that count (stays that do
    not count are skipped)."""
    by_person: dict[str, list[TruthStay]] = defaultdict(list)
    for t in truth:
        if id(t) in observable:
            by_person[t.person].append(t)
    moves = []
    for person, stays in by_person.items():
        stays.sort(key=lambda t: t.first)
        for a, b in itertools.pairwise(stays):
            if a.place != b.place and first_day < b.first <= last_day:
                moves.append((person, a.place, b.place, b.first))
    return moves


def move_scores(
    moves: Iterable[tuple[str, Move]], truth: Sequence[tuple[str, str, str, int]]
) -> dict[str, Any]:
    """One-to-one matching of moves: same person and places, arrival within MOVE_DAYS."""
    open_truth: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for person, a, b, day in truth:
        open_truth[(person, a, b)].append(day)
    predicted = correct = 0
    errors = []
    for person, move in sorted(moves, key=lambda pm: (pm[0], pm[1].arrived)):
        predicted += 1
        days = open_truth.get((person, move.from_place, move.to_place), [])
        near = [d for d in days if abs(d - move.arrived) <= MOVE_DAYS]
        if near:
            best = min(near, key=lambda d: abs(d - move.arrived))
            days.remove(best)
            correct += 1
            errors.append(abs(best - move.arrived))
    precision = correct / predicted if predicted else 1.0
    recall = correct / len(truth) if truth else 1.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(_f1(precision, recall), 4),
        "predicted": predicted,
        "true": len(truth),
        "median_date_error_days": _median(errors),
    }


# --- the comparison --------------------------------------------------------------------------


@dataclass
class _Side:
    """One linking to score: person and network label per ad, and trails per person."""

    person: Mapping[int, Hashable]
    network: Mapping[int, Hashable]
    trails: Mapping[Hashable, tuple[list[Stay], list[Move]]]


def evaluate(engine: Engine, truth_dir: Path) -> dict[str, Any]:
    """Figures for the database's linking and for the phone baseline; JSON-serialisable."""
    truth_ads, truth_stays, first_day, last_day = read_truth(Path(truth_dir))
    with engine.connect() as conn:
        ads = load_ads(conn)
        keys = {
            row.id: (row.site, row.site_ad_id)
            for row in conn.execute(select(ADS.c.id, ADS.c.site, ADS.c.site_ad_id))
        }
        db_stays = [
            (
                row.person_id,
                Stay(
                    row.municipality_code or row.country,
                    row.arrived_at.toordinal(),
                    row.left_at.toordinal(),
                ),
            )
            for row in conn.execute(select(STAYS))
        ]
        db_moves = [
            (
                row.person_id,
                Move(
                    row.from_municipality_code or row.from_country,
                    row.to_municipality_code or row.to_country,
                    row.left_at.toordinal(),
                    row.arrived_at.toordinal(),
                ),
            )
            for row in conn.execute(select(MOVES))
        ]
    matched = {ad_id: truth_ads[key] for ad_id, key in keys.items() if key in truth_ads}
    observable = _observable(ads, matched, truth_stays)
    product = _product_side(ads, db_stays, db_moves)
    baseline = _baseline_side(ads)
    figures = {
        "ads": {
            "in_database": len(keys),
            "in_truth": len(truth_ads),
            "matched": len(matched),
            "database_only": len(keys) - len(matched),
        },
        "window": [date.fromordinal(first_day).isoformat(), date.fromordinal(last_day).isoformat()],
        "product": _score(product, matched, truth_stays, observable, first_day, last_day),
        "baseline": _score(baseline, matched, truth_stays, observable, first_day, last_day),
        "definitions": {
            "person": "pairs of ads of one persona (scam ads: of one scammer)",
            "network": "pairs of ads of one network/agency/scammer, else of one person",
            "stays": "same person, same municipality or country, overlapping dates",
            "moves": f"same person, same from and to, arrival within {MOVE_DAYS} days",
        },
    }
    return figures


def _observable(
    ads: Mapping[int, AdRecord], matched: Mapping[int, TruthAd], stays: Sequence[TruthStay]
) -> set[int]:
    """Truth stays (by ``id()``) that could be seen: one of her ads was seen on a day of the
    stay naming its place (any of her ads, when the truth does not say what they named)."""
    seen: dict[str, set[tuple[int, str | None]]] = defaultdict(set)
    for ad_id, truth in matched.items():
        ad = ads.get(ad_id)
        if ad is not None:
            seen[truth.person].update(
                (d, (truth.place_on(d) or "") if truth.places else None) for d in ad.days
            )
    return {
        id(t)
        for t in stays
        if any(
            t.first <= d <= t.last and place in (None, t.place)
            for d, place in seen.get(t.person, ())
        )
    }


def _product_side(
    ads: Mapping[int, AdRecord],
    stays: Iterable[tuple[int, Stay]],
    moves: Iterable[tuple[int, Move]],
) -> _Side:
    person = {
        a: ("p", ad.person_id) if ad.person_id is not None else ("ad", a) for a, ad in ads.items()
    }
    network = {
        a: ("n", ad.network_id) if ad.network_id is not None else person[a] for a, ad in ads.items()
    }
    trails: dict[Hashable, tuple[list[Stay], list[Move]]] = defaultdict(lambda: ([], []))
    for person_id, stay in stays:
        trails[("p", person_id)][0].append(stay)
    for person_id, move in moves:
        trails[("p", person_id)][1].append(move)
    return _Side(person, network, dict(trails))


def _baseline_side(ads: Mapping[int, AdRecord]) -> _Side:
    union: UnionFind = UnionFind()
    first_with: dict[str, int] = {}
    for ad_id in sorted(ads):
        _ = union[ad_id]  # looking an ad up makes it its own component
        for phone in ads[ad_id].phones:
            if phone in first_with:
                union.union(first_with[phone], ad_id)
            else:
                first_with[phone] = ad_id
    label = {a: ("b", union[a]) for a in ads}
    members: dict[Hashable, list[AdRecord]] = defaultdict(list)
    for ad_id, key in label.items():
        members[key].append(ads[ad_id])
    return _Side(label, label, trails_of(members))


def _score(
    side: _Side,
    matched: Mapping[int, TruthAd],
    truth_stays: Sequence[TruthStay],
    observable: set[int],
    first_day: int,
    last_day: int,
) -> dict[str, Any]:
    ad_ids = sorted(a for a in matched if a in side.person)
    persons = cluster_scores([side.person[a] for a in ad_ids], [matched[a].person for a in ad_ids])
    networks = cluster_scores(
        [side.network[a] for a in ad_ids], [matched[a].network for a in ad_ids]
    )
    stands_for = _stands_for(side.person, matched)
    woman_stays: list[tuple[str, Stay]] = []
    woman_moves: list[tuple[str, Move]] = []
    scam_stays = 0
    for key, (stays, moves) in side.trails.items():
        person = stands_for.get(key)
        if person is None:
            continue
        if ":" in person:
            scam_stays += len(stays)
            continue
        woman_stays.extend((person, s) for s in stays)
        woman_moves.extend((person, m) for m in moves)
    stays_result = stay_scores(woman_stays, truth_stays, observable, (first_day, last_day))
    stays_result["stays_of_scam_clusters"] = scam_stays
    moves_result = move_scores(
        woman_moves, truth_moves(truth_stays, observable, first_day, last_day)
    )
    return {"person": persons, "network": networks, "stays": stays_result, "moves": moves_result}


def _stands_for(
    person: Mapping[int, Hashable], matched: Mapping[int, TruthAd]
) -> dict[Hashable, str]:
    """The truth person most of each cluster's ads belong to (ties: the smallest id)."""
    votes: dict[Hashable, Counter[str]] = defaultdict(Counter)
    for ad_id, truth in matched.items():
        key = person.get(ad_id)
        if key is not None:
            votes[key][truth.person] += 1
    return {
        key: min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0] for key, counts in votes.items()
    }


# --- presentation ----------------------------------------------------------------------------

_ROWS = (
    ("person", "pairwise_precision", "persons: pairwise precision"),
    ("person", "pairwise_recall", "persons: pairwise recall"),
    ("person", "pairwise_f1", "persons: pairwise F1"),
    ("person", "bcubed_precision", "persons: B-cubed precision"),
    ("person", "bcubed_recall", "persons: B-cubed recall"),
    ("person", "clusters", "persons (truth: {true})"),
    ("network", "pairwise_precision", "networks: pairwise precision"),
    ("network", "pairwise_recall", "networks: pairwise recall"),
    ("network", "pairwise_f1", "networks: pairwise F1"),
    ("stays", "precision", "stays: precision"),
    ("stays", "recall", "stays: recall"),
    ("stays", "median_arrival_error_days", "stays: median arrival error (days)"),
    ("stays", "median_leave_error_days", "stays: median leaving error (days)"),
    ("moves", "precision", "moves: precision"),
    ("moves", "recall", "moves: recall"),
    ("moves", "f1", "moves: F1"),
)


def table_rows(figures: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(what, product, baseline) rows of the figures, as text."""
    rows = []
    for level, key, label in _ROWS:
        product = figures["product"][level].get(key)
        baseline = figures["baseline"][level].get(key)
        if "{true}" in label:
            label = label.format(true=figures["product"][level].get("true_clusters"))
        rows.append((label, _cell(product), _cell(baseline)))
    return rows


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render_table(figures: Mapping[str, Any]) -> Table:
    """A rich table of the figures, product beside baseline."""
    ads = figures["ads"]
    table = Table(title=f"Evaluation against the demo world's truth ({ads['matched']} ads matched)")
    table.add_column("figure")
    table.add_column("Lovitura", justify="right")
    table.add_column("baseline: same phone", justify="right")
    for row in table_rows(figures):
        table.add_row(*row)
    return table


def format_table(figures: Mapping[str, Any]) -> str:
    """The figures as plain text, one row per line (for logs and reports)."""
    rows = [("figure", "Lovitura", "baseline: same phone"), *table_rows(figures)]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:>10}  {c:>20}" for a, b, c in rows)
