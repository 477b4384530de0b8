"""CI check: on SQLite and PostgreSQL, upgrade to head, `alembic check`, downgrade to base,
upgrade again. Run as ``python -m tests.migrations_check``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from lovitura_crawl.db.migrate import check, downgrade, upgrade
from tests.dbs import fresh_postgres


def round_trip(url: str) -> None:
    upgrade(url)
    check(url)
    downgrade(url, "base")
    upgrade(url)
    check(url)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        round_trip(f"sqlite:///{Path(tmp) / 'check.sqlite'}")
        print("migrations: sqlite ok")
    with fresh_postgres("lovitura_migrations") as url:
        round_trip(url)
        print("migrations: postgresql ok")


if __name__ == "__main__":
    main()
