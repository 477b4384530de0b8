"""Least privilege on the machine's PostgreSQL: what the analyst, crawler and auditor roles may
do, proven by logging in as each. And on SQLite, that there are no roles to make."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from lovitura_crawl.cli_privacy import register
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.db.migrate import upgrade
from lovitura_crawl.db.reference import load_municipalities
from lovitura_crawl.privacy import audit, identifiers, purpose
from lovitura_crawl.privacy.analyst import QueryError, analyst_engine, run_query
from lovitura_crawl.privacy.identifiers import RevealDenied
from lovitura_crawl.privacy.pseudonym import pseudonymise_phone
from lovitura_crawl.privacy.roles import RoleNames, RolesError, create_roles
from tests.dbs import fresh_postgres
from tests.privacy_data import KEY, item, login_url, pg_roles, save

PHONE = "+31612345001"


@pytest.fixture
def pg() -> Iterator[tuple[str, Engine, RoleNames]]:
    """A migrated PostgreSQL database with one ad, and the three roles."""
    with fresh_postgres() as url:
        upgrade(url)
        engine = make_engine(url)
        load_municipalities(engine)
        save(engine, [item("a1", PHONE, "Lieve dame", 2)])
        identifiers.sync(engine, KEY)
        purpose.register(engine, "ZAAK-1", "test case", "Wpg art. 9", "tester")
        with pg_roles(url) as names:
            yield url, engine, names
        engine.dispose()


def _dsn(url: str, role: str) -> str:
    return make_url(login_url(url, role)).set(drivername="postgresql").render_as_string(False)


def _denied(dsn: str, statement: str) -> bool:
    with psycopg.connect(dsn) as conn:
        try:
            conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            return True
    return False


def test_analyst_reads_only_the_views_and_writes_nothing(pg: tuple[str, Engine, RoleNames]) -> None:
    url, _, names = pg
    dsn = _dsn(url, names.analyst)
    for statement in (
        "SELECT * FROM ads",
        "SELECT phone FROM ad_phones",
        "SELECT value FROM pseudonyms",
        "SELECT text FROM ad_versions",
        "SELECT * FROM audit_log",
        "INSERT INTO ads (site, site_ad_id, url, first_seen_at, last_seen_at) "
        "VALUES ('x', 'y', 'z', now(), now())",
        "UPDATE ads SET text = 'x'",
        "UPDATE audit_log SET actor = 'x'",
        "DELETE FROM audit_log",
        "DELETE FROM ad_phones",
    ):
        assert _denied(dsn, statement), statement
    with psycopg.connect(dsn) as conn:
        phones = conn.execute("SELECT phone_pseudonym FROM analyst_phones").fetchall()
        assert phones == [(pseudonymise_phone(PHONE, KEY),)]
        assert conn.execute("SELECT COUNT(*) FROM analyst_ads").fetchone() == (1,)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("2s",)


def test_crawler_writes_data_but_cannot_touch_the_audit_log(
    pg: tuple[str, Engine, RoleNames],
) -> None:
    url, _, names = pg
    dsn = _dsn(url, names.crawler)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE ads SET text = 'bewerkt'")
        assert conn.execute("SELECT phone FROM ad_phones").fetchone() == (PHONE,)
    for statement in (
        "SELECT actor FROM audit_log",
        "UPDATE audit_log SET actor = 'x'",
        "DELETE FROM audit_log",
        "INSERT INTO purposes (code, description, legal_basis, created_at, created_by, demo) "
        "VALUES ('x', 'x', 'x', now(), 'x', false)",
    ):
        assert _denied(dsn, statement), statement


def test_auditor_reads_the_audit_log_only(pg: tuple[str, Engine, RoleNames]) -> None:
    url, engine, names = pg
    audit.append(engine, "tester", "ZAAK-1", "report", {"n": 1})
    auditor = make_engine(login_url(url, names.auditor))
    assert audit.verify(auditor).ok
    auditor.dispose()
    dsn = _dsn(url, names.auditor)
    for statement in ("SELECT * FROM analyst_ads", "SELECT * FROM ads", "DELETE FROM audit_log"):
        assert _denied(dsn, statement), statement


def test_analyst_login_appends_audit_entries_but_may_not_reveal(
    pg: tuple[str, Engine, RoleNames],
) -> None:
    url, engine, names = pg
    audit.append(engine, "owner", None, "purge", {})
    analyst = make_engine(login_url(url, names.analyst))
    entry = audit.append(analyst, "analist1", "ZAAK-1", "query", {"sql": "SELECT 1"}, rows=1)
    assert entry.seq == 2 and entry.db_user == names.analyst
    with pytest.raises(RevealDenied, match="may not see clear values"):
        identifiers.reveal(
            analyst,
            [pseudonymise_phone(PHONE, KEY)],
            actor="analist1",
            purpose="ZAAK-1",
            reason="test",
        )
    analyst.dispose()
    assert audit.verify(engine).ok


def test_owner_queries_run_as_the_analyst_role(pg: tuple[str, Engine, RoleNames]) -> None:
    url, _, names = pg
    reader = analyst_engine(url)
    with pytest.raises(QueryError, match="refused"):
        run_query(reader, "SELECT phone FROM ad_phones", role=names.analyst)
    with pytest.raises(QueryError, match="db roles"):
        run_query(reader, "SELECT 1", role="lvt_no_such_role")
    assert run_query(reader, "SELECT COUNT(*) FROM analyst_phones", role=names.analyst).rows == [
        (1,)
    ]
    reader.dispose()


def test_roles_can_be_made_again_and_bad_names_are_refused(
    pg: tuple[str, Engine, RoleNames],
) -> None:
    _, engine, names = pg
    prefix = names.analyst.removesuffix("_analyst")
    assert create_roles(engine, prefix, "2s") == names
    with pytest.raises(RolesError, match="prefix"):
        create_roles(engine, "Robert'); DROP TABLE ads;--")
    with pytest.raises(RolesError, match="timeout"):
        create_roles(engine, prefix, "30 seconds'; DROP TABLE ads;--")
    with pytest.raises(RolesError, match="no login"):
        create_roles(engine, prefix, "2s", {"analyst": ["lvt_nobody_here"]})


def test_no_roles_on_sqlite(tmp_path: Path) -> None:
    @click.group()
    def root() -> None:
        pass

    root.add_command(click.Group("db"))
    register(root)
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    upgrade(url)
    result = CliRunner().invoke(root, ["db", "roles", "--db", url])
    assert result.exit_code == 1
    assert "only on PostgreSQL" in result.output and "read-only" in result.output


def test_analyst_cannot_write_entries_in_someone_elses_name(
    pg: tuple[str, Engine, RoleNames],
) -> None:
    url, _, names = pg
    forged = (
        "INSERT INTO audit_log (seq, at, actor, db_user, command, filters, prev_hash, entry_hash) "
        "VALUES (1, now(), 'x', 'postgres', 'x', '{}', 'a', 'b')"
    )
    assert _denied(_dsn(url, names.analyst), forged)
