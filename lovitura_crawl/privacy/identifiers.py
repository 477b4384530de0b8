"""The ``pseudonyms`` table: the keyed pseudonym of every phone number and link value stored.

The analyst views read pseudonyms from this table, because the database never holds the key
and so cannot compute them itself. Whoever holds the key (the crawler, ``lovitura link``)
calls :func:`sync` after writing; :func:`prune` drops pseudonyms of values no longer stored.
:func:`reveal` is the one way back from pseudonyms to clear values, and it is audited.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, and_, delete, exists, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ProgrammingError

from lovitura_crawl.db import models, models_privacy
from lovitura_crawl.privacy import audit
from lovitura_crawl.privacy.pseudonym import (
    PseudonymKeyError,
    is_pseudonym,
    key_id,
    pseudonymise,
)

logger = logging.getLogger(__name__)

PSEUDONYMS: Table = models_privacy.Pseudonym.__table__  # type: ignore[assignment]
PHONES: Table = models.AdPhone.__table__  # type: ignore[assignment]
LINKS: Table = models.Link.__table__  # type: ignore[assignment]
CHUNK = 500


class RevealDenied(PermissionError):
    """The database role in use may not see clear values."""


@dataclass
class SyncResult:
    added: int = 0
    renewed: int = 0  # made again with the current key
    removed: int = 0

    def __str__(self) -> str:
        return f"pseudonyms: {self.added} added, {self.renewed} renewed, {self.removed} removed"


def _wanted(conn: Connection) -> set[tuple[str, str]]:
    values = {
        ("phone", phone) for phone in conn.execute(select(PHONES.c.phone).distinct()).scalars()
    }
    values |= {
        (kind, value)
        for kind, value in conn.execute(select(LINKS.c.kind, LINKS.c.value).distinct())
    }
    return values


def sync(engine: Engine, key: bytes) -> SyncResult:
    """Give every stored phone number and link value its pseudonym under ``key``."""
    current = key_id(key)
    result = SyncResult()
    with engine.begin() as conn:
        wanted = _wanted(conn)
        have = {
            (kind, value): kid
            for kind, value, kid in conn.execute(
                select(PSEUDONYMS.c.kind, PSEUDONYMS.c.value, PSEUDONYMS.c.key_id)
            )
        }
        todo = sorted(w for w in wanted if have.get(w) != current)
        result.added = sum(1 for w in todo if w not in have)
        result.renewed = len(todo) - result.added
        rows = [
            {"kind": k, "value": v, "pseudonym": pseudonymise(k, v, key), "key_id": current}
            for k, v in todo
        ]
        for start in range(0, len(rows), CHUNK):
            _upsert(conn, rows[start : start + CHUNK])
        result.removed = prune(conn)
    if result.renewed:
        logger.warning("%d pseudonyms were made again with a new key (%s)", result.renewed, current)
    return result


def _upsert(conn: Connection, rows: list[dict[str, str]]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(PSEUDONYMS)
    stmt = stmt.on_conflict_do_update(
        index_elements=["kind", "value"],
        set_={"pseudonym": stmt.excluded.pseudonym, "key_id": stmt.excluded.key_id},
    )
    conn.execute(stmt, rows)


def prune(conn: Connection) -> int:
    """Delete pseudonyms of values no longer stored anywhere; return how many."""
    phone_used = exists().where(
        and_(PSEUDONYMS.c.kind == "phone", PHONES.c.phone == PSEUDONYMS.c.value)
    )
    link_used = exists().where(
        and_(LINKS.c.kind == PSEUDONYMS.c.kind, LINKS.c.value == PSEUDONYMS.c.value)
    )
    result = conn.execute(delete(PSEUDONYMS).where(~phone_used, ~link_used))
    return int(result.rowcount or 0)


def key_ids(engine: Engine) -> dict[str, int]:
    """Pseudonyms per key id, read through the analyst view (any role may call this)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT key_id, n FROM analyst_pseudonym_keys"))
        counts: dict[str, int] = {}
        for kid, n in rows:
            counts[kid] = counts.get(kid, 0) + int(n)
        return counts


def check_key(engine: Engine, key: bytes) -> None:
    """Raise when the database's pseudonyms were made with another key than ``key``: a search
    by phone number would then find nothing, silently."""
    counts = key_ids(engine)
    mine = key_id(key)
    if counts and mine not in counts:
        raise PseudonymKeyError(
            f"the pseudonyms in this database were made with another key (key id "
            f"{', '.join(sorted(counts))}; yours is {mine}): use the key the crawler uses "
            "(LOVITURA_PSEUDONYM_KEY_FILE)"
        )


def missing(engine: Engine) -> int:
    """Stored phone numbers that have no pseudonym yet (the analyst view shows them empty)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT COUNT(*) FROM analyst_phones WHERE phone_pseudonym IS NULL")
            ).scalar_one()
        )


def reveal(
    engine: Engine,
    pseudonyms: Iterable[str],
    *,
    actor: str,
    purpose: str,
    reason: str,
) -> dict[str, str]:
    """The clear values of ``pseudonyms``, after an audit entry records who asked and why.

    Raise :class:`RevealDenied` when the database role may not read them (the analyst role).
    """
    wanted = sorted({p for p in pseudonyms if is_pseudonym(p)})
    found: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            for start in range(0, len(wanted), CHUNK):
                rows = conn.execute(
                    select(PSEUDONYMS.c.pseudonym, PSEUDONYMS.c.value).where(
                        PSEUDONYMS.c.pseudonym.in_(wanted[start : start + CHUNK])
                    )
                )
                found.update({pseudonym: value for pseudonym, value in rows})
    except ProgrammingError as exc:
        if "permission denied" not in str(exc):
            raise
        raise RevealDenied(
            "this database role may not see clear values; ask someone with the crawler or "
            "owner role, and say why"
        ) from exc
    audit.append(
        engine,
        actor,
        purpose,
        "reveal",
        {"pseudonyms": wanted, "for": reason},
        rows=len(found),
    )
    return found
