"""Leaving no trace of deleted values in the database files, and finding traces that remain.

On SQLite the deleting connection turns ``secure_delete`` on (:func:`secure`), and
:func:`compact` runs VACUUM and truncates the write-ahead log, so deleted values are gone from
the ``.sqlite``, ``-wal`` and ``-shm`` files. On PostgreSQL :func:`compact` runs VACUUM (FULL)
on the tables that lost rows; what the server keeps in its own WAL and backups is outside the
product (see docs/privacy.md). :func:`mentions` searches every text column for values that
should be gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    String,
    Table,
    Text,
    cast,
    func,
    or_,
    select,
)

from lovitura_crawl.db import models_privacy

logger = logging.getLogger(__name__)

METADATA = models_privacy.Base.metadata  # with the privacy tables registered in it
CHECKPOINT_ATTEMPTS = 20


@dataclass
class CompactResult:
    backend: str
    vacuumed: list[str] = field(default_factory=list)
    wal_checkpoint: tuple[int, int, int] | None = None  # busy, frames in log, checkpointed
    clean: bool = True  # False: another connection kept the SQLite WAL from being emptied

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "vacuumed": self.vacuumed,
            "wal_checkpoint": list(self.wal_checkpoint) if self.wal_checkpoint else None,
            "clean": self.clean,
        }


def secure(conn: Connection) -> None:
    """Make SQLite overwrite deleted content with zeros (call before deleting)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete=ON")


def compact(engine: Engine, tables: Iterable[str] = (), vacuum_full: bool = True) -> CompactResult:
    """Rewrite the database files so deleted values are gone from them."""
    engine.dispose()  # idle pooled connections must not hold the SQLite WAL open
    if engine.dialect.name == "sqlite":
        return _compact_sqlite(engine)
    return _compact_postgres(engine, tables, vacuum_full)


def checkpoint(engine: Engine) -> CompactResult:
    """Empty the SQLite write-ahead log into the database file (no VACUUM)."""
    result = CompactResult(engine.dialect.name)
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return result
    engine.dispose()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        result.wal_checkpoint = _checkpoint(conn)
    result.clean = result.wal_checkpoint[0] == 0
    engine.dispose()
    return result


def _compact_sqlite(engine: Engine) -> CompactResult:
    result = CompactResult("sqlite")
    if engine.url.database in (None, "", ":memory:"):
        return result
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM")
        result.vacuumed.append("*")
        stat4 = conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat4'"
        ).first()
        if stat4 is not None:
            conn.exec_driver_sql("ANALYZE")  # stat4 keeps sample values of indexed columns
        result.wal_checkpoint = _checkpoint(conn)
    busy, log_frames, checkpointed = result.wal_checkpoint
    result.clean = busy == 0 and log_frames == checkpointed
    if not result.clean:
        logger.warning(
            "another connection kept the SQLite write-ahead log open; deleted values may "
            "remain in its -wal file until `lovitura purge` runs again"
        )
    engine.dispose()
    return result


def _checkpoint(conn: Connection) -> tuple[int, int, int]:
    row: tuple[int, int, int] = (1, -1, -1)
    for _ in range(CHECKPOINT_ATTEMPTS):
        found = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        row = (int(found[0]), int(found[1]), int(found[2]))
        if row[0] == 0:
            break
        time.sleep(0.25)
    return row


def _compact_postgres(engine: Engine, tables: Iterable[str], vacuum_full: bool) -> CompactResult:
    result = CompactResult("postgresql")
    names = sorted({t for t in tables if t in METADATA.tables})
    option = "FULL, ANALYZE" if vacuum_full else "ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        quote = conn.dialect.identifier_preparer.quote
        for name in names:
            conn.exec_driver_sql(f"VACUUM ({option}) {quote(name)}")
            result.vacuumed.append(name)
    engine.dispose()
    return result


def text_columns(table: Table) -> list[Column[Any]]:
    return [c for c in table.columns if isinstance(c.type, String | Text | JSON)]


def mentions(conn: Connection, needles: Iterable[str]) -> dict[str, int]:
    """Rows per table whose text, string or JSON columns contain any of ``needles``."""
    patterns = [f"%{escape_like(n)}%" for n in needles if n]
    found: dict[str, int] = {}
    for table in METADATA.sorted_tables:
        columns = text_columns(table)
        if not columns or not patterns:
            continue
        condition = or_(*(cast(c, Text).like(p, escape="\\") for c in columns for p in patterns))
        n = conn.execute(select(func.count()).select_from(table).where(condition)).scalar_one()
        if n:
            found[table.name] = int(n)
    return found


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
