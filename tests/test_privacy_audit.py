"""The hash-chained audit log: appends chain, verify catches edited and removed entries."""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, delete, func, select, update

from lovitura_crawl.cli_privacy import register
from lovitura_crawl.privacy import audit
from lovitura_crawl.privacy.audit import AUDIT


def _fill(engine: Engine, n: int = 5) -> list[audit.AuditRecord]:
    return [
        audit.append(
            engine,
            "analist1",
            "ZAAK-1",
            "report",
            {"municipality": "GM0193", "n": i},
            rows=i,
            file_sha256="ab" * 32,
        )
        for i in range(n)
    ]


def test_entries_chain_and_verify(engine: Engine) -> None:
    entries = _fill(engine)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(entries))
    result = audit.verify(engine, expect_head=entries[-1].head)
    assert result.ok and result.entries == 5 and result.head == entries[-1].head


def test_records_hold_what_was_done(engine: Engine) -> None:
    _fill(engine, 2)
    newest = audit.records(engine, limit=1)[0].as_dict()
    assert newest["actor"] == "analist1" and newest["purpose"] == "ZAAK-1"
    assert newest["filters"] == {"municipality": "GM0193", "n": 1}
    assert newest["rows"] == 1 and newest["file_sha256"] == "ab" * 32
    assert newest["at"].endswith("Z") and newest["host"]


def test_edited_entry_is_caught(engine: Engine) -> None:
    _fill(engine)
    with engine.begin() as conn:
        conn.execute(update(AUDIT).where(AUDIT.c.seq == 3).values(rows=999))
    result = audit.verify(engine)
    assert not result.ok
    assert any("entry 3 was edited" in p for p in result.problems)


def test_edit_with_recomputed_hash_is_caught_by_the_next_entry(engine: Engine) -> None:
    _fill(engine)
    with engine.connect() as conn:
        row = conn.execute(select(AUDIT).where(AUDIT.c.seq == 2)).one()
    forged = {**row._mapping, "filters": '{"municipality":"GM0363"}'}
    with engine.begin() as conn:
        conn.execute(
            update(AUDIT)
            .where(AUDIT.c.seq == 2)
            .values(filters=forged["filters"], entry_hash=audit.entry_hash(forged))
        )
    problems = audit.verify(engine).problems
    assert any("entry 3 does not follow" in p for p in problems)


@pytest.mark.parametrize("seq", [1, 3])
def test_removed_entry_is_caught(engine: Engine, seq: int) -> None:
    _fill(engine)
    with engine.begin() as conn:
        conn.execute(delete(AUDIT).where(AUDIT.c.seq == seq))
    problems = audit.verify(engine).problems
    assert any(f"entry {seq} removed" in p for p in problems)


def test_removed_last_entries_are_caught_with_the_recorded_head(engine: Engine) -> None:
    entries = _fill(engine)
    with engine.begin() as conn:
        conn.execute(delete(AUDIT).where(AUDIT.c.seq >= 4))
    assert audit.verify(engine).ok  # a shorter chain is still a chain ...
    problems = audit.verify(engine, expect_head=entries[-1].head).problems
    assert any("removed from the end" in p for p in problems)  # ... but not the one recorded


def test_concurrent_appends_keep_one_chain(engine: Engine) -> None:
    def work() -> None:
        for i in range(6):
            audit.append(engine, "crawler", None, "crawl", {"i": i})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = audit.verify(engine)
    assert result.ok and result.entries == 24
    with engine.connect() as conn:
        assert conn.execute(select(func.max(AUDIT.c.seq))).scalar_one() == 24


def _cli() -> click.Group:
    @click.group()
    def root() -> None:
        pass

    root.add_command(click.Group("db"))
    register(root)
    return root


def test_cli_verify_fails_on_a_tampered_log(db_url: str, engine: Engine, tmp_path: Path) -> None:
    entries = _fill(engine, 3)
    runner = CliRunner()
    good = runner.invoke(_cli(), ["audit", "verify", "--db", db_url])
    assert good.exit_code == 0, good.output
    assert entries[-1].head in good.output
    shown = runner.invoke(_cli(), ["audit", "show", "--db", db_url, "--json", "--limit", "2"])
    assert shown.exit_code == 0 and shown.output.count('"command": "report"') == 2
    with engine.begin() as conn:
        conn.execute(update(AUDIT).where(AUDIT.c.seq == 2).values(actor="iemand-anders"))
    bad = runner.invoke(_cli(), ["audit", "verify", "--db", db_url])
    assert bad.exit_code == 1
    assert "entry 2 was edited" in bad.output


def test_times_in_another_zone_keep_the_chain_intact(engine: Engine) -> None:
    amsterdam = timezone(timedelta(hours=1))
    audit.append(engine, "a", None, "report", {}, at=datetime(2026, 11, 2, 12, 0, tzinfo=amsterdam))
    assert audit.verify(engine).ok
    assert audit.records(engine)[0].as_dict()["at"] == "2026-11-02T11:00:00.000000Z"
