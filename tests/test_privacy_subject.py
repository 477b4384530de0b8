"""Subject rights: export everything linked to a phone number, and erase it with a receipt."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from lovitura_crawl.cli_privacy import register
from lovitura_crawl.db import models
from lovitura_crawl.privacy import audit, identifiers, purpose, subject, traces
from lovitura_crawl.privacy.pseudonym import KEY_ENV, pseudonymise_phone
from tests.privacy_data import KEY, item, link, person, save, sqlite_bytes

PHONE = "+31612347001"
OTHER = "+31612347002"
NEEDLES = (PHONE, "0612347001", "SUBJECT-TEKST", "advertentie/s1", "advertentie/s2")


def _seed(engine: Engine) -> dict[str, int]:
    first = item("s1", PHONE, "SUBJECT-TEKST een", 2)
    changed = item("s2", OTHER, "SUBJECT-TEKST twee", 3)
    ids = save(
        engine, [first, item("s2", PHONE, "SUBJECT-TEKST twee", 2), item("x1", OTHER, "ander", 2)]
    )
    save(engine, [changed])  # s2 no longer shows the number, but an old version did
    person(engine, 3, [ids["s1"], ids["s2"]], network_id=5)
    person(engine, 4, [ids["x1"]])
    link(engine, ids["s1"], ids["s2"], "phone", PHONE)
    purpose.register(engine, "AVG-VERZOEK-7", "request of a data subject", "AVG art. 15/17", "fg")
    identifiers.sync(engine, KEY)
    audit.append(
        engine, "analist1", "AVG-VERZOEK-7", "query", {"phone": pseudonymise_phone(PHONE, KEY)}
    )
    return ids


def test_export_holds_every_record_and_derived_trail(engine: Engine, tmp_path: Path) -> None:
    ids = _seed(engine)
    records = subject.find(engine, PHONE, KEY)
    assert records.ad_ids == sorted([ids["s1"], ids["s2"]]) and records.person_ids == [3]
    out = tmp_path / "verzoek.json"
    done = subject.export(engine, records, out, actor="fg", purpose="AVG-VERZOEK-7")

    assert os.stat(out).st_mode & 0o777 == 0o600
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["subject"]["phone"] == PHONE and (done.ads, done.persons) == (2, 1)
    first = next(a for a in document["ads"] if a["ad"]["site_ad_id"] == "s1")
    assert {"ad_versions", "ad_observations", "ad_phones", "ad_photos"} <= set(first)
    assert first["ad_phones"][0]["phone"] == PHONE and first["links"]
    her = document["persons"][0]
    assert her["trail_stays"][0]["municipality_code"] == "GM0193"
    assert her["network"]["id"] == 5 and sorted(her["ad_ids"]) == records.ad_ids
    assert [p["command"] for p in document["processing"]] == ["query"]
    entry = audit.records(engine, limit=1)[0]
    assert entry.command == "subject export" and entry.file_sha256 == done.sha256
    assert PHONE not in entry.filters and records.pseudonym in entry.filters


def test_erase_removes_records_and_derived_data_with_a_receipt(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    ids = _seed(engine)
    records = subject.find(engine, PHONE, KEY)
    receipt = subject.erase_subject(engine, records, actor="fg", purpose="AVG-VERZOEK-7")

    assert receipt.counts["ads"] == 2 and receipt.counts["persons"] == 1
    assert receipt.counts["trail_stays"] == 1 and receipt.counts["links"] == 1
    assert receipt.remaining == {}
    with engine.connect() as conn:
        assert conn.execute(select(models.Ad.id)).scalars().all() == [ids["x1"]]
        assert conn.execute(select(func.count()).select_from(models.Person)).scalar_one() == 1
        assert traces.mentions(conn, NEEDLES) == {}
        assert traces.mentions(conn, [OTHER]) != {}  # someone else's data stays
    if db_url.startswith("sqlite"):
        data = sqlite_bytes(db_url)
        assert [n for n in NEEDLES if n.encode() in data] == []
    entry = audit.records(engine, limit=1)[0]
    assert entry.command == "subject erase" and entry.head == receipt.audit_head
    assert PHONE not in (entry.detail or "") + entry.filters
    assert audit.verify(engine).ok
    assert subject.find(engine, PHONE, KEY).ad_ids == []


def test_cli_subject_export_and_erase(db_url: str, engine: Engine, tmp_path: Path) -> None:
    _seed(engine)

    @click.group()
    def root() -> None:
        pass

    root.add_command(click.Group("db"))
    register(root)
    runner = CliRunner(env={KEY_ENV: KEY.decode(), "LOVITURA_PURPOSE": "AVG-VERZOEK-7"})
    out = tmp_path / "verzoek.json"
    base = ["subject", "--db", db_url, "--phone", "06 1234 7001", "--out", str(out)]
    exported = runner.invoke(root, base)
    assert exported.exit_code == 0, exported.output
    assert "wrote 2 ads and 1 persons" in exported.output
    kept = runner.invoke(root, [*base, "--erase"], input="n\n")
    assert kept.exit_code == 1 and "Aborted" in kept.output
    erased = runner.invoke(root, [*base, "--erase", "--yes"])
    assert erased.exit_code == 0, erased.output
    assert "erased" in erased.output and "2 ads" in erased.output
    assert json.loads(out.read_text(encoding="utf-8"))["ads"] != []  # the copy was made first
