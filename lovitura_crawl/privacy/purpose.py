"""Purposes and case ids: every crawl, link run, report and export runs under one.

A purpose is registered once with its description and legal basis (``lovitura purpose add``),
and is refused after it is closed. The demo runs under the purpose ``demo``, registered on the
fly because its data is invented. Ads an analyst attaches to a case (``case_ads``) are kept
while the case is open; see :mod:`lovitura_crawl.privacy.retention`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from lovitura_crawl.db import models, models_privacy

PURPOSES: Table = models_privacy.Purpose.__table__  # type: ignore[assignment]
CASE_ADS: Table = models_privacy.CaseAd.__table__  # type: ignore[assignment]
CRAWL_RUN_PURPOSES: Table = models_privacy.CrawlRunPurpose.__table__  # type: ignore[assignment]
LINK_RUN_PURPOSES: Table = models_privacy.LinkRunPurpose.__table__  # type: ignore[assignment]
ADS: Table = models.Ad.__table__  # type: ignore[assignment]

PURPOSE_ENV = "LOVITURA_PURPOSE"
DEMO_PURPOSE = "demo"
CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{1,63}$")


class PurposeError(ValueError):
    """No purpose given, or one that is malformed, unknown or closed."""


@dataclass(frozen=True)
class PurposeInfo:
    code: str
    description: str
    legal_basis: str
    created_at: datetime
    created_by: str
    closed_at: datetime | None
    demo: bool

    @property
    def open(self) -> bool:
        return self.closed_at is None


def require_purpose(value: str | None, demo: bool = False) -> str:
    """The purpose to run under: ``value``, else $LOVITURA_PURPOSE; the demo's own in a demo.

    Refuses (:class:`PurposeError`) when there is none, or when it is not a valid case id.
    """
    chosen = value or os.environ.get(PURPOSE_ENV)
    if not chosen:
        if demo:
            return DEMO_PURPOSE
        raise PurposeError(
            f"no purpose given: every crawl, link, report, query and export runs under a "
            f"purpose or case id; give --purpose CODE or set {PURPOSE_ENV} "
            "(register one with `lovitura purpose add CODE`)"
        )
    return valid_code(chosen)


def valid_code(code: str) -> str:
    """``code`` if it is a well-formed purpose code; :class:`PurposeError` otherwise."""
    if not CODE_PATTERN.match(code):
        raise PurposeError(
            f"{code!r} is not a valid purpose code: use 2 to 64 letters, digits and . _ / -, "
            "starting with a letter or digit (e.g. ZAAK-2026-0142)"
        )
    return code


def register(
    engine: Engine,
    code: str,
    description: str,
    legal_basis: str,
    actor: str,
    *,
    demo: bool = False,
    at: datetime | None = None,
) -> PurposeInfo:
    """Register a purpose. Registering the same code again with the same text changes nothing."""
    code = valid_code(code)
    if not description.strip() or not legal_basis.strip():
        raise PurposeError("a purpose needs a description and a legal basis (e.g. 'Wpg art. 9')")
    values = {
        "code": code,
        "description": description.strip(),
        "legal_basis": legal_basis.strip(),
        "created_at": at or datetime.now(UTC),
        "created_by": actor,
        "closed_at": None,
        "demo": demo,
    }
    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(PURPOSES)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["code"])
        )
        info = _get(conn, code)
    assert info is not None
    if (info.description, info.legal_basis) != (values["description"], values["legal_basis"]):
        raise PurposeError(
            f"purpose {code!r} is already registered with another description or legal basis; "
            "choose a new code"
        )
    return info


def demo_purpose(engine: Engine) -> str:
    """Register (once) and return the purpose the demo runs under."""
    register(
        engine,
        DEMO_PURPOSE,
        "Demo world: invented ads on four simulated sites, no real person",
        "none needed: invented data",
        "lovitura demo",
        demo=True,
    )
    return DEMO_PURPOSE


def _get(conn: Connection, code: str) -> PurposeInfo | None:
    row = conn.execute(select(PURPOSES).where(PURPOSES.c.code == code)).first()
    return PurposeInfo(**row._mapping) if row is not None else None


def get(engine: Engine, code: str) -> PurposeInfo | None:
    with engine.connect() as conn:
        return _get(conn, code)


def check_open(engine: Engine, code: str) -> PurposeInfo:
    """The registered, open purpose ``code``; :class:`PurposeError` otherwise."""
    info = get(engine, code)
    if info is None:
        raise PurposeError(
            f"purpose {code!r} is not registered: register it with `lovitura purpose add "
            f"{code} --description TEXT --legal-basis TEXT` (or check the spelling)"
        )
    if not info.open:
        raise PurposeError(
            f"purpose {code!r} was closed on {info.closed_at:%Y-%m-%d}: nothing more may run "
            "under it; register a new purpose"
        )
    return info


def open_purpose(engine: Engine, value: str | None, demo: bool = False) -> str:
    """What a command calls first: the purpose to run under, registered and open."""
    code = require_purpose(value, demo)
    if demo and code == DEMO_PURPOSE:
        return demo_purpose(engine)
    check_open(engine, code)
    return code


def close(engine: Engine, code: str, at: datetime | None = None) -> PurposeInfo:
    """Close a purpose: nothing may run under it any more, and its case ads fall under the
    ordinary retention terms once the closed-case term has passed."""
    check_open(engine, code)
    with engine.begin() as conn:
        conn.execute(
            update(PURPOSES)
            .where(PURPOSES.c.code == code)
            .values(closed_at=at or datetime.now(UTC))
        )
        info = _get(conn, code)
    assert info is not None
    return info


def all_purposes(engine: Engine) -> list[PurposeInfo]:
    with engine.connect() as conn:
        rows = conn.execute(select(PURPOSES).order_by(PURPOSES.c.created_at, PURPOSES.c.code))
        return [PurposeInfo(**row._mapping) for row in rows]


def attach_ads(
    engine: Engine, code: str, ad_ids: Iterable[int], actor: str, at: datetime | None = None
) -> int:
    """Attach ads to case ``code`` (kept while it is open); return how many were new."""
    check_open(engine, code)
    wanted = sorted(set(ad_ids))
    moment = at or datetime.now(UTC)
    added = 0
    with engine.begin() as conn:
        known = set(conn.execute(select(ADS.c.id).where(ADS.c.id.in_(wanted))).scalars())
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise PurposeError(f"no ads with ids {unknown[:10]}: check the ids")
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        for ad_id in wanted:
            result = conn.execute(
                dialect.insert(CASE_ADS)
                .values(purpose_code=code, ad_id=ad_id, added_at=moment, added_by=actor)
                .on_conflict_do_nothing(index_elements=["purpose_code", "ad_id"])
                .returning(CASE_ADS.c.id)
            )
            added += len(result.all())
    return added


def ads_of_persons(engine: Engine, person_ids: Iterable[int]) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(ADS.c.id).where(ADS.c.person_id.in_(sorted(set(person_ids))))
            ).scalars()
        )


def attach_persons(
    engine: Engine, code: str, person_ids: Iterable[int], actor: str, at: datetime | None = None
) -> int:
    """Attach every ad of these persons to case ``code``."""
    return attach_ads(engine, code, ads_of_persons(engine, person_ids), actor, at)


def record_crawl_run(engine: Engine, crawl_run_id: int, code: str) -> None:
    """Note that crawl run ``crawl_run_id`` ran under purpose ``code``."""
    _record_run(engine, CRAWL_RUN_PURPOSES, "crawl_run_id", crawl_run_id, code)


def record_link_run(engine: Engine, link_run_id: int, code: str) -> None:
    """Note that link run ``link_run_id`` ran under purpose ``code``."""
    _record_run(engine, LINK_RUN_PURPOSES, "link_run_id", link_run_id, code)


def _record_run(engine: Engine, table: Table, column: str, run_id: int, code: str) -> None:
    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(table)
            .values({column: run_id, "purpose_code": code})
            .on_conflict_do_nothing(index_elements=[column])
        )
