"""``lovitura export --format jsonl``: the stored observations in the item schema, pseudonymised
by default; a clear export ingested elsewhere gives the same ads, versions, observations, phones
and photo fingerprints."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from fixtures.world import build_world
from fixtures.world_items import write_world_items
from lovitura_crawl.db import models, models_privacy
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.privacy.pseudonym import pseudonymise_phone
from pipelines.phones import find_phones
from tests.dbs import fresh_postgres
from tests.itemruns import PURPOSE, ingest, lovitura, registered, snapshot

DAYS = 3


def filled(db_url: str, folder: Path) -> str:
    """``db_url`` with three days of the tiny world ingested."""
    items = folder / "world" / "items.jsonl"
    write_world_items(build_world(1, scale="tiny"), items, days=range(DAYS))
    ingest(items, registered(db_url), "--quiet")
    return db_url


def export(db_url: str, out: Path, *options: str) -> str:
    done = lovitura(
        "export", "--db", db_url, "--purpose", PURPOSE, "--out", str(out), *options, cwd=out.parent
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@contextmanager
def another(db_url: str, folder: Path) -> Iterator[str]:
    """A second migrated database on the backend of ``db_url``."""
    if db_url.startswith("sqlite"):
        yield registered(f"sqlite:///{folder / 'other.sqlite'}", migrate=True)
    else:
        with fresh_postgres() as url:
            yield registered(url, migrate=True)


def test_a_clear_export_ingested_elsewhere_gives_the_same_database(
    db_url: str, tmp_path: Path
) -> None:
    filled(db_url, tmp_path)
    out = tmp_path / "export" / "clear.jsonl"
    out.parent.mkdir()
    export(db_url, out, "--clear")
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(line["schema_version"] == 1 for line in lines)
    assert out.stat().st_mode & 0o077 == 0, "readable by its owner only"
    with another(db_url, tmp_path) as other:
        ingest(out, other, "--quiet")
        assert snapshot(other) == snapshot(db_url)


def test_a_pseudonymised_export_keeps_no_number_and_is_audited(tmp_path: Path) -> None:
    db_url = filled(registered(f"sqlite:///{tmp_path / 'db.sqlite'}", migrate=True), tmp_path)
    key_file = tmp_path / "key"
    key_file.write_text(secrets.token_hex(32), encoding="ascii")
    key_file.chmod(0o600)
    out = tmp_path / "pseudonymised.jsonl"
    printed = export(db_url, out, "--key-file", str(key_file))
    key = key_file.read_text(encoding="ascii").strip().encode()

    engine = make_engine(db_url)
    with engine.connect() as conn:
        phones = set(conn.execute(select(models.AdPhone.phone)).scalars())
        entry = conn.execute(
            select(
                models_privacy.AuditEntry.command,
                models_privacy.AuditEntry.file_sha256,
                models_privacy.AuditEntry.rows,
            )
        ).one()
    engine.dispose()
    written = out.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in written.splitlines()]
    assert phones and len(lines) == entry.rows
    for line in lines:
        for name in ("title", "text", "phone_text", "place", "nickname"):
            assert find_phones(line.get(name) or "") == [], (name, line["site_ad_id"])
        assert all(photo["url"].startswith("pf_") for photo in line.get("photos", []))
    for phone in phones:
        assert phone not in written and phone[3:] not in written
        assert pseudonymise_phone(phone, key) in written
    assert entry.command == "export" and entry.file_sha256 in printed


def test_an_export_needs_a_key_or_clear(tmp_path: Path) -> None:
    db_url = registered(f"sqlite:///{tmp_path / 'db.sqlite'}", migrate=True)
    done = lovitura(
        "export", "--db", db_url, "--purpose", PURPOSE, "--out", "x.jsonl", cwd=tmp_path
    )
    assert done.returncode != 0 and "pseudonym key" in done.stderr
    assert not (tmp_path / "x.jsonl").exists()
