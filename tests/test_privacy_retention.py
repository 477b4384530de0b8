"""Retention: a purge with an advanced clock deletes what expired from every table and from the
database files themselves, keeps what is protected, records a receipt, and is safe to repeat."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from lovitura_crawl.cli_privacy import register
from lovitura_crawl.db import models
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.db.migrate import upgrade
from lovitura_crawl.db.reference import load_municipalities
from lovitura_crawl.privacy import audit, identifiers, purpose, traces
from lovitura_crawl.privacy.retention import (
    POLICY_ENV,
    FolderTerm,
    PolicyError,
    RetentionPolicy,
    load_policy,
    purge,
)
from tests.privacy_data import KEY, item, person, save, sqlite_bytes

LAST_SEEN = datetime(2026, 11, 2, 11, 0, tzinfo=UTC)
OLD = {"phone": "+31612340001", "text": "GEHEIM-OUD-tekst bel 0612340001"}
NEEDLES = (OLD["phone"], "0612340001", "GEHEIM-OUD", "foto/old.jpg", "advertentie/old")


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A purge with an advanced clock would remove every lovitura-* temporary file of the
    machine: point it at a folder of this test."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder


def _seed(engine: Engine) -> dict[str, int]:
    ids = save(
        engine,
        [
            item("old", OLD["phone"], OLD["text"], 2),
            item("pers", "+31612340002", "Persoon tekst", 2),
            item("case", "+31612340003", "Zaak tekst", 2),
            item("new", "+31612340004", "Nieuwe tekst", 19),
        ],
    )
    person(engine, 1, [ids["pers"]], network_id=1)
    purpose.register(engine, "ZAAK-1", "test case", "Wpg art. 9", "tester")
    purpose.attach_ads(engine, "ZAAK-1", [ids["case"]], "tester")
    identifiers.sync(engine, KEY)
    return ids


def _ads(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(models.Ad.site_ad_id)).scalars())


def _after(days: int) -> datetime:
    return LAST_SEEN + timedelta(days=days)


def test_purge_leaves_no_trace_of_expired_ads(db_url: str, engine: Engine) -> None:
    ids = _seed(engine)
    sqlite = db_url.startswith("sqlite")
    if sqlite:
        traces.checkpoint(engine)
        assert all(n.encode() in sqlite_bytes(db_url) for n in NEEDLES)  # the test can fail
    receipt = purge(engine, RetentionPolicy(), _after(100), actor="cron")

    assert _ads(engine) == {"pers", "case", "new"}
    assert receipt.counts["ads"] == 1 and receipt.counts["ad_phones"] == 1
    assert receipt.counts["ad_versions"] == 1 and receipt.counts["ad_observations"] == 1
    assert receipt.counts["pseudonyms"] == 1
    if sqlite:
        data = sqlite_bytes(db_url)
        assert [n for n in NEEDLES if n.encode() in data] == []
        assert b"+31612340002" in data  # what is kept is still there
        assert receipt.storage["clean"]
    with engine.connect() as conn:
        assert traces.mentions(conn, NEEDLES) == {}
        assert traces.mentions(conn, ["+31612340002"])["ad_phones"] == 1
    entry = audit.records(engine, limit=1)[0]
    assert entry.command == "purge" and entry.rows == receipt.total_rows
    assert '"ads":1' in (entry.detail or "") and '"unlinked_ad_days":90' in (entry.detail or "")
    assert entry.head == receipt.audit_head and audit.verify(engine).ok
    assert purge(engine, RetentionPolicy(), _after(100), actor="cron").total_rows == 0
    assert ids["old"] not in purpose.ads_of_persons(engine, [1])


def test_person_term_closed_case_and_maximum_term(engine: Engine) -> None:
    _seed(engine)
    policy = RetentionPolicy(max_days=500)
    purge(engine, policy, _after(100), actor="cron")
    purge(engine, policy, _after(400), actor="cron")
    assert _ads(engine) == {"case"}  # the person's ad went after 365 days, her trail with it
    with engine.connect() as conn:
        for model in (models.Person, models.TrailStay, models.Network):
            assert conn.execute(select(func.count()).select_from(model)).scalar_one() == 0

    purpose.close(engine, "ZAAK-1", at=_after(380))
    purge(engine, policy, _after(400), actor="cron")
    assert _ads(engine) == {"case"}  # closed 20 days ago: still protected for 30
    assert purge(engine, policy, _after(420), actor="cron").counts["ads"] == 1
    assert _ads(engine) == set()
    assert audit.verify(engine).ok


def test_open_case_is_kept_until_the_maximum_term(engine: Engine) -> None:
    _seed(engine)
    policy = RetentionPolicy(max_days=500)
    purge(engine, policy, _after(499), actor="cron")
    assert _ads(engine) == {"case"}
    purge(engine, policy, _after(501), actor="cron")
    assert _ads(engine) == set()


def test_person_who_keeps_ads_loses_her_trail_until_it_is_rebuilt(engine: Engine) -> None:
    ids = save(
        engine,
        [item("p-old", "+31612340005", "oud", 2), item("p-new", "+31612340006", "nieuw", 19)],
    )
    person(engine, 7, [ids["p-old"], ids["p-new"]])
    rebuilt: list[Engine] = []
    receipt = purge(engine, RetentionPolicy(), _after(380), actor="cron", rebuild=rebuilt.append)
    assert _ads(engine) == {"p-new"}
    assert receipt.counts["trail_stays"] == 1 and receipt.persons_to_rebuild == 1
    assert rebuilt == [engine] and receipt.trails_rebuilt
    with engine.connect() as conn:
        n_ads, first = conn.execute(
            select(models.Person.n_ads, models.Person.first_seen_at).where(models.Person.id == 7)
        ).one()
    assert n_ads == 1 and first is not None and first.day == 19


def test_dry_run_changes_nothing(engine: Engine) -> None:
    _seed(engine)
    receipt = purge(engine, RetentionPolicy(), _after(100), actor="cron", dry_run=True)
    assert receipt.counts["ads"] == 1 and receipt.audit_head is None
    assert _ads(engine) == {"old", "pers", "case", "new"}
    assert audit.records(engine) == []


def _sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'files.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    load_municipalities(engine)
    engine.dispose()
    return url


def test_expired_files_go_and_the_database_stays(tmp_path: Path, private_tempdir: Path) -> None:
    url = _sqlite(tmp_path)
    engine = make_engine(url)
    export, changed = tmp_path / "report.csv", tmp_path / "changed.csv"
    for path in (export, changed):
        path.write_text("person_id\n7\n", encoding="utf-8")
        digest = audit.file_sha256(path)
        audit.append(engine, "a", "ZAAK-1", "report", {}, 1, digest, file_path=path)
    changed.write_text("iets anders\n", encoding="utf-8")
    cache = tmp_path / "var"
    (cache / "jobs").mkdir(parents=True)
    (cache / "jobs" / "requests.queue").write_text("http://127.0.0.1/advertentie/1")
    scratch = private_tempdir / "lovitura-abc"
    scratch.mkdir()
    (scratch / "photo.jpg").write_bytes(b"x")
    (private_tempdir / "other-program").write_text("not ours")
    database = Path(url.removeprefix("sqlite:///"))
    policy = RetentionPolicy(folders=(FolderTerm(cache, 10),))

    receipt = purge(engine, policy, datetime.now(UTC) + timedelta(days=40), actor="cron")

    assert not export.exists() and changed.exists()
    assert not (cache / "jobs" / "requests.queue").exists() and not scratch.exists()
    assert (private_tempdir / "other-program").exists()
    assert database.exists() and audit.verify(engine).ok
    assert receipt.files["exports"] == 1 and receipt.files["temp"] == 1
    engine.dispose()


def test_policy_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "retention.toml"
    path.write_text(
        "[retention]\nunlinked_ad_days = 30\nmax_days = 730\n"
        '[[retention.folders]]\npath = "/srv/lovitura/cache"\ndays = 3\n',
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert (policy.unlinked_ad_days, policy.person_ad_days, policy.max_days) == (30, 365, 730)
    assert policy.folders == (FolderTerm(Path("/srv/lovitura/cache"), 3),)
    assert load_policy(env={POLICY_ENV: str(path)}) == policy
    assert load_policy(env={}) == RetentionPolicy()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[retention]\nunlinked_days = 3\n", "unknown retention terms"),
        ("[retention]\nunlinked_ad_days = 400\n", "unlinked_ad_days <= person_ad_days"),
        ("[retention]\nmax_days = -1\n", ">= 0"),
        ("[retentie]\n", "no \\[retention\\] section"),
        ("[retention\n", "cannot read"),
        ('[retention]\n[[retention.folders]]\npath = "/x"\n', "days = N"),
    ],
)
def test_bad_policies_say_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "retention.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(PolicyError, match=message):
        load_policy(path)


def test_cli_purge_from_cron(tmp_path: Path) -> None:
    @click.group()
    def root() -> None:
        pass

    root.add_command(click.Group("db"))
    register(root)
    url = _sqlite(tmp_path)
    engine = make_engine(url)
    save(engine, [item("old", OLD["phone"], OLD["text"], 2)])
    engine.dispose()
    runner = CliRunner()
    now = ["--now", _after(100).isoformat()]
    dry = runner.invoke(root, ["purge", "--db", url, "--dry-run", *now])
    assert dry.exit_code == 0 and "would delete" in dry.output and "1 ads;" in dry.output
    done = runner.invoke(root, ["purge", "--db", url, "--quiet", *now])
    assert done.exit_code == 0 and done.output == ""
    assert OLD["phone"].encode() not in sqlite_bytes(url)
    bad = runner.invoke(root, ["purge", "--db", url, "--now", "gisteren"])
    assert bad.exit_code == 2 and "ISO 8601" in bad.output


def test_purge_covers_every_folder_a_crawl_writes(tmp_path: Path) -> None:
    from scrapy.settings import Settings

    from lovitura_crawl.privacy.files import crawl_directories

    settings = Settings(
        {
            "JOBDIR": str(tmp_path / "job"),
            "FILES_STORE": str(tmp_path / "files"),
            "IMAGES_STORE": "s3://bucket/images",
            "LOVITURA_WARC_DIR": str(tmp_path / "warc"),
        }
    )
    found = set(crawl_directories(settings))
    assert {tmp_path / "job", tmp_path / "files", tmp_path / "warc"} <= found
    assert not any("bucket" in str(path) for path in found)
