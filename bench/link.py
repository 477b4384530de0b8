"""Linking on the demo world without HTTP: accuracy against the truth, and time and memory.

The world's observations (``World.iter_observations``) go through the product's own extraction
(``pipelines.fields``, ``pipelines.phones``, ``pipelines.geo``, and photo fingerprints of
``World.photo_bytes``) into ``AdStore.save``, one batch per simulated day, as the daily crawls
of ``lovitura demo`` would store them. Then:

* ``--evaluate``: link (after every day with ``--daily``, as the demo does, else once at the
  end), build the trails and print ``matching.evaluate`` figures against the truth, product
  beside the phone baseline;
* ``--measure``: time and peak memory of one full ``link`` plus ``build_trails``, run in a
  child process so the peak is the linker's own; the in-run baseline is the time of merely
  reading the linker's input (``matching.loader.load_ads``), printed as a ratio.

At the ``bench`` scale, fingerprinting hundreds of thousands of generated photos would take
hours, so ``--synthetic-photos`` gives each photo a fingerprint derived from its base photo's
seed with a few flipped bits per hash (placeholders identical): the index and the clustering do
the same work as with real fingerprints of the same structure, but accuracy figures measured
with synthetic photos say nothing about photo matching.

    .venv/bin/python bench/link.py --seed 1 --scale demo --evaluate --daily
    .venv/bin/python bench/link.py --seed 1 --scale bench --observations 100000 \
        --synthetic-photos --measure --db sqlite:///var/bench-100k.sqlite
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from fixtures.model import SITES
from fixtures.truth import write_truth
from fixtures.world import World, build_world
from lovitura_crawl.db import models
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.db.migrate import upgrade
from lovitura_crawl.db.reference import load_municipalities
from lovitura_crawl.db.store import AdStore
from pipelines.fields import FieldsPipeline
from pipelines.geo import GeoPipeline
from pipelines.phones import PhonesPipeline
from pipelines.photos import STRIP_BOXES, WINDOW_BOXES, Fingerprint, fingerprint

PHOTO_PREFIX = "demo://photo/"
SYNTHETIC_FLIPS = (0, 6)  # bits flipped per 64-bit hash of a synthetic repost (x4 for PDQ)


# --- photos ----------------------------------------------------------------------------------

_WORKER_WORLD: World | None = None


def _init_worker(seed: int, scale: str, days: int | None) -> None:
    global _WORKER_WORLD
    _WORKER_WORLD = build_world(seed, scale=scale, days=days)


def _real_print(photo_id: str) -> tuple[str, dict[str, Any] | str]:
    assert _WORKER_WORLD is not None
    data, _type = _WORKER_WORLD.photo_bytes(photo_id)
    try:
        return photo_id, fingerprint(data).as_json()
    except ValueError as exc:
        return photo_id, getattr(exc, "reason", "corrupt")


class PhotoPrints:
    """Fingerprints of the world's photos: real (cached in a file) or synthetic."""

    def __init__(self, world: World, synthetic: bool, cache: Path | None, workers: int = 2) -> None:
        self.world = world
        self.synthetic = synthetic
        self.cache = cache
        self.workers = workers
        self.known: dict[str, dict[str, Any] | str] = {}
        if cache is not None and cache.is_file():
            for line in cache.read_text(encoding="utf-8").splitlines():
                photo_id, value = json.loads(line)
                self.known[photo_id] = value
        self._pool: Any = None

    def prepare(self, photo_ids: list[str]) -> None:
        """Fingerprint the photos not known yet."""
        missing = [p for p in dict.fromkeys(photo_ids) if p not in self.known]
        if not missing:
            return
        if self.synthetic:
            for photo_id in missing:
                self.known[photo_id] = self._synthetic(photo_id)
            return
        if self._pool is None:
            self._pool = multiprocessing.get_context("fork").Pool(
                self.workers,
                _init_worker,
                (self.world.seed, self.world.scale, self.world.days),
            )
        found = self._pool.map(_real_print, missing, chunksize=8)
        self.known.update(found)
        if self.cache is not None:
            with self.cache.open("a", encoding="utf-8") as handle:
                for photo_id, value in found:
                    handle.write(json.dumps([photo_id, value]) + "\n")

    def entry(self, photo_id: str) -> dict[str, Any]:
        value = self.known[photo_id]
        return {"fingerprint": value} if isinstance(value, dict) else {"error": value}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()

    def _synthetic(self, photo_id: str) -> dict[str, Any]:
        serial = self.world.photo_serial(photo_id)
        if serial < len(SITES):
            base, rng = random.Random(f"placeholder-{serial}"), random.Random(0)
            flips = 0
        else:
            base = random.Random(f"base-{self.world.photos.base[serial]}")
            rng = random.Random(f"repost-{serial}")
            flips = rng.randint(*SYNTHETIC_FLIPS)

        def bits(width: int, scale: int = 1) -> int:
            value = base.getrandbits(width)
            for position in rng.sample(range(width), flips * scale):
                value ^= 1 << position
            return value

        return Fingerprint(
            pdq=bits(256, 4),
            pdq_mirror=bits(256, 4),
            pdq_quality=100,
            phash=bits(64),
            phash_mirror=bits(64),
            windows=tuple(bits(64) for _ in WINDOW_BOXES),
            windows_mirror=tuple(bits(64) for _ in WINDOW_BOXES),
            strips=tuple(bits(64) for _ in STRIP_BOXES),
            strips_mirror=tuple(bits(64) for _ in STRIP_BOXES),
            width=800,
            height=600,
        ).as_json()


# --- extraction and storage ------------------------------------------------------------------


class Extractor:
    """The product's item pipelines, without a crawler."""

    def __init__(self) -> None:
        self.pipelines: list[Any] = [FieldsPipeline(), PhonesPipeline(), GeoPipeline()]

    def process(self, item: dict[str, Any]) -> dict[str, Any]:
        for pipeline in self.pipelines:
            item = pipeline.process_item(item)
        return item


@dataclass
class Ingested:
    days: int
    observations: int
    seconds: float


def days_of(world: World, limit: int | None) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """The world's observations day by day, up to ``limit`` observations in all."""
    count = 0
    for day in range(world.days):
        items = list(world.iter_observations(range(day, day + 1)))
        if limit is not None and count + len(items) > limit:
            items = items[: limit - count]
        count += len(items)
        yield day, items
        if limit is not None and count >= limit:
            return


def ingest(
    world: World,
    engine: Engine,
    prints: PhotoPrints,
    *,
    limit: int | None = None,
    after_day: Any = None,
) -> Ingested:
    """Extract and store the world's observations; call ``after_day(day)`` after each day."""
    started = time.monotonic()
    extractor = Extractor()
    store = AdStore(engine)
    total = days = 0
    for day, items in days_of(world, limit):
        prints.prepare(
            [p["url"][len(PHOTO_PREFIX) :] for item in items for p in item.get("photos") or []]
        )
        for item in items:
            for photo in item.get("photos") or []:
                photo.update(prints.entry(photo["url"][len(PHOTO_PREFIX) :]))
        store.save([extractor.process(item) for item in items])
        total += len(items)
        days = day + 1
        if after_day is not None:
            after_day(day)
        print(f"  day {day}: {len(items)} observations stored", file=sys.stderr, flush=True)
    return Ingested(days, total, time.monotonic() - started)


def prepare_database(url: str) -> Engine:
    upgrade(url)
    engine = make_engine(url)
    load_municipalities(engine)
    return engine


def count_observations(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(models.AdObservation)).scalar_one()
        )


# --- measuring -------------------------------------------------------------------------------


def measure_child(url: str) -> dict[str, Any]:
    """Run in a child process: time ``load_ads``, then a full link and the trails."""
    from matching.link import link
    from matching.loader import load_ads
    from matching.trails import build_trails

    engine = make_engine(url)
    started = time.monotonic()
    with engine.connect() as conn:
        ads = load_ads(conn)
    load_seconds = time.monotonic() - started
    n_ads = len(ads)
    del ads
    started = time.monotonic()
    result = link(engine, full=True)
    link_seconds = time.monotonic() - started
    started = time.monotonic()
    trails = build_trails(engine)
    trail_seconds = time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "ads": n_ads,
        "observations": count_observations(engine),
        "read_input_seconds": round(load_seconds, 2),
        "link_seconds": round(link_seconds, 2),
        "trails_seconds": round(trail_seconds, 2),
        "link_to_read_ratio": round(link_seconds / load_seconds, 1) if load_seconds else None,
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "persons": result.persons,
        "networks": result.networks,
        "links_written": result.new_links,
        "stays": trails.stays,
        "moves": trails.moves,
    }


def measure(url: str) -> dict[str, Any]:
    """``measure_child`` in a fresh interpreter, so its peak memory is its own."""
    output = subprocess.run(
        [sys.executable, __file__, "--child-measure", "--db", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


# --- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", default="demo", choices=("tiny", "demo", "bench"))
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--observations", type=int, default=None, help="stop after this many")
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite)")
    parser.add_argument("--daily", action="store_true", help="link after every day, as the demo")
    parser.add_argument("--evaluate", action="store_true")
    parser.add_argument("--measure", action="store_true")
    parser.add_argument("--synthetic-photos", action="store_true")
    parser.add_argument("--photo-cache", type=Path, default=None, help="folder for fingerprints")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--child-measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_measure:
        print(json.dumps(measure_child(args.db)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    from matching.evaluate import evaluate, format_table
    from matching.link import link
    from matching.trails import build_trails

    url = args.db or f"sqlite:///{tmp / 'bench.sqlite'}"
    world = build_world(args.seed, scale=args.scale, days=args.days)
    engine = prepare_database(url)
    figures: dict[str, Any] = {"seed": args.seed, "scale": args.scale, "days": world.days}
    if count_observations(engine) == 0:
        cache = None
        if args.photo_cache is not None and not args.synthetic_photos:
            args.photo_cache.mkdir(parents=True, exist_ok=True)
            cache = args.photo_cache / f"seed{args.seed}-{args.scale}-{world.days}.jsonl"
        prints = PhotoPrints(world, args.synthetic_photos, cache)

        def after_day(day: int) -> None:
            if args.daily:
                link(engine)

        try:
            done = ingest(world, engine, prints, limit=args.observations, after_day=after_day)
        finally:
            prints.close()
        figures["ingest"] = {
            "days": done.days,
            "observations": done.observations,
            "seconds": round(done.seconds, 1),
        }
        print(f"stored {done.observations} observations of {done.days} days", file=sys.stderr)
    if args.evaluate:
        if not args.daily:
            print(link(engine), file=sys.stderr)
        print(build_trails(engine), file=sys.stderr)
        truth = tmp / "truth"
        write_truth(world, truth)
        figures["evaluation"] = evaluate(engine, truth)
        print(format_table(figures["evaluation"]))
    if args.measure:
        figures["measure"] = measure(url)
        print(json.dumps(figures["measure"], indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    engine.dispose()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
