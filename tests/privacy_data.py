"""Invented ads, persons and trails for the privacy tests (no real person anywhere)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine, Table, update
from sqlalchemy.engine import make_url

from lovitura_crawl.db import models
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.db.store import AdStore
from lovitura_crawl.privacy.roles import RoleNames, create_roles

ADS: Table = models.Ad.__table__  # type: ignore[assignment]
NETWORKS: Table = models.Network.__table__  # type: ignore[assignment]
PERSONS: Table = models.Person.__table__  # type: ignore[assignment]
STAYS: Table = models.TrailStay.__table__  # type: ignore[assignment]
LINKS: Table = models.Link.__table__  # type: ignore[assignment]
KEY = b"test-key-0123456789abcdef-0123456789abcdef"
OTHER_KEY = b"another-key-0123456789abcdef-0123456789ab"
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def item(ad_id: str, phone: str, text: str, day: int, month: int = 11) -> dict[str, Any]:
    national = "0" + phone[3:]
    return {
        "site": "roodlicht",
        "site_ad_id": ad_id,
        "url": f"http://127.0.0.1/advertentie/{ad_id}",
        "observed_at": f"2026-{month:02d}-{day:02d}T12:00:00+01:00",
        "title": f"Nieuw in Zwolle {ad_id}",
        "text": text,
        "place": "Zwolle",
        "phone_text": national,
        "phones": [{"e164": phone, "start": 0, "end": len(national), "field": "phone_text"}],
        "photos": [{"url": f"http://127.0.0.1/foto/{ad_id}.jpg", "fingerprint": {"phash": "ff00"}}],
        "location": {"code": "GM0193", "country": "NL", "method": "woonplaats"},
    }


def save(engine: Engine, items: list[dict[str, Any]]) -> dict[str, int]:
    """Store the items; return ad ids by site_ad_id."""
    AdStore(engine).save(items)
    with engine.connect() as conn:
        rows = conn.execute(ADS.select())
        return {row.site_ad_id: row.id for row in rows}


def person(
    engine: Engine, person_id: int, ad_ids: list[int], network_id: int | None = None
) -> None:
    """Make a person (and network) of these ads, with a one-stay trail."""
    with engine.begin() as conn:
        if network_id is not None:
            conn.execute(
                NETWORKS.insert().values(
                    id=network_id,
                    created_at=NOW,
                    updated_at=NOW,
                    n_persons=1,
                    n_ads=len(ad_ids),
                    evidence="shared booking phone",
                )
            )
        conn.execute(
            PERSONS.insert().values(
                id=person_id,
                network_id=network_id,
                created_at=NOW,
                updated_at=NOW,
                n_ads=len(ad_ids),
                n_municipalities=1,
                border_crossings=0,
            )
        )
        conn.execute(
            update(ADS)
            .where(ADS.c.id.in_(ad_ids))
            .values(person_id=person_id, network_id=network_id)
        )
        conn.execute(
            STAYS.insert().values(
                person_id=person_id,
                municipality_code="GM0193",
                country="NL",
                place_name="Zwolle",
                arrived_at=date(2026, 11, 2),
                left_at=date(2026, 11, 9),
                n_ads=len(ad_ids),
                sites="roodlicht",
            )
        )


def link(engine: Engine, ad_a: int, ad_b: int, kind: str, value: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            LINKS.insert().values(
                ad_a=min(ad_a, ad_b),
                ad_b=max(ad_a, ad_b),
                kind=kind,
                level="person",
                value=value,
                strength=1.0,
                created_at=NOW,
            )
        )


def sqlite_bytes(url: str) -> bytes:
    """The bytes of a SQLite database file and its -wal and -shm files."""
    path = url.removeprefix("sqlite:///")
    data = b""
    for suffix in ("", "-wal", "-shm"):
        file = Path(f"{path}{suffix}")
        if file.exists():
            data += file.read_bytes()
    return data


@contextmanager
def pg_roles(url: str) -> Iterator[RoleNames]:
    """The three roles under a unique prefix (roles are server-wide), dropped afterwards."""
    prefix = f"lvt_{uuid.uuid4().hex[:10]}"
    engine = make_engine(url)
    try:
        yield create_roles(engine, prefix, analyst_timeout="2s")
    finally:
        engine.dispose()
        names = RoleNames.from_prefix(prefix).by_kind().values()
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:
            listed = sql.SQL(", ").join(sql.Identifier(n) for n in names)
            conn.execute(sql.SQL("DROP OWNED BY {}").format(listed))
            conn.execute(sql.SQL("DROP ROLE {}").format(listed))


def login_url(url: str, role: str) -> str:
    """``url`` with another login (the test server trusts loopback logins)."""
    return make_url(url).set(username=role, password=None).render_as_string(hide_password=False)
