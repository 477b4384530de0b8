"""Linking ads into persons and networks, with every piece of evidence stored in ``links``.

``link(engine)`` runs the matching stage:

1. *Evidence*, incrementally: only photos, texts and phone numbers added since the previous run
   are looked up (:mod:`matching.candidates`); earlier matches are read back from ``links``.
   ``full=True`` throws the stored links away and looks everything up again.
2. *Judgement*: which numbers, addresses and handles are personal and which are shared, which
   photos are ubiquitous (:mod:`matching.evidence`).
3. *Clustering* of all ads into persons (:mod:`matching.persons`) and of persons into networks
   (:mod:`matching.networks`). Clustering is recomputed from the evidence every run, so a join
   that later evidence contradicts is undone; it is linear in the evidence and takes seconds.
4. *Ids*: a person keeps the id of the previous person she overlaps most
   (:mod:`matching.identity`); merges and splits are recorded in ``person_events``.

Link levels: a personal number, address or handle is ``person`` evidence with strength 1; a
shared one is ``network`` evidence (0.5). A photo match is ``person`` evidence with strength
from 1 (identical) down to 0.5 (at the match threshold), or ``network`` evidence with strength 0.1
when the photo is ubiquitous. Text
near-duplicates are ``network`` evidence with their similarity as strength. Analysts' forced
links are ``forced``/``person`` with strength 1.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from matching.candidates import Match, PhotoMatcher, TextMatcher, exact_keys
from matching.evidence import (
    PERSONAL,
    SHARED,
    Key,
    KeyVerdict,
    classify_keys,
    copies,
    lineages,
    twins,
    ubiquitous_photos,
)
from matching.identity import IdAssignment, assign_ids
from matching.linkstore import (
    LinkRow,
    LinkWriter,
    Watermark,
    ad_texts,
    changed_ads,
    current_watermark,
    new_phone_uses,
    previous_watermark,
    stored_links,
    unlinked_ads,
)
from matching.loader import AdRecord, Override, load_ads, load_overrides, load_photos
from matching.networks import NetworkGroup, group_networks
from matching.persons import PersonClusterer
from matching.templates import LINK_SIMILARITY, TemplateMatch, template_matches

logger = logging.getLogger(__name__)

PERSONAL_STRENGTH = 1.0
MINHASH_PREFIX = "minhash:"  # value of near-duplicate text links (template links: "template:")
SHARED_STRENGTH = 0.5
UBIQUITOUS_STRENGTH = 0.1


@dataclass
class LinkResult:
    """What one run did; ``str()`` is the line ``lovitura link`` prints."""

    full: bool
    ads: int
    new_ads: int
    new_links: int
    persons: int
    networks: int
    created: int
    merged: int
    split: int
    shared_keys: int
    ubiquitous_photos: int
    refusals: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        mode = "full relink" if self.full else "incremental"
        return (
            f"{mode}: {self.ads} ads ({self.new_ads} new or changed), {self.new_links} new links; "
            f"{self.persons} persons ({self.created} new, {self.merged} merged, "
            f"{self.split} split), {self.networks} networks; {self.shared_keys} shared numbers "
            f"or handles, {self.ubiquitous_photos} ubiquitous photos; {self.seconds:.1f} s"
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class _Stopwatch:
    """Seconds spent in each stage of a run, for ``link_runs.stats``."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, stage: str) -> None:
        now = time.monotonic()
        self.laps[stage] = round(now - self._last, 2)
        self._last = now


@dataclass
class _Inputs:
    ads: dict[int, AdRecord]
    raw_texts: dict[int, str]
    overrides: list[Override]
    matcher: PhotoMatcher
    texts: TextMatcher
    new_photos: set[int]
    new_texts: set[int]
    new_memberships: set[tuple[str, str, int]] | None  # None: every membership is new
    stored: list[Any]  # stored links of kinds that may change level


@dataclass
class _Evidence:
    keys: dict[Key, list[int]]
    verdicts: dict[Key, KeyVerdict]
    photo_clusters: dict[int, set[int]]  # ad -> photo clusters
    tokens: dict[int, set[Hashable]]  # ad -> soft evidence for the person clustering
    copies: list[tuple[int, int]]  # ads posted twice under a shared number
    lineage_of: dict[str, int]  # phone -> index of its lineage
    ubiquitous: set[int]
    cluster_of_photo: dict[int, int]
    photo_matches: list[Match]
    text_matches: list[Match]


def link(engine: Engine, *, full: bool = False) -> LinkResult:
    """Link every ad into a person (and a network where there is network evidence)."""
    started = time.monotonic()
    now = datetime.now(UTC)
    clock = _Stopwatch()
    with engine.connect() as conn:
        previous = Watermark() if full else previous_watermark(conn)
        mark = current_watermark(conn)
        inputs = _load(conn, previous, full)
    clock.lap("load")
    evidence = _evidence(inputs, clock)
    clusterer = _cluster_persons(inputs, evidence)
    persons = clusterer.persons()
    clock.lap("persons")
    templates = template_matches(
        {
            index: [(inputs.raw_texts.get(a, ""), inputs.ads[a].nickname) for a in ads]
            for index, ads in enumerate(persons)
        }
    )
    networks = group_networks(
        {ad_id: index for index, ads in enumerate(persons) for ad_id in ads},
        _network_keys(evidence, inputs.texts),
        [(m.person_a, m.person_b, m.similarity) for m in templates],
    )
    clock.lap("networks")
    links = _new_links(inputs, evidence) + _template_links(persons, templates)
    relevel = _relevel(inputs.stored, evidence) if not full else []
    with engine.begin() as conn:
        writer = LinkWriter(conn, now)
        run_id = writer.start_run(full)
        if full:
            writer.delete_links()
        new_links = writer.insert_links(links)
        writer.relevel_links(relevel)
        ids = _write_clusters(writer, run_id, inputs.ads, persons, networks)
        result = LinkResult(
            full=full,
            ads=len(inputs.ads),
            new_ads=len(inputs.new_texts),
            new_links=new_links,
            persons=len(persons),
            networks=len(networks),
            created=sum(1 for e in ids.events if e.kind == "created"),
            merged=sum(1 for e in ids.events if e.kind == "merged"),
            split=sum(1 for e in ids.events if e.kind == "split"),
            shared_keys=sum(1 for v in evidence.verdicts.values() if v.verdict == SHARED),
            ubiquitous_photos=len(evidence.ubiquitous),
            refusals=dict(sorted(clusterer.refusals.items())),
        )
        clock.lap("write")
        result.stage_seconds = clock.laps
        result.seconds = round(time.monotonic() - started, 2)
        writer.finish_run(run_id, mark, result.as_dict())
    logger.info("link: %s", result)
    return result


def _cluster_persons(inputs: _Inputs, evidence: _Evidence) -> PersonClusterer:
    personal = {
        value
        for (kind, value), verdict in evidence.verdicts.items()
        if kind == "phone" and verdict.verdict == PERSONAL
    }
    clusterer = PersonClusterer(
        inputs.ads, evidence.tokens, personal, evidence.lineage_of, inputs.overrides
    )
    clusterer.join_keys(
        [ads for key, ads in evidence.keys.items() if evidence.verdicts[key].verdict != SHARED]
        + [list(pair) for pair in evidence.copies]
    )
    clusterer.join_soft()
    return clusterer


def _template_links(
    persons: Sequence[list[int]], templates: Iterable[TemplateMatch]
) -> list[LinkRow]:
    """Template evidence as links between the first ads of the two persons."""
    return [
        LinkRow.between(
            persons[m.person_a][0],
            persons[m.person_b][0],
            "text",
            "network",
            f"template:{m.language}",
            m.similarity,
            {"similarity": m.similarity, "scope": "persons", "language": m.language},
        )
        for m in templates
        if m.similarity >= LINK_SIMILARITY
    ]


# --- loading ---------------------------------------------------------------------------------


def _load(conn: Connection, previous: Watermark, full: bool) -> _Inputs:
    ads = load_ads(conn)
    photos = load_photos(conn)
    stored = [] if full else stored_links(conn, ("photo", "text", "phone", "email", "handle"))
    known_photos = [
        (row.detail["photo_a"], row.detail["photo_b"])
        for row in stored
        if row.kind == "photo" and row.detail and "photo_a" in row.detail
    ]
    known_texts = [
        (row.ad_a, row.ad_b)
        for row in stored
        if row.kind == "text" and row.value.startswith(MINHASH_PREFIX)
    ]
    if full:
        new_photos = {p.id for p in photos}
        new_texts = set(ads)
        memberships = None
    else:
        new_photos = {p.id for p in photos if _photo_is_new(p.id, previous)}
        new_texts = changed_ads(conn, previous) | unlinked_ads(conn)
        memberships = {("phone", phone, ad_id) for ad_id, phone in new_phone_uses(conn, previous)}
        for ad_id in new_texts:
            ad = ads.get(ad_id)
            if ad is not None:
                memberships.update(("email", e, ad_id) for e in ad.emails)
                memberships.update(("handle", h, ad_id) for h in ad.handles)
    raw_texts = ad_texts(conn)
    return _Inputs(
        ads=ads,
        raw_texts=raw_texts,
        overrides=load_overrides(conn),
        matcher=PhotoMatcher(photos, known_photos),
        texts=TextMatcher(raw_texts, known_texts),
        new_photos=new_photos,
        new_texts=new_texts,
        new_memberships=memberships,
        stored=stored,
    )


def _photo_is_new(photo_id: int, previous: Watermark) -> bool:
    if photo_id > previous.photos or photo_id in previous.pending_photos:
        return True
    return previous.recheck_photos_from is not None and photo_id >= previous.recheck_photos_from


# --- evidence --------------------------------------------------------------------------------


def _evidence(inputs: _Inputs, clock: _Stopwatch) -> _Evidence:
    photo_matches = inputs.matcher.index_all(inputs.new_photos)
    clock.lap("photos")
    text_matches = inputs.texts.index_all(inputs.new_texts)
    clock.lap("texts")
    cluster_of_photo = inputs.matcher.cluster_of()
    photo_clusters: dict[int, set[int]] = defaultdict(set)
    for photo_id, cluster in cluster_of_photo.items():
        photo_clusters[inputs.matcher.ad_of[photo_id]].add(cluster)
    ubiquitous = ubiquitous_photos(inputs.ads, photo_clusters)
    keys = exact_keys(inputs.ads.values())
    lineage_list = lineages(keys, inputs.ads)
    lineage_of = {
        value: number
        for number, lineage in enumerate(lineage_list)
        for kind, value in lineage
        if kind == "phone"
    }
    for ad_id in twins(inputs.ads, lineage_of):
        ad = inputs.ads[ad_id]
        ad.sightings = [replace(s, copy=True) for s in ad.sightings]
    verdicts = classify_keys(lineage_list, keys, inputs.ads, photo_clusters, ubiquitous)
    tokens: dict[int, set[Hashable]] = {
        ad_id: set[Hashable](clusters - ubiquitous) for ad_id, clusters in photo_clusters.items()
    }
    copy_pairs: list[tuple[int, int]] = []
    for number, lineage in enumerate(lineage_list):
        if verdicts[lineage[0]].verdict != SHARED:
            continue
        lineage_ads = sorted({a for key in lineage for a in keys[key]})
        copy_pairs.extend(copies(lineage_ads, inputs.ads, photo_clusters, ubiquitous))
        for ad_id in lineage_ads:
            ad = inputs.ads[ad_id]
            if ad.nickname:
                tokens.setdefault(ad_id, set()).add(("nickname", number, ad.site, ad.nickname))
    clock.lap("keys")
    return _Evidence(
        keys=keys,
        verdicts=verdicts,
        photo_clusters=dict(photo_clusters),
        tokens=tokens,
        copies=copy_pairs,
        lineage_of=lineage_of,
        ubiquitous=ubiquitous,
        cluster_of_photo=cluster_of_photo,
        photo_matches=photo_matches,
        text_matches=text_matches,
    )


def _network_keys(evidence: _Evidence, texts: TextMatcher) -> list[tuple[str, list[int]]]:
    shared = [
        (kind, ad_ids)
        for (kind, _value), ad_ids in evidence.keys.items()
        if evidence.verdicts[(kind, _value)].verdict == SHARED
    ]
    by_text: dict[int, list[int]] = defaultdict(list)
    for ad_id, cluster in texts.cluster_of().items():
        by_text[cluster].append(ad_id)
    shared.extend(("text", ad_ids) for ad_ids in by_text.values() if len(ad_ids) > 1)
    return shared


# --- links -----------------------------------------------------------------------------------


def _key_level(verdict: KeyVerdict) -> tuple[str, float]:
    if verdict.verdict == SHARED:
        return "network", SHARED_STRENGTH
    return "person", PERSONAL_STRENGTH


def _photo_level(evidence: _Evidence, photo_a: int) -> tuple[str, float | None]:
    """Level of a photo link, and the strength to use when the photo is ubiquitous."""
    if evidence.cluster_of_photo.get(photo_a) in evidence.ubiquitous:
        return "network", UBIQUITOUS_STRENGTH
    return "person", None


def _photo_strength(ratio: float) -> float:
    """1 for identical photos, 0.5 for a pair at the match threshold."""
    return 1.0 - 0.5 * min(1.0, max(0.0, ratio))


def _new_links(inputs: _Inputs, evidence: _Evidence) -> list[LinkRow]:
    links = _key_links(inputs, evidence)
    matcher = inputs.matcher
    for match in evidence.photo_matches:
        level, strength = _photo_level(evidence, match.a)
        links.append(
            LinkRow.between(
                matcher.ad_of[match.a],
                matcher.ad_of[match.b],
                "photo",
                level,
                matcher.url_of[match.a],
                _photo_strength(match.score) if strength is None else strength,
                {
                    "photo_a": match.a,
                    "photo_b": match.b,
                    "url_a": matcher.url_of[match.a],
                    "url_b": matcher.url_of[match.b],
                    **match.detail,
                },
            )
        )
    texts = inputs.texts
    for match in evidence.text_matches:
        links.append(
            LinkRow.between(
                match.a,
                match.b,
                "text",
                "network",
                f"{MINHASH_PREFIX}{texts.variant_of[match.a][:16]}",
                match.score,
                {"similarity": match.score},
            )
        )
    for override in inputs.overrides:
        if override.action == "force":
            links.append(
                LinkRow.between(
                    override.ad_a,
                    override.ad_b,
                    "forced",
                    "person",
                    "analyst",
                    1.0,
                    {"reason": override.reason},
                )
            )
    return [link for link in links if link.ad_a != link.ad_b]


def _key_links(inputs: _Inputs, evidence: _Evidence) -> list[LinkRow]:
    """Links along each key's ads in time order, for the members that are new."""
    wanted: dict[tuple[str, str], set[int]] = defaultdict(set)
    if inputs.new_memberships is None:
        for key, ad_ids in evidence.keys.items():
            wanted[key].update(ad_ids)
    else:
        for kind, value, ad_id in inputs.new_memberships:
            wanted[(kind, value)].add(ad_id)
    links: list[LinkRow] = []
    for key, members in wanted.items():
        ad_ids = evidence.keys.get(key, [])
        if len(ad_ids) < 2:
            continue
        level, strength = _key_level(evidence.verdicts[key])
        for index, ad_id in enumerate(ad_ids):
            if ad_id not in members:
                continue
            other = ad_ids[index - 1] if index > 0 else ad_ids[1]
            links.append(_key_link(inputs.ads, key, ad_id, other, level, strength))
    return links


def _key_link(
    ads: Mapping[int, AdRecord],
    key: tuple[str, str],
    a: int,
    b: int,
    level: str,
    strength: float,
) -> LinkRow:
    kind, value = key
    detail: dict[str, Any] = {}
    if kind == "phone":
        for suffix, ad_id in (("_a", a), ("_b", b)):
            use = ads[ad_id].phones[value]
            detail.update(
                {f"field{suffix}": use.field, f"start{suffix}": use.start, f"end{suffix}": use.end}
            )
    return LinkRow.between(a, b, kind, level, value, strength, detail)


def _relevel(stored: Iterable[Any], evidence: _Evidence) -> list[tuple[int, str, float]]:
    """Stored links whose level or strength changed with this run's judgement."""
    changes = []
    for row in stored:
        if row.kind in ("phone", "email", "handle"):
            verdict = evidence.verdicts.get((row.kind, row.value))
            if verdict is None:
                continue
            level, strength = _key_level(verdict)
        elif row.kind == "photo" and row.detail and "photo_a" in row.detail:
            level, ubiquitous_strength = _photo_level(evidence, row.detail["photo_a"])
            similarity = _photo_strength(float(row.detail.get("ratio", 0.0)))
            strength = similarity if ubiquitous_strength is None else ubiquitous_strength
        else:
            continue
        strength = round(strength, 4)
        if row.level != level or abs(row.strength - strength) > 1e-6:
            changes.append((row.id, level, strength))
    return changes


# --- persons and networks --------------------------------------------------------------------


def _write_clusters(
    writer: LinkWriter,
    run_id: int,
    ads: Mapping[int, AdRecord],
    persons: Sequence[list[int]],
    networks: Sequence[NetworkGroup],
) -> IdAssignment:
    network_ads = [[a for p in group.persons for a in persons[p]] for group in networks]
    network_ids = _ids(
        assign_ids(network_ads, {a: ad.network_id for a, ad in ads.items()}),
        writer.insert_networks,
    )
    network_of_person = {p: i for i, group in enumerate(networks) for p in group.persons}
    person_assignment = assign_ids(persons, {a: ad.person_id for a, ad in ads.items()})
    person_ids = _ids(person_assignment, writer.insert_persons)
    writer.update_networks(
        [
            {
                "network_id": network_ids[i],
                "n_persons": len(group.persons),
                "n_ads": len(network_ads[i]),
                "evidence": group.summary(),
            }
            for i, group in enumerate(networks)
        ]
    )
    person_rows = []
    ad_changes = []
    for index, ad_ids in enumerate(persons):
        network = network_of_person.get(index)
        network_id = network_ids[network] if network is not None else None
        person_rows.append(
            {
                "person_id": person_ids[index],
                "network_id": network_id,
                "n_ads": len(ad_ids),
                "first_seen_at": min(ads[a].first_seen_at for a in ad_ids),
                "last_seen_at": max(ads[a].last_seen_at for a in ad_ids),
            }
        )
        for ad_id in ad_ids:
            ad = ads[ad_id]
            if ad.person_id != person_ids[index] or ad.network_id != network_id:
                ad_changes.append((ad_id, person_ids[index], network_id))
    writer.update_persons(person_rows)
    writer.assign_ads(ad_changes)
    writer.retire_persons(person_assignment.retired)
    network_assignment_retired = sorted(
        {ad.network_id for ad in ads.values() if ad.network_id is not None} - set(network_ids)
    )
    writer.retire_networks(network_assignment_retired)
    writer.add_events(
        run_id,
        [
            {
                "kind": event.kind,
                "person_id": person_ids[event.cluster],
                "other_person_id": event.other,
                "n_ads": event.n_ads,
                "detail": None,
            }
            for event in person_assignment.events
        ],
    )
    return person_assignment


def _ids(assignment: IdAssignment, insert: Any) -> list[int]:
    """The final id of each cluster: the kept one, or a newly inserted row's."""
    missing = [i for i, kept in enumerate(assignment.ids) if kept is None]
    fresh = iter(insert(len(missing)))
    return [kept if kept is not None else next(fresh) for kept in assignment.ids]
