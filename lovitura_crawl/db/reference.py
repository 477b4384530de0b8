"""Reference data kept in the database: the municipalities of the shipped gazetteer."""

from __future__ import annotations

from sqlalchemy import Engine, Table, select

from lovitura_crawl import gazetteer
from lovitura_crawl.db import models


def load_municipalities(engine: Engine) -> int:
    """Insert or refresh every 2025 municipality; return how many rows were written."""
    table: Table = models.Municipality.__table__  # type: ignore[assignment]
    rows = [
        {"code": m.code, "name": m.name, "province": m.province, "lat": m.lat, "lon": m.lon}
        for m in gazetteer.municipalities()
    ]
    with engine.begin() as conn:
        present = {
            code: (name, province, lat, lon)
            for code, name, province, lat, lon in conn.execute(select(table))
        }
        new = [r for r in rows if r["code"] not in present]
        changed = [
            r
            for r in rows
            if r["code"] in present
            and present[r["code"]] != (r["name"], r["province"], r["lat"], r["lon"])
        ]
        if new:
            conn.execute(table.insert(), new)
        for row in changed:
            conn.execute(table.update().where(table.c.code == row["code"]).values(**row))
    return len(new) + len(changed)
