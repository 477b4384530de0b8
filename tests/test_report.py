"""CSV trail reports: content, spreadsheet safety, encoding."""

from __future__ import annotations

import csv
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from lovitura_crawl.db import models
from lovitura_crawl.db.store import AdStore
from lovitura_crawl.report import (
    ReportError,
    clear_labels,
    municipality_report,
    person_report,
    pseudonym_labels,
    safe_cell,
)

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+31612345678", "'+31612345678"),
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Súdwest-Fryslân", "Súdwest-Fryslân"),
        (None, ""),
        (7, "7"),
    ],
)
def test_safe_cell(value: object, expected: str) -> None:
    assert safe_cell(value) == expected


def _seed(engine: Engine) -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    item = {
        "site": "roodlicht",
        "site_ad_id": "1",
        "url": "http://127.0.0.1/1",
        "observed_at": "2026-11-10T12:00:00+01:00",
        "phones": [{"e164": "+31612345678", "start": 0, "end": 10, "field": "text"}],
    }
    AdStore(engine).save([item, {**item, "site_ad_id": "2", "phones": item["phones"]}])
    with engine.begin() as conn:
        conn.execute(
            models.Person.__table__.insert(),
            [{"id": 3, "created_at": now, "updated_at": now, "n_ads": 2}],
        )
        conn.execute(models.Ad.__table__.update().values(person_id=3))
        conn.execute(
            models.Link.__table__.insert(),
            [
                {
                    "ad_a": 1,
                    "ad_b": 2,
                    "kind": "phone",
                    "level": "person",
                    "value": "x",
                    "strength": 1.0,
                    "created_at": now,
                }
            ],
        )
        stays = [
            ("GM0983", "NL", date(2026, 11, 2), date(2026, 11, 9)),
            (None, "BE", date(2026, 11, 10), date(2026, 11, 12)),
            ("GM1900", "NL", date(2026, 11, 13), date(2026, 11, 25)),
        ]
        conn.execute(
            models.TrailStay.__table__.insert(),
            [
                {
                    "person_id": 3,
                    "municipality_code": c,
                    "country": k,
                    "arrived_at": a,
                    "left_at": b,
                    "n_ads": 1,
                    "sites": "roodlicht",
                }
                for c, k, a, b in stays
            ],
        )


def _read(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_municipality_report_names_where_she_came_from(engine: Engine, tmp_path: Path) -> None:
    _seed(engine)
    result = municipality_report(engine, "GM1900", tmp_path / "r.csv", phone_label=clear_labels)

    rows = _read(result.path)
    assert result.rows == 1 and len(rows) == 1
    row = rows[0]
    assert row["municipality"] == "Súdwest-Fryslân"
    assert row["came_from"] == "België"
    assert "Venlo (GM0983) 2026-11-02..2026-11-09" in row["previous_stays"]
    assert row["phones"] == "'+31612345678"
    assert row["evidence"] == "phone/person x1"
    assert row["n_municipalities"] == "3"


def test_reports_hold_no_clear_phone_number_by_default(engine: Engine, tmp_path: Path) -> None:
    _seed(engine)
    with pytest.raises(ReportError, match="LOVITURA_PSEUDONYM_KEY"):
        municipality_report(engine, "GM1900", tmp_path / "r.csv")
    result = municipality_report(engine, "GM1900", tmp_path / "r.csv", None, pseudonym_labels(KEY))

    content = result.path.read_text(encoding="utf-8-sig")
    assert "612345678" not in content
    assert _read(result.path)[0]["phones"].startswith("ph_")


def test_since_filters_old_stays(engine: Engine, tmp_path: Path) -> None:
    _seed(engine)
    result = municipality_report(
        engine, "GM0983", tmp_path / "r.csv", since=date(2026, 11, 10), phone_label=clear_labels
    )
    assert result.rows == 0


def test_person_report_lists_every_stay(engine: Engine, tmp_path: Path) -> None:
    _seed(engine)
    rows = _read(person_report(engine, 3, tmp_path / "p.csv", pseudonym_labels(KEY)).path)
    assert [r["municipality"] for r in rows] == ["Venlo", "België", "Súdwest-Fryslân"]
    assert [r["days"] for r in rows] == ["8", "3", "13"]


def test_unknown_municipality_and_person_are_clear_errors(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="GM0363"):
        municipality_report(engine, "GM9999", tmp_path / "r.csv")
    with pytest.raises(ReportError, match="lovitura link"):
        person_report(engine, 99, tmp_path / "p.csv")


def test_reports_are_readable_by_their_owner_only(engine: Engine, tmp_path: Path) -> None:
    """A report holds personal data: mode 600, also when it replaces a world-readable file."""
    _seed(engine)
    fresh = person_report(engine, 3, tmp_path / "fresh.csv", pseudonym_labels(KEY)).path
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    existing = tmp_path / "existing.csv"
    existing.write_text("old")
    existing.chmod(0o644)
    person_report(engine, 3, existing, pseudonym_labels(KEY))
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600
    assert "Venlo" in existing.read_text(encoding="utf-8-sig")
