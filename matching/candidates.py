"""Candidate evidence between ads, found without comparing all pairs of ads.

Three kinds of lookup, each near-linear in the number of ads:

* exact keys: a phone number (E.164, from ``ad_phones``), an e-mail address or a messaging
  handle (from ``ads.fields``) groups the ads that show it (:func:`exact_keys`);
* photos: every pair of photos that ``same_photo`` accepts, of which one is new, is found by
  multi-index hashing over the distinct fingerprints (``matching.photos.near_pairs``), exactly
  (:class:`PhotoMatcher`);
* text: MinHash signatures of word shingles in a datasketch LSH index find ads whose texts are
  near-duplicates (:class:`TextMatcher`): reposts, copies and a network's templates.

Photos and texts are grouped into *clusters* (near-duplicates of one another). A matcher keeps a
spanning forest of each cluster: a new item is matched against the index, and only the matches
that join it to a cluster it was not yet part of become :class:`Match` es. So the number of
matches, and of the links the linker stores for them, grows with the number of items, not with
the square of a cluster's size (a site's placeholder image can be on thousands of ads).
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from datasketch import MinHash, MinHashLSH
from networkx.utils import UnionFind

from matching.loader import AdRecord, PhotoRecord
from matching.photos import (
    PDQ_THRESHOLD,
    STRIP_THRESHOLD,
    WINDOW_THRESHOLD,
    PhotoArrays,
    PhotoComparison,
    compare,
    near_pairs,
)
from pipelines.photos import Fingerprint

logger = logging.getLogger(__name__)

TEXT_THRESHOLD = 0.6  # estimated Jaccard similarity of word 3-shingles for a text match
TEXT_NUM_PERM = 128
TEXT_MIN_SHINGLES = 6  # shorter texts say too little to be near-duplicates of anything
TEXT_SHINGLE = 3


@dataclass(frozen=True, slots=True)
class Match:
    """Evidence that two items (photos: ``ad_photos`` ids; texts: ad ids) are near-duplicates."""

    a: int  # the item already known
    b: int  # the new item
    score: float  # photos: distance ratio (0 identical, 1 at the threshold); texts: similarity
    detail: dict[str, Any] = field(default_factory=dict)


# --- exact keys --------------------------------------------------------------------------------


def exact_keys(ads: Iterable[AdRecord]) -> dict[tuple[str, str], list[int]]:
    """Ads by shared exact value: ``("phone", "+316...")``, ``("email", ...)``, ``("handle", ...)``.

    Ads of a key are in first-seen order (then id), so chains along a key follow time.
    """
    keys: dict[tuple[str, str], list[AdRecord]] = defaultdict(list)
    for ad in ads:
        for phone in ad.phones:
            keys[("phone", phone)].append(ad)
        for email in ad.emails:
            keys[("email", email)].append(ad)
        for handle in ad.handles:
            keys[("handle", handle)].append(ad)
    return {
        key: [ad.id for ad in sorted(members, key=lambda a: (a.first_day, a.id))]
        for key, members in keys.items()
    }


# --- photos ------------------------------------------------------------------------------------


def photo_evidence(a: Fingerprint, b: Fingerprint) -> tuple[float, dict[str, Any]]:
    """How near two matching photos are: a ratio in 0..1 (0: identical) and the distances.

    The ratio is the distance under the rule that accepted the pair divided by that rule's
    threshold (``matching.photos``): a crop match at 4 of 8 window bits is as near as a global
    match at 15 of 31 PDQ bits.
    """
    comparison = compare(a, b)
    return distance_evidence(comparison.pdq, comparison.window, comparison.strip)


def distance_evidence(pdq: int, window: int, strip: int) -> tuple[float, dict[str, Any]]:
    """:func:`photo_evidence` of a matching pair from its three distances."""
    rule = PhotoComparison(pdq, window, strip).rule
    if rule == "global":
        ratio = pdq / PDQ_THRESHOLD
    elif rule == "crop":
        ratio = window / WINDOW_THRESHOLD
    else:
        ratio = strip / STRIP_THRESHOLD
    detail = {
        "rule": rule,
        "pdq": pdq,
        "window": window,
        "strip": strip,
        "ratio": round(min(1.0, ratio), 4),
    }
    return min(1.0, ratio), detail


class PhotoMatcher:
    """Near-duplicate photos across all ads, as clusters with a spanning forest of matches."""

    def __init__(self, photos: Iterable[PhotoRecord], known: Iterable[tuple[int, int]] = ()):
        """``photos``: every fingerprinted photo; ``known``: matches found by earlier runs."""
        self.fingerprints: dict[int, Fingerprint] = {}
        self.ad_of: dict[int, int] = {}
        self.url_of: dict[int, str] = {}
        self.clusters: UnionFind = UnionFind()
        self.unreadable = 0
        self.checked = 0  # hash pairs the last search compared
        for photo in photos:
            try:
                fp = Fingerprint.from_json(photo.fingerprint)
            except ValueError:
                self.unreadable += 1
                continue
            self.fingerprints[photo.id] = fp
            self.ad_of[photo.id] = photo.ad_id
            self.url_of[photo.id] = photo.url
            _ = self.clusters[photo.id]  # looking a photo up makes it its own cluster
        if self.unreadable:
            logger.warning(
                "%d stored photo fingerprints could not be read (written by another version?); "
                "re-fingerprint those photos, then run `lovitura link --full`",
                self.unreadable,
            )
        for a, b in known:
            if a in self.fingerprints and b in self.fingerprints:
                self.clusters.union(a, b)

    def index_all(self, new: set[int]) -> list[Match]:
        """Match each photo of ``new``, in id order, with every earlier photo that
        ``same_photo`` accepts, and return the matches that joined two clusters.

        Exact: the result is what comparing each new photo with every earlier one would give.
        Photos with one fingerprint (the same file again) are searched once, as one
        (:func:`matching.photos.near_pairs`); a new photo's candidates are the first photo of
        each fingerprint near its own that came before it, nearest first.
        """
        photo_ids = sorted(self.fingerprints)
        group_of: dict[Fingerprint, int] = {}
        first: list[int] = []  # the first photo of each fingerprint
        for photo_id in photo_ids:
            if group_of.setdefault(self.fingerprints[photo_id], len(first)) == len(first):
                first.append(photo_id)
        groups = [self.fingerprints[photo_id] for photo_id in first]
        searched = np.zeros(len(groups), dtype=bool)
        for photo_id in new:
            if photo_id in self.fingerprints:
                searched[group_of[self.fingerprints[photo_id]]] = True
        found = near_pairs(PhotoArrays.of(groups), searched)
        self.checked = found.checked
        near: dict[int, list[tuple[float, int, dict[str, Any]]]] = defaultdict(list)
        for low, high, pdq, window, strip in zip(
            found.low.tolist(),
            found.high.tolist(),
            found.pdq.tolist(),
            found.window.tolist(),
            found.strip.tolist(),
            strict=True,
        ):
            ratio, detail = distance_evidence(pdq, window, strip)
            near[low].append((ratio, first[high], detail))
            near[high].append((ratio, first[low], detail))
        matches: list[Match] = []
        for photo_id in photo_ids:
            if photo_id not in new:
                continue
            group = group_of[self.fingerprints[photo_id]]
            candidates = [c for c in near.get(group, ()) if c[1] < photo_id]
            if first[group] < photo_id:
                ratio, detail = photo_evidence(groups[group], groups[group])
                candidates.append((ratio, first[group], detail))
            for ratio, other, detail in sorted(candidates, key=lambda c: (c[0], c[1])):
                if self.clusters[other] != self.clusters[photo_id]:
                    self.clusters.union(other, photo_id)
                    matches.append(Match(other, photo_id, ratio, detail))
        return matches

    def cluster_of(self) -> dict[int, int]:
        """Photo id -> a representative photo id of its cluster."""
        return {photo_id: self.clusters[photo_id] for photo_id in self.fingerprints}


# --- text --------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+")


def shingles(text: str, size: int = TEXT_SHINGLE) -> set[bytes]:
    """Word ``size``-grams of ``text``, lower case, without digits, accents or punctuation.

    Digits go because they are what varies between copies of one template: prices, ages, phone
    numbers, dates.
    """
    folded = unicodedata.normalize("NFKD", text.casefold())
    words = _WORD.findall("".join(c for c in folded if not unicodedata.combining(c)))
    if len(words) < size:
        return set()
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


class TextMatcher:
    """Near-duplicate ad texts, as clusters of ads with a spanning forest of matches.

    Identical shingle sets (reposts, copies) share one LSH entry, so a template used by many
    ads costs one entry per variant, not one per ad.
    """

    def __init__(
        self,
        texts: Mapping[int, str],
        known: Iterable[tuple[int, int]] = (),
        threshold: float = TEXT_THRESHOLD,
    ) -> None:
        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=threshold, num_perm=TEXT_NUM_PERM)
        self.clusters: UnionFind = UnionFind()
        self.variant_of: dict[int, str] = {}
        self.signatures: dict[str, MinHash] = {}
        self.ads_of_variant: dict[str, list[int]] = defaultdict(list)
        self._sets: dict[str, set[bytes]] = {}
        for ad_id in sorted(texts):
            found = shingles(texts[ad_id])
            if len(found) < TEXT_MIN_SHINGLES:
                continue
            key = hashlib.blake2b(b"\n".join(sorted(found)), digest_size=12).hexdigest()
            self.variant_of[ad_id] = key
            self._sets.setdefault(key, found)
            _ = self.clusters[ad_id]  # looking an ad up makes it its own cluster
        self._signatures()
        for a, b in known:
            if a in self.variant_of and b in self.variant_of:
                self.clusters.union(a, b)

    def _signatures(self) -> None:
        keys = sorted(self._sets)
        batches = [sorted(self._sets[k]) for k in keys]
        for key, signature in zip(keys, MinHash.bulk(batches, num_perm=TEXT_NUM_PERM), strict=True):
            self.signatures[key] = signature
        self._sets.clear()

    def index_all(self, new: set[int]) -> list[Match]:
        """Index every text; look up each ad of ``new`` (in id order) and return its matches."""
        matches: list[Match] = []
        for ad_id in sorted(self.variant_of):
            key = self.variant_of[ad_id]
            if ad_id in new:
                matches.extend(self._match(ad_id, key))
            if not self.ads_of_variant[key]:
                self.lsh.insert(key, self.signatures[key])
            self.ads_of_variant[key].append(ad_id)
        return matches

    def _match(self, ad_id: int, key: str) -> list[Match]:
        signature = self.signatures[key]
        found = []
        for other in self.lsh.query(signature):
            similarity = 1.0 if other == key else signature.jaccard(self.signatures[other])
            if similarity >= self.threshold:
                found.append((-similarity, self.ads_of_variant[other][0], other))
        matches = []
        for negative, first_ad, _other in sorted(found):
            if self.clusters[first_ad] != self.clusters[ad_id]:
                self.clusters.union(first_ad, ad_id)
                matches.append(Match(first_ad, ad_id, round(-negative, 3)))
        return matches

    def similarity(self, a: int, b: int) -> float:
        """Estimated Jaccard similarity of the texts of ads ``a`` and ``b`` (0 when unknown)."""
        ka, kb = self.variant_of.get(a), self.variant_of.get(b)
        if ka is None or kb is None:
            return 0.0
        return 1.0 if ka == kb else float(self.signatures[ka].jaccard(self.signatures[kb]))

    def cluster_of(self) -> dict[int, int]:
        """Ad id -> a representative ad id of its text cluster."""
        return {ad_id: self.clusters[ad_id] for ad_id in self.variant_of}
