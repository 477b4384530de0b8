"""Analyst access: pseudonyms in the views, search by number, read-only, audited, no clear
numbers in exports, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from lovitura_crawl.cli_privacy import register
from lovitura_crawl.db import models
from lovitura_crawl.privacy import audit, identifiers, purpose
from lovitura_crawl.privacy.analyst import (
    DEFAULT_ROLE,
    QueryError,
    analyst_engine,
    phone_sql,
    read_only_uri,
    run_audited,
    run_query,
)
from lovitura_crawl.privacy.pseudonym import (
    KEY_ENV,
    PseudonymKeyError,
    phone_query_pseudonym,
    pseudonymise,
    pseudonymise_phone,
)
from tests.privacy_data import KEY, OTHER_KEY, item, link, person, pg_roles, save

PHONE_A = "+31612345001"
PHONE_B = "+31612345002"
CLEAR = (b"+3161234500", b"061234500", "+3161234500", "061234500")


@pytest.fixture
def seeded(engine: Engine) -> dict[str, int]:
    ids = save(
        engine,
        [
            item("a1", PHONE_A, "Lieve dame", 2),
            item("a2", PHONE_A, "Nieuw", 3),
            item("b1", PHONE_B, "Hoi", 4),
        ],
    )
    person(engine, 1, [ids["a1"], ids["a2"]])
    link(engine, ids["a1"], ids["a2"], "phone", PHONE_A)
    link(engine, ids["a1"], ids["b1"], "email", "lief@example.org")
    purpose.register(engine, "ZAAK-1", "test case", "Wpg art. 9", "tester")
    return ids


@pytest.fixture
def access(db_url: str) -> Iterator[tuple[Engine, str]]:
    """The analyst's engine and the role its queries run as."""
    if db_url.startswith("sqlite"):
        reader = analyst_engine(db_url)
        yield reader, DEFAULT_ROLE
        reader.dispose()
        return
    with pg_roles(db_url) as names:
        reader = analyst_engine(db_url)
        yield reader, names.analyst
        reader.dispose()


def test_sync_gives_every_phone_and_link_value_a_pseudonym(
    engine: Engine, seeded: dict[str, int], access: tuple[Engine, str]
) -> None:
    assert identifiers.missing(engine) == 3
    result = identifiers.sync(engine, KEY)
    assert (result.added, result.renewed, result.removed) == (3, 0, 0)  # A is in a link too
    assert identifiers.sync(engine, KEY).added == 0
    reader, role = access
    rows = run_query(reader, "SELECT ad_id, phone_pseudonym FROM analyst_phones", role=role).rows
    assert {p for _, p in rows} == {
        pseudonymise_phone(PHONE_A, KEY),
        pseudonymise_phone(PHONE_B, KEY),
    }
    links = run_query(reader, "SELECT kind, value_pseudonym FROM analyst_links", role=role).rows
    assert sorted(links) == sorted(
        [
            ("phone", pseudonymise_phone(PHONE_A, KEY)),
            ("email", pseudonymise("email", "lief@example.org", KEY)),
        ]
    )
    assert identifiers.missing(engine) == 0


def test_search_by_phone_number_through_its_pseudonym(
    engine: Engine, seeded: dict[str, int], access: tuple[Engine, str]
) -> None:
    identifiers.sync(engine, KEY)
    reader, role = access
    wanted = phone_query_pseudonym("06-12345001", KEY)
    result = run_query(reader, phone_sql(1), {"phone": wanted}, role=role)
    assert sorted(row[1] for row in result.rows) == sorted([seeded["a1"], seeded["a2"]])
    assert not any(str(cell).startswith(CLEAR[2:]) for row in result.rows for cell in row)


def test_pseudonyms_of_another_key_are_renewed_and_a_wrong_key_is_named(
    engine: Engine, seeded: dict[str, int]
) -> None:
    identifiers.sync(engine, KEY)
    identifiers.check_key(engine, KEY)
    with pytest.raises(PseudonymKeyError, match="another key"):
        identifiers.check_key(engine, OTHER_KEY)
    assert identifiers.sync(engine, OTHER_KEY).renewed == 3
    identifiers.check_key(engine, OTHER_KEY)


RAW_TABLES = ("ads", "ad_phones", "ad_versions", "pseudonyms", "audit_log")
WRITES = (
    "DELETE FROM analyst_ads",
    "UPDATE ads SET text = 'x'",
    "INSERT INTO purposes (code) VALUES ('x')",
    "SELECT 1 FROM analyst_ads; DELETE FROM ads",
)


def test_raw_tables_writes_and_second_statements_are_refused(
    engine: Engine, seeded: dict[str, int], access: tuple[Engine, str]
) -> None:
    reader, role = access
    for table in RAW_TABLES:
        with pytest.raises(QueryError, match="refused"):
            run_query(reader, f"SELECT * FROM {table}", role=role)
    for statement in WRITES:
        with pytest.raises(QueryError):
            run_query(reader, statement, role=role)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(models.Ad)).scalar_one() == 3
    counted = run_query(reader, "SELECT COUNT(*) FROM analyst_ads", role=role)
    assert counted.rows == [(3,)]


def test_endless_query_is_stopped(seeded: dict[str, int], access: tuple[Engine, str]) -> None:
    reader, role = access
    endless = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) FROM r"
    )
    with pytest.raises(QueryError, match="timeout"):
        run_query(reader, endless, role=role, timeout_s=0.3)


def test_missing_and_unused_parameters_are_named(
    seeded: dict[str, int], access: tuple[Engine, str]
) -> None:
    reader, role = access
    with pytest.raises(QueryError, match=":phone"):
        run_query(reader, phone_sql(1), {}, role=role)
    with pytest.raises(QueryError, match="extra"):
        run_query(reader, "SELECT 1 FROM analyst_ads", {"extra": 1}, role=role)


def test_sqlite_analyst_opens_the_file_read_only(db_url: str, seeded: dict[str, int]) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite only: PostgreSQL uses the analyst role (test_privacy_roles)")
    assert read_only_uri(db_url).endswith("?mode=ro")
    reader = analyst_engine(db_url)
    with reader.connect() as conn:
        raw: Any = conn.connection.driver_connection
        raw.set_authorizer(None)  # even without the view guard, the file cannot be written
        with pytest.raises(Exception, match="readonly"):
            raw.execute("DELETE FROM ads")
    reader.dispose()


def test_audited_export_holds_pseudonyms_not_numbers(
    engine: Engine, seeded: dict[str, int], access: tuple[Engine, str], tmp_path: Path
) -> None:
    identifiers.sync(engine, KEY)
    reader, role = access
    out = tmp_path / "hits.csv"
    params = {"phone": phone_query_pseudonym("0612345001", KEY)}
    outcome = run_audited(
        reader, engine, phone_sql(1), params, actor="analist1", purpose="ZAAK-1", out=out, role=role
    )
    data = out.read_bytes()
    assert pseudonymise_phone(PHONE_A, KEY).encode() in data
    assert not any(clear in data for clear in CLEAR[:2])
    entry = audit.records(engine, limit=1)[0]
    assert entry.command == "query" and entry.purpose == "ZAAK-1" and entry.rows == 2
    assert entry.file_sha256 == hashlib.sha256(data).hexdigest() == outcome.sha256
    assert PHONE_A not in entry.filters and params["phone"] in entry.filters
    assert not list(tmp_path.glob(".*partial"))


def test_clear_values_only_with_an_audited_reveal(
    engine: Engine, seeded: dict[str, int], access: tuple[Engine, str]
) -> None:
    identifiers.sync(engine, KEY)
    reader, role = access
    params = {"phone": phone_query_pseudonym("0612345001", KEY)}
    outcome = run_audited(
        reader,
        engine,
        phone_sql(1),
        params,
        actor="analist1",
        purpose="ZAAK-1",
        reveal=True,
        role=role,
    )
    assert {row[0] for row in outcome.result.rows} == {PHONE_A}
    # the column now holds clear numbers: its name no longer says "pseudonym"
    assert not any("pseudonym" in name for name in outcome.result.columns)
    commands = [e.command for e in audit.records(engine, limit=2)]
    assert commands == ["query", "reveal"]
    assert audit.verify(engine).ok


def _cli() -> click.Group:
    @click.group()
    def root() -> None:
        pass

    root.add_command(click.Group("db"))
    register(root)
    return root


def test_cli_query_by_phone_needs_a_purpose_and_exports_no_clear_number(
    db_url: str, engine: Engine, seeded: dict[str, int], access: tuple[Engine, str], tmp_path: Path
) -> None:
    identifiers.sync(engine, KEY)
    _, role = access
    runner = CliRunner(env={KEY_ENV: KEY.decode(), "LOVITURA_PURPOSE": None})
    base = ["query", "--db", db_url, "--phone", "06 12345001", "--role", role]
    refused = runner.invoke(_cli(), base)
    assert refused.exit_code == 2 and "no purpose given" in refused.output
    out = tmp_path / "query.csv"
    done = runner.invoke(_cli(), [*base, "--purpose", "ZAAK-1", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "wrote 2 rows" in done.output
    data = out.read_bytes()
    assert not any(clear in data for clear in CLEAR[:2])
    shown = runner.invoke(_cli(), [*base, "--purpose", "ZAAK-1"])
    assert shown.exit_code == 0 and pseudonymise_phone(PHONE_A, KEY)[:10] in shown.output


def test_cli_query_refuses_a_limit_below_one(db_url: str) -> None:
    """A limit of 0 or less would show only the header, and be audited as a query."""
    runner = CliRunner(env={KEY_ENV: KEY.decode()})
    for limit in ("0", "-1"):
        refused = runner.invoke(_cli(), ["query", "SELECT 1", "--db", db_url, "--limit", limit])
        assert refused.exit_code == 2, refused.output
        assert "--limit" in refused.output
