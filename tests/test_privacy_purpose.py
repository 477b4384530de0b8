"""Purposes and case ids: refused without one (except in the demo), registered, closed."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from lovitura_crawl.cli_privacy import register
from lovitura_crawl.db.store import AdStore
from lovitura_crawl.privacy import audit, purpose
from lovitura_crawl.privacy.purpose import (
    CRAWL_RUN_PURPOSES,
    DEMO_PURPOSE,
    PURPOSE_ENV,
    PurposeError,
    require_purpose,
)
from tests.privacy_data import item, save


def test_refused_without_a_purpose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PURPOSE_ENV, raising=False)
    with pytest.raises(PurposeError, match="--purpose"):
        require_purpose(None)
    assert require_purpose(None, demo=True) == DEMO_PURPOSE
    assert require_purpose("ZAAK-2026-0142") == "ZAAK-2026-0142"
    monkeypatch.setenv(PURPOSE_ENV, "ZAAK-9")
    assert require_purpose(None) == "ZAAK-9"


@pytest.mark.parametrize("code", ["x", "-begint-met-streep", "met spatie", "a" * 65, "zaak;drop"])
def test_malformed_codes_are_refused(code: str) -> None:
    with pytest.raises(PurposeError, match="not a valid purpose code"):
        require_purpose(code)


def test_register_check_close(engine: Engine) -> None:
    with pytest.raises(PurposeError, match="not registered"):
        purpose.open_purpose(engine, "ZAAK-1")
    info = purpose.register(engine, "ZAAK-1", "mensenhandel Zwolle", "Wpg art. 9", "tester")
    assert purpose.register(engine, "ZAAK-1", "mensenhandel Zwolle", "Wpg art. 9", "x") == info
    with pytest.raises(PurposeError, match="another description"):
        purpose.register(engine, "ZAAK-1", "iets anders", "Wpg art. 9", "tester")
    assert purpose.open_purpose(engine, "ZAAK-1") == "ZAAK-1"
    purpose.close(engine, "ZAAK-1", at=datetime(2026, 12, 1, tzinfo=UTC))
    with pytest.raises(PurposeError, match="closed on 2026-12-01"):
        purpose.open_purpose(engine, "ZAAK-1")
    assert purpose.open_purpose(engine, None, demo=True) == DEMO_PURPOSE
    assert [p.code for p in purpose.all_purposes(engine)] == ["ZAAK-1", DEMO_PURPOSE]


def test_runs_and_case_ads_are_stored_with_their_purpose(engine: Engine) -> None:
    purpose.register(engine, "ZAAK-1", "test", "Wpg art. 9", "tester")
    run_id = AdStore(engine).start_run("roodlicht", datetime(2026, 11, 2, tzinfo=UTC))
    purpose.record_crawl_run(engine, run_id, "ZAAK-1")
    purpose.record_crawl_run(engine, run_id, "ZAAK-1")
    with engine.connect() as conn:
        assert conn.execute(select(CRAWL_RUN_PURPOSES)).all() == [(run_id, "ZAAK-1")]
    ids = save(engine, [item("a1", "+31612345001", "x", 2)])
    assert purpose.attach_ads(engine, "ZAAK-1", [ids["a1"]], "tester") == 1
    assert purpose.attach_ads(engine, "ZAAK-1", [ids["a1"]], "tester") == 0
    with pytest.raises(PurposeError, match="no ads with ids"):
        purpose.attach_ads(engine, "ZAAK-1", [9999], "tester")


def test_cli_purpose_commands_are_audited(db_url: str, engine: Engine) -> None:
    @click.group()
    def root() -> None:
        pass

    root.add_command(click.Group("db"))
    register(root)
    runner = CliRunner()
    add = ["purpose", "add", "ZAAK-2", "--db", db_url]
    added = runner.invoke(root, [*add, "--description", "carrousel", "--legal-basis", "Wpg 9"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(root, ["purpose", "list", "--db", db_url])
    assert "ZAAK-2" in listed.output
    closed = runner.invoke(root, ["purpose", "close", "ZAAK-2", "--db", db_url])
    assert closed.exit_code == 0
    again = runner.invoke(root, ["purpose", "close", "ZAAK-2", "--db", db_url])
    assert again.exit_code == 1 and "closed on" in again.output
    commands = [e.command for e in audit.records(engine)]
    assert commands == ["purpose close", "purpose add"]
