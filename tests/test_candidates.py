"""Candidate evidence: the photo matcher gives what comparing every pair of photos gives."""

from __future__ import annotations

import random
from typing import Any

from networkx.utils import UnionFind

from matching.candidates import Match, PhotoMatcher, photo_evidence
from matching.loader import PhotoRecord
from pipelines.photos import Fingerprint
from tests.test_photos import near_boundary, random_print


def photo_set(seed: int) -> list[Fingerprint]:
    """Random prints, prints at or one bit past a threshold of one of them (chains of copies
    that are near their neighbour but not the first), and the same files again."""
    rng = random.Random(seed)
    prints = [random_print(rng) for _ in range(60)]
    for _ in range(240):
        prints.append(near_boundary(rng.choice(prints), rng, rng.choice((-2, 0, 1))))
    prints += [rng.choice(prints) for _ in range(80)]  # identical copies
    rng.shuffle(prints)
    return prints


def records(prints: list[Fingerprint]) -> list[PhotoRecord]:
    return [
        PhotoRecord(10 + 3 * i, 1000 + i // 2, f"https://x.test/{i}.jpg", fp.as_json())
        for i, fp in enumerate(prints)
    ]


def compare_all(
    photos: list[PhotoRecord], new: set[int], known: list[tuple[int, int]]
) -> tuple[list[tuple[int, int, float, dict[str, Any]]], dict[int, int]]:
    """Each new photo in id order compared with every earlier photo, nearest first."""
    prints = {p.id: Fingerprint.from_json(p.fingerprint) for p in photos}
    clusters: UnionFind = UnionFind()
    for photo_id in prints:
        _ = clusters[photo_id]
    for a, b in known:
        clusters.union(a, b)
    matches = []
    for photo_id in sorted(prints):
        if photo_id not in new:
            continue
        found = []
        for other in sorted(prints):
            if other < photo_id:
                ratio, detail = photo_evidence(prints[other], prints[photo_id])
                if detail["rule"] is not None:
                    found.append((ratio, other, detail))
        for ratio, other, detail in sorted(found, key=lambda t: (t[0], t[1])):
            if clusters[other] != clusters[photo_id]:
                clusters.union(other, photo_id)
                matches.append((other, photo_id, ratio, detail))
    return matches, {photo_id: clusters[photo_id] for photo_id in prints}


def as_tuples(matches: list[Match]) -> list[tuple[int, int, float, dict[str, Any]]]:
    return [(m.a, m.b, m.score, m.detail) for m in matches]


def same_partition(a: dict[int, int], b: dict[int, int]) -> bool:
    def blocks(cluster_of: dict[int, int]) -> set[frozenset[int]]:
        found: dict[int, set[int]] = {}
        for photo_id, root in cluster_of.items():
            found.setdefault(root, set()).add(photo_id)
        return {frozenset(members) for members in found.values()}

    return blocks(a) == blocks(b)


def test_full_search_matches_comparing_every_pair() -> None:
    photos = records(photo_set(1))
    matcher = PhotoMatcher(photos)
    matches = matcher.index_all({p.id for p in photos})
    expected, clusters = compare_all(photos, {p.id for p in photos}, [])
    assert as_tuples(matches) == expected
    assert same_partition(matcher.cluster_of(), clusters)
    # Chains: some clusters hold photos that are not all near one another.
    sizes: dict[int, int] = {}
    for root in clusters.values():
        sizes[root] = sizes.get(root, 0) + 1
    assert max(sizes.values()) >= 4 and len(sizes) > 30


def test_incremental_search_matches_comparing_every_pair() -> None:
    photos = records(photo_set(2))
    ids = [p.id for p in photos]
    earlier = set(ids[: len(ids) * 2 // 3])
    first = PhotoMatcher([p for p in photos if p.id in earlier])
    known = [(m.a, m.b) for m in first.index_all(earlier)]
    # The new photos are the later ones and a few earlier ones whose fingerprints changed.
    new = set(ids) - earlier | set(random.Random(3).sample(sorted(earlier), 10))
    matcher = PhotoMatcher(photos, known)
    matches = matcher.index_all(new)
    expected, clusters = compare_all(photos, new, known)
    assert as_tuples(matches) == expected
    assert same_partition(matcher.cluster_of(), clusters)
    everything = PhotoMatcher(photos)
    everything.index_all(set(ids))
    assert same_partition(matcher.cluster_of(), everything.cluster_of())


def test_unreadable_fingerprints_are_counted_and_skipped() -> None:
    photos = records(photo_set(4)[:40])
    matcher = PhotoMatcher([*photos, PhotoRecord(999, 1, "https://x.test/b.jpg", {"v": 99})])
    assert matcher.unreadable == 1 and 999 not in matcher.fingerprints
    matches = matcher.index_all({p.id for p in photos} | {999})
    assert as_tuples(matches) == compare_all(photos, {p.id for p in photos}, [])[0]
