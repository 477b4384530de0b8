"""The hash-chained audit log: who did what, under which purpose, and what came out of it.

Every entry carries the SHA-256 of its own content and of the entry before it, so editing an
entry, or removing one from the middle, breaks the chain at that point and ``verify`` says
where. Removing entries from the end leaves a shorter chain that is still valid: to catch that,
keep the head that ``verify`` prints (and that each append logs at INFO) outside the database,
and pass it back as ``expect_head``.

Filters and details are stored as canonical JSON text and hashed exactly as stored. They must
never hold clear phone numbers: callers pass pseudonyms.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import random
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from lovitura_crawl.db import models_privacy

logger = logging.getLogger(__name__)

AUDIT: Table = models_privacy.AuditEntry.__table__  # type: ignore[assignment]
GENESIS = "0" * 64
APPEND_ATTEMPTS = 8
# Serialises appenders on PostgreSQL so two never chain onto the same entry.
PG_LOCK_KEY = int.from_bytes(hashlib.sha256(b"lovitura-audit").digest()[:8], "big", signed=True)
HASHED_FIELDS = (
    "seq",
    "at",
    "actor",
    "db_user",
    "host",
    "purpose",
    "command",
    "filters",
    "rows",
    "file_path",
    "file_sha256",
    "detail",
    "prev_hash",
)


class AuditError(RuntimeError):
    """The audit log could not be written: the action it should record must not go ahead."""


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: datetime
    actor: str
    db_user: str | None
    host: str | None
    purpose: str | None
    command: str
    filters: str
    rows: int | None
    file_path: str | None
    file_sha256: str | None
    detail: str | None
    prev_hash: str
    entry_hash: str

    @property
    def head(self) -> str:
        """``SEQ:HASH``, the form ``verify`` takes as the expected head."""
        return f"{self.seq}:{self.entry_hash}"

    def as_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in (*HASHED_FIELDS, "entry_hash")}
        values["at"] = utc_text(self.at)
        values["filters"] = json.loads(self.filters)
        values["detail"] = json.loads(self.detail) if self.detail else None
        return values


@dataclass
class VerifyResult:
    entries: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def head(self) -> str:
        return f"{self.head_seq}:{self.head_hash}"


def current_actor() -> str:
    """The operating-system user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def utc_text(moment: datetime) -> str:
    """A time as the hash sees it: UTC, microseconds (SQLite gives it back without a zone)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def entry_hash(values: Mapping[str, Any]) -> str:
    """SHA-256 over the hashed fields of an entry, the previous entry's hash included."""
    content = {name: values[name] for name in HASHED_FIELDS}
    content["at"] = utc_text(values["at"])
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def append(
    engine: Engine,
    user: str,
    purpose: str | None,
    command: str,
    filters: Mapping[str, Any],
    rows: int | None = None,
    file_sha256: str | None = None,
    *,
    file_path: Path | str | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditRecord:
    """Append one entry and return it. Raise :class:`AuditError` when it cannot be written."""
    values: dict[str, Any] = {
        # UTC: SQLite keeps the wall-clock time and drops the offset, which would break the hash.
        "at": (at or datetime.now(UTC)).astimezone(UTC),
        "actor": user,
        "host": socket.gethostname(),
        "purpose": purpose,
        "command": command,
        "filters": canonical_json(dict(filters)),
        "rows": rows,
        "file_path": str(Path(file_path).resolve()) if file_path is not None else None,
        "file_sha256": file_sha256,
        "detail": canonical_json(dict(detail)) if detail is not None else None,
    }
    last_error: Exception | None = None
    for attempt in range(APPEND_ATTEMPTS):
        try:
            with engine.begin() as conn:
                record = _append_in(conn, values)
        except (IntegrityError, OperationalError) as exc:
            # Another appender chained onto the same entry first (or held the SQLite write
            # lock): read the new head and try again.
            last_error = exc
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
            continue
        logger.info("audit entry %s (%s) head %s", record.seq, command, record.entry_hash)
        return record
    raise AuditError(
        f"could not write the audit log entry for {command!r} after {APPEND_ATTEMPTS} "
        f"attempts ({last_error}); the action was not recorded, so do not use its output"
    ) from last_error


def _append_in(conn: Connection, values: dict[str, Any]) -> AuditRecord:
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
    last = conn.execute(
        select(AUDIT.c.seq, AUDIT.c.entry_hash).order_by(AUDIT.c.seq.desc()).limit(1)
    ).first()
    full = dict(values)
    full["seq"] = last.seq + 1 if last else 1
    full["prev_hash"] = last.entry_hash if last else GENESIS
    full["db_user"] = conn.execute(text("SELECT current_user")).scalar() if postgres else None
    full["entry_hash"] = entry_hash(full)
    # On PostgreSQL the column's default (current_user) fills db_user: roles may not set it.
    stored = {k: v for k, v in full.items() if not (postgres and k == "db_user")}
    conn.execute(AUDIT.insert().values(**stored))
    return AuditRecord(**{name: full[name] for name in AuditRecord.__dataclass_fields__})


def records(
    engine: Engine,
    *,
    purpose: str | None = None,
    command: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[AuditRecord]:
    """Entries, newest first, optionally only of one purpose or command or since a time."""
    query = select(AUDIT).order_by(AUDIT.c.seq.desc())
    if purpose is not None:
        query = query.where(AUDIT.c.purpose == purpose)
    if command is not None:
        query = query.where(AUDIT.c.command == command)
    if since is not None:
        query = query.where(AUDIT.c.at >= since)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [_record(row) for row in conn.execute(query)]


def _record(row: Any) -> AuditRecord:
    return AuditRecord(**{name: getattr(row, name) for name in AuditRecord.__dataclass_fields__})


def _chain(engine: Engine) -> Iterator[AuditRecord]:
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=1000).execute(select(AUDIT).order_by(AUDIT.c.seq))
        for row in result:
            yield _record(row)


def verify(engine: Engine, expect_head: str | None = None) -> VerifyResult:
    """Check the whole chain; with ``expect_head`` (``SEQ:HASH``), also that it still holds
    that entry, which catches entries removed from the end."""
    result = VerifyResult()
    wanted = _parse_head(expect_head) if expect_head else None
    found: str | None = None
    expected_seq = 1
    previous = GENESIS
    for entry in _chain(engine):
        result.problems += _check_entry(entry, expected_seq, previous)
        result.entries += 1
        result.head_seq, result.head_hash = entry.seq, entry.entry_hash
        if wanted is not None and entry.seq == wanted[0]:
            found = entry.entry_hash
        expected_seq = entry.seq + 1
        previous = entry.entry_hash
    if wanted is not None:
        result.problems += _check_head(wanted, found, result.head_seq)
    return result


def _parse_head(head: str) -> tuple[int, str]:
    seq_text, _, wanted = head.partition(":")
    if not seq_text.isdigit() or len(wanted) != 64:
        raise ValueError(f"{head!r} is not SEQ:HASH as `lovitura audit verify` prints it")
    return int(seq_text), wanted


def _check_entry(entry: AuditRecord, expected_seq: int, previous: str) -> list[str]:
    problems = []
    if entry.seq != expected_seq:
        gap = (
            f"entry {expected_seq}"
            if entry.seq == expected_seq + 1
            else f"entries {expected_seq} to {entry.seq - 1}"
        )
        problems.append(f"{gap} removed: the log jumps from {expected_seq - 1} to {entry.seq}")
    if entry.prev_hash != previous:
        problems.append(
            f"entry {entry.seq} does not follow the entry before it: that entry was edited, "
            "removed or replaced"
        )
    if entry_hash(entry.__dict__) != entry.entry_hash:
        problems.append(f"entry {entry.seq} was edited: its content does not match its hash")
    return problems


def _check_head(wanted: tuple[int, str], found: str | None, last_seq: int) -> list[str]:
    seq, digest = wanted
    if found is None:
        return [
            f"entry {seq} of the recorded head is missing: entries were removed from the end "
            f"(the log now ends at entry {last_seq})"
        ]
    if found != digest:
        return [f"entry {seq} is not the entry recorded as head: the log was rewritten"]
    return []
