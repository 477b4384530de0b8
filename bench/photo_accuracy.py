"""Recall and false-match rate of ``matching.photos.same_photo``, per repost transformation.

Every base photo (``fixtures.photos.base_photo``, one per seed) is saved as a JPEG (quality 90)
"original" and reposted once per transformation of the demo world at full strength
(``fixtures.photos.random_step``, then a JPEG at quality 85 as a site would save it; ``jpeg``,
``webp`` and ``png`` are the encoding alone). Recall is the share of reposts that
``same_photo`` links to their original. ``crop5``/``crop10``/``crop15`` keep 95-100 %, 90-95 %
and 85-90 % of each side; ``repost`` is a full random repost (``fixtures.photos.repost``).

False matches are counted over every pair of different seeds among each seed's original and
four reposts (random repost, 10 % crop, text overlay, watermark), so distinct *transformed*
photos are compared too. A count of zero is reported with its 95 % upper bound (3/n).

    .venv/bin/python bench/photo_accuracy.py --seeds 400
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import time

from fixtures.photos import base_photo, encode, random_step, repost, transform
from matching.photos import (
    OVERLAY_PDQ_THRESHOLD,
    PDQ_THRESHOLD,
    STRIP_THRESHOLD,
    WINDOW_THRESHOLD,
    compare,
    same_photo,
)
from pipelines.photos import Fingerprint, fingerprint

KINDS = (
    "resize",
    "jpeg",
    "watermark",
    "text",
    "brightness",
    "contrast",
    "tone",
    "mirror",
    "border",
    "webp",
    "png",
    "crop5",
    "crop10",
    "crop15",
    "repost",
)
NEGATIVE_KINDS = ("orig", "repost", "crop10", "text", "watermark")


def spec_for(kind: str, rng: random.Random) -> str:
    """One transformation at full strength, then the JPEG a site saves (encodings alone)."""
    if kind in ("jpeg", "webp", "png"):
        return random_step(kind, rng)
    if kind == "tone":
        return f"{random_step('brightness', rng)};{random_step('contrast', rng)};jpeg=85"
    if kind.startswith("crop"):
        most = int(kind[4:]) / 100
        share = rng.uniform(most - 0.05, most)
        return f"crop={share:.3f},{rng.random():.2f},{rng.random():.2f};jpeg=85"
    return f"{random_step(kind, rng)};jpeg=85"


def prints_of(seed: int) -> dict[str, Fingerprint]:
    rng = random.Random(f"photo-accuracy-{seed}")
    base = base_photo(seed)
    prints = {"orig": fingerprint(encode(base, "jpeg=90")[0])}
    for kind in KINDS:
        if kind == "repost":
            data = repost(base, rng)[0]
        else:
            *edits, last = spec_for(kind, rng).split(";")
            data = encode(transform(base, ";".join(edits)), last)[0]
        prints[kind] = fingerprint(data)
    return prints


def upper_bound(hits: int, total: int) -> str:
    return f"{hits / total:.6f}" if hits else f"0 (95% upper bound {3 / total:.6f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=400, help="base photos (default 400)")
    parser.add_argument("--first-seed", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=max(1, multiprocessing.cpu_count()))
    args = parser.parse_args()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    started = time.perf_counter()
    with multiprocessing.Pool(args.workers) as pool:
        prints = dict(zip(seeds, pool.map(prints_of, seeds, chunksize=4), strict=True))
    print(
        f"fingerprinted {len(seeds) * (len(KINDS) + 1)} photos in "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(
        f"thresholds: PDQ <= {PDQ_THRESHOLD}; window <= {WINDOW_THRESHOLD}; "
        f"strip <= {STRIP_THRESHOLD} with PDQ <= {OVERLAY_PDQ_THRESHOLD}"
    )
    print(f"{'transformation':<15}{'recall':>8}{'found':>10}   by rule")
    for kind in KINDS:
        rules: dict[str, int] = {}
        for by_kind in prints.values():
            rule = compare(by_kind["orig"], by_kind[kind]).rule or "missed"
            rules[rule] = rules.get(rule, 0) + 1
        found = len(seeds) - rules.get("missed", 0)
        detail = ", ".join(f"{rule} {count}" for rule, count in sorted(rules.items()))
        print(f"{kind:<15}{found / len(seeds):>8.3f}{found:>6}/{len(seeds):<4}  {detail}")
    items = [(seed, prints[seed][kind]) for seed in seeds for kind in NEGATIVE_KINDS]
    started = time.perf_counter()
    pairs = false = 0
    false_rules: dict[str, int] = {}
    for i, (seed_a, a) in enumerate(items):
        for seed_b, b in items[i + 1 :]:
            if seed_a != seed_b:
                pairs += 1
                if same_photo(a, b):
                    false += 1
                    rule = compare(a, b).rule or "?"
                    false_rules[rule] = false_rules.get(rule, 0) + 1
    print(
        f"false matches: {false} in {pairs} pairs of distinct photos, rate "
        f"{upper_bound(false, pairs)}, by rule {false_rules} "
        f"({time.perf_counter() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()
