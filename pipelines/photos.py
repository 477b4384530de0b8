"""Photo fingerprints, and the Scrapy pipeline that fingerprints the photos of every ad.

A fingerprint says which *picture* a photo is, so that reposts of the same picture (resized,
recompressed, cropped, mirrored, watermarked, with a text overlay or a border) can be linked.
It never describes who is in a picture: there is no face detection and no embedding of people
(a face-recognition database built from scraped images is prohibited in the EU, AI Act art.
5(1)(e)). Photos are fingerprinted in memory and never written to disk.

A fingerprint holds DCT hashes of one small normalised "working image":

* ``pdq``: the PDQ hash (pdqhash), the hash the industry shares, and the hash of the mirror
  image, for resized, recompressed, watermarked, recoloured and mirrored copies;
* ``phash``: the 64-bit pHash of the whole picture and of its mirror image;
* ``windows``: pHashes of four sub-windows (90 % of each side), for cropped copies: the whole
  of a cropped copy looks like a window of the original;
* ``strips``: pHashes of the top and bottom 42 %, for copies with a text band across them: at
  least one of the two strips is untouched by a band up to 16 % high.

Decoding is bounded: only JPEG, PNG, WebP and GIF are opened (recognised by their first bytes),
pixel bombs and oversized files are refused, and a JPEG is decoded in draft mode, straight to
the small size the hashes need. ``matching.photos`` compares fingerprints.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import io
import logging
import multiprocessing
import multiprocessing.context
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pdqhash
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy.fft import dct
from scrapy.http.request import NO_CALLBACK, Request
from scrapy.pipelines.media import FileInfo, MediaPipeline
from scrapy.utils.asyncio import is_asyncio_available
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred

from lovitura_crawl.anomalies import Anomaly, note_anomaly

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)

FINGERPRINT_VERSION = 1
MAX_BYTES = 30 * 1024 * 1024
MAX_PIXELS = 50_000_000

REASONS: tuple[str, ...] = (
    "unsupported-format",
    "truncated",
    "corrupt",
    "pixel-bomb",
    "too-large",
    "empty",
)
FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF")

# The working image every hash is computed from: big enough for 32x32 pHashes of sub-windows,
# small enough that a JPEG decodes in draft mode at 1/8 scale (measured in bench/photos.py).
WORK_SIZE = 64
PHASH_SIZE = 32  # pHash: DCT of a 32x32 area-averaged image ...
PHASH_LOW = 8  # ... keeping the 8x8 lowest frequencies: 64 bits
# Sub-windows as (left, top, right, bottom) fractions of the trimmed picture.
FULL_BOX = (0.0, 0.0, 1.0, 1.0)
WINDOW_BOXES: tuple[tuple[float, float, float, float], ...] = (
    (0.025, 0.025, 0.925, 0.925),
    (0.075, 0.025, 0.975, 0.925),
    (0.025, 0.075, 0.925, 0.975),
    (0.075, 0.075, 0.975, 0.975),
)
STRIP_BOXES: tuple[tuple[float, float, float, float], ...] = (
    (0.0, 0.0, 1.0, 0.42),
    (0.0, 0.58, 1.0, 1.0),
)
# A frame (border, letterbox) is trimmed when its rows/columns are this uniform.
FRAME_TOLERANCE = 10  # per channel, 0-255
FRAME_SHARE = 0.97  # share of a row's pixels within the tolerance
FRAME_MAX = 0.2  # at most this share of a side is trimmed

_EXIF_ORIENTATION = 0x0112
_EXIF_TURNED = (5, 6, 7, 8)  # orientations that swap width and height
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)


class PhotoError(ValueError):
    """A photo that cannot be fingerprinted; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown photo error reason {reason!r}")
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the reason when the error crosses the process-pool boundary.
        return (PhotoError, (self.reason, str(self)))


# ---------------------------------------------------------------------------------------------
# The fingerprint
# ---------------------------------------------------------------------------------------------


def _hex(value: int, bits: int) -> str:
    return f"{value:0{bits // 4}x}"


def _parse_hex(value: Any, bits: int, field: str) -> int:
    if not isinstance(value, str) or len(value) != bits // 4:
        raise ValueError(f"fingerprint field {field!r} must be {bits // 4} hex digits")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise ValueError(f"fingerprint field {field!r} is not hexadecimal: {value!r}") from exc


def _parse_hex_list(value: Any, count: int, field: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) != count:
        raise ValueError(f"fingerprint field {field!r} must be a list of {count} hex strings")
    return tuple(_parse_hex(v, 64, field) for v in value)


@dataclass(frozen=True)
class Fingerprint:
    """The hashes of one photo (see the module docstring). Hashes are unsigned integers.

    Bit order follows the references: ``pdq`` formats as the PDQ reference hex string, and a
    pHash's first DCT coefficient is its most significant bit (as in ``imagehash``).
    """

    pdq: int  # 256 bits
    pdq_mirror: int
    pdq_quality: int  # PDQ's 0-100 quality: low for flat pictures such as logos
    phash: int  # 64 bits, whole picture
    phash_mirror: int
    windows: tuple[int, ...]  # pHashes of WINDOW_BOXES
    windows_mirror: tuple[int, ...]
    strips: tuple[int, ...]  # pHashes of STRIP_BOXES
    strips_mirror: tuple[int, ...]
    width: int  # of the decoded photo, before trimming
    height: int
    version: int = FINGERPRINT_VERSION

    def as_json(self) -> dict[str, Any]:
        return {
            "v": self.version,
            "pdq": _hex(self.pdq, 256),
            "pdq_mirror": _hex(self.pdq_mirror, 256),
            "pdq_quality": self.pdq_quality,
            "phash": _hex(self.phash, 64),
            "phash_mirror": _hex(self.phash_mirror, 64),
            "windows": [_hex(h, 64) for h in self.windows],
            "windows_mirror": [_hex(h, 64) for h in self.windows_mirror],
            "strips": [_hex(h, 64) for h in self.strips],
            "strips_mirror": [_hex(h, 64) for h in self.strips_mirror],
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Fingerprint:
        """Read :meth:`as_json` output; raises ValueError naming the first bad field."""
        if not isinstance(d, dict):
            raise ValueError(f"a fingerprint must be a JSON object, not {type(d).__name__}")
        if d.get("v") != FINGERPRINT_VERSION:
            raise ValueError(
                f"fingerprint version {d.get('v')!r} is not {FINGERPRINT_VERSION}; "
                "re-fingerprint the photo"
            )
        try:
            return cls(
                pdq=_parse_hex(d["pdq"], 256, "pdq"),
                pdq_mirror=_parse_hex(d["pdq_mirror"], 256, "pdq_mirror"),
                pdq_quality=int(d["pdq_quality"]),
                phash=_parse_hex(d["phash"], 64, "phash"),
                phash_mirror=_parse_hex(d["phash_mirror"], 64, "phash_mirror"),
                windows=_parse_hex_list(d["windows"], len(WINDOW_BOXES), "windows"),
                windows_mirror=_parse_hex_list(
                    d["windows_mirror"], len(WINDOW_BOXES), "windows_mirror"
                ),
                strips=_parse_hex_list(d["strips"], len(STRIP_BOXES), "strips"),
                strips_mirror=_parse_hex_list(
                    d["strips_mirror"], len(STRIP_BOXES), "strips_mirror"
                ),
                width=int(d["width"]),
                height=int(d["height"]),
            )
        except KeyError as exc:
            raise ValueError(f"fingerprint field {exc.args[0]!r} is missing") from exc


# ---------------------------------------------------------------------------------------------
# Bounded decoding
# ---------------------------------------------------------------------------------------------


def sniff_format(data: bytes) -> str:
    """The image format of ``data`` from its first bytes: JPEG, PNG, WEBP or GIF."""
    if not data:
        raise PhotoError("empty", "the photo has no bytes")
    if len(data) > MAX_BYTES:
        raise PhotoError(
            "too-large", f"the photo has {len(data)} bytes, more than the limit of {MAX_BYTES}"
        )
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    prefixes = [magic for magic, _ in _MAGIC] + [b"RIFF"]
    if len(data) < 12 and any(p.startswith(data[: len(p)]) for p in prefixes):
        raise PhotoError("truncated", f"the photo stops after {len(data)} bytes, inside its header")
    raise PhotoError(
        "unsupported-format",
        f"the photo starts with {data[:8].hex()}, which is not JPEG, PNG, WebP or GIF",
    )


def _looks_truncated(data: bytes, fmt: str) -> bool:
    """Whether a file that failed to decode is missing its end (rather than damaged inside)."""
    if fmt == "PNG":
        return b"IEND" not in data[-32:]
    if fmt == "GIF":
        return not data.rstrip(b"\x00").endswith(b";")
    if fmt == "WEBP":
        declared = int.from_bytes(data[4:8], "little") + 8 if len(data) >= 8 else 0
        return len(data) < declared
    return b"\xff\xd9" not in data[-64:]


def _decode_error(exc: BaseException, data: bytes, fmt: str) -> PhotoError:
    if "truncated" in str(exc).lower() or _looks_truncated(data, fmt):
        return PhotoError("truncated", f"the {fmt} photo is truncated: {exc}")
    return PhotoError("corrupt", f"the {fmt} photo cannot be decoded: {exc}")


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise PhotoError(
            "pixel-bomb",
            f"the photo declares {width}x{height} pixels, more than the limit of {MAX_PIXELS}",
        )


def _flatten(img: Image.Image) -> Image.Image:
    """RGB pixels as shown on a white page (transparency composited, wide modes narrowed)."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        wide = np.asarray(img, dtype=np.float64)
        peak = max(float(wide.max()), 1.0)
        img = Image.fromarray(np.clip(wide * (255.0 / peak), 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(page, rgba).convert("RGB")
    return img.convert("RGB")


def decode(data: bytes, size: int = WORK_SIZE) -> tuple[Image.Image, tuple[int, int]]:
    """Decode ``data`` into RGB, bounded: ``(image, size of the photo as stored)``.

    A JPEG is decoded in draft mode, to no less than ``size`` pixels a side. Raises
    :class:`PhotoError` for anything that is not a whole, sane JPEG, PNG, WebP or GIF.
    """
    fmt = sniff_format(data)
    with warnings.catch_warnings():
        # Pillow only warns below twice its own limit; a bomb is an error here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            opened = Image.open(io.BytesIO(data), formats=[fmt])
            _check_pixels(opened.width, opened.height)
            stored = opened.size
            if fmt == "JPEG":
                opened.draft("RGB", (size, size))
            opened.load()
            if opened.getexif().get(_EXIF_ORIENTATION, 1) in _EXIF_TURNED:
                stored = (stored[1], stored[0])
            img = ImageOps.exif_transpose(opened)
        except PhotoError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise PhotoError(
                "pixel-bomb", f"the {fmt} photo is a decompression bomb: {exc}"
            ) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _decode_error(exc, data, fmt) from exc
    return _flatten(img), stored


# ---------------------------------------------------------------------------------------------
# Hashing
# ---------------------------------------------------------------------------------------------


def _is_frame_line(line: np.ndarray, colour: np.ndarray) -> bool:
    return bool(((np.abs(line - colour) <= FRAME_TOLERANCE).all(axis=-1)).mean() >= FRAME_SHARE)


def frame_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """The box inside a uniform frame (border or letterbox) of ``rgb``; the whole if none.

    A frame is a run of rows/columns on opposite sides that are nearly all the edge colour; a
    run on only one side is treated as picture content, as it is more often a wall or sky.
    """
    height, width = rgb.shape[:2]
    pixels = rgb.astype(np.int16)
    colour = np.median(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]), axis=0)
    rows_framed = _is_frame_line(pixels[0], colour) and _is_frame_line(pixels[-1], colour)
    cols_framed = _is_frame_line(pixels[:, 0], colour) and _is_frame_line(pixels[:, -1], colour)
    if not (rows_framed or cols_framed):
        return (0, 0, width, height)  # the common case: no frame, no full scan
    near = (np.abs(pixels - colour) <= FRAME_TOLERANCE).all(axis=2)
    rows = near.mean(axis=1) >= FRAME_SHARE
    cols = near.mean(axis=0) >= FRAME_SHARE

    def run(flags: np.ndarray) -> int:
        limit = int(len(flags) * FRAME_MAX)
        breaks = np.flatnonzero(~flags[:limit])
        return int(breaks[0]) if breaks.size else limit

    top, bottom = (run(rows), run(rows[::-1])) if rows_framed else (0, 0)
    left, right = (run(cols), run(cols[::-1])) if cols_framed else (0, 0)
    if min(top, bottom) == 0 and min(left, right) == 0:
        return (0, 0, width, height)
    return (left, top, width - right, height - bottom)


def _area_matrix(start: float, stop: float, n_in: int, n_out: int) -> np.ndarray:
    """Rows average the input interval [start, stop) (pixel units) into n_out equal cells."""
    edges = np.linspace(start, stop, n_out + 1)
    lo = np.clip(edges[:-1, None], np.arange(n_in)[None, :], np.arange(1, n_in + 1)[None, :])
    hi = np.clip(edges[1:, None], np.arange(n_in)[None, :], np.arange(1, n_in + 1)[None, :])
    weights = hi - lo
    return weights / weights.sum(axis=1, keepdims=True)


@cache
def _phash_operators(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per box, the 8xSIZE matrices that take a SIZExSIZE image to its pHash DCT coefficients.

    Area-averaging a box to 32x32 and taking the DCT's 8x8 lowest frequencies are both linear,
    so they fold into ``left @ image @ right.T`` per box: no resampling of sub-images at all.
    """
    dct32 = dct(np.eye(PHASH_SIZE), axis=0)[:PHASH_LOW]  # unnormalised DCT-II, as pHash
    boxes = (FULL_BOX, *WINDOW_BOXES, *STRIP_BOXES)
    left = np.stack(
        [dct32 @ _area_matrix(b[1] * size, b[3] * size, size, PHASH_SIZE) for b in boxes]
    )
    right = np.stack(
        [dct32 @ _area_matrix(b[0] * size, b[2] * size, size, PHASH_SIZE) for b in boxes]
    )
    return left, right


_MIRROR_SIGNS = np.where(np.arange(PHASH_LOW) % 2 == 0, 1.0, -1.0)
_PDQ_MIRROR_SIGNS = np.where(np.arange(16) % 2 == 0, 1.0, -1.0)


def _rows_to_ints(bits: np.ndarray) -> list[int]:
    """Each row of a boolean matrix as an unsigned integer, first column most significant."""
    packed = np.packbits(bits, axis=1)
    return [int.from_bytes(row.tobytes(), "big") for row in packed]


def _median_bits(coefficients: np.ndarray) -> list[int]:
    """Hashes of many coefficient sets at once: each row thresholded at its own median."""
    flat = coefficients.reshape(coefficients.shape[0], -1)
    return _rows_to_ints(flat > np.median(flat, axis=1, keepdims=True))


def _phashes(gray: np.ndarray) -> tuple[list[int], list[int]]:
    """pHashes of the full picture, the windows and the strips, and of their mirror images.

    Mirroring a picture flips the sign of its odd horizontal frequencies, so the mirror hashes
    come from the same coefficients.
    """
    left, right = _phash_operators(gray.shape[0])
    coefficients = (left @ gray) @ right.transpose(0, 2, 1)
    plain = _median_bits(coefficients)
    mirrored = _median_bits(coefficients * _MIRROR_SIGNS[None, None, :])
    return plain, mirrored


def _pdq(rgb: np.ndarray) -> tuple[int, int, int]:
    """PDQ hash, PDQ hash of the mirror image, and PDQ quality of a 64x64 RGB image.

    At 64x64 PDQ's own downscaling is the identity, so mirroring is an exact sign flip of its
    DCT; the hashes stay within a few bits of PDQ on the full-size photo (tests/test_photos.py).
    """
    values, quality = pdqhash.compute_float(np.ascontiguousarray(rgb))
    grid = np.asarray(values, dtype=np.float64).reshape(16, 16)
    plain, mirrored = _median_bits(np.stack([grid, grid * _PDQ_MIRROR_SIGNS[None, :]]))
    return plain, mirrored, int(quality)


def working_image(img: Image.Image) -> Image.Image:
    """The framed-off picture of an RGB image, squeezed to WORK_SIZE x WORK_SIZE."""
    factor = min(img.size) // (2 * WORK_SIZE)
    if factor >= 2:
        # Box-average big images first (as a JPEG draft does), so the frame search is cheap.
        img = img.reduce(factor)
    box = frame_box(np.asarray(img))
    return img.resize((WORK_SIZE, WORK_SIZE), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)


def fingerprint_image(img: Image.Image, stored: tuple[int, int] | None = None) -> Fingerprint:
    """The fingerprint of a decoded image; ``stored`` is the photo's own size if it was drafted."""
    rgb = img if img.mode == "RGB" else _flatten(img)
    work = working_image(rgb)
    pdq, pdq_mirror, quality = _pdq(np.asarray(work))
    gray = np.asarray(work.convert("L"), dtype=np.float64)
    plain, mirrored = _phashes(gray)
    n = len(WINDOW_BOXES)
    return Fingerprint(
        pdq=pdq,
        pdq_mirror=pdq_mirror,
        pdq_quality=quality,
        phash=plain[0],
        phash_mirror=mirrored[0],
        windows=tuple(plain[1 : 1 + n]),
        windows_mirror=tuple(mirrored[1 : 1 + n]),
        strips=tuple(plain[1 + n :]),
        strips_mirror=tuple(mirrored[1 + n :]),
        width=(stored or img.size)[0],
        height=(stored or img.size)[1],
    )


def fingerprint(data: bytes) -> Fingerprint:
    """The fingerprint of an encoded photo (JPEG, PNG, WebP or GIF), computed in memory.

    Raises :class:`PhotoError` (with a ``reason``) for empty, oversized, unsupported,
    truncated or corrupt files and for pixel bombs.
    """
    img, stored = decode(data)
    return fingerprint_image(img, stored)


def fingerprint_or_reason(data: bytes) -> dict[str, Any] | str:
    """For worker processes: the fingerprint as JSON, or the PhotoError reason."""
    try:
        return fingerprint(data).as_json()
    except PhotoError as exc:
        logger.debug("photo not fingerprinted: %s", exc)
        return exc.reason


def fingerprint_file(path: str) -> dict[str, Any] | str:
    """:func:`fingerprint_or_reason` of a local file; ``"missing-file"`` if it cannot be read."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_BYTES:
            return "too-large"
        data = Path(path).read_bytes()
    except OSError as exc:
        logger.debug("photo file not readable: %s", exc)
        return MISSING_FILE
    return fingerprint_or_reason(data)


# ---------------------------------------------------------------------------------------------
# The Scrapy pipeline
# ---------------------------------------------------------------------------------------------

DOWNLOAD_FAILED = "download-failed"  # network error or a status other than 200
MISSING_FILE = "missing-file"  # an ingested item's photo path cannot be read
PIPELINE_REASONS: tuple[str, ...] = (*REASONS, DOWNLOAD_FAILED, MISSING_FILE)
DEMO_SCHEME = "demo://"


class PhotoInfo(FileInfo, total=False):
    """What the pipeline keeps per downloaded URL: a fingerprint or an error reason."""

    fingerprint: dict[str, Any]
    error: str


class PhotoDownloadError(Exception):
    """A photo download that failed before any response; ``reason`` is for the item."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"photo download failed: {reason}")
        self.reason = reason


_POOLS: dict[int, concurrent.futures.ProcessPoolExecutor] = {}
_PARENT_CHECK_SECONDS = 0.5


def _exit_with_parent(parent: int) -> None:
    """Pool initializer: end this worker as soon as ``parent`` (the crawl) is gone.

    A crawl killed with SIGKILL cannot stop its pool; its workers would be left to PID 1 for
    good (and with them multiprocessing's resource tracker), one set more per killed daily
    crawl. Watching the parent pid (re-parenting changes it) works on every platform.

    A Ctrl-C in a terminal reaches every process of the crawl: the worker ignores it, since the
    crawl stops its pool itself when it stops (a worker dying of it printed a traceback, and
    left the pool broken under a crawl that was still shutting down gracefully).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # ignored from now on
    threading.Thread(
        target=_watch_parent, args=(parent,), name="lovitura-parent-watch", daemon=True
    ).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_SECONDS)
    os._exit(1)


class _SpawnWithoutSigint(multiprocessing.context.SpawnProcess):
    """A spawned worker that starts with SIGINT blocked (a blocked signal mask survives fork
    and exec): a Ctrl-C during its start-up, before :func:`_exit_with_parent` ignores SIGINT,
    would otherwise end it with a traceback."""

    def start(self) -> None:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _SpawnContext(multiprocessing.context.SpawnContext):
    Process = _SpawnWithoutSigint


def _shared_executor(
    workers: int, replace: concurrent.futures.ProcessPoolExecutor | None = None
) -> concurrent.futures.ProcessPoolExecutor:
    """The process pool of this process with ``workers`` workers; a broken one is replaced."""
    pool = _POOLS.get(workers)
    if pool is not None and pool is replace:
        pool.shutdown(wait=False, cancel_futures=True)
        pool = None
    if pool is None:
        # "spawn": forking a process that runs a reactor and its threads is not safe.
        context = _SpawnContext()
        pool = concurrent.futures.ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_exit_with_parent,
            initargs=(os.getpid(),),
        )
        _POOLS[workers] = pool
    return pool


@atexit.register
def _shutdown_pools() -> None:
    for pool in _POOLS.values():
        pool.shutdown(wait=False, cancel_futures=True)
    _POOLS.clear()


# Two, even on two cores: a polite crawl leaves the reactor thread waiting much of the time, and
# a second worker fingerprints in those gaps and halves the backlog a crawl leaves at its end
# (bench/crawl.py on 2 cores, paired rounds: full/bare 0.74 with one worker, 0.82 with two).
DEFAULT_WORKERS = 2


def downloadable(photo: Any) -> bool:
    """Whether the pipeline downloads this entry of ``item["photos"]`` (not settled, no path)."""
    if not isinstance(photo, dict) or "fingerprint" in photo or "error" in photo:
        return False
    url = photo.get("url")
    return bool(url) and not photo.get("path") and not str(url).startswith(DEMO_SCHEME)


class PhotosPipeline(MediaPipeline):
    """Downloads the photos of an item with Scrapy's downloader and fingerprints them.

    Each entry of ``item["photos"]`` gains ``"fingerprint"`` (:meth:`Fingerprint.as_json`) or
    ``"error"`` (one of :data:`PIPELINE_REASONS`). Entries with a local ``path`` are read from
    it; ``demo://`` URLs without a path are left alone. Fingerprinting runs in a process pool of
    ``LOVITURA_PHOTO_WORKERS`` processes, off the reactor thread. Nothing is stored on disk.

    Stats: ``lovitura/photo/ok`` (fingerprinted), ``lovitura/photo/known`` (fingerprint from
    :meth:`known_fingerprint`), ``lovitura/photo/<reason>`` (failed, also kept as anomalies).
    Redirected photo URLs follow Scrapy's ``MEDIA_ALLOW_REDIRECTS`` (off by default).
    """

    LOG_FAILED_RESULTS = False  # the base class would log the whole item, ad text included

    def __init__(self, download_func: None = None, *, crawler: Crawler) -> None:
        super().__init__(download_func, crawler=crawler)
        self.workers = crawler.settings.getint("LOVITURA_PHOTO_WORKERS", DEFAULT_WORKERS)
        if self.workers < 1:
            raise ValueError(
                f"LOVITURA_PHOTO_WORKERS={self.workers}: at least one worker process is needed"
            )
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def open_spider(self, spider: Any = None) -> None:
        super().open_spider()
        self._executor = _shared_executor(self.workers)

    def close_spider(self, spider: Any = None) -> None:
        # The pool is shared by every crawl of this process (the demo runs 4 crawls a day for
        # weeks; starting a pool costs 1-2 s of imports); it is shut down at exit.
        self._executor = None

    def _new_executor(self) -> concurrent.futures.ProcessPoolExecutor:
        return _shared_executor(self.workers, replace=self._executor)

    # --- the storage layer's hook -----------------------------------------------------------

    def known_fingerprint(self, url: str) -> dict[str, Any] | None:
        """A stored fingerprint of the photo at ``url``, to skip downloading it again.

        Returns None here: the storage layer overrides this method (for instance with a
        lookup of photos already fingerprinted in earlier crawls). The returned dict must be
        :meth:`Fingerprint.as_json` output.
        """
        return None

    # --- work in the process pool -----------------------------------------------------------

    async def _in_pool(self, function: Any, argument: Any) -> dict[str, Any] | str:
        if self._executor is None:
            self._executor = self._new_executor()
        try:
            future = self._executor.submit(function, argument)
            return await _await_future(future)
        except concurrent.futures.process.BrokenProcessPool:
            # A worker died (a decoder crash on hostile bytes): count the photo as corrupt
            # and start a fresh pool, so one bad file does not stop the crawl.
            self._executor = self._new_executor()
            return "corrupt"

    # --- MediaPipeline interface --------------------------------------------------------------

    async def process_item(self, item: Any, spider: Any = None) -> Any:
        photos = item.get("photos") if hasattr(item, "get") else None
        if not photos:
            return item
        for photo in photos:
            if isinstance(photo, dict) and photo.get("path") and "fingerprint" not in photo:
                self._settle(item, photo, await self._in_pool(fingerprint_file, photo["path"]))
        return await super().process_item(item)

    def get_media_requests(self, item: Any, info: MediaPipeline.SpiderInfo) -> list[Request]:
        return [
            Request(
                photo["url"],
                callback=NO_CALLBACK,
                meta={"download_maxsize": MAX_BYTES, "lovitura_photo": True},
            )
            for photo in item.get("photos") or []
            if downloadable(photo)
        ]

    def media_to_download(
        self, request: Request, info: MediaPipeline.SpiderInfo, *, item: Any = None
    ) -> Deferred[FileInfo | None] | None:
        known = self.known_fingerprint(request.url)
        if known is None:
            return None
        result: PhotoInfo = {
            "url": request.url,
            "path": "",
            "checksum": None,
            "status": "known",
            "fingerprint": known,
        }
        deferred: Deferred[FileInfo | None] = Deferred()
        deferred.callback(result)
        return deferred

    def media_downloaded(
        self,
        response: Response,
        request: Request,
        info: MediaPipeline.SpiderInfo,
        *,
        item: Any = None,
    ) -> Awaitable[FileInfo]:
        return self._fingerprint_response(response, request)

    async def _fingerprint_response(self, response: Response, request: Request) -> FileInfo:
        result: PhotoInfo = {"url": request.url, "path": "", "checksum": None, "status": ""}
        if response.status != 200:
            logger.debug("photo %s answered HTTP %d", request.url, response.status)
            result["status"] = "failed"
            result["error"] = DOWNLOAD_FAILED
            return result
        outcome = await self._in_pool(fingerprint_or_reason, response.body)
        if isinstance(outcome, str):
            result["status"] = "failed"
            result["error"] = outcome
        else:
            result["status"] = "downloaded"
            result["fingerprint"] = outcome
        return result

    def media_failed(
        self, failure: Failure, request: Request, info: MediaPipeline.SpiderInfo
    ) -> Failure:
        logger.debug("photo %s not downloaded: %s", request.url, failure.value)
        too_big = "maxsize" in repr(failure.value).lower() or "max size" in str(failure.value)
        raise PhotoDownloadError("too-large" if too_big else DOWNLOAD_FAILED)

    def item_completed(self, results: list[Any], item: Any, info: MediaPipeline.SpiderInfo) -> Any:
        pending = [p for p in item.get("photos") or [] if downloadable(p)]
        for photo, (ok, value) in zip(pending, results, strict=True):
            if ok:
                self._settle(item, photo, value.get("fingerprint") or value.get("error"), value)
            else:
                reason = getattr(value.value, "reason", DOWNLOAD_FAILED)
                self._settle(item, photo, reason)
        return item

    def file_path(
        self,
        request: Request,
        response: Response | None = None,
        info: MediaPipeline.SpiderInfo | None = None,
        *,
        item: Any = None,
    ) -> str:
        raise NotImplementedError("the photos pipeline stores no files")

    # --- recording results --------------------------------------------------------------------

    def _settle(
        self,
        item: Any,
        photo: dict[str, Any],
        outcome: dict[str, Any] | str | None,
        info: PhotoInfo | None = None,
    ) -> None:
        stats = getattr(self.crawler, "stats", None)
        if isinstance(outcome, dict):
            photo["fingerprint"] = outcome
            photo.pop("error", None)
            if stats is not None:
                known = info is not None and info.get("status") == "known"
                stats.inc_value("lovitura/photo/known" if known else "lovitura/photo/ok")
            return
        reason = outcome or DOWNLOAD_FAILED
        photo["error"] = reason
        note_anomaly(
            self.crawler,
            Anomaly(
                "photo",
                reason,
                url=photo.get("url"),
                site=item.get("site"),
                site_ad_id=item.get("site_ad_id"),
                detail=f"photo not fingerprinted: {reason}",
            ),
        )


async def _await_future(future: concurrent.futures.Future[Any]) -> Any:
    """Wait for a pool future without blocking the reactor, with or without asyncio."""
    if is_asyncio_available():
        return await asyncio.wrap_future(future)
    from twisted.internet import reactor

    deferred: Deferred[Any] = Deferred()

    def done(finished: concurrent.futures.Future[Any]) -> None:
        error = finished.exception()
        if error is not None:
            reactor.callFromThread(deferred.errback, error)
        else:
            reactor.callFromThread(deferred.callback, finished.result())

    future.add_done_callback(done)
    return await maybe_deferred_to_future(deferred)
