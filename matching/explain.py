"""Why a person's ads were joined: her ads, and every link between them with its evidence.

``explain_person(engine, person_id)`` gathers, as a JSON-serialisable dict:

* the person (network, carousel figures) and her ads (site, id, nickname, age, place, dates,
  numbers);
* ``links``: every stored link between two of her ads: kind, level, value, strength, and the
  evidence itself: the text around the phone number in each ad (from the stored offsets), the
  two photo URLs, the rule that matched them and their distances, the text similarity, an
  analyst's reason;
* ``network_links``: links from her ads to ads of other persons (why she is in her network,
  or evidence the linker refused to use for joining);
* analysts' overrides on her ads, her person events, her stays and moves.

``render_explanation(dict)`` turns it into plain text for ``lovitura explain --person ID``.
The output shows phone numbers and ad text: it is for analysts, never for logs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, or_, select

from lovitura_crawl.db import models

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


class UnknownPersonError(LookupError):
    """No person has the asked id."""


def explain_person(engine: Engine, person_id: int) -> dict[str, Any]:
    """Everything that explains person ``person_id`` (see the module docstring)."""
    with engine.connect() as conn:
        person = conn.execute(select(PERSONS).where(PERSONS.c.id == person_id)).first()
        if person is None:
            raise UnknownPersonError(
                f"no person with id {person_id}; `lovitura link` builds persons and "
                "`lovitura report` lists them"
            )
        ads = _ads(conn, person_id)
        ad_ids = [ad["id"] for ad in ads]
        texts = _texts(conn, ad_ids)
        links = _links(conn, ad_ids)
        inside = set(ad_ids)
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


def _texts(conn: Connection, ad_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """Title, text and (from the newest version) phone field of each ad."""
    texts: dict[int, dict[str, str]] = {}
    for start in range(0, len(ad_ids), 500):
        chunk = list(ad_ids[start : start + 500])
        for ad_id, title, text in conn.execute(
            select(ADS.c.id, ADS.c.title, ADS.c.text).where(ADS.c.id.in_(chunk))
        ):
            texts[ad_id] = {"title": title or "", "text": text or "", "phone_text": ""}
        for ad_id, phone_text in conn.execute(
            select(VERSIONS.c.ad_id, VERSIONS.c.phone_text)
            .where(VERSIONS.c.ad_id.in_(chunk))
            .order_by(VERSIONS.c.valid_from)
        ):
            if phone_text and ad_id in texts:
                texts[ad_id]["phone_text"] = phone_text
    return texts


def _links(conn: Connection, ad_ids: Sequence[int]) -> list[dict[str, Any]]:
    links: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ad_ids), 500):
        chunk = list(ad_ids[start : start + 500])
        for row in conn.execute(
            select(LINKS).where(or_(LINKS.c.ad_a.in_(chunk), LINKS.c.ad_b.in_(chunk)))
        ):
            links[row.id] = _plain(dict(row._mapping))
    return [links[i] for i in sorted(links)]


def snippet(text: str, start: int | None, end: int | None) -> str:
    """The text around ``text[start:end]``, the span itself between [[ and ]]."""
    if start is None or end is None or not 0 <= start <= end <= len(text):
        return ""
    left = max(0, start - SNIPPET_CONTEXT)
    right = min(len(text), end + SNIPPET_CONTEXT)
    before = ("…" if left else "") + text[left:start]
    after = text[end:right] + ("…" if right < len(text) else "")
    return " ".join(f"{before}[[{text[start:end]}]]{after}".split())


def _explained(link: dict[str, Any], texts: Mapping[int, Mapping[str, str]]) -> dict[str, Any]:
    detail = link.get("detail") or {}
    evidence: dict[str, Any] = {}
    if link["kind"] == "phone":
        for side in ("a", "b"):
            field = detail.get(f"field_{side}") or "text"
            text = texts.get(link[f"ad_{side}"], {}).get(field, "")
            evidence[f"snippet_{side}"] = snippet(
                text, detail.get(f"start_{side}"), detail.get(f"end_{side}")
            )
            evidence[f"field_{side}"] = field
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
    texts: Mapping[int, Mapping[str, str]],
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
