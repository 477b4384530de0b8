"""The demo sites for bench/crawl.py, answering from memory so that they are not what is measured.

The demo sites draw each photo on demand (tens of ms of CPU, in one GIL-bound process for all
sites): a crawl benchmark against them measures mostly the sites. This process serves day 0 of
the demo world's three plain-HTTP sites (roodlicht, escortgids, prikbord; ``--fast``: no rate
limit, 429s or slow pages) with:

* every photo of the day made before the sites start, or loaded from
  ``var/bench-crawl-photos/<key>/`` (``key``: the world's arguments and a digest of the
  ``fixtures`` sources, so a change to the photo maker makes a new folder);
* every answer kept once made (GET answers below 500 other than 429): the benchmark's untimed
  warm-up crawl fills the memo (and meets prikbord's first-request-of-the-day server errors),
  so the timed crawls get every page and photo, escortgids' watermarked ones included, from
  memory. A memoised answer is the one the site gave, so the crawls see the same site.

It prints ``{"urls": {...}}`` on one line when serving, and stops when its standard input is
closed (or says ``stop``). Started by bench/crawl.py::

    .venv/bin/python bench/crawl_sites.py --seed 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

from fixtures.model import AdSnapshot
from fixtures.sites import SITE_CLASSES
from fixtures.sites.server import Request, Response, SiteApp, SiteServer, stop_all
from fixtures.sites.worldview import WorldView
from fixtures.world import build_world

HTTP_SITES = ("roodlicht", "escortgids", "prikbord")
SCALE = "demo"
DAYS = 1  # the benchmark crawls day 0 only
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench-crawl-photos"


class PrefilledWorld:
    """The world as the sites see it, with the day's photos already made."""

    def __init__(self, world: Any, photos: dict[str, tuple[bytes, str]]) -> None:
        self.world = world
        self.start_date: date = world.start_date
        self.days: int = world.days
        self.seed: int = int(getattr(world, "seed", 0))
        self.photos = photos

    def ads_on(self, site: str, day: int) -> list[AdSnapshot]:
        return list(self.world.ads_on(site, day))

    def photo_bytes(self, photo_id: str) -> tuple[bytes, str]:
        made = self.photos.get(photo_id)
        return made if made is not None else self.world.photo_bytes(photo_id)


class MemoisedSite(SiteApp):
    """A site that gives a GET answer it gave before again, without making it again."""

    def __init__(self, site: SiteApp) -> None:
        super().__init__()
        self.site = site
        self.name = site.name
        self._answers: dict[str, Response] = {}
        self._lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        if request.method != "GET":
            return self.site.handle(request)
        with self._lock:
            known = self._answers.get(request.target)
        if known is not None:
            return known
        response = self.site.handle(request)
        # Server errors and 429s happen on a URL's first request of the day: the retry must
        # reach the site. Slow answers are off (--fast) but would not be kept either.
        if response.status < 500 and response.status != 429 and response.delay == 0:
            with self._lock:
                self._answers[request.target] = response
        return response


def cache_folder(seed: int) -> Path:
    """The photo cache of this world: its arguments and a digest of the fixtures sources."""
    digest = hashlib.sha256()
    for source in sorted((ROOT / "fixtures").rglob("*.py")):
        digest.update(source.relative_to(ROOT).as_posix().encode())
        digest.update(source.read_bytes())
    return CACHE / f"seed{seed}-{SCALE}-days{DAYS}-{digest.hexdigest()[:16]}"


_worker_world: Any = None


def _start_worker(seed: int) -> None:
    global _worker_world
    _worker_world = build_world(seed, scale=SCALE, days=DAYS)


def _make_photo(photo_id: str) -> tuple[str, bytes, str]:
    data, content_type = _worker_world.photo_bytes(photo_id)
    return photo_id, bytes(data), str(content_type)


def day_photos(world: Any, seed: int) -> dict[str, tuple[bytes, str]]:
    """Every photo the three sites show on day 0: from the cache folder, or made and saved."""
    wanted = list(
        dict.fromkeys(
            p for site in HTTP_SITES for ad in world.ads_on(site, 0) for p in ad.photo_ids
        )
    )
    folder = cache_folder(seed)
    index_file = folder / "index.json"
    index: dict[str, list[str]] = json.loads(index_file.read_text()) if index_file.is_file() else {}
    photos = {
        photo_id: ((folder / index[photo_id][0]).read_bytes(), index[photo_id][1])
        for photo_id in wanted
        if photo_id in index
    }
    missing = [photo_id for photo_id in wanted if photo_id not in photos]
    if not missing:
        return photos
    print(
        f"making {len(missing)} photos into {folder} (once per version of the fixtures)",
        file=sys.stderr,
        flush=True,
    )
    folder.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(initializer=_start_worker, initargs=(seed,)) as pool:
        for photo_id, data, content_type in pool.map(_make_photo, missing, chunksize=16):
            name = hashlib.sha256(photo_id.encode()).hexdigest()[:24]
            (folder / name).write_bytes(data)
            index[photo_id] = [name, content_type]
            photos[photo_id] = (data, content_type)
    # The index last: a run stopped while making leaves the photos it made unlisted, not broken.
    temporary = index_file.with_suffix(".tmp")
    temporary.write_text(json.dumps(index))
    temporary.replace(index_file)
    for stale in folder.parent.glob(f"seed{seed}-{SCALE}-days{DAYS}-*"):
        if stale != folder:  # made from older fixtures: never read again
            shutil.rmtree(stale, ignore_errors=True)
    return photos


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    world = build_world(args.seed, scale=SCALE, days=DAYS)
    view = WorldView(PrefilledWorld(world, day_photos(world, args.seed)), 0)
    servers = [
        SiteServer(MemoisedSite(SITE_CLASSES[site](view, fast=True)), args.host, 0)
        for site in HTTP_SITES
    ]
    for server in servers:
        server.start()
    urls = {
        site: f"http://{args.host}:{srv.port}/"
        for site, srv in zip(HTTP_SITES, servers, strict=True)
    }
    print(json.dumps({"urls": urls}), flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
    finally:
        stop_all(servers)


if __name__ == "__main__":
    main()
