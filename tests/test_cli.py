"""Every command has --help and is named in the README."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lovitura_crawl.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found += _commands(command, path)
    return found


@pytest.mark.parametrize("path", _commands(main), ids=" ".join)
def test_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.parametrize("path", _commands(main), ids=" ".join)
def test_documented_in_readme(path: tuple[str, ...]) -> None:
    assert f"lovitura {' '.join(path)}" in README or f"`{path[-1]}`" in README


def test_report_needs_exactly_one_subject(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--out", str(tmp_path / "x.csv")])
    assert result.exit_code != 0
    assert "exactly one of --municipality and --person" in result.output


def test_downgrade_asks_before_it_deletes(tmp_path: Path) -> None:
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'd.sqlite'}"
    assert CliRunner().invoke(main, ["db", "upgrade", "--db", url]).exit_code == 0
    refused = CliRunner().invoke(main, ["db", "downgrade", "--db", url, "--revision", "base"])
    assert refused.exit_code == 2 and "--yes" in refused.output
    engine = sqlalchemy.create_engine(url)
    assert "ads" in sqlalchemy.inspect(engine).get_table_names()
    done = CliRunner().invoke(main, ["db", "downgrade", "--db", url, "--revision", "base", "--yes"])
    assert done.exit_code == 0, done.output
    assert "ads" not in sqlalchemy.inspect(engine).get_table_names()
    engine.dispose()


def test_crawl_names_the_sites_it_knows(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["crawl", "--db", f"sqlite:///{tmp_path / 'c.sqlite'}", "nosuchsite"]
    )
    assert result.exit_code == 2
    assert "nosuchsite" in result.output and "roodlicht" in result.output
    assert not (tmp_path / "c.sqlite").exists()  # refused before anything is written


@pytest.mark.parametrize(
    ("site_url", "said"),
    [
        ("roodlicht=not-a-url", "not an http(s) URL"),
        ("roodlicht=ftp://127.0.0.1/", "not an http(s) URL"),
        ("roodlicht=http://", "not an http(s) URL"),
        ("escortgids=http://127.0.0.1:8403/", "not among the sites of this crawl"),
        ("roodlicht=http://127.0.0.1:99999/", "Port out of range"),
        ("roodlicht=http://127.0.0.1:8401/a b/", "not an http(s) URL"),
    ],
)
def test_crawl_checks_site_urls_before_it_writes(tmp_path: Path, site_url: str, said: str) -> None:
    db = tmp_path / "c.sqlite"
    args = ["crawl", "--db", f"sqlite:///{db}", "--site-url", site_url, "roodlicht"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert not db.exists()  # refused before anything is written


# Commands that read or change an existing database, with arguments they accept otherwise.
NEEDS_A_DATABASE = [
    ["link"],
    ["explain", "--person", "1"],
    ["evaluate", "--truth", "."],
    ["report", "--person", "1", "--out", "r.csv"],
    ["export", "--out", "e.jsonl"],
    ["purge", "--dry-run"],
    ["query", "SELECT 1"],
    ["subject", "--phone", "0612345678", "--out", "s.json"],
    ["audit", "verify"],
    ["audit", "show"],
    ["db", "pseudonymise"],
    ["db", "downgrade", "--revision", "base", "--yes"],
    ["purpose", "list"],
    ["purpose", "close", "X"],
    ["purpose", "attach", "X", "--ad", "1"],
]


@pytest.mark.parametrize("args", NEEDS_A_DATABASE, ids=" ".join)
def test_a_mistyped_sqlite_path_is_no_new_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOVITURA_DATABASE_URL", raising=False)
    monkeypatch.setenv("LOVITURA_PURPOSE", "X")
    monkeypatch.setenv("LOVITURA_PSEUDONYM_KEY", "k" * 40)
    missing = tmp_path / "typo" / "lovitura.sqlite"
    result = CliRunner().invoke(main, [*args, "--db", f"sqlite:///{missing}"])
    assert result.exit_code == 1, result.output
    assert f"no database at {missing} (from --db)" in result.output
    assert not missing.parent.exists()
    # The default file in the current folder is no exception.
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "no database at var/lovitura.sqlite (from the default)" in result.output
    assert not (tmp_path / "var").exists()


def test_purpose_add_on_a_new_database_creates_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    args = ["purpose", "add", "ZAAK-9", "--db", url, "--description", "d", "--legal-basis", "b"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(main, ["purpose", "list", "--db", url])
    assert "ZAAK-9" in listed.output


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "new" / "lovitura.sqlite"
    args = ["purpose", "add", "ZAAK-1", "--db", f"sqlite:///{db}", "--description", "d"]
    result = CliRunner().invoke(main, [*args, "--legal-basis", "b"])
    assert result.exit_code == 0, result.output
    assert db.stat().st_mode & 0o777 == 0o600
    for extra in ("-wal", "-shm"):  # SQLite gives them the database's mode
        side = db.with_name(db.name + extra)
        assert not side.exists() or side.stat().st_mode & 0o777 == 0o600


def test_a_refused_purpose_code_makes_no_database(tmp_path: Path) -> None:
    db = tmp_path / "new" / "lovitura.sqlite"
    args = ["purpose", "add", "T", "--db", f"sqlite:///{db}", "--description", "d"]
    result = CliRunner().invoke(main, [*args, "--legal-basis", "b"])
    assert result.exit_code == 2, result.output
    assert "not a valid purpose code" in result.output
    assert not db.parent.exists()


def test_a_crawl_needs_a_database_with_its_purpose(tmp_path: Path) -> None:
    db = tmp_path / "new" / "lovitura.sqlite"
    args = ["crawl", "roodlicht", "--db", f"sqlite:///{db}", "--purpose", "ZAAK-1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "lovitura purpose add CODE --db URL" in result.output
    assert not db.parent.exists()


def test_crawl_refuses_an_unreachable_redis_before_it_writes(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    args = ["crawl", "roodlicht", "--db", f"sqlite:///{db}", "--redis", "redis://127.0.0.1:1/0"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in result.output
    assert not db.exists()


@pytest.mark.parametrize("sql", ["", "  ", ";", " ; "])
def test_query_without_a_statement_asks_for_one(tmp_path: Path, sql: str) -> None:
    result = CliRunner().invoke(main, ["query", sql, "--db", f"sqlite:///{tmp_path / 'q.sqlite'}"])
    assert result.exit_code == 2, result.output
    assert "give SQL" in result.output


def test_downgrade_to_an_unknown_revision_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.sqlite'}"
    assert CliRunner().invoke(main, ["db", "upgrade", "--db", url]).exit_code == 0
    result = CliRunner().invoke(
        main, ["db", "downgrade", "--db", url, "--revision", "nonsense", "--yes"]
    )
    assert result.exit_code == 1, result.output
    assert "nonsense" in result.output and "alembic history" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
