"""What a shared identifier is evidence of: one woman, or a group of people.

A phone number, e-mail address or handle on several ads is *personal* when everything says one
woman uses it, and *shared* when it is a booking, agency or scam number used for several women.

Numbers an ad showed one after the other (an ad edited from an old number to a new one) have
one owner, so they form a *lineage* that is judged as a whole: when a network changes its
booking number, the new number is as shared as the old one from its first ad on.

A key (or lineage) is shared when its ads fall apart into *groups* that cannot be one woman.
Ads are in one group when they show a common photo (not a ubiquitous one), or the same nickname
on the same site, one after the other or for an ad without photos of its own (her reposts and
her next ads). Two groups cannot be one woman when they:

* state ages further apart than :data:`AGE_TOLERANCE`, or
* have ads with different nicknames online on the same site at the same time for longer than
  an old ad lingers (one woman keeps one current ad per site), or
* put her in two places on the same days (see :mod:`matching.timeline`).

A photo is *ubiquitous* (a site's placeholder image, a logo, a stock photo) when its ads show
:data:`UBIQUITOUS_PHONES` or more different phone numbers. Ubiquitous photos are no evidence for
a person; shared keys are evidence for a network only.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from networkx.utils import UnionFind

from matching.loader import AdRecord
from matching.timeline import LINGER_DAYS, extra_contradictions

AGE_TOLERANCE = 3  # stated ages of one woman drift by a year or two
UBIQUITOUS_PHONES = 10  # distinct numbers on the ads of one photo: a placeholder or stock image
CONTRADICTION_TOLERANCE = 1  # days two groups may disagree on her place (geocoding noise)
SAME_SITE_DAYS = LINGER_DAYS + 1  # days two ads on one site may overlap (a repost, a stale ad)
COPY_DAYS = 1  # an ad and its copy go up within a day of each other

PERSONAL, SHARED = "personal", "shared"

Key = tuple[str, str]  # ("phone", "+316..."), ("email", ...), ("handle", ...)


@dataclass(frozen=True)
class KeyVerdict:
    """Why a key is personal or shared: the reason is shown by ``lovitura explain``."""

    verdict: str  # PERSONAL or SHARED
    reason: str  # "stated ages 22 and 31", "in two places on the same days" ...
    groups: int  # groups of ads (see the module docstring) among its ads


def ubiquitous_photos(
    ads: Mapping[int, AdRecord], photo_clusters: Mapping[int, Iterable[int]]
) -> set[int]:
    """Photo clusters whose ads show :data:`UBIQUITOUS_PHONES` or more numbers.

    ``photo_clusters`` maps an ad id to the photo clusters of its photos.
    """
    phones: dict[int, set[str]] = defaultdict(set)
    for ad_id, clusters in photo_clusters.items():
        numbers = ads[ad_id].phones.keys()
        for cluster in clusters:
            if len(phones[cluster]) < UBIQUITOUS_PHONES:
                phones[cluster].update(numbers)
    return {c for c, numbers in phones.items() if len(numbers) >= UBIQUITOUS_PHONES}


def lineages(keys: Mapping[Key, list[int]], ads: Mapping[int, AdRecord]) -> list[list[Key]]:
    """Phone keys joined when one ad showed one number after the other (an edit replaced the
    old number); every other key is a lineage of its own.

    Two numbers an ad shows at the same time (a booking number and her own for WhatsApp) may
    belong to two owners, so they are not joined.
    """
    union: UnionFind = UnionFind()
    for key in keys:
        _ = union[key]  # looking a key up makes it its own lineage
    for ad in ads.values():
        if len(ad.phones) < 2:
            continue
        for (a, use_a), (b, use_b) in itertools.combinations(sorted(ad.phones.items()), 2):
            if use_a.last_day < use_b.first_day or use_b.last_day < use_a.first_day:
                union.union(("phone", a), ("phone", b))
    return sorted((sorted(members) for members in union.to_sets()), key=lambda m: m[0])


def ad_groups(
    ad_ids: Iterable[int],
    ads: Mapping[int, AdRecord],
    photo_clusters: Mapping[int, Iterable[int]],
    ignore: set[int],
) -> list[list[int]]:
    """Ads grouped by what shows they are one woman's.

    1. Ads with a common (not ignored) photo are one group.
    2. Groups whose ads use one nickname on one site are joined when those ads were online
       one after the other (not together for :data:`SAME_SITE_DAYS` days or more: two women of
       one network may use one name on one site at the same time) and the ages fit.
    3. An ad without a usable photo joins the one group that uses its nickname on its site;
       such ads of a nickname no group uses form a group of their own. With two or more groups
       to choose from it stays out.

    Ads with neither a usable photo nor a nickname are left out: they say nothing about whose
    they are.
    """
    union: UnionFind = UnionFind()
    first_with: dict[int, int] = {}
    named: dict[tuple[str, str], list[int]] = defaultdict(list)
    bare: list[int] = []
    for ad_id in ad_ids:
        ad = ads[ad_id]
        clusters = [c for c in photo_clusters.get(ad_id, ()) if c not in ignore]
        if ad.nickname:
            named[(ad.site, ad.nickname)].append(ad_id)
        if not clusters:
            bare.append(ad_id)
            continue
        _ = union[ad_id]  # looking an ad up makes it its own group
        for cluster in clusters:
            union.union(first_with.setdefault(cluster, ad_id), ad_id)
    photographed = set(union.parents)
    for members in named.values():
        _join_by_name(union, [a for a in members if a in photographed], ads)
    for ad_id in bare:
        ad = ads[ad_id]
        if not ad.nickname:
            continue
        same_name = named[(ad.site, ad.nickname)]
        roots = {union[a] for a in same_name if a in photographed}
        if len(roots) == 1:
            union.union(roots.pop(), ad_id)
        elif not roots:
            union.union(same_name[0], ad_id)
    return sorted((sorted(g) for g in union.to_sets()), key=lambda g: g[0])


def _join_by_name(union: UnionFind, members: list[int], ads: Mapping[int, AdRecord]) -> None:
    """Join the groups of ``members`` (ads with one name on one site) that fit one woman."""
    by_group: dict[int, list[int]] = defaultdict(list)
    for ad_id in members:
        by_group[union[ad_id]].append(ad_id)
    groups = sorted(by_group.values(), key=lambda g: g[0])
    for left, right in itertools.combinations(groups, 2):
        if union[left[0]] == union[right[0]]:
            continue
        days_left = {d for a in left for d in ads[a].days}
        days_right = {d for a in right for d in ads[a].days}
        ages_left = {ads[a].age for a in left if ads[a].age is not None}
        ages_right = {ads[a].age for a in right if ads[a].age is not None}
        ages_fit = (
            not ages_left
            or not ages_right
            or any(_ages_fit(x, y) for x in ages_left for y in ages_right)
        )
        if ages_fit and len(days_left & days_right) < SAME_SITE_DAYS:
            union.union(left[0], right[0])


def _ages_fit(a: int | None, b: int | None) -> bool:
    return a is None or b is None or abs(a - b) <= AGE_TOLERANCE


def classify(
    ad_ids: list[int],
    ads: Mapping[int, AdRecord],
    photo_clusters: Mapping[int, Iterable[int]],
    ignore: set[int],
) -> KeyVerdict:
    """Is the key (or lineage) on these ads personal or shared? See the module docstring."""
    groups = ad_groups(ad_ids, ads, photo_clusters, ignore)
    for left, right in itertools.combinations(groups, 2):
        reason = _conflict([ads[i] for i in left], [ads[i] for i in right])
        if reason:
            return KeyVerdict(SHARED, reason, len(groups))
    return KeyVerdict(PERSONAL, f"{len(groups)} group(s) of ads that fit one woman", len(groups))


def classify_keys(
    lineage_list: Iterable[list[Key]],
    keys: Mapping[Key, list[int]],
    ads: Mapping[int, AdRecord],
    photo_clusters: Mapping[int, Iterable[int]],
    ignore: set[int],
) -> dict[Key, KeyVerdict]:
    """The verdict of every key of ``lineage_list`` (see :func:`lineages`), per lineage."""
    verdicts: dict[Key, KeyVerdict] = {}
    for lineage in lineage_list:
        ad_ids = sorted({a for key in lineage for a in keys[key]})
        verdict = classify(ad_ids, ads, photo_clusters, ignore)
        for key in lineage:
            verdicts[key] = verdict
    return verdicts


def _conflict(left: list[AdRecord], right: list[AdRecord]) -> str:
    ages_left = {a.age for a in left if a.age is not None}
    ages_right = {a.age for a in right if a.age is not None}
    if ages_left and ages_right:
        gap = min(abs(x - y) for x in ages_left for y in ages_right)
        if gap > AGE_TOLERANCE:
            return f"stated ages {min(ages_left)} and {min(ages_right)}"
    if same_site_overlap(site_nickname_days(left), site_nickname_days(right)) >= SAME_SITE_DAYS:
        return "two nicknames on one site at the same time"
    sightings_left = [s for a in left for s in a.sightings]
    sightings_right = [s for a in right for s in a.sightings]
    if extra_contradictions(sightings_left, sightings_right) > CONTRADICTION_TOLERANCE:
        return "in two places on the same days"
    return ""


def copies(
    ad_ids: Iterable[int],
    ads: Mapping[int, AdRecord],
    photo_clusters: Mapping[int, Iterable[int]],
    ignore: set[int],
) -> list[tuple[int, int]]:
    """Pairs of ads posted as copies of one ad: same site and nickname, posted within
    :data:`COPY_DAYS`, with a photo in common and stated ages that fit.

    Used within one number: under a shared number, such a pair is one woman's ad posted twice
    (sometimes once under a nearby city she is not in), not two women.
    """
    by_name: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for ad_id in ad_ids:
        ad = ads[ad_id]
        if ad.nickname:
            posted = ad.posted_day if ad.posted_day is not None else ad.first_day
            by_name[(ad.site, ad.nickname)].append((posted, ad_id))
    pairs = []
    for posted_ads in by_name.values():
        posted_ads.sort()
        for (day_a, a), (day_b, b) in itertools.combinations(posted_ads, 2):
            if day_b - day_a > COPY_DAYS:
                continue
            photos_a = set(photo_clusters.get(a, ())) - ignore
            if not photos_a.intersection(photo_clusters.get(b, ())):
                continue
            age_a, age_b = ads[a].age, ads[b].age
            if age_a is None or age_b is None or abs(age_a - age_b) <= AGE_TOLERANCE:
                pairs.append((a, b))
    return pairs


def twins(ads: Mapping[int, AdRecord], lineage_of: Mapping[str, int]) -> set[int]:
    """Ads posted as two copies at once: same site, nickname and number lineage, posted within
    :data:`COPY_DAYS` of each other. One of the two may name a place she is not in."""
    posted: dict[tuple[str, str, int], list[tuple[int, int]]] = defaultdict(list)
    for ad in ads.values():
        if not ad.nickname:
            continue
        day = ad.posted_day if ad.posted_day is not None else ad.first_day
        for lineage in {lineage_of[p] for p in ad.phones if p in lineage_of}:
            posted[(ad.site, ad.nickname, lineage)].append((day, ad.id))
    found: set[int] = set()
    for days in posted.values():
        days.sort()
        for (day_a, a), (day_b, b) in itertools.pairwise(days):
            if day_b - day_a <= COPY_DAYS:
                found.update((a, b))
    return found


SiteNicknameDays = dict[str, dict[str, set[int]]]


def site_nickname_days(ads: Iterable[AdRecord]) -> SiteNicknameDays:
    """site -> nickname -> days seen, for ads that show a nickname."""
    days: SiteNicknameDays = defaultdict(lambda: defaultdict(set))
    for ad in ads:
        if ad.nickname:
            days[ad.site][ad.nickname].update(ad.days)
    return days


def same_site_overlap(left: SiteNicknameDays, right: SiteNicknameDays) -> int:
    """Most days an ad of ``left`` and one of ``right`` with another nickname shared a site."""
    best = 0
    for site, by_name in left.items():
        other = right.get(site)
        if not other:
            continue
        for name, days in by_name.items():
            for other_name, other_days in other.items():
                if name != other_name:
                    best = max(best, len(days & other_days))
    return best
