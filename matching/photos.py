"""Deciding whether two photo fingerprints are copies of the same picture, and finding them fast.

:func:`same_photo` accepts a pair when any of three rules holds (thresholds measured with
``bench/photo_accuracy.py`` on the demo world's repost transformations):

* **global**: the PDQ hashes (either one mirrored) differ in at most :data:`PDQ_THRESHOLD` of
  256 bits: resized, recompressed, watermarked, recoloured, framed and mirrored copies;
* **crop**: the whole-picture pHash of one is within :data:`WINDOW_THRESHOLD` of 64 bits of a
  sub-window pHash of the other: copies cropped by up to about 10 %;
* **overlay**: the top or the bottom strip pHashes differ in at most :data:`STRIP_THRESHOLD`
  bits *and* the PDQ hashes in at most :data:`OVERLAY_PDQ_THRESHOLD`: copies with a text band.

:func:`near_pairs` finds every pair of photos that :func:`same_photo` accepts without comparing
all pairs: multi-index hashing, vectorised with numpy. Each rule compares hashes of one kind
(PDQ with PDQ, a pHash with sub-window pHashes, strip with strip). Two hashes within ``r``
bits agree to within ``r_i`` bits on at least one of the bands of a plan whose sum of
``r_i + 1`` exceeds ``r`` (pigeonhole), so each band is looked up with all its variants of up to
``r_i`` flipped bits, and only what is found is compared. The search is exact
(``tests/test_photos.py`` checks it against comparing all pairs, at and just past every
threshold).

Cost on random hashes (the bench world's synthetic fingerprints): the look-ups grow linearly
with the number of photos, and the random candidates with its square, in a share that the plan
(:func:`plan_bands`) keeps small by widening the bands as the number grows: the search is not
linear, only close to it over the sizes measured in ``docs/matching.md`` ("Scale").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

from pipelines.photos import Fingerprint

PDQ_THRESHOLD = 31
WINDOW_THRESHOLD = 8
STRIP_THRESHOLD = 8
OVERLAY_PDQ_THRESHOLD = 79


def _distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _nearest(hashes: tuple[int, ...], others: tuple[int, ...]) -> int:
    return min(_distance(h, o) for h in hashes for o in others)


def pdq_distance(a: Fingerprint, b: Fingerprint) -> int:
    """PDQ bits apart, allowing either picture to be the mirror image of the other."""
    return min(
        _distance(a.pdq, b.pdq), _distance(a.pdq, b.pdq_mirror), _distance(a.pdq_mirror, b.pdq)
    )


def window_distance(a: Fingerprint, b: Fingerprint) -> int:
    """pHash bits between the whole of one picture and the nearest sub-window of the other."""
    return min(
        _nearest((a.phash,), b.windows + b.windows_mirror),
        _nearest((b.phash,), a.windows + a.windows_mirror),
    )


def strip_distance(a: Fingerprint, b: Fingerprint) -> int:
    """pHash bits between the best-agreeing pair of corresponding strips (top or bottom)."""
    return min(
        min(
            _distance(sa, sb),
            _distance(sa, sb_mirror),
            _distance(sa_mirror, sb),
        )
        for sa, sa_mirror, sb, sb_mirror in zip(
            a.strips, a.strips_mirror, b.strips, b.strips_mirror, strict=True
        )
    )


@dataclass(frozen=True)
class PhotoComparison:
    """Why two fingerprints are (not) the same photo: the distances and the rule that held."""

    pdq: int
    window: int
    strip: int

    @property
    def rule(self) -> str | None:
        if self.pdq <= PDQ_THRESHOLD:
            return "global"
        if self.window <= WINDOW_THRESHOLD:
            return "crop"
        if self.strip <= STRIP_THRESHOLD and self.pdq <= OVERLAY_PDQ_THRESHOLD:
            return "overlay"
        return None

    @property
    def same(self) -> bool:
        return self.rule is not None


def compare(a: Fingerprint, b: Fingerprint) -> PhotoComparison:
    """All distances between two fingerprints, for explaining a match to an analyst."""
    return PhotoComparison(
        pdq=pdq_distance(a, b), window=window_distance(a, b), strip=strip_distance(a, b)
    )


def same_photo(a: Fingerprint, b: Fingerprint) -> bool:
    """Whether ``a`` and ``b`` are copies of the same picture (see the module docstring)."""
    pdq = pdq_distance(a, b)
    if pdq <= PDQ_THRESHOLD:
        return True
    if window_distance(a, b) <= WINDOW_THRESHOLD:
        return True
    return pdq <= OVERLAY_PDQ_THRESHOLD and strip_distance(a, b) <= STRIP_THRESHOLD


# ---------------------------------------------------------------------------------------------
# Every near pair among many fingerprints: multi-index hashing, vectorised
# ---------------------------------------------------------------------------------------------

_WORD = 64
_MAX_BAND = 24  # widest band: its bucket table has 2**24 slots
_STEP = 1 << 20  # band look-ups per numpy step (bounds the memory of one step)
# What a candidate costs against one band look-up (gathering two hashes, comparing them),
# measured on the 100,000 photos of the bench world (bench/link.py).
_CANDIDATE_COST = 6.0


@dataclass(frozen=True)
class Band:
    """Bits ``start`` .. ``start + width - 1`` of a hash, searched to within ``radius`` bits."""

    start: int
    width: int
    radius: int


def plan_bands(bits: int, radius: int, probes: int, entries: int) -> list[Band]:
    """Bands such that two hashes within ``radius`` bits agree to within its radius on at least
    one band, chosen to minimise look-ups plus expected random candidates.

    With bands of radii r_i, two hashes that differ by more than r_i bits on every band differ
    by at least sum(r_i + 1) bits in all; so sum(r_i + 1) = radius + 1 bands suffice
    (generalised pigeonhole). ``probes`` hashes are looked up in a table of ``entries``.
    """

    def bands(count: int) -> list[Band]:
        base, extra = divmod(radius + 1, count)
        found, start = [], 0
        for i in range(count):
            width = bits // count + (1 if i < bits % count else 0)
            found.append(Band(start, width, base if i < extra else base - 1))
            start += width
        return found

    def cost(plan: list[Band]) -> float:
        lookups = sum(_ball(b.width, b.radius) for b in plan)
        collisions = sum(_ball(b.width, b.radius) / 2**b.width for b in plan)
        return probes * (lookups + _CANDIDATE_COST * entries * collisions)

    fewest = -(-bits // _MAX_BAND)
    if fewest > radius + 1:
        raise ValueError(f"a radius of {radius} in {bits} bits needs bands over {_MAX_BAND} bits")
    return min((bands(count) for count in range(fewest, radius + 2)), key=cost)


def _ball(width: int, radius: int) -> int:
    return sum(comb(width, k) for k in range(radius + 1))


def _flips(width: int, radius: int) -> np.ndarray:
    """Every value of up to ``radius`` set bits in ``width`` bits."""
    return np.array(
        [
            sum(1 << i for i in chosen)
            for k in range(radius + 1)
            for chosen in combinations(range(width), k)
        ],
        dtype=np.int64,
    )


def _band_values(values: np.ndarray, band: Band) -> np.ndarray:
    """The band's bits of each hash (rows of 64-bit words, least significant word first)."""
    word, offset = divmod(band.start, _WORD)
    part = values[:, word] >> np.uint64(offset)
    if offset + band.width > _WORD:
        part = part | (values[:, word + 1] << np.uint64(_WORD - offset))
    return (part & np.uint64((1 << band.width) - 1)).astype(np.int64)


def _words(hashes: Sequence[int], bits: int) -> np.ndarray:
    """Hashes as rows of 64-bit words, least significant first."""
    mask = (1 << _WORD) - 1
    return np.array(
        [[(h >> shift) & mask for shift in range(0, bits, _WORD)] for h in hashes], dtype=np.uint64
    ).reshape(len(hashes), bits // _WORD)


def _bit_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits apart of corresponding rows of word arrays."""
    return np.bitwise_count(a ^ b).sum(axis=1, dtype=np.int64)


@dataclass
class HashSet:
    """Hashes (rows of 64-bit words) and, for each, the index of the photo it belongs to."""

    values: np.ndarray
    owners: np.ndarray

    def __len__(self) -> int:
        return len(self.owners)

    def of(self, photos: np.ndarray) -> HashSet:
        """The hashes of the photos marked True in ``photos``."""
        keep = photos[self.owners]
        return HashSet(self.values[keep], self.owners[keep])


def hamming_pairs(
    probes: HashSet, table: HashSet, bits: int, radius: int
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Every (probe, table entry) pair of hashes at most ``radius`` bits apart, as the owners of
    both, a batch at a time, with the number of candidates compared for the batch.

    Exact: the bands (:func:`plan_bands`) find every such pair, and each candidate is compared
    in full. The smaller side is looked up in a bucket table of the larger.
    """
    swapped = len(probes) > len(table)
    if swapped:
        probes, table = table, probes
    if not len(probes) or not len(table):
        return
    for band in plan_bands(bits, radius, len(probes), len(table)):
        keys = _band_values(table.values, band)
        slots_by_key = np.argsort(keys, kind="stable")
        counts = np.bincount(keys, minlength=1 << band.width)
        starts = np.cumsum(counts) - counts
        # A byte per bucket: most look-ups miss, and a small table keeps them in the cache.
        occupied = counts > 0
        flips = _flips(band.width, band.radius)
        probe_keys = _band_values(probes.values, band)
        step = max(1, _STEP // len(flips))
        for first in range(0, len(probes), step):
            variants = (probe_keys[first : first + step, None] ^ flips[None, :]).ravel()
            hits = np.flatnonzero(occupied[variants])
            if not len(hits):
                continue
            hit_keys = variants[hits]
            sizes = counts[hit_keys]
            total = int(sizes.sum())
            ends = np.cumsum(sizes)
            slots = slots_by_key[
                np.repeat(starts[hit_keys] - (ends - sizes), sizes) + np.arange(total)
            ]
            probe_slots = np.repeat(hits // len(flips) + first, sizes)
            near = _bit_distance(probes.values[probe_slots], table.values[slots]) <= radius
            a, b = probes.owners[probe_slots[near]], table.owners[slots[near]]
            yield (b, a, total) if swapped else (a, b, total)


@dataclass
class PhotoArrays:
    """Fingerprints as numpy columns, for searching and comparing many at once."""

    pdq: np.ndarray  # (n, 4) words
    pdq_mirror: np.ndarray
    phash: np.ndarray  # (n, 1)
    windows: np.ndarray  # (n, 8): the windows, then the mirrored windows
    strips: np.ndarray  # (n, 2, 1)
    strips_mirror: np.ndarray

    @classmethod
    def of(cls, prints: Sequence[Fingerprint]) -> PhotoArrays:
        n = len(prints)
        return cls(
            pdq=_words([fp.pdq for fp in prints], 256),
            pdq_mirror=_words([fp.pdq_mirror for fp in prints], 256),
            phash=_words([fp.phash for fp in prints], 64),
            windows=np.array(
                [fp.windows + fp.windows_mirror for fp in prints], dtype=np.uint64
            ).reshape(n, 8),
            strips=np.array([fp.strips for fp in prints], dtype=np.uint64).reshape(n, 2, 1),
            strips_mirror=np.array([fp.strips_mirror for fp in prints], dtype=np.uint64).reshape(
                n, 2, 1
            ),
        )

    def __len__(self) -> int:
        return len(self.pdq)

    def distances(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`pdq_distance`, :func:`window_distance` and :func:`strip_distance` of the
        photo pairs (``a[k]``, ``b[k]``)."""
        pdq = np.minimum.reduce(
            [
                _bit_distance(self.pdq[a], self.pdq[b]),
                _bit_distance(self.pdq[a], self.pdq_mirror[b]),
                _bit_distance(self.pdq_mirror[a], self.pdq[b]),
            ]
        )
        window = np.minimum(
            np.bitwise_count(self.phash[a] ^ self.windows[b]).min(axis=1),
            np.bitwise_count(self.phash[b] ^ self.windows[a]).min(axis=1),
        ).astype(np.int64)
        sa, sb = self.strips[a, :, 0], self.strips[b, :, 0]
        ma, mb = self.strips_mirror[a, :, 0], self.strips_mirror[b, :, 0]
        strip = (
            np.minimum.reduce(
                [np.bitwise_count(sa ^ sb), np.bitwise_count(sa ^ mb), np.bitwise_count(ma ^ sb)]
            )
            .min(axis=1)
            .astype(np.int64)
        )
        return pdq, window, strip

    def comparisons(self) -> Iterator[tuple[HashSet, HashSet, int, int]]:
        """Per rule: the hashes on each side of its comparisons, their bits and the radius.

        Pairs of photos are unordered, so each comparison is needed one way round only: the
        global rule compares pdq with pdq and the mirror with pdq (pdq with the mirror is that
        comparison seen from the other photo); the overlay rule does the same with each strip.
        """
        n = len(self)
        owners = np.arange(n, dtype=np.int64)
        twice = np.concatenate([owners, owners])
        yield (
            HashSet(np.concatenate([self.pdq, self.pdq_mirror]), twice),
            HashSet(self.pdq, owners),
            256,
            PDQ_THRESHOLD,
        )
        yield (
            HashSet(self.phash, owners),
            HashSet(self.windows.reshape(-1, 1), np.repeat(owners, self.windows.shape[1])),
            64,
            WINDOW_THRESHOLD,
        )
        for side in range(self.strips.shape[1]):
            yield (
                HashSet(np.concatenate([self.strips[:, side], self.strips_mirror[:, side]]), twice),
                HashSet(self.strips[:, side], owners),
                64,
                STRIP_THRESHOLD,
            )


@dataclass
class NearPairs:
    """Photo pairs (``low[k]`` < ``high[k]``, indexes) that :func:`same_photo` accepts, with
    their distances, and how many hash pairs the search compared."""

    low: np.ndarray
    high: np.ndarray
    pdq: np.ndarray
    window: np.ndarray
    strip: np.ndarray
    checked: int


def near_pairs(arrays: PhotoArrays, new: np.ndarray | None = None) -> NearPairs:
    """Every pair of photos that :func:`same_photo` accepts, of which at least one is ``new``
    (a boolean per photo; all photos when None): exactly what comparing all pairs finds.

    Each rule's hashes are searched by multi-index hashing (:func:`hamming_pairs`); the overlay
    rule's candidates (top or bottom strip near) are then held to its PDQ limit.
    """
    n = len(arrays)
    every = new is None or bool(np.all(new))
    is_new = np.ones(n, dtype=bool) if new is None else np.asarray(new, dtype=bool)
    keys: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    checked = 0
    for left, right, bits, radius in arrays.comparisons():
        if every:
            searches = [(left, right)]
        else:
            searches = [(left.of(is_new), right), (left, right.of(is_new))]
        for probes, table in searches:
            for a, b, count in hamming_pairs(probes, table, bits, radius):
                checked += count
                low, high = np.minimum(a, b), np.maximum(a, b)
                keep = (low != high) & (is_new[low] | is_new[high])
                keys.append(low[keep] * n + high[keep])
    low, high = np.divmod(np.unique(np.concatenate(keys)), max(n, 1))
    pdq, window, strip = arrays.distances(low, high)
    same = (
        (pdq <= PDQ_THRESHOLD)
        | (window <= WINDOW_THRESHOLD)
        | ((strip <= STRIP_THRESHOLD) & (pdq <= OVERLAY_PDQ_THRESHOLD))
    )
    return NearPairs(low[same], high[same], pdq[same], window[same], strip[same], checked)
