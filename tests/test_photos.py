"""Photo fingerprints, photo matching and the demo world's photos.

Accuracy is held on a fixed seeded set made with the demo world's own transformations; the
full measurement (more photos, every transformation) is ``bench/photo_accuracy.py``.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
import pdqhash
import pytest
from PIL import Image

from fixtures.model import SITES
from fixtures.photos import (
    TRANSFORMS,
    SpecError,
    base_photo,
    encode,
    placeholder,
    random_step,
    repost,
    repost_spec,
    transform,
)
from matching.photos import (
    OVERLAY_PDQ_THRESHOLD,
    PDQ_THRESHOLD,
    STRIP_THRESHOLD,
    WINDOW_THRESHOLD,
    HashSet,
    PhotoArrays,
    compare,
    hamming_pairs,
    near_pairs,
    plan_bands,
    same_photo,
)
from pipelines.photos import (
    MAX_BYTES,
    MAX_PIXELS,
    Fingerprint,
    PhotoError,
    decode,
    fingerprint,
    fingerprint_image,
    working_image,
)

DATA = Path(__file__).parent / "data"
GOLDEN: dict[str, Any] = {
    "v": 1,
    "pdq": "6ce36c717869382109363b09ce399a6d07fe67cefa49e219f1c125f2d341fa41",
    "pdq_mirror": "39b6392c2d3c6d245ce36e5c9b6c8f385aab329baf1cb74ca49470a78614af14",
    "pdq_quality": 69,
    "phash": "b6c1c127e5ccc939",
    "phash_mirror": "e394947294999d6d",
    "windows": ["bdd0c025cbccd83d", "b6d9e024c1cfd83c", "bdd0c027676ec8c9", "b6d9d9246067c9cc"],
    "windows_mirror": [
        "e88595729e998d6c",
        "e38cb571949a8d69",
        "e8859572323b9d9c",
        "e38c8c7135329db9",
    ],
    "strips": ["b061cc397a4ec7c3", "b636c9da26c1d136"],
    "strips_mirror": ["e534996c2f1b9296", "e3639c8f63948c63"],
    "width": 120,
    "height": 90,
}
SEEDS = range(900, 960)  # 60 photos: one miss is a recall of 0.983


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    return encode(img, f"jpeg={quality}")[0]


def image_bytes(img: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_header_only(width: int, height: int) -> bytes:
    """A well-formed PNG declaring ``width`` x ``height`` 1-bit pixels with one tiny IDAT."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00"))
        + png_chunk(b"IEND", b"")
    )


# --- the fingerprint -------------------------------------------------------------------------


def test_golden_fingerprint_of_the_committed_image() -> None:
    fp = fingerprint((DATA / "photo_golden.png").read_bytes())
    assert fp.as_json() == GOLDEN


def test_fingerprint_json_round_trip_and_bad_json() -> None:
    fp = Fingerprint.from_json(GOLDEN)
    assert fp.as_json() == GOLDEN
    assert Fingerprint.from_json(json.loads(json.dumps(fp.as_json()))) == fp
    with pytest.raises(ValueError, match="version"):
        Fingerprint.from_json({**GOLDEN, "v": 0})
    with pytest.raises(ValueError, match="'pdq'"):
        Fingerprint.from_json({**GOLDEN, "pdq": "abc"})
    with pytest.raises(ValueError, match="'windows'"):
        Fingerprint.from_json({**GOLDEN, "windows": GOLDEN["windows"][:2]})
    with pytest.raises(ValueError, match="'strips' is missing"):
        Fingerprint.from_json({k: v for k, v in GOLDEN.items() if k != "strips"})


def test_phash_is_a_phash() -> None:
    """The whole-picture hash agrees with imagehash's pHash of the same working image."""
    for seed in range(5):
        img = base_photo(seed)
        gray = working_image(img).convert("L")
        reference = int(str(imagehash.phash(gray)), 16)
        assert (fingerprint_image(img).phash ^ reference).bit_count() <= 8


def test_pdq_and_its_mirror_are_pdq() -> None:
    """PDQ of the working image; the mirror hash equals PDQ of the mirrored working image; and
    both stay near PDQ of the full-size photo (so hashes can be compared with other PDQ lists).
    """
    for seed in range(8):
        img = base_photo(seed)
        fp = fingerprint(jpeg(img))
        work = np.asarray(working_image(decode(jpeg(img))[0]))
        bits, _ = pdqhash.compute(np.ascontiguousarray(work[:, ::-1]))
        mirrored = int("".join(map(str, bits)), 2)
        assert fp.pdq_mirror == mirrored
        full_bits, _ = pdqhash.compute(np.asarray(img))
        assert (fp.pdq ^ int("".join(map(str, full_bits)), 2)).bit_count() <= 24


def test_size_is_the_stored_size_not_the_draft_size() -> None:
    img = base_photo(3).resize((1024, 768))
    fp = fingerprint(jpeg(img))
    assert (fp.width, fp.height) == (1024, 768)
    assert decode(jpeg(img))[0].width < 1024  # decoded in draft mode


def test_exif_orientation_is_applied() -> None:
    img = base_photo(4).resize((400, 300))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    tagged = image_bytes(img.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif, quality=92)
    fp = fingerprint(tagged)
    assert (fp.width, fp.height) == (400, 300)
    assert same_photo(fp, fingerprint(jpeg(img, 92)))


def test_formats_and_transparency() -> None:
    img = base_photo(5).resize((300, 400))
    reference = fingerprint(jpeg(img, 95))
    for data in (
        image_bytes(img, "PNG"),
        image_bytes(img, "WEBP", quality=90),
        image_bytes(img.convert("P", palette=Image.Palette.ADAPTIVE), "GIF"),
        image_bytes(img.convert("RGBA"), "PNG"),
        image_bytes(img.convert("L"), "PNG"),
    ):
        assert compare(reference, fingerprint(data)).pdq <= PDQ_THRESHOLD


# --- refusing bad input ----------------------------------------------------------------------


def reason_of(data: bytes) -> str:
    with pytest.raises(PhotoError) as caught:
        fingerprint(data)
    return caught.value.reason


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_truncated(fmt: str) -> None:
    data = image_bytes(base_photo(6).resize((320, 240)), fmt)
    assert reason_of(data[: len(data) // 2]) == "truncated"
    assert reason_of(data[:40]) == "truncated"
    assert reason_of(data[:5]) == "truncated"


def test_corrupt() -> None:
    data = bytearray(jpeg(base_photo(7).resize((320, 240))))
    for position in range(600, len(data) - 600, 5):
        data[position] ^= 0x5A
    assert reason_of(bytes(data)) == "corrupt"
    png = bytearray(image_bytes(base_photo(7).resize((320, 240)), "PNG"))
    png[200:2000] = bytes(1800)
    assert reason_of(bytes(png)) == "corrupt"


def test_not_an_image_and_unsupported_formats() -> None:
    assert reason_of(b"<!doctype html><html><body>not found</body></html>") == (
        "unsupported-format"
    )
    small = base_photo(8).resize((64, 48))
    assert reason_of(image_bytes(small, "TIFF")) == "unsupported-format"
    assert reason_of(image_bytes(small, "BMP")) == "unsupported-format"


def test_empty_and_too_large() -> None:
    assert reason_of(b"") == "empty"
    assert reason_of(b"\xff\xd8\xff" + bytes(MAX_BYTES)) == "too-large"


def test_pixel_bombs() -> None:
    side = int(MAX_PIXELS**0.5) + 10
    assert reason_of(png_header_only(side, side)) == "pixel-bomb"  # over our limit
    assert reason_of(png_header_only(20_000, 20_000)) == "pixel-bomb"  # over Pillow's limit
    gif = bytearray(image_bytes(base_photo(9).resize((32, 32)), "GIF"))
    gif[6:10] = struct.pack("<HH", 65_000, 65_000)  # logical screen
    gif[gif.index(b",") + 5 : gif.index(b",") + 9] = struct.pack("<HH", 65_000, 65_000)
    assert reason_of(bytes(gif)) == "pixel-bomb"


def test_photo_error_reasons_are_checked_and_survive_pickling() -> None:
    import pickle

    with pytest.raises(ValueError, match="unknown photo error reason"):
        PhotoError("bad", "x")
    error = pickle.loads(pickle.dumps(PhotoError("truncated", "cut off")))
    assert error.reason == "truncated" and str(error) == "cut off"


# --- accuracy on the demo world's transformations --------------------------------------------


def single(name: str) -> Callable[[random.Random], str]:
    """A spec with one transformation at full strength (then a mild JPEG, as a site saves)."""

    def make(rng: random.Random) -> str:
        if name == "tone":
            return f"{random_step('brightness', rng)};{random_step('contrast', rng)};jpeg=85"
        if name == "crop10":
            return (
                f"crop={rng.uniform(0.0, 0.10):.3f},{rng.random():.2f},{rng.random():.2f};jpeg=85"
            )
        if name == "jpeg":
            return random_step("jpeg", rng)
        return f"{random_step(name, rng)};jpeg=85"

    return make


KINDS = ("resize", "jpeg", "watermark", "text", "tone", "mirror", "border", "crop10")
TARGETS = {kind: 0.98 for kind in KINDS} | {"border": 0.95, "crop10": 0.9}


@cache
def accuracy_set() -> dict[int, dict[str, Fingerprint]]:
    prints: dict[int, dict[str, Fingerprint]] = {}
    for seed in SEEDS:
        rng = random.Random(f"test-photos-{seed}")
        base = base_photo(seed)
        prints[seed] = {"orig": fingerprint(jpeg(base))}
        for kind in KINDS:
            *edits, last = single(kind)(rng).split(";")
            prints[seed][kind] = fingerprint(encode(transform(base, ";".join(edits)), last)[0])
        data, _, _ = repost(base, rng)
        prints[seed]["repost"] = fingerprint(data)
    return prints


@pytest.mark.parametrize("kind", KINDS)
def test_recall_per_transformation(kind: str) -> None:
    prints = accuracy_set()
    hits = sum(same_photo(p["orig"], p[kind]) for p in prints.values())
    assert hits / len(prints) >= TARGETS[kind], f"{kind}: {hits} of {len(prints)}"


def test_no_false_matches_between_distinct_photos() -> None:
    prints = accuracy_set()
    items = [(seed, fp) for seed, by_kind in prints.items() for fp in by_kind.values()]
    false = pairs = 0
    for i, (seed_a, a) in enumerate(items):
        for seed_b, b in items[i + 1 :]:
            if seed_a != seed_b:
                pairs += 1
                false += same_photo(a, b)
    assert pairs > 60_000
    assert false / pairs <= 0.0001, f"{false} false matches in {pairs} pairs"


def test_base_photos_are_not_near_duplicates() -> None:
    """Three hundred seeds, 44,850 pairs: no two base photos are the same photo."""
    prints = [fingerprint_image(base_photo(seed)) for seed in range(300)]
    found = near_pairs(PhotoArrays.of(prints))
    assert len(found.low) == 0, list(zip(found.low, found.high, strict=True))
    closest = min(
        compare(a, b).pdq for i, a in enumerate(prints[:100]) for b in prints[i + 1 : 100]
    )
    assert closest > PDQ_THRESHOLD + 20


def test_placeholders_match_each_other_only() -> None:
    prints = {site: fingerprint(placeholder(site)[0]) for site in SITES}
    for site, fp in prints.items():
        assert same_photo(fp, fingerprint(placeholder(site)[0]))
        assert [s for s, other in prints.items() if same_photo(fp, other)] == [site]


# --- the index -------------------------------------------------------------------------------


def flip(value: int, bits: int, count: int, rng: random.Random) -> int:
    for position in rng.sample(range(bits), count):
        value ^= 1 << position
    return value


def random_print(rng: random.Random) -> Fingerprint:
    return Fingerprint(
        pdq=rng.getrandbits(256),
        pdq_mirror=rng.getrandbits(256),
        pdq_quality=100,
        phash=rng.getrandbits(64),
        phash_mirror=rng.getrandbits(64),
        windows=tuple(rng.getrandbits(64) for _ in range(4)),
        windows_mirror=tuple(rng.getrandbits(64) for _ in range(4)),
        strips=tuple(rng.getrandbits(64) for _ in range(2)),
        strips_mirror=tuple(rng.getrandbits(64) for _ in range(2)),
        width=100,
        height=100,
    )


def near_boundary(base: Fingerprint, rng: random.Random, extra: int) -> Fingerprint:
    """A fingerprint that meets one rule of ``base`` at its threshold (+ ``extra`` bits)."""
    other = random_print(rng)
    rule = rng.choice(["pdq", "pdq-mirror", "crop", "crop-mirror", "uncrop", "strip"])
    if rule == "pdq":
        return _replace(other, pdq=flip(base.pdq, 256, PDQ_THRESHOLD + extra, rng))
    if rule == "pdq-mirror":
        return _replace(other, pdq=flip(base.pdq_mirror, 256, PDQ_THRESHOLD + extra, rng))
    if rule == "crop":
        window = rng.choice(base.windows)
        return _replace(other, phash=flip(window, 64, WINDOW_THRESHOLD + extra, rng))
    if rule == "crop-mirror":
        window = rng.choice(base.windows_mirror)
        return _replace(other, phash=flip(window, 64, WINDOW_THRESHOLD + extra, rng))
    if rule == "uncrop":
        windows = list(other.windows)
        windows[rng.randrange(4)] = flip(base.phash, 64, WINDOW_THRESHOLD + extra, rng)
        return _replace(other, windows=tuple(windows))
    strips = list(other.strips)
    side = rng.randrange(2)
    strips[side] = flip(base.strips[side], 64, STRIP_THRESHOLD + extra, rng)
    pdq = flip(base.pdq, 256, rng.randint(PDQ_THRESHOLD + 1, OVERLAY_PDQ_THRESHOLD), rng)
    return _replace(other, strips=tuple(strips), pdq=pdq)


def _replace(fp: Fingerprint, **changes: Any) -> Fingerprint:
    return Fingerprint(**{**fp.__dict__, **changes})


def brute_force(prints: list[Fingerprint]) -> set[tuple[int, int]]:
    return {
        (i, j)
        for i, a in enumerate(prints)
        for j in range(i + 1, len(prints))
        if same_photo(a, prints[j])
    }


def index_set() -> list[Fingerprint]:
    """Real photos and copies, placeholders, and random prints with others at, just inside and
    just outside a threshold of one of their rules."""
    rng = random.Random(5)
    prints = [fp for by_kind in list(accuracy_set().values())[:12] for fp in by_kind.values()]
    prints += [fingerprint(placeholder(site)[0]) for site in SITES]
    bases = [random_print(rng) for _ in range(100)]
    prints += bases
    prints += [near_boundary(rng.choice(bases), rng, extra) for extra in (0, 0, -1, 1) * 100]
    rng.shuffle(prints)
    return prints


def test_near_pairs_finds_exactly_what_brute_force_finds() -> None:
    prints = index_set()
    expected = brute_force(prints)
    found = near_pairs(PhotoArrays.of(prints))
    pairs = list(zip(found.low.tolist(), found.high.tolist(), strict=True))
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == expected
    # A pair exactly at a threshold is in, one bit past it is out: both kinds are in the set.
    comparisons = [compare(prints[i], prints[j]) for i, j in expected]
    assert any(c.pdq == PDQ_THRESHOLD for c in comparisons)
    assert any(c.window == WINDOW_THRESHOLD and c.pdq > PDQ_THRESHOLD for c in comparisons)
    assert any(c.strip == STRIP_THRESHOLD and c.rule == "overlay" for c in comparisons)
    for k, (i, j) in enumerate(pairs):
        comparison = compare(prints[i], prints[j])
        assert (found.pdq[k], found.window[k], found.strip[k]) == (
            comparison.pdq,
            comparison.window,
            comparison.strip,
        )
    # Comparing all pairs would compare 25 hash pairs per photo pair.
    assert found.checked < len(prints) ** 2 / 2


def test_near_pairs_of_new_photos() -> None:
    prints = index_set()
    rng = random.Random(8)
    new = np.array([rng.random() < 0.2 for _ in prints])
    found = near_pairs(PhotoArrays.of(prints), new)
    expected = {(i, j) for i, j in brute_force(prints) if new[i] or new[j]}
    assert set(zip(found.low.tolist(), found.high.tolist(), strict=True)) == expected
    nothing = near_pairs(PhotoArrays.of(prints), np.zeros(len(prints), dtype=bool))
    assert len(nothing.low) == 0 and nothing.checked == 0


def test_near_pairs_of_identical_and_of_no_photos() -> None:
    fp = Fingerprint.from_json(GOLDEN)
    found = near_pairs(PhotoArrays.of([fp, random_print(random.Random(1)), fp]))
    assert (found.low.tolist(), found.high.tolist()) == ([0], [2])
    assert (found.pdq[0], found.strip[0]) == (0, 0)
    assert len(near_pairs(PhotoArrays.of([])).low) == 0


@pytest.mark.parametrize(("bits", "radius"), [(64, 8), (64, 3), (256, 31), (128, 16)])
def test_hamming_pairs_at_and_past_the_radius(bits: int, radius: int) -> None:
    """Every pair at exactly the radius is found, whatever the table size; none past it."""
    rng = random.Random(bits + radius)
    values = [rng.getrandbits(bits) for _ in range(400)]
    probes = [flip(v, bits, radius, rng) for v in values[:200]]
    probes += [flip(v, bits, radius + 1, rng) for v in values[200:]]
    probes += [rng.getrandbits(bits) for _ in range(100)]  # more probes than entries: swapped
    for entries in (10, 10**7):  # a small and a large table plan different bands
        plan = plan_bands(bits, radius, len(probes), entries)
        assert sum(band.radius + 1 for band in plan) >= radius + 1
        assert sum(band.width for band in plan) == bits
    table = HashSet(
        np.array([[(v >> s) & (2**64 - 1) for s in range(0, bits, 64)] for v in values], np.uint64),
        np.arange(len(values)),
    )
    probe_set = HashSet(
        np.array([[(v >> s) & (2**64 - 1) for s in range(0, bits, 64)] for v in probes], np.uint64),
        np.arange(len(probes)),
    )
    found = set()
    for a, b, _count in hamming_pairs(probe_set, table, bits, radius):
        found.update(zip(a.tolist(), b.tolist(), strict=True))
    expected = {
        (i, j)
        for i, p in enumerate(probes)
        for j, v in enumerate(values)
        if (p ^ v).bit_count() <= radius
    }
    assert {(i, i) for i in range(200)} <= expected
    assert found == expected


# --- the demo world's photos -----------------------------------------------------------------


def test_base_photos_are_deterministic_rgb_and_sized() -> None:
    for seed in (0, 1, 77, 123456):
        img = base_photo(seed)
        assert img.mode == "RGB"
        assert 600 <= max(img.size) <= 1200 and min(img.size) >= 400
        assert img.tobytes() == base_photo(seed).tobytes()
    assert base_photo(1).tobytes() != base_photo(2).tobytes()


def test_repost_is_reproduced_by_its_spec() -> None:
    base = base_photo(11)
    for strength in (0.0, 0.5, 1.0):
        for n in range(6):
            rng = random.Random(f"{strength}-{n}")
            data, content_type, spec = repost(base, rng, strength)
            assert repost_spec(random.Random(f"{strength}-{n}"), strength) == spec
            with Image.open(io.BytesIO(data)) as shown:
                assert shown.get_format_mimetype() == content_type
                decoded = shown.convert("RGB")
            assert decoded.tobytes() == transform(base, spec).tobytes()


def test_every_transformation_applies() -> None:
    base = base_photo(12).resize((300, 200))
    rng = random.Random(3)
    for name in TRANSFORMS:
        spec = random_step(name, rng)
        out = transform(base, spec)
        assert out.mode == "RGB"
        if name not in ("png",):
            assert out.tobytes() != base.tobytes(), spec
    assert transform(base, "crop=0.1,0,0").size == (270, 180)
    assert transform(base, "border=0.05,ffffff").size == (320, 220)


def test_bad_specs_are_refused() -> None:
    base = base_photo(13).resize((100, 100))
    for spec in ("rotate=90", "crop=0.7,0,0", "resize", "border=0.1,xyz", "watermark=x,mid,0.3"):
        with pytest.raises(SpecError):
            transform(base, spec)


def test_placeholders_are_fixed_bytes() -> None:
    data, content_type = placeholder("roodlicht")
    assert content_type == "image/png" and data == placeholder("roodlicht")[0]
    assert data != placeholder("prikbord")[0]
    with pytest.raises(ValueError, match="unknown site"):
        placeholder("elsewhere")


# --- the Scrapy pipeline ---------------------------------------------------------------------

CRAWL = """
import json, sys
from scrapy import Spider
from scrapy.crawler import CrawlerProcess

class PhotoSpider(Spider):
    name = "photos"

    async def start(self):
        base = sys.argv[1]
        yield {
            "site": "roodlicht", "site_ad_id": "1", "url": base + "ad", "observed_at": "x",
            "photos": [
                {"url": base + "ok.jpg", "path": None},
                {"url": base + "ok.jpg", "path": None},
                {"url": base + "half.jpg", "path": None},
                {"url": base + "page.html", "path": None},
                {"url": base + "missing.jpg", "path": None},
                {"url": "demo://photo/abc", "path": None},
                {"url": "demo://photo/def", "path": sys.argv[2]},
                {"url": "demo://photo/ghi", "path": sys.argv[2] + ".gone"},
            ],
        }

if __name__ == "__main__":
    process = CrawlerProcess({
        "ITEM_PIPELINES": {"pipelines.photos.PhotosPipeline": 500},
        "LOVITURA_PHOTO_WORKERS": 1,
        "FEEDS": {sys.argv[3]: {"format": "jsonlines"}},
        "LOG_LEVEL": "INFO",
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
    })
    crawler = process.create_crawler(PhotoSpider)
    process.crawl(crawler)
    process.start()
    stats = {k: v for k, v in crawler.stats.get_stats().items() if k.startswith("lovitura/")}
    anomalies = [a.reason for a in getattr(crawler, "lovitura_anomalies", [])]
    print(json.dumps({"stats": stats, "anomalies": anomalies}))
"""


@pytest.fixture
def photo_server() -> Iterator[tuple[str, dict[str, int]]]:
    photo = jpeg(base_photo(14).resize((640, 480)))
    files = {"/ok.jpg": photo, "/half.jpg": photo[: len(photo) // 2], "/page.html": b"<html>"}
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[self.path] = hits.get(self.path, 0) + 1
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", hits
    server.shutdown()
    server.server_close()


def test_pipeline_fingerprints_downloaded_and_local_photos(
    photo_server: tuple[str, dict[str, int]], tmp_path: Path
) -> None:
    base_url, hits = photo_server
    local = tmp_path / "local.png"
    local.write_bytes(image_bytes(base_photo(15).resize((300, 300)), "PNG"))
    script = tmp_path / "crawl.py"
    script.write_text(CRAWL, encoding="utf-8")
    out = tmp_path / "items.jsonl"
    before = set(tmp_path.iterdir())
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, str(script), base_url, str(local), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    (item,) = [json.loads(line) for line in out.read_text().splitlines()]
    photos = item["photos"]
    expected = fingerprint(jpeg(base_photo(14).resize((640, 480)))).as_json()
    assert photos[0]["fingerprint"] == expected and photos[1]["fingerprint"] == expected
    assert hits["/ok.jpg"] == 1  # one download for the same URL twice
    assert photos[2]["error"] == "truncated"
    assert photos[3]["error"] == "unsupported-format"
    assert photos[4]["error"] == "download-failed"
    assert "fingerprint" not in photos[5] and "error" not in photos[5]
    assert photos[6]["fingerprint"] == fingerprint(local.read_bytes()).as_json()
    assert photos[7]["error"] == "missing-file"
    assert report["stats"] == {
        "lovitura/photo/ok": 3,
        "lovitura/photo/truncated": 1,
        "lovitura/photo/unsupported-format": 1,
        "lovitura/photo/download-failed": 1,
        "lovitura/photo/missing-file": 1,
    }
    assert sorted(report["anomalies"]) == sorted(
        ["truncated", "unsupported-format", "download-failed", "missing-file"]
    )
    assert set(tmp_path.iterdir()) - before == {out}  # no photo written anywhere
    assert "<html>" not in done.stderr
