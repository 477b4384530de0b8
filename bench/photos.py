"""Photo fingerprint speed against decoding alone, and the photo index's cost as it grows.

**Fingerprint.** The same 1024x768 JPEGs (quality 88: demo-world base photos, and the four
stand-in photographs of ``fixtures/data/photos``) are decoded in full
(``Image.open(...).load()``, the baseline) and fingerprinted (``pipelines.photos.fingerprint``),
interleaved image by image so that load on the machine hits both alike; each figure is the
fastest of ``--rounds`` per image, averaged over the images. The ratio fingerprint / decode is
the figure to hold (target <= 1.1). Draft decoding alone and full-resolution PDQ (full decode
plus ``pdqhash.compute``) are printed for reference.

**Search.** ``matching.photos.near_pairs`` over N fingerprints (half distinct base photos, half
one repost of each): time per photo and hash pairs compared per photo, against comparing one
photo with all N fingerprints (timed on a sample of photos).

    .venv/bin/python bench/photos.py --rounds 15 --index 1000,2000,4000
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import random
import time
from collections.abc import Callable
from statistics import mean

import numpy as np
import pdqhash
from PIL import Image

from fixtures.photos import PHOTO_DIR, STAND_INS, base_photo, encode, repost
from matching.photos import PhotoArrays, near_pairs, same_photo
from pipelines.photos import Fingerprint, decode, fingerprint, fingerprint_image

SIZE = (1024, 768)


def test_images(count: int) -> list[bytes]:
    images = [base_photo(seed).resize(SIZE, Image.Resampling.LANCZOS) for seed in range(count)]
    for name in STAND_INS:
        with Image.open(PHOTO_DIR / name) as img:
            images.append(img.convert("RGB").resize(SIZE, Image.Resampling.LANCZOS))
    return [encode(img, "jpeg=88")[0] for img in images]


def full_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as img:
        img.load()


def full_pdq(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as img:
        pdqhash.compute(np.asarray(img.convert("RGB")))


def timed(function: Callable[[bytes], object], data: bytes) -> float:
    started = time.perf_counter()
    function(data)
    return (time.perf_counter() - started) * 1000


def bench_fingerprint(count: int, rounds: int) -> None:
    images = test_images(count)
    tasks: dict[str, Callable[[bytes], object]] = {
        "full decode": full_decode,
        "fingerprint": fingerprint,
        "draft decode": decode,
        "full-res PDQ": full_pdq,
    }
    best = {name: [float("inf")] * len(images) for name in tasks}
    for _ in range(rounds):
        for i, data in enumerate(images):
            for name, function in tasks.items():
                best[name][i] = min(best[name][i], timed(function, data))
    means = {name: mean(values) for name, values in best.items()}
    print(f"{len(images)} JPEGs of {SIZE[0]}x{SIZE[1]}, fastest of {rounds} rounds per image:")
    for name, value in means.items():
        ratio = value / means["full decode"]
        print(f"  {name:<13} {value:7.3f} ms   ratio to full decode {ratio:.3f}")


def _pair(seed: int) -> tuple[Fingerprint, Fingerprint]:
    base = base_photo(seed)
    return fingerprint_image(base), fingerprint(repost(base, random.Random(seed))[0])


def bench_index(sizes: list[int], sample: int) -> None:
    largest = max(sizes)
    with multiprocessing.Pool() as pool:
        pairs = pool.map(_pair, range(200_000, 200_000 + largest // 2), chunksize=8)
    prints = [fp for pair in pairs for fp in pair]
    print("near_pairs (half distinct photos, half a repost of each):")
    for size in sizes:
        subset = prints[:size]
        started = time.perf_counter()
        found = near_pairs(PhotoArrays.of(subset))
        per_photo = (time.perf_counter() - started) * 1000 / size
        picks = random.Random(size).sample(subset, min(sample, size))
        started = time.perf_counter()
        for fp in picks:
            sum(same_photo(fp, other) for other in subset)
        brute = (time.perf_counter() - started) * 1000 / len(picks)
        print(
            f"  N={size:>6}: {per_photo:6.3f} ms per photo ({found.checked / size:6.1f} "
            f"hash pairs compared, {2 * len(found.low) / size:.2f} matches), "
            f"all-pairs {brute:7.2f} ms per photo"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=36, help="base photos (plus 4 stand-ins)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--index", default="1000,2000,4000", help="index sizes; '' to skip")
    parser.add_argument("--sample", type=int, default=100, help="queries timed all-pairs")
    args = parser.parse_args()
    bench_fingerprint(args.images, args.rounds)
    if args.index:
        bench_index([int(n) for n in args.index.split(",")], args.sample)


if __name__ == "__main__":
    main()
