"""Why a person's ads were joined: her ads, and every link between them with its evidence.

``explain_person(engine, person_id)`` gathers, as a JSON-serialisable dict:

* the person (network, carousel figures) and her ads (site, id, nickname, age, place, dates,
  numbers);
* ``links``: every stored link between two of her ads: kind, level, value, strength, and the
  evidence itself: the text around the shared phone number in each ad, the two photo URLs, the
  rule that matched them and their distances, the text similarity, an analyst's reason;
* ``network_links``: links from her ads to ads of other persons (why she is in her network,
  or evidence the linker refused to use for joining);
* analysts' overrides on her ads, her person events, her stays and moves.

``render_explanation(dict)`` turns it into plain text for ``lovitura explain --person ID``.
The output shows phone numbers and ad text: it is for analysts, never for logs. With a
``phone_label`` (a pseudonym function) every number in a snippet shows as its label instead.

A link's stored field and offsets are only a hint: the ad's texts change after the link is made
(a new version moves the number, the phone field is emptied), so the number is looked up anew in
the ad's own current title, text and phone field and in its stored versions, and the match at
the stored field and offsets is preferred when it is still there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import phonenumbers
from sqlalchemy import Connection, Engine, Table, or_, select

from lovitura_crawl.db import models
from pipelines.phones import PhoneMatch, find_phones

ADS: Table = models.Ad.__table__  # type: ignore[assignment]
VERSIONS: Table = models.AdVersion.__table__  # type: ignore[assignment]
PHONES: Table = models.AdPhone.__table__  # type: ignore[assignment]
LINKS: Table = models.Link.__table__  # type: ignore[assignment]
OVERRIDES: Table = models.LinkOverride.__table__  # type: ignore[assignment]
PERSONS: Table = models.Person.__table__  # type: ignore[assignment]
EVENTS: Table = models.PersonEvent.__table__  # type: ignore[assignment]
STAYS: Table = models.TrailStay.__table__  # type: ignore[assignment]
MOVES: Table = models.TrailMove.__table__  # type: ignore[assignment]

SNIPPET_CONTEXT = 30  # characters shown either side of a phone number
MAX_NETWORK_LINKS = 200
MAX_VERSIONS = 20  # newest versions of an ad searched for a number its current text lacks

PhoneLabel = Callable[[str], str]  # E.164 number -> what to show for it (a pseudonym)
Source = tuple[str, str]  # (field, text) of an ad: "title", "text" or "phone_text"


class UnknownPersonError(LookupError):
    """No person has the asked id."""


def explain_person(
    engine: Engine, person_id: int, phone_label: PhoneLabel | None = None
) -> dict[str, Any]:
    """Everything that explains person ``person_id`` (see the module docstring).

    With ``phone_label`` every phone number in the evidence snippets is shown as its label.
    """
    with engine.connect() as conn:
        person = conn.execute(select(PERSONS).where(PERSONS.c.id == person_id)).first()
        if person is None:
            raise UnknownPersonError(
                f"no person with id {person_id}; `lovitura link` builds persons and "
                "`lovitura report` lists them"
            )
        ads = _ads(conn, person_id)
        ad_ids = [ad["id"] for ad in ads]
        links = _links(conn, ad_ids)
        inside = set(ad_ids)
        phone_ads = {
            link[side] for link in links for side in ("ad_a", "ad_b") if link["kind"] == "phone"
        }
        texts = _Texts(_sources(conn, sorted(phone_ads)), phone_label)
        return {
            "person": _plain(dict(person._mapping)),
            "ads": ads,
            "links": [
                _explained(link, texts)
                for link in links
                if link["ad_b"] in inside and link["ad_a"] in inside
            ],
            "network_links": _outside(conn, links, inside, texts),
            "overrides": _overrides(conn, ad_ids),
            "events": [
                _plain(dict(row._mapping))
                for row in conn.execute(
                    select(EVENTS)
                    .where(
                        or_(EVENTS.c.person_id == person_id, EVENTS.c.other_person_id == person_id)
                    )
                    .order_by(EVENTS.c.id)
                )
            ],
            "stays": [
                _plain(dict(row._mapping))
                for row in conn.execute(
                    select(STAYS).where(STAYS.c.person_id == person_id).order_by(STAYS.c.arrived_at)
                )
            ],
            "moves": [
                _plain(dict(row._mapping))
                for row in conn.execute(
                    select(MOVES).where(MOVES.c.person_id == person_id).order_by(MOVES.c.arrived_at)
                )
            ],
        }


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with dates and times as ISO strings."""
    return {k: v.isoformat() if isinstance(v, date | datetime) else v for k, v in row.items()}


def _ads(conn: Connection, person_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(
            ADS.c.id,
            ADS.c.site,
            ADS.c.site_ad_id,
            ADS.c.url,
            ADS.c.nickname,
            ADS.c.age,
            ADS.c.place_text,
            ADS.c.municipality_code,
            ADS.c.country,
            ADS.c.first_seen_at,
            ADS.c.last_seen_at,
        )
        .where(ADS.c.person_id == person_id)
        .order_by(ADS.c.first_seen_at, ADS.c.id)
    )
    ads = [_plain(dict(row._mapping)) for row in rows]
    phones: dict[int, list[str]] = {}
    ids = [ad["id"] for ad in ads]
    for start in range(0, len(ids), 500):
        for ad_id, phone in conn.execute(
            select(PHONES.c.ad_id, PHONES.c.phone)
            .where(PHONES.c.ad_id.in_(ids[start : start + 500]))
            .order_by(PHONES.c.phone)
        ):
            phones.setdefault(ad_id, []).append(phone)
    for ad in ads:
        ad["phones"] = phones.get(ad["id"], [])
    return ads


def _sources(conn: Connection, ad_ids: Sequence[int]) -> dict[int, list[Source]]:
    """The texts of each ad a number may be in: its current title and text, then the title,
    text and phone field of its :data:`MAX_VERSIONS` newest versions, newest first."""
    sources: dict[int, list[Source]] = {}
    for start in range(0, len(ad_ids), 500):
        chunk = list(ad_ids[start : start + 500])
        for ad_id, title, text in conn.execute(
            select(ADS.c.id, ADS.c.title, ADS.c.text).where(ADS.c.id.in_(chunk))
        ):
            sources[ad_id] = [("title", title or ""), ("text", text or "")]
        versions: dict[int, int] = {}
        for ad_id, title, text, phone_text in conn.execute(
            select(VERSIONS.c.ad_id, VERSIONS.c.title, VERSIONS.c.text, VERSIONS.c.phone_text)
            .where(VERSIONS.c.ad_id.in_(chunk))
            .order_by(VERSIONS.c.valid_from.desc())
        ):
            versions[ad_id] = versions.get(ad_id, 0) + 1
            if ad_id not in sources or versions[ad_id] > MAX_VERSIONS:
                continue
            for source in (("phone_text", phone_text), ("title", title), ("text", text)):
                if source[1] and source not in sources[ad_id]:
                    sources[ad_id].append((source[0], source[1]))
    return sources


def _region(e164: str) -> str:
    """The country a number written without its country code in an ad would belong to."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164)) or "NL"
    except phonenumbers.NumberParseException:
        return "NL"


class _Texts:
    """Finds a shared number in an ad's texts and shows it in its context."""

    def __init__(self, sources: Mapping[int, list[Source]], phone_label: PhoneLabel | None):
        self.sources = sources
        self.phone_label = phone_label
        self._found: dict[tuple[str, str], list[PhoneMatch]] = {}

    def phones_in(self, text: str, region: str) -> list[PhoneMatch]:
        key = (text, region)
        if key not in self._found:
            self._found[key] = find_phones(text, region)
        return self._found[key]

    def phone_snippet(
        self, ad_id: int, number: str, field: str | None, start: Any, end: Any
    ) -> tuple[str, str | None]:
        """(snippet, field) of ``number`` in ad ``ad_id``; ("", field) when it is not found.

        The match at the stored ``field``/``start``/``end`` wins, then any match in the stored
        field, then the first match in the ad's other texts (see :func:`_sources`).
        """
        region = _region(number)
        best: tuple[int, str, str, PhoneMatch] | None = None
        for name, text in self.sources.get(ad_id, []):
            for match in self.phones_in(text, region):
                if match.e164 != number:
                    continue
                rank = 0 if name == field and (match.start, match.end) == (start, end) else 1
                rank += 0 if name == field else 1
                if best is None or rank < best[0]:
                    best = (rank, name, text, match)
        if best is None:
            return "", field
        _, name, text, match = best
        return self.snippet(text, match, region), name

    def snippet(self, text: str, match: PhoneMatch, region: str) -> str:
        """The text around ``match``, the number between [[ and ]]; with a phone label, every
        number in the shown text is replaced by its label."""
        left = max(0, match.start - SNIPPET_CONTEXT)
        right = min(len(text), match.end + SNIPPET_CONTEXT)
        others = [
            m
            for m in self.phones_in(text, region)
            if m is not match and m.start < right and left < m.end
        ]
        for other in others:  # never cut a number in two
            left, right = min(left, other.start), max(right, other.end)
        parts, at = [], left
        for m in sorted([match, *others], key=lambda m: m.start):
            if m.start < at:
                continue  # overlaps the one before (a number inside a link)
            shown = self.phone_label(m.e164) if self.phone_label else text[m.start : m.end]
            parts += [text[at : m.start], f"[[{shown}]]" if m is match else shown]
            at = m.end
        parts.append(text[at:right])
        before = "…" if left else ""
        after = "…" if right < len(text) else ""
        return " ".join(f"{before}{''.join(parts)}{after}".split())


def _links(conn: Connection, ad_ids: Sequence[int]) -> list[dict[str, Any]]:
    links: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ad_ids), 500):
        chunk = list(ad_ids[start : start + 500])
        for row in conn.execute(
            select(LINKS).where(or_(LINKS.c.ad_a.in_(chunk), LINKS.c.ad_b.in_(chunk)))
        ):
            links[row.id] = _plain(dict(row._mapping))
    return [links[i] for i in sorted(links)]


def _explained(link: dict[str, Any], texts: _Texts) -> dict[str, Any]:
    detail = link.get("detail") or {}
    evidence: dict[str, Any] = {}
    if link["kind"] == "phone":
        for side in ("a", "b"):
            evidence[f"snippet_{side}"], evidence[f"field_{side}"] = texts.phone_snippet(
                link[f"ad_{side}"],
                link["value"],
                detail.get(f"field_{side}"),
                detail.get(f"start_{side}"),
                detail.get(f"end_{side}"),
            )
    elif link["kind"] == "photo":
        evidence = {
            "url_a": detail.get("url_a"),
            "url_b": detail.get("url_b"),
            "rule": detail.get("rule"),
            "pdq_distance": detail.get("pdq"),
            "window_distance": detail.get("window"),
            "strip_distance": detail.get("strip"),
        }
    elif link["kind"] == "text":
        evidence = {"similarity": detail.get("similarity")}
    elif link["kind"] == "forced":
        evidence = {"reason": detail.get("reason")}
    return {
        "ad_a": link["ad_a"],
        "ad_b": link["ad_b"],
        "kind": link["kind"],
        "level": link["level"],
        "value": link["value"],
        "strength": link["strength"],
        "evidence": evidence,
    }


def _outside(
    conn: Connection,
    links: Sequence[dict[str, Any]],
    inside: set[int],
    texts: _Texts,
) -> list[dict[str, Any]]:
    crossing = [k for k in links if (k["ad_a"] in inside) != (k["ad_b"] in inside)]
    others = sorted({k["ad_b"] if k["ad_a"] in inside else k["ad_a"] for k in crossing})
    person_of: dict[int, int | None] = {}
    for start in range(0, len(others), 500):
        for ad_id, person in conn.execute(
            select(ADS.c.id, ADS.c.person_id).where(ADS.c.id.in_(others[start : start + 500]))
        ):
            person_of[ad_id] = person
    result = []
    for link in crossing[:MAX_NETWORK_LINKS]:
        other = link["ad_b"] if link["ad_a"] in inside else link["ad_a"]
        explained = _explained(link, texts)
        explained["other_person_id"] = person_of.get(other)
        result.append(explained)
    return result


def _overrides(conn: Connection, ad_ids: Sequence[int]) -> list[dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ad_ids), 500):
        chunk = list(ad_ids[start : start + 500])
        for row in conn.execute(
            select(OVERRIDES).where(or_(OVERRIDES.c.ad_a.in_(chunk), OVERRIDES.c.ad_b.in_(chunk)))
        ):
            found[row.id] = _plain(dict(row._mapping))
    return [found[i] for i in sorted(found)]


# --- text ------------------------------------------------------------------------------------


def render_explanation(explanation: Mapping[str, Any]) -> str:
    """Plain text of :func:`explain_person`'s dict."""
    person = explanation["person"]
    lines = [
        f"Person {person['id']}"
        + (f" (network {person['network_id']})" if person.get("network_id") else "")
        + f": {person.get('n_ads', 0)} ads, seen {person.get('first_seen_at') or '?'} to "
        f"{person.get('last_seen_at') or '?'}, {person.get('n_municipalities', 0)} places, "
        f"median stay {person.get('median_stay_days') or '-'} days, "
        f"{person.get('border_crossings', 0)} border crossings",
        "",
        "Ads:",
    ]
    for ad in explanation["ads"]:
        place = ad.get("municipality_code") or ad.get("country") or "?"
        lines.append(
            f"  #{ad['id']} {ad['site']} {ad['site_ad_id']} {ad.get('nickname') or ''}"
            f" age {ad.get('age') or '?'}, {place} ({ad.get('place_text') or ''}),"
            f" {str(ad['first_seen_at'])[:10]}..{str(ad['last_seen_at'])[:10]},"
            f" phones {' '.join(ad['phones']) or '-'}"
        )
    lines += ["", "Links between her ads:"]
    lines += [_link_line(link) for link in explanation["links"]] or ["  (none)"]
    if explanation["network_links"]:
        lines += ["", "Links to other persons' ads:"]
        lines += [
            _link_line(link) + f"  -> person {link.get('other_person_id')}"
            for link in explanation["network_links"]
        ]
    if explanation["overrides"]:
        lines += ["", "Analysts' overrides:"]
        lines += [
            f"  {o['action']} #{o['ad_a']} #{o['ad_b']} by {o['created_by']}: {o['reason']}"
            for o in explanation["overrides"]
        ]
    if explanation["stays"]:
        lines += ["", "Stays:"]
        lines += [
            f"  {s['municipality_code'] or s['country']} {s.get('place_name') or ''}"
            f" {s['arrived_at']}..{s['left_at']} ({s['n_ads']} ads: {s['sites']})"
            for s in explanation["stays"]
        ]
    if explanation["events"]:
        lines += ["", "Events:"]
        lines += [
            f"  {str(e['at'])[:19]} {e['kind']} person {e['person_id']}"
            + (f" / {e['other_person_id']}" if e.get("other_person_id") else "")
            + f" ({e['n_ads']} ads)"
            for e in explanation["events"]
        ]
    return "\n".join(lines)


def _link_line(link: Mapping[str, Any]) -> str:
    evidence = link.get("evidence") or {}
    head = (
        f"  #{link['ad_a']} ~ #{link['ad_b']} {link['kind']}/{link['level']}"
        f" {link['strength']:.2f} {link['value']}"
    )
    if link["kind"] == "phone":
        return (
            f"{head}\n      a ({evidence.get('field_a')}): {evidence.get('snippet_a')}"
            f"\n      b ({evidence.get('field_b')}): {evidence.get('snippet_b')}"
        )
    if link["kind"] == "photo":
        return (
            f"{head}\n      {evidence.get('url_a')} ~ {evidence.get('url_b')}"
            f" ({evidence.get('rule')}: PDQ {evidence.get('pdq_distance')} bits,"
            f" window {evidence.get('window_distance')}, strip {evidence.get('strip_distance')})"
        )
    if link["kind"] == "text":
        return f"{head} (similarity {evidence.get('similarity')})"
    if link["kind"] == "forced":
        return f"{head}: {evidence.get('reason')}"
    return head
