"""Deciding whether two photo fingerprints are copies of the same picture, and finding them fast.

:func:`same_photo` accepts a pair when any of three rules holds (thresholds measured with
``bench/photo_accuracy.py`` on the demo world's repost transformations):

* **global**: the PDQ hashes (either one mirrored) differ in at most :data:`PDQ_THRESHOLD` of
  256 bits: resized, recompressed, watermarked, recoloured, framed and mirrored copies;
* **crop**: the whole-picture pHash of one is within :data:`WINDOW_THRESHOLD` of 64 bits of a
  sub-window pHash of the other: copies cropped by up to about 10 %;
* **overlay**: the top or the bottom strip pHashes differ in at most :data:`STRIP_THRESHOLD`
  bits *and* the PDQ hashes in at most :data:`OVERLAY_PDQ_THRESHOLD`: copies with a text band.

:class:`PhotoIndex` finds every stored fingerprint that :func:`same_photo` accepts without
comparing all pairs: multi-index hashing. A hash within ``r`` bits of another agrees with it to
within ``r // m`` bits on at least one of ``m`` bands (pigeonhole), so each band is looked up
with all its variants of up to ``r // m`` flipped bits, and only what is found is compared.

Measured with ``bench/photos.py``: a query checks about 1.4 % of the stored photos (30 checks
at 1,000 photos, 111 at 8,000) and takes 1.0 ms at 1,000 and 4.7 ms at 8,000 photos, against
5 and 37 ms for comparing with all of them. The checks still grow linearly, with a small
factor: thresholds of 8 in 64 bits leave bands of 21 bits with 2 flips as the best plan.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from itertools import combinations
from math import comb

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
# Multi-index hashing
# ---------------------------------------------------------------------------------------------

# What a candidate comparison costs against one band lookup: a same_photo call (5.4 us) took as
# long as 57 lookups of flipped band values (0.095 us each) on the development machine.
_CHECK_COST = 57.0
_EXPECTED_ENTRIES = 100_000


def _ball(width: int, radius: int) -> int:
    return sum(comb(width, k) for k in range(radius + 1))


def _band_widths(bits: int, bands: int) -> list[int]:
    return [bits // bands + (1 if i < bits % bands else 0) for i in range(bands)]


def plan_bands(bits: int, radius: int, expected_entries: int = _EXPECTED_ENTRIES) -> int:
    """The number of bands that minimises lookups plus expected random candidates."""

    def cost(bands: int) -> float:
        sub = radius // bands
        lookups = sum(_ball(w, sub) for w in _band_widths(bits, bands))
        collisions = sum(_ball(w, sub) / 2**w for w in _band_widths(bits, bands))
        return lookups + _CHECK_COST * expected_entries * collisions

    return min(range(1, min(bits, radius + 1) + 1), key=cost)


class HammingTable:
    """Multi-index hashing over ``bits``-bit hashes: every entry within ``radius`` of a probe.

    The result may also hold entries further away; callers check them.
    """

    def __init__(self, bits: int, radius: int, expected_entries: int = _EXPECTED_ENTRIES):
        self.bits = bits
        self.radius = radius
        bands = plan_bands(bits, radius, expected_entries)
        self._sub_radius = radius // bands
        self._bands: list[tuple[int, int, list[int], dict[int, list[int]]]] = []
        shift = 0
        for width in _band_widths(bits, bands):
            flips = [
                sum(1 << i for i in chosen)
                for k in range(self._sub_radius + 1)
                for chosen in combinations(range(width), k)
            ]
            self._bands.append((shift, (1 << width) - 1, flips, {}))
            shift += width

    def add(self, value: int, owner: int) -> None:
        for shift, mask, _, buckets in self._bands:
            buckets.setdefault((value >> shift) & mask, []).append(owner)

    def probe(self, value: int) -> Iterator[int]:
        """Owners of entries that agree with ``value`` on some band to within the sub-radius."""
        for shift, mask, flips, buckets in self._bands:
            band = (value >> shift) & mask
            get = buckets.get
            for flip in flips:
                found = get(band ^ flip)
                if found:
                    yield from found


class PhotoIndex:
    """Every stored fingerprint that :func:`same_photo` accepts for a query, found by bands.

    ``query`` returns exactly what comparing the query with every stored fingerprint would
    return (``tests/test_photos.py`` checks this), in the order the keys were added.
    """

    def __init__(self, expected_size: int = _EXPECTED_ENTRIES // 10) -> None:
        entries = expected_size * 10  # up to ten hashes per photo in the busiest table
        self._keys: list[Hashable] = []
        self._fingerprints: list[Fingerprint] = []
        self._slot: dict[Hashable, int] = {}
        self._pdq = HammingTable(256, PDQ_THRESHOLD, entries)
        self._wholes = HammingTable(64, WINDOW_THRESHOLD, entries)
        self._windows = HammingTable(64, WINDOW_THRESHOLD, entries)
        self._strips = [HammingTable(64, STRIP_THRESHOLD, entries) for _ in range(2)]
        self.candidates_checked = 0  # how many same_photo calls queries have made

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._slot

    def add(self, key: Hashable, fp: Fingerprint) -> None:
        """Store ``fp`` under ``key``; adding a key again with another fingerprint is an error."""
        if key in self._slot:
            if self._fingerprints[self._slot[key]] != fp:
                raise ValueError(f"photo key {key!r} is already indexed with another fingerprint")
            return
        slot = len(self._keys)
        self._slot[key] = slot
        self._keys.append(key)
        self._fingerprints.append(fp)
        self._pdq.add(fp.pdq, slot)
        self._pdq.add(fp.pdq_mirror, slot)
        self._wholes.add(fp.phash, slot)
        for window in fp.windows + fp.windows_mirror:
            self._windows.add(window, slot)
        for table, strip, strip_mirror in zip(
            self._strips, fp.strips, fp.strips_mirror, strict=True
        ):
            table.add(strip, slot)
            table.add(strip_mirror, slot)

    def _candidates(self, fp: Fingerprint) -> set[int]:
        found: set[int] = set()
        for value in (fp.pdq, fp.pdq_mirror):
            found.update(self._pdq.probe(value))
        found.update(self._windows.probe(fp.phash))
        for window in fp.windows + fp.windows_mirror:
            found.update(self._wholes.probe(window))
        for table, strip, strip_mirror in zip(
            self._strips, fp.strips, fp.strips_mirror, strict=True
        ):
            found.update(table.probe(strip))
            found.update(table.probe(strip_mirror))
        return found

    def query(self, fp: Fingerprint) -> list[Hashable]:
        """Keys of all stored fingerprints that are the same photo as ``fp``."""
        candidates = sorted(self._candidates(fp))
        self.candidates_checked += len(candidates)
        return [self._keys[s] for s in candidates if same_photo(fp, self._fingerprints[s])]
