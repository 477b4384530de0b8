"""Stable ids across link runs: a person keeps her id when ads are added, merged or split off.

Each new cluster of ads takes the id of the previous cluster it overlaps most (counted in ads),
largest overlaps first, each old id given out once. A cluster without a previous id to take
gets a new one. The changes are reported as events:

* ``created``: a new id for ads that had none;
* ``merged``: the ads of a retired id joined a cluster that kept another id;
* ``split``: ads left an id that lives on elsewhere, for another cluster (new or existing).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class IdEvent:
    kind: str  # "created", "merged" or "split"
    person_id: int | None  # the id that lives on (None: a cluster still waiting for its new id)
    other: int | None  # merged: the retired id; split: the id that lost ads (see below)
    n_ads: int
    cluster: int  # index of the cluster the event is about


@dataclass
class IdAssignment:
    ids: list[int | None]  # per cluster: the previous id it keeps, or None (needs a new id)
    retired: list[int]  # previous ids no cluster keeps
    events: list[IdEvent]


def assign_ids(
    clusters: Sequence[Sequence[int]], previous: Mapping[int, int | None]
) -> IdAssignment:
    """Give each cluster (a list of ad ids) the previous id of its largest overlap, if free."""
    overlaps = [Counter(p for a in ads if (p := previous.get(a)) is not None) for ads in clusters]
    ranked = sorted(
        (
            (count, old, index)
            for index, counts in enumerate(overlaps)
            for old, count in counts.items()
        ),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    ids: list[int | None] = [None] * len(clusters)
    taken: set[int] = set()
    for _count, old, index in ranked:
        if ids[index] is None and old not in taken:
            ids[index] = old
            taken.add(old)
    everything = {old for counts in overlaps for old in counts}
    retired = sorted(everything - taken)
    return IdAssignment(ids, retired, _events(clusters, overlaps, ids, set(retired)))


def _events(
    clusters: Sequence[Sequence[int]],
    overlaps: list[Counter[int]],
    ids: list[int | None],
    retired: set[int],
) -> list[IdEvent]:
    events: list[IdEvent] = []
    for index, counts in enumerate(overlaps):
        kept = ids[index]
        if not counts:
            events.append(IdEvent("created", None, None, len(clusters[index]), index))
            continue
        for old, count in sorted(counts.items()):
            if old == kept:
                continue
            if old in retired:
                events.append(IdEvent("merged", kept, old, count, index))
            else:
                # ``old`` lives on in another cluster: these ads split off from it.
                events.append(IdEvent("split", kept, old, count, index))
    return events
