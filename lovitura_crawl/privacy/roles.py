"""PostgreSQL roles for least privilege: a crawler, an analyst and an auditor.

* crawler: reads and writes the data tables (crawl, link, trails, pseudonyms), may append to the
  audit log but not read, change or delete it.
* analyst: reads the ``analyst_*`` views only (never a raw table, so never a clear phone number
  or ad text), may append to the audit log, and gets a default statement timeout.
* auditor: reads the audit log only.

``create_roles`` is run by the database owner (``lovitura db roles``). It sets the grants to
exactly these every time, so running it again repairs drift and covers tables that later
migrations added. The roles are created with LOGIN and without a password: give them one, or
grant them to personal logins with ``members`` (personal logins make the audit log name the
person; ``statement_timeout`` is set on those logins too, because PostgreSQL applies a role's
settings only to sessions that log in as it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from lovitura_crawl.db.models_privacy import ANALYST_VIEWS

PREFIX_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
TIMEOUT_PATTERN = re.compile(r"^[1-9][0-9]*(ms|s|min)$")
PROTECTED_TABLES = {"audit_log", "purposes", "alembic_version"}
# What an appender must read: the head to chain onto, and the id the INSERT returns.
AUDIT_READ_COLUMNS = ("id", "seq", "entry_hash")
# What an appender may write: everything but the id (a sequence) and db_user (current_user).
AUDIT_WRITE_COLUMNS = (
    "seq",
    "at",
    "actor",
    "host",
    "purpose",
    "command",
    "filters",
    "rows",
    "file_path",
    "file_sha256",
    "detail",
    "prev_hash",
    "entry_hash",
)


class RolesError(RuntimeError):
    """Roles cannot be set up as asked (not PostgreSQL, bad names, missing logins)."""


@dataclass(frozen=True)
class RoleNames:
    crawler: str
    analyst: str
    auditor: str

    @classmethod
    def from_prefix(cls, prefix: str) -> RoleNames:
        if not PREFIX_PATTERN.match(prefix):
            raise RolesError(
                f"role prefix {prefix!r}: use lower-case letters, digits and _ (e.g. lovitura)"
            )
        return cls(f"{prefix}_crawler", f"{prefix}_analyst", f"{prefix}_auditor")

    def by_kind(self) -> dict[str, str]:
        return {"crawler": self.crawler, "analyst": self.analyst, "auditor": self.auditor}


def create_roles(
    engine: Engine,
    prefix: str = "lovitura",
    analyst_timeout: str = "30s",
    members: Mapping[str, Sequence[str]] | None = None,
) -> RoleNames:
    """Create (or reset) the three roles and their grants; grant them to ``members``
    (``{"analyst": ["alice"], ...}``). Return the role names."""
    if engine.dialect.name != "postgresql":
        raise RolesError(
            "database roles exist only on PostgreSQL; on SQLite analysts run `lovitura query`, "
            "which opens the file read-only and reads the analyst views only"
        )
    if not TIMEOUT_PATTERN.match(analyst_timeout):
        raise RolesError(f"timeout {analyst_timeout!r}: write it as 30s, 500ms or 2min")
    names = RoleNames.from_prefix(prefix)
    wanted = dict(members or {})
    unknown = sorted(set(wanted) - set(names.by_kind()))
    if unknown:
        raise RolesError(f"unknown role kind {unknown}: use crawler, analyst or auditor")
    with engine.begin() as conn:
        q = conn.dialect.identifier_preparer.quote
        for name in names.by_kind().values():
            _ensure_role(conn, name)
        _reset(conn, names)
        _grant_crawler(conn, names.crawler)
        _grant_analyst(conn, names.analyst, analyst_timeout)
        conn.exec_driver_sql(f"GRANT SELECT ON audit_log TO {q(names.auditor)}")
        for kind, logins in wanted.items():
            _grant_members(conn, names.by_kind()[kind], logins, analyst_timeout, kind)
    return names


def _ensure_role(conn: Connection, name: str) -> None:
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}).first()
    if exists is None:
        conn.exec_driver_sql(f"CREATE ROLE {conn.dialect.identifier_preparer.quote(name)} LOGIN")


def _tables(conn: Connection) -> list[str]:
    rows = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
    return sorted(rows.scalars())


def _views(conn: Connection) -> list[str]:
    rows = conn.execute(text("SELECT viewname FROM pg_views WHERE schemaname = current_schema()"))
    present = set(rows.scalars())
    missing = [v for v in ANALYST_VIEWS if v not in present]
    if missing:
        raise RolesError(
            f"the analyst views {missing} do not exist: run `lovitura db upgrade` first"
        )
    return list(ANALYST_VIEWS)


def _reset(conn: Connection, names: RoleNames) -> None:
    q = conn.dialect.identifier_preparer.quote
    all_roles = ", ".join(q(n) for n in names.by_kind().values())
    database = conn.execute(text("SELECT current_database()")).scalar_one()
    conn.exec_driver_sql(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, {all_roles}")
    conn.exec_driver_sql(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {all_roles}")
    conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {q(database)} TO {all_roles}")
    conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {all_roles}")


def _audit_sequence(conn: Connection) -> str:
    found = conn.execute(text("SELECT pg_get_serial_sequence('audit_log', 'id')")).scalar()
    if not found:
        raise RolesError("audit_log has no id sequence: run `lovitura db upgrade` first")
    return str(found)


def _grant_audit_append(conn: Connection, role: str) -> None:
    q = conn.dialect.identifier_preparer.quote
    written = ", ".join(AUDIT_WRITE_COLUMNS)
    read = ", ".join(AUDIT_READ_COLUMNS)
    conn.exec_driver_sql(f"GRANT INSERT ({written}) ON audit_log TO {q(role)}")
    conn.exec_driver_sql(f"GRANT SELECT ({read}) ON audit_log TO {q(role)}")
    conn.exec_driver_sql(f"GRANT USAGE ON SEQUENCE {_audit_sequence(conn)} TO {q(role)}")


def _grant_crawler(conn: Connection, role: str) -> None:
    q = conn.dialect.identifier_preparer.quote
    data = [t for t in _tables(conn) if t not in PROTECTED_TABLES]
    listed = ", ".join(q(t) for t in data)
    conn.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {listed} TO {q(role)}")
    conn.exec_driver_sql(f"GRANT SELECT ON purposes TO {q(role)}")
    conn.exec_driver_sql(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {q(role)}")
    views = ", ".join(q(v) for v in _views(conn))
    conn.exec_driver_sql(f"GRANT SELECT ON {views} TO {q(role)}")
    _grant_audit_append(conn, role)


def _grant_analyst(conn: Connection, role: str, timeout: str) -> None:
    q = conn.dialect.identifier_preparer.quote
    views = ", ".join(q(v) for v in _views(conn))
    conn.exec_driver_sql(f"GRANT SELECT ON {views} TO {q(role)}")
    conn.exec_driver_sql(f"GRANT SELECT ON purposes TO {q(role)}")
    _grant_audit_append(conn, role)
    conn.exec_driver_sql(f"ALTER ROLE {q(role)} SET statement_timeout = '{timeout}'")


def _grant_members(
    conn: Connection, role: str, logins: Sequence[str], timeout: str, kind: str
) -> None:
    q = conn.dialect.identifier_preparer.quote
    for login in logins:
        found = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": login})
        if found.first() is None:
            raise RolesError(f"no login {login!r} on this server: create it first (CREATE ROLE)")
        conn.exec_driver_sql(f"GRANT {q(role)} TO {q(login)}")
        if kind == "analyst":
            conn.exec_driver_sql(f"ALTER ROLE {q(login)} SET statement_timeout = '{timeout}'")
