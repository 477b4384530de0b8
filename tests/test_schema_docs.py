"""docs/schema.md documents every table and column, and its example queries run."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from lovitura_crawl.db import models

DOC = Path(__file__).resolve().parent.parent / "docs" / "schema.md"


def _queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_every_table_and_column_is_documented() -> None:
    doc = DOC.read_text(encoding="utf-8")
    missing = []
    for table in models.Base.metadata.sorted_tables:
        section = re.search(rf"### `{table.name}`.*?(?=\n### |\n## |\Z)", doc, flags=re.S)
        if section is None:
            missing.append(table.name)
            continue
        missing += [
            f"{table.name}.{c.name}"
            for c in table.columns
            if c.name != "id" and f"`{c.name}`" not in section.group(0)
        ]
    assert missing == []


def _seed(engine: Engine) -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            models.Network.__table__.insert(),
            [{"id": 1, "created_at": now, "updated_at": now, "n_persons": 1, "n_ads": 1}],
        )
        conn.execute(
            models.Person.__table__.insert(),
            [
                {
                    "id": 7,
                    "network_id": 1,
                    "created_at": now,
                    "updated_at": now,
                    "n_ads": 1,
                    "n_municipalities": 3,
                    "border_crossings": 0,
                }
            ],
        )
        stays = [
            ("GM0983", date(2026, 11, 2), date(2026, 11, 9)),
            ("GM0193", date(2026, 11, 10), date(2026, 11, 16)),
            ("GM0363", date(2026, 11, 17), date(2026, 11, 25)),
        ]
        conn.execute(
            models.TrailStay.__table__.insert(),
            [
                {
                    "person_id": 7,
                    "municipality_code": c,
                    "country": "NL",
                    "arrived_at": a,
                    "left_at": b,
                    "n_ads": 2,
                    "sites": "roodlicht",
                }
                for c, a, b in stays
            ],
        )
        conn.execute(
            models.TrailMove.__table__.insert(),
            [
                {
                    "person_id": 7,
                    "from_municipality_code": "GM0193",
                    "to_municipality_code": "GM0363",
                    "from_country": "NL",
                    "to_country": "NL",
                    "left_at": date(2026, 11, 16),
                    "arrived_at": date(2026, 11, 17),
                }
            ],
        )


@pytest.mark.parametrize("number", range(len(_queries())))
def test_example_query_runs(engine: Engine, number: int) -> None:
    _seed(engine)
    with engine.connect() as conn:
        rows = conn.execute(text(_queries()[number])).all()
    if number == 0:
        assert [(r.person_id, r.came_from) for r in rows] == [(7, "GM0193")]
    if number == 1:
        assert [tuple(r) for r in rows] == [("GM0193", "GM0363", 1)]
