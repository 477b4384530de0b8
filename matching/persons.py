"""Clustering ads into persons: one cluster per woman, under constraints that keep women apart.

The clustering runs in two stages.

1. *Identity keys*. Ads that show the same personal phone number, e-mail address or handle are
   one woman (:mod:`matching.evidence` decides which keys are personal). Analysts' ``force``
   overrides join ads too.
2. *Soft evidence*: a common photo (not a ubiquitous one), or the same nickname on the same
   site under the same shared number (an agency or booking number's ads of one woman). Clusters
   with soft evidence in common are joined, most evidence first, in rounds until nothing
   changes, but only when the join is believable (:meth:`PersonClusterer.refusal`):

   * it puts no more than :data:`CONTRADICTION_TOLERANCE` extra days of her trail in two places
     at once (so a scammer's ad elsewhere cannot make her trail jump),
   * the stated ages fit one woman, and the two never have ads with different nicknames on one
     site at once,
   * when both clusters show phone numbers and no personal number in common (numbers of one
     lineage, see :func:`matching.evidence.lineages`, count as one), and neither are they both
     ads under one shared number only, nor do they share a number that one of her ads shows
     next to her own (her booking number and her WhatsApp): either both are her own numbers
     and they follow each other (:func:`_succession`: she changed her number), or the two place
     her in the same municipality on most days they are both online (a booking number and her
     own number, used for the same stay). A scammer who reposts her photos with his own number,
     elsewhere and while she keeps advertising, fails both.

An analyst's ``suppress`` override is a cannot-link: no join ever puts those two ads together.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from matching.evidence import (
    AGE_TOLERANCE,
    CONTRADICTION_TOLERANCE,
    SAME_SITE_DAYS,
    SiteNicknameDays,
    same_site_overlap,
    site_nickname_days,
)
from matching.loader import AdRecord, Override
from matching.timeline import (
    LINGER_DAYS,
    Sighting,
    contradiction_days,
    daily_winners,
    extra_contradictions,
    overlap_agreement,
)

logger = logging.getLogger(__name__)

SWAP_TOLERANCE = 3  # days an ad may still get the old number after she started the new one
COLOCATED_SHARE = 0.5  # share of common days two clusters must agree on her place
MAX_ROUNDS = 6


@dataclass
class _Cluster:
    ads: list[int]
    tokens: set[Hashable]  # soft evidence: photo clusters, (number, site, nickname)
    phones: set[int]  # lineages (see evidence.lineages) of its numbers
    personal: set[int]  # the lineages of its personal numbers
    anchored: set[int]  # lineages of shared numbers shown on one ad with a personal number
    ages: set[int]
    sightings: list[Sighting]
    site_days: SiteNicknameDays
    first_start: int | None  # first and last day a personal number started on one of its ads
    last_start: int | None
    unplaced: set[int]  # days an ad with a personal number was seen naming no place
    contradictions: int | None = None
    refused: dict[int, int] = field(default_factory=dict)  # other root -> its size when refused


class PersonClusterer:
    """Clusters ads into persons; see the module docstring."""

    def __init__(
        self,
        ads: Mapping[int, AdRecord],
        tokens: Mapping[int, Iterable[Hashable]],
        personal_phones: set[str],
        lineage_of: Mapping[str, int],
        overrides: Iterable[Override] = (),
    ) -> None:
        """``tokens``: soft evidence per ad; ``personal_phones``: numbers judged personal;
        ``lineage_of``: the lineage of each number (numbers of one lineage are one owner's)."""
        self.ads = ads
        self.parent: dict[int, int] = {ad_id: ad_id for ad_id in ads}
        self.clusters: dict[int, _Cluster] = {
            ad_id: _new_cluster(ad, set(tokens.get(ad_id, ())), personal_phones, lineage_of)
            for ad_id, ad in ads.items()
        }
        self.data_end = max((s.day for ad in ads.values() for s in ad.sightings), default=0)
        self.suppressed: dict[int, set[int]] = defaultdict(set)
        self.forced: list[tuple[int, int]] = []
        for override in overrides:
            if override.ad_a not in ads or override.ad_b not in ads:
                continue
            if override.action == "suppress":
                self.suppressed[override.ad_a].add(override.ad_b)
                self.suppressed[override.ad_b].add(override.ad_a)
            else:
                self.forced.append((override.ad_a, override.ad_b))
        self.refusals: dict[str, int] = defaultdict(int)

    # --- union-find ----------------------------------------------------------------------

    def find(self, ad_id: int) -> int:
        root = ad_id
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[ad_id] != root:
            self.parent[ad_id], ad_id = root, self.parent[ad_id]
        return root

    def _merge(self, a: int, b: int) -> int:
        ca, cb = self.clusters[a], self.clusters[b]
        if len(ca.ads) < len(cb.ads):
            a, b, ca, cb = b, a, cb, ca
        self.parent[b] = a
        ca.ads.extend(cb.ads)
        ca.tokens |= cb.tokens
        ca.phones |= cb.phones
        ca.personal |= cb.personal
        ca.anchored |= cb.anchored
        ca.ages |= cb.ages
        ca.sightings.extend(cb.sightings)
        for site, by_name in cb.site_days.items():
            mine = ca.site_days.setdefault(site, defaultdict(set))
            for name, days in by_name.items():
                mine.setdefault(name, set()).update(days)
        ca.unplaced |= cb.unplaced
        ca.first_start = _min(ca.first_start, cb.first_start)
        ca.last_start = _max(ca.last_start, cb.last_start)
        ca.contradictions = None
        ca.refused.clear()
        del self.clusters[b]
        return a

    def _suppressed_between(self, a: int, b: int) -> bool:
        small, large = sorted((a, b), key=lambda r: len(self.clusters[r].ads))
        for ad_id in self.clusters[small].ads:
            for other in self.suppressed.get(ad_id, ()):
                if self.find(other) == large:
                    return True
        return False

    def join(self, a: int, b: int) -> bool:
        """Join the clusters of ads ``a`` and ``b`` unless an analyst said they are apart."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if self.suppressed and self._suppressed_between(ra, rb):
            self.refusals["suppressed by an analyst"] += 1
            return False
        self._merge(ra, rb)
        return True

    # --- stage 1: keys and forced links ----------------------------------------------------

    def join_keys(self, personal_keys: Iterable[list[int]]) -> None:
        """Join the ads of each personal key (ads in time order), then the forced pairs."""
        for a, b in self.forced:
            self.join(a, b)
        for ad_ids in personal_keys:
            for a, b in itertools.pairwise(ad_ids):
                self.join(a, b)

    # --- stage 2: soft evidence ------------------------------------------------------------

    def join_soft(self) -> None:
        """Join clusters with soft evidence in common, strongest first, in rounds."""
        for _ in range(MAX_ROUNDS):
            if not self._soft_round():
                return

    def _soft_round(self) -> bool:
        holders: dict[Hashable, list[int]] = defaultdict(list)
        for root, cluster in self.clusters.items():
            for token in cluster.tokens:
                holders[token].append(root)
        strength: dict[tuple[int, int], int] = defaultdict(int)
        for roots in holders.values():
            for a, b in itertools.combinations(sorted(roots), 2):
                strength[(a, b)] += 1
        merged = False
        for (a, b), _shared in sorted(strength.items(), key=lambda kv: (-kv[1], kv[0])):
            ra, rb = self.find(a), self.find(b)
            if ra == rb:
                continue
            refusal = self.refusal(ra, rb)
            if refusal:
                self.refusals[refusal] += 1
                continue
            self._merge(ra, rb)
            merged = True
        return merged

    def refusal(self, a: int, b: int) -> str:
        """Why clusters ``a`` and ``b`` (roots) must not be joined on soft evidence; "" if not."""
        ca, cb = self.clusters[a], self.clusters[b]
        if ca.refused.get(b) == len(cb.ads) and cb.refused.get(a) == len(ca.ads):
            return "refused before"
        refusal = self._refusal(a, b, ca, cb)
        if refusal:
            ca.refused[b], cb.refused[a] = len(cb.ads), len(ca.ads)
        return refusal

    def _refusal(self, a: int, b: int, ca: _Cluster, cb: _Cluster) -> str:
        if self.suppressed and self._suppressed_between(a, b):
            return "suppressed by an analyst"
        if (
            ca.ages
            and cb.ages
            and min(abs(x - y) for x in ca.ages for y in cb.ages) > AGE_TOLERANCE
        ):
            return "stated ages differ"
        if same_site_overlap(ca.site_days, cb.site_days) >= SAME_SITE_DAYS:
            return "two nicknames on one site at once"
        if not self._phones_fit(ca, cb):
            return "different numbers in use at the same time, elsewhere"
        if self._extra_contradictions(ca, cb) > CONTRADICTION_TOLERANCE:
            return "would put her in two places at once"
        return ""

    def _phones_fit(self, ca: _Cluster, cb: _Cluster) -> bool:
        if not ca.phones or not cb.phones or ca.personal & cb.personal:
            return True
        common = ca.phones & cb.phones
        if common and not ca.personal and not cb.personal:
            return True  # ads of one shared number, with her photos: her ads under it
        if common & (ca.anchored | cb.anchored):
            return True  # a shared number one of her own ads shows next to her own number
        if ca.personal and cb.personal and self._succession(ca, cb):
            return True
        # Ads under a shared number join her own ads only where she is: a booking number
        # advertises her in her place, a scammer's number somewhere else.
        return _colocated(ca, cb)

    def _succession(self, ca: _Cluster, cb: _Cluster) -> bool:
        """One woman's numbers follow each other: the old number starts no new ad once the new
        one appeared, and after :data:`LINGER_DAYS` the old number's ads are only seen where
        the new number's ads place her (an old ad she did not edit). While the old number is
        still seen elsewhere on the last day crawled, it is not (yet) a succession."""
        assert ca.first_start is not None and cb.first_start is not None
        early, late = (ca, cb) if ca.first_start <= cb.first_start else (cb, ca)
        assert early.last_start is not None and late.first_start is not None
        if early.last_start > late.first_start + SWAP_TOLERANCE:
            return False
        where = daily_winners(late.sightings)
        elsewhere = [
            s.day
            for s in early.sightings
            if s.day >= late.first_start and where.get(s.day) != s.place
        ]
        # A day the old number was seen on an ad naming no place says nothing about where she
        # was: it counts as elsewhere, so a number still in use is not "followed" by a
        # scammer's (her ads on a site without places would otherwise pass vacuously).
        elsewhere.extend(d for d in early.unplaced if d >= late.first_start)
        return all(d <= late.first_start + LINGER_DAYS and d < self.data_end for d in elsewhere)

    def _extra_contradictions(self, ca: _Cluster, cb: _Cluster) -> int:
        for cluster in (ca, cb):
            if cluster.contradictions is None:
                cluster.contradictions = len(contradiction_days(cluster.sightings))
        return extra_contradictions(
            ca.sightings, cb.sightings, ca.contradictions, cb.contradictions
        )

    # --- result ----------------------------------------------------------------------------

    def persons(self) -> list[list[int]]:
        """The clusters, each a sorted list of ad ids, in order of their smallest ad id."""
        return sorted((sorted(c.ads) for c in self.clusters.values()), key=lambda ads: ads[0])


def _new_cluster(
    ad: AdRecord,
    tokens: set[Hashable],
    personal_phones: set[str],
    lineage_of: Mapping[str, int],
) -> _Cluster:
    personal = [p for p in ad.phones if p in personal_phones]
    shared = [p for p in ad.phones if p not in personal_phones]
    starts = [ad.phones[p].first_day for p in personal]
    return _Cluster(
        ads=[ad.id],
        tokens=tokens,
        phones={lineage_of[p] for p in ad.phones if p in lineage_of},
        personal={lineage_of[p] for p in personal if p in lineage_of},
        anchored={lineage_of[p] for p in shared if p in lineage_of} if personal else set(),
        ages={ad.age} if ad.age is not None else set(),
        sightings=list(ad.sightings),
        site_days=site_nickname_days([ad]),
        first_start=min(starts) if starts else None,
        last_start=max(starts) if starts else None,
        unplaced=_unplaced(ad, personal),
    )


def _unplaced(ad: AdRecord, personal: list[str]) -> set[int]:
    """Days the ad showed one of ``personal`` and named no place."""
    placed = {s.day for s in ad.sightings}
    uses = [ad.phones[p] for p in personal]
    return {
        d for d in ad.days if d not in placed and any(u.first_day <= d <= u.last_day for u in uses)
    }


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _colocated(ca: _Cluster, cb: _Cluster) -> bool:
    """Both place her somewhere on common days, and in the same place on most of them."""
    common, agree = overlap_agreement(ca.sightings, cb.sightings)
    return common > 0 and agree >= COLOCATED_SHARE * common
