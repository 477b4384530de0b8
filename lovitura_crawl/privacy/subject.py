"""Rights of data subjects: everything stored about one phone number, exported or erased.

The records of a number are the ads that carry it (now or in an earlier version) with every row
that depends on them, and the persons those ads were linked to with their derived trails, and
the audit entries that name the number's pseudonym. The export is one JSON file (mode 600); it
holds clear values, because it is for the person they are about. Erasure deletes those ads and
their derived data (see :mod:`lovitura_crawl.privacy.erase`), rewrites the database files, and
records a receipt with counts only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy import Connection, Engine, Table, Text, cast, or_, select

from lovitura_crawl.db import models, models_privacy
from lovitura_crawl.privacy import audit, erase, traces
from lovitura_crawl.privacy.pseudonym import pseudonymise_phone

ADS: Table = models.Ad.__table__  # type: ignore[assignment]
PERSONS: Table = models.Person.__table__  # type: ignore[assignment]
NETWORKS: Table = models.Network.__table__  # type: ignore[assignment]
PHONES: Table = models.AdPhone.__table__  # type: ignore[assignment]
VERSIONS: Table = models.AdVersion.__table__  # type: ignore[assignment]
AUDIT: Table = models_privacy.AuditEntry.__table__  # type: ignore[assignment]


@dataclass
class SubjectRecords:
    phone: str  # E.164
    pseudonym: str
    ad_ids: list[int]
    person_ids: list[int]


@dataclass
class SubjectExport:
    path: Path
    sha256: str
    ads: int
    persons: int


@dataclass
class ErasureReceipt:
    pseudonym: str
    counts: dict[str, int]
    remaining: dict[str, int]  # rows that still mention the number (in text no phone was read)
    storage: dict[str, Any] = field(default_factory=dict)
    audit_head: str | None = None

    @property
    def total_rows(self) -> int:
        return sum(self.counts.values())


def find(engine: Engine, phone: str, key: bytes) -> SubjectRecords:
    """The ads and persons linked to ``phone`` (E.164)."""
    quoted = f'%"{traces.escape_like(phone)}"%'
    with engine.connect() as conn:
        ad_ids = set(conn.execute(select(PHONES.c.ad_id).where(PHONES.c.phone == phone)).scalars())
        ad_ids |= set(
            conn.execute(
                select(VERSIONS.c.ad_id).where(
                    cast(VERSIONS.c.phones, Text).like(quoted, escape="\\")
                )
            ).scalars()
        )
        persons = conn.execute(
            select(ADS.c.person_id)
            .where(ADS.c.id.in_(sorted(ad_ids)), ADS.c.person_id.is_not(None))
            .distinct()
        ).scalars()
        person_ids = sorted(set(persons))
    return SubjectRecords(phone, pseudonymise_phone(phone, key), sorted(ad_ids), person_ids)


def _plain(row: Any) -> dict[str, Any]:
    return {name: _jsonable(value) for name, value in row._mapping.items()}


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _dependents(conn: Connection, table: Table, key: Any, skip: set[str]) -> dict[str, list]:
    """Rows of every table that references row ``key`` of ``table``, by table name."""
    found: dict[str, list] = {}
    for dependent, fk in erase.references(table):
        if dependent.name in skip:
            continue
        rows = conn.execute(select(dependent).where(fk.parent == key)).all()
        found.setdefault(dependent.name, []).extend(_plain(r) for r in rows)
    for soft_name, column in erase.SOFT_REFERENCES.get(table.name, ()):
        soft = erase.METADATA.tables.get(soft_name)
        if soft is not None:
            rows = conn.execute(select(soft).where(soft.c[column] == key)).all()
            found.setdefault(soft_name, []).extend(_plain(r) for r in rows)
    return found


def _ad_record(conn: Connection, ad_id: int) -> dict[str, Any]:
    row = conn.execute(select(ADS).where(ADS.c.id == ad_id)).one()
    return {"ad": _plain(row), **_dependents(conn, ADS, ad_id, skip=set())}


def _person_record(conn: Connection, person_id: int) -> dict[str, Any]:
    row = conn.execute(select(PERSONS).where(PERSONS.c.id == person_id)).one()
    record: dict[str, Any] = {"person": _plain(row)}
    record["ad_ids"] = list(
        conn.execute(select(ADS.c.id).where(ADS.c.person_id == person_id)).scalars()
    )
    record.update(_dependents(conn, PERSONS, person_id, skip={"ads"}))
    if row.network_id is not None:
        network = conn.execute(select(NETWORKS).where(NETWORKS.c.id == row.network_id)).first()
        record["network"] = _plain(network) if network is not None else None
    return record


def _processing(conn: Connection, pseudonym: str) -> list[dict[str, Any]]:
    pattern = f"%{pseudonym}%"
    rows = conn.execute(
        select(AUDIT)
        .where(or_(AUDIT.c.filters.like(pattern), AUDIT.c.detail.like(pattern)))
        .order_by(AUDIT.c.seq)
    ).all()
    return [_plain(r) for r in rows]


def collect(engine: Engine, records: SubjectRecords, purpose: str) -> dict[str, Any]:
    """Everything stored about the subject, as one JSON-ready document."""
    with engine.connect() as conn:
        return {
            "subject": {"phone": records.phone, "pseudonym": records.pseudonym},
            "exported_at": datetime.now(UTC).isoformat(),
            "purpose": purpose,
            "ads": [_ad_record(conn, ad_id) for ad_id in records.ad_ids],
            "persons": [_person_record(conn, pid) for pid in records.person_ids],
            "processing": _processing(conn, records.pseudonym),
        }


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` readable by its owner only, replacing it at once (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def export(
    engine: Engine, records: SubjectRecords, out: Path, *, actor: str, purpose: str
) -> SubjectExport:
    """Write the subject's records to ``out`` (JSON) and audit the export."""
    document = collect(engine, records, purpose)
    _write_private(out, json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
    digest = audit.file_sha256(out)
    try:
        audit.append(
            engine,
            actor,
            purpose,
            "subject export",
            {"phone_pseudonym": records.pseudonym},
            rows=len(document["ads"]),
            file_sha256=digest,
            file_path=out,
        )
    except audit.AuditError:
        out.unlink(missing_ok=True)
        raise
    return SubjectExport(out, digest, len(document["ads"]), len(document["persons"]))


def _needles(phone: str) -> list[str]:
    national = str(phonenumbers.parse(phone).national_number)
    return [phone, national]


def erase_subject(
    engine: Engine,
    records: SubjectRecords,
    *,
    actor: str,
    purpose: str,
    rebuild: Callable[[Engine], object] | None = None,
    vacuum_full: bool = True,
) -> ErasureReceipt:
    """Delete the subject's ads and their derived data, and record a receipt."""
    with engine.begin() as conn:
        traces.secure(conn)
        erased = erase.delete_ads(conn, records.ad_ids)
    counts = dict(sorted((+erased.counts).items()))
    storage = traces.compact(engine, [*counts, "pseudonyms"], vacuum_full).as_dict()
    with engine.connect() as conn:
        remaining = traces.mentions(conn, _needles(records.phone))
    receipt = ErasureReceipt(records.pseudonym, counts, remaining, storage)
    entry = audit.append(
        engine,
        actor,
        purpose,
        "subject erase",
        {"phone_pseudonym": records.pseudonym},
        rows=receipt.total_rows,
        detail={
            "rows": counts,
            "remaining_mentions": remaining,
            "storage": storage,
            "persons_to_rebuild": len(erased.persons_to_rebuild),
        },
    )
    receipt.audit_head = entry.head
    traces.checkpoint(engine)
    # Last, so a failing rebuild cannot cost the receipt; it writes nothing that was erased.
    if erased.persons_to_rebuild and rebuild is not None:
        rebuild(engine)
    return receipt
