"""Grouping persons into networks: the people who share a booking number or a text template.

A network is a group of two or more persons joined by network evidence, in two steps:

1. *Shared identifiers* join persons outright: a shared phone number, e-mail address or handle
   (booking, agency or scam numbers; see :mod:`matching.evidence`), and near-duplicate ad texts
   of two persons.
2. *Templates*: groups are then merged by average linkage on the persons' template similarity
   (:mod:`matching.templates`): the two groups whose persons are most alike on average are
   merged, as long as that average is at least :data:`AVERAGE_SIMILARITY` (pairs without a
   computed similarity count as 0). A chance resemblance between one woman of one network and
   one of another is diluted by all the pairs that do not resemble each other, while the women
   of one network resemble each other throughout.

Ubiquitous photos (site placeholders, stock images) are not used: they join unrelated people.
A person without network evidence belongs to no network.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from networkx.utils import UnionFind

# Chosen on the demo world, seeds 1 to 4, full link (networks pairwise F1 at 0.25 / 0.26 / 0.27 /
# 0.28): seed 1 0.926 / 0.930 / 0.930 / 0.930, seed 2 0.960 / 0.956 / 0.956 / 0.947, seed 3
# 0.890 / 0.920 / 0.954 / 0.941, seed 4 0.980 / 0.980 / 0.978 / 0.976; then checked on seed 5,
# not used to choose: 0.949 at 0.25, 0.957 at 0.27. At 0.25, seed 3 joined three pairs of networks
# whose templates resemble each other's (precision 0.834). Person figures do not depend on it.
AVERAGE_SIMILARITY = 0.27


@dataclass
class NetworkGroup:
    """Persons (by their index in the person list) and what binds them, counted by kind."""

    persons: list[int]
    evidence: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """A short text for ``networks.evidence``: "phone x4, template x2"."""
        return ", ".join(f"{kind} x{count}" for kind, count in sorted(self.evidence.items()))


def group_networks(
    person_of_ad: Mapping[int, int],
    shared_keys: Iterable[tuple[str, list[int]]],
    similarities: Iterable[tuple[int, int, float]] = (),
    threshold: float = AVERAGE_SIMILARITY,
) -> list[NetworkGroup]:
    """Networks of two or more persons, ordered by their smallest person index.

    ``person_of_ad`` maps ad ids to person indexes; ``shared_keys`` gives (kind, ad ids) per
    shared key; ``similarities`` are (person, person, template similarity).
    """
    union: UnionFind = UnionFind()
    edges: list[tuple[int, int, str]] = []
    for kind, ad_ids in shared_keys:
        persons = sorted({person_of_ad[a] for a in ad_ids if a in person_of_ad})
        for other in persons[1:]:
            edges.append((persons[0], other, kind))
            union.union(persons[0], other)
    pairs = [(a, b, s) for a, b, s in similarities if a != b]
    for a, b, _s in pairs:
        _ = union[a], union[b]  # looking a person up makes her her own group
    merges = _average_linkage(union, pairs, threshold)
    edges.extend((a, b, "template") for a, b in merges)
    for a, b in merges:
        union.union(a, b)
    groups: dict[int, NetworkGroup] = {}
    for members in union.to_sets():
        if len(members) >= 2:
            group = NetworkGroup(sorted(members))
            groups[union[group.persons[0]]] = group
    for a, _b, kind in edges:
        found = groups.get(union[a])
        if found is not None:
            found.evidence[kind] += 1
    return sorted(groups.values(), key=lambda g: g.persons[0])


def _average_linkage(
    union: UnionFind, pairs: list[tuple[int, int, float]], threshold: float
) -> list[tuple[int, int]]:
    """Group merges (as a person of each group) by average linkage, best first."""
    members: dict[int, list[int]] = defaultdict(list)
    for person in list(union.parents):
        members[union[person]].append(person)
    root_of = {p: root for root, people in members.items() for p in people}
    size = {root: len(people) for root, people in members.items()}
    total: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for a, b, similarity in pairs:
        ra, rb = root_of[a], root_of[b]
        if ra != rb:
            total[ra][rb] += similarity
            total[rb][ra] += similarity
    heap = [
        (-value / (size[a] * size[b]), a, b)
        for a, others in total.items()
        for b, value in others.items()
        if a < b
    ]
    heapq.heapify(heap)
    alive = set(size)
    merges: list[tuple[int, int]] = []
    while heap:
        negative, a, b = heapq.heappop(heap)
        if -negative < threshold:
            break
        if a not in alive or b not in alive:
            continue
        current = total[a].get(b, 0.0) / (size[a] * size[b])
        if abs(current + negative) > 1e-12:
            continue  # a stale entry: the groups changed since it was pushed
        merges.append((members[a][0], members[b][0]))
        _absorb(a, b, members, size, total, alive, heap)
    return merges


def _absorb(
    a: int,
    b: int,
    members: dict[int, list[int]],
    size: dict[int, int],
    total: dict[int, dict[int, float]],
    alive: set[int],
    heap: list[tuple[float, int, int]],
) -> None:
    """Group ``b`` joins group ``a``; the sums of similarities to other groups are added up."""
    alive.discard(b)
    members[a].extend(members.pop(b))
    size[a] += size.pop(b)
    for other, value in total.pop(b).items():
        if other == a:
            continue
        total[other].pop(b, None)
        total[a][other] += value
        total[other][a] = total[a][other]
    total[a].pop(b, None)
    for other, value in total[a].items():
        if other in alive:
            low, high = min(a, other), max(a, other)
            heapq.heappush(heap, (-value / (size[a] * size[other]), low, high))
