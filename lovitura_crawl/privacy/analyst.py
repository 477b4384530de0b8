"""Analyst access: read-only SQL over the analyst views, never raw tables or clear numbers.

On SQLite the database file is opened read-only (``mode=ro``) and an authorizer lets a
statement read the ``analyst_*`` views and nothing else; a progress handler enforces the
statement timeout. On PostgreSQL each query runs in a READ ONLY transaction as the analyst role
(``SET LOCAL ROLE``, see :mod:`lovitura_crawl.privacy.roles`) with ``statement_timeout``, as a
prepared statement, so a second statement cannot be smuggled in after a semicolon.

:func:`run_audited` is what ``lovitura query`` runs: the query, the optional clear values (with
their own audit entry), the CSV file, and the audit entry, in an order that leaves no output
when the audit log cannot be written.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from lovitura_crawl.db.engine import make_engine, resolve_url
from lovitura_crawl.db.models_privacy import ANALYST_VIEWS
from lovitura_crawl.privacy import audit, identifiers
from lovitura_crawl.privacy.pseudonym import is_pseudonym
from lovitura_crawl.report import write_csv

DEFAULT_ROLE = "lovitura_analyst"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_LIMIT = 100_000
ALLOWED_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
    sqlite3.SQLITE_TRANSACTION,
}
VIEWS_HINT = "the analyst may read only the views " + ", ".join(ANALYST_VIEWS)

PHONE_SQL = """SELECT ph.phone_pseudonym, a.id AS ad_id, a.site, a.site_ad_id,
       a.municipality_code, a.country, a.first_seen_at, a.last_seen_at, a.gone_at,
       a.person_id, a.network_id
FROM analyst_phones AS ph
JOIN analyst_ads AS a ON a.id = ph.ad_id
WHERE ph.phone_pseudonym IN ({names})
ORDER BY a.person_id, a.id"""


class QueryError(RuntimeError):
    """The analyst's query was refused or failed; the message says why."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows than the limit: only the first ``limit`` are here


@dataclass
class QueryOutcome:
    result: QueryResult
    path: Path | None
    sha256: str | None
    audit_head: str


def phone_sql(n_phones: int) -> str:
    """The built-in search of ads by phone pseudonyms bound as :phone, :phone2, ..."""
    return PHONE_SQL.format(names=", ".join(f":{name}" for name in phone_param_names(n_phones)))


def phone_param_names(n_phones: int) -> list[str]:
    return ["phone" if i == 0 else f"phone{i + 1}" for i in range(n_phones)]


# --- engines ---------------------------------------------------------------------------------
def read_only_uri(url: str) -> str:
    """The SQLite URI that opens the database file of ``url`` read-only."""
    parsed = make_url(url)
    if parsed.database in (None, "", ":memory:"):
        raise QueryError("analyst access needs a database file, not an in-memory database")
    path = Path(parsed.database).resolve()
    if not path.exists():
        raise QueryError(f"no database file {path}: check --db")
    return f"file:{quote(str(path))}?mode=ro"


def _authorize(action: int, arg1: str | None, column: Any, _db: Any, source: str | None) -> int:
    if action not in ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action != sqlite3.SQLITE_READ or arg1 in ANALYST_VIEWS or source in ANALYST_VIEWS:
        return sqlite3.SQLITE_OK
    # An empty column name is SQLite saying a table is scanned but none of its values is read
    # (COUNT(*) through a view, a CTE): only a row count, which the views give anyway.
    return sqlite3.SQLITE_OK if column == "" else sqlite3.SQLITE_DENY


def _lock_down(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA query_only=ON")
    dbapi_connection.execute("PRAGMA busy_timeout=30000")
    dbapi_connection.set_authorizer(_authorize)


def analyst_engine(url: str | None = None) -> Engine:
    """An engine for analysts: on SQLite read-only and limited to the views; on PostgreSQL
    the login's own engine (every query of :func:`run_query` switches to the analyst role)."""
    resolved = resolve_url(url)
    if make_url(resolved).get_backend_name() != "sqlite":
        return make_engine(resolved)
    uri = read_only_uri(resolved)
    # A creator, not a URL: SQLAlchemy would undo the quoting of "#" or "?" in the path.
    engine = create_engine(
        "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True), poolclass=NullPool
    )
    event.listen(engine, "connect", _lock_down)
    return engine


# --- running a query -------------------------------------------------------------------------
def _check_params(sql: str, params: Mapping[str, Any]) -> None:
    named = set(text(sql)._bindparams)
    missing = sorted(named - set(params))
    unused = sorted(set(params) - named)
    if missing:
        raise QueryError(f"the query uses :{', :'.join(missing)} but no value was given for it")
    if unused:
        raise QueryError(f"values were given for {', '.join(unused)} but the query does not use it")


def run_query(
    engine: Engine,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    role: str = DEFAULT_ROLE,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    limit: int = DEFAULT_LIMIT,
) -> QueryResult:
    """Run one read-only statement over the analyst views and return at most ``limit`` rows."""
    values = dict(params or {})
    _check_params(sql, values)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                return _run_postgres(conn, sql, values, role, timeout_s, limit)
            return _run_sqlite(conn, sql, values, timeout_s, limit)
    except DBAPIError as exc:
        raise QueryError(_explain(exc, role)) from exc


def _explain(exc: DBAPIError, role: str) -> str:
    message = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    if "prohibited" in message or "permission denied for" in message:
        return f"refused: {message}; {VIEWS_HINT}"
    if f'role "{role}" does not exist' in message:
        return f"{message}: run `lovitura db roles` as the database owner first"
    if "permission denied to set role" in message:
        return f"{message}: ask the database owner to GRANT {role} TO your login"
    if "interrupted" in message or "statement timeout" in message:
        return f"the query ran longer than the statement timeout and was stopped ({message})"
    if "readonly" in message or "read-only" in message:
        return f"refused: analyst queries only read ({message})"
    return f"the query failed: {message}"


def _rows(cursor: Any, limit: int) -> QueryResult:
    columns = [d[0] for d in cursor.description or []]
    rows = [tuple(r) for r in cursor.fetchmany(limit + 1)]
    return QueryResult(columns, rows[:limit], len(rows) > limit)


def _run_postgres(
    conn: Connection, sql: str, params: dict[str, Any], role: str, timeout_s: float, limit: int
) -> QueryResult:
    quote = conn.dialect.identifier_preparer.quote
    with conn.begin():
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.execute(
            text("SELECT set_config('statement_timeout', :ms, true)"),
            {"ms": str(int(timeout_s * 1000))},
        )
        conn.exec_driver_sql(f"SET LOCAL ROLE {quote(role)}")
        compiled = text(sql).bindparams(**params).compile(dialect=conn.dialect)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            # prepare=True: a prepared statement holds exactly one command.
            cursor.execute(str(compiled), compiled.params, prepare=True)
            return _rows(cursor, limit)
        except psycopg.Error as exc:
            raise DBAPIError(str(compiled), compiled.params, exc) from exc
        finally:
            cursor.close()


def _run_sqlite(
    conn: Connection, sql: str, params: dict[str, Any], timeout_s: float, limit: int
) -> QueryResult:
    raw: Any = conn.connection.driver_connection
    deadline = time.monotonic() + timeout_s
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        result = conn.execute(text(sql), params)
        columns = list(result.keys())
        rows = [tuple(r) for r in result.fetchmany(limit + 1)]
        return QueryResult(columns, rows[:limit], len(rows) > limit)
    finally:
        raw.set_progress_handler(None, 0)


# --- the audited route ------------------------------------------------------------------------
def reveal_rows(engine: Engine, result: QueryResult, *, actor: str, purpose: str) -> QueryResult:
    """The result with every pseudonym replaced by its clear value (an audited access)."""
    found = {cell for row in result.rows for cell in row if isinstance(cell, str)}
    clear = identifiers.reveal(
        engine, [c for c in found if is_pseudonym(c)], actor=actor, purpose=purpose, reason="query"
    )
    rows = [tuple(clear.get(c, c) if isinstance(c, str) else c for c in row) for row in result.rows]
    revealed = {index for row in result.rows for index, cell in enumerate(row) if cell in clear}
    # A column that now holds clear values must not keep a name that says "pseudonym".
    columns = [
        _clear_name(name) if index in revealed else name
        for index, name in enumerate(result.columns)
    ]
    return QueryResult(columns, rows, result.truncated)


def _clear_name(column: str) -> str:
    """``phone_pseudonym`` -> ``phone_clear``; other names get ``_clear`` appended."""
    stem = column.removesuffix("_pseudonym")
    return f"{stem}_clear"


def run_audited(
    analyst: Engine,
    engine: Engine,
    sql: str,
    params: Mapping[str, Any],
    *,
    actor: str,
    purpose: str,
    out: Path | None = None,
    reveal: bool = False,
    role: str = DEFAULT_ROLE,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    limit: int = DEFAULT_LIMIT,
) -> QueryOutcome:
    """Run an analyst's query through ``analyst``, write ``out`` (CSV) if given, and audit it
    through ``engine``. If the audit entry cannot be written, no file is left behind."""
    result = run_query(analyst, sql, params, role=role, timeout_s=timeout_s, limit=limit)
    if reveal:
        result = reveal_rows(engine, result, actor=actor, purpose=purpose)
    partial = out.with_name(f".{out.name}.partial") if out is not None else None
    digest = None
    try:
        if out is not None and partial is not None:
            digest = write_csv(partial, result.columns, result.rows).sha256
        entry = audit.append(
            engine,
            actor,
            purpose,
            "query",
            {"sql": sql, "params": dict(params), "reveal": reveal, "limit": limit},
            rows=len(result.rows),
            file_sha256=digest,
            file_path=out,
        )
        if out is not None and partial is not None:
            partial.replace(out)
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
    return QueryOutcome(result, out, digest, entry.head)
