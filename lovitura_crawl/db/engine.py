"""Which database to use, and how to connect to it.

The URL comes from ``--db URL`` on the command line, else the environment variable
``LOVITURA_DATABASE_URL``, else the SQLite file ``var/lovitura.sqlite`` under the current
directory. ``postgresql://`` URLs are served by psycopg 3.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

DEFAULT_SQLITE_PATH = Path("var") / "lovitura.sqlite"
ENV_VAR = "LOVITURA_DATABASE_URL"


class DatabaseURLError(ValueError):
    """The database URL names a backend Lovitura does not support."""


class NoDatabaseError(FileNotFoundError):
    """A command that only reads or changes an existing database was pointed at no database."""


def resolve_url(url: str | None = None, *, create: bool = True) -> str:
    """The database URL to use: ``url``, else $LOVITURA_DATABASE_URL, else the SQLite default.

    With ``create`` (commands that set a database up: demo, db upgrade, purpose add) a SQLite
    file that is not there is made, readable by its owner only, with its folder. Without it the
    file must exist already, so that a mistyped path is an error instead of a new, empty
    database.
    """
    chosen = url or os.environ.get(ENV_VAR) or f"sqlite:///{DEFAULT_SQLITE_PATH}"
    parsed = make_url(chosen)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.drivername not in ("sqlite", "postgresql+psycopg"):
        raise DatabaseURLError(
            f"unsupported database {parsed.drivername!r}; use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DBNAME"
        )
    if parsed.drivername == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            _create_private(path)
        elif not path.is_file():
            where = "--db" if url else ENV_VAR if os.environ.get(ENV_VAR) else "the default"
            raise NoDatabaseError(
                f"no database at {path} (from {where}): check the path, or set one up with "
                "`lovitura purpose add CODE --db URL` (every crawl runs under a registered "
                "purpose) or `lovitura db upgrade --db URL`"
            )
    return chosen


def _create_private(path: Path) -> None:
    """An empty SQLite file readable by its owner only, unless the file is there already.

    The database holds phone numbers and ad text (docs/privacy.md); SQLite would make it, and
    its -wal and -shm files, with the permissions of the umask (usually readable by all).
    SQLite gives the -wal and -shm files the permissions of the database file.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def masked(url: str) -> str:
    """The URL with any password hidden, for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str | None = None, *, create: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``url`` (resolved as in :func:`resolve_url`, with its ``create``)."""
    resolved = resolve_url(url, create=create)
    engine = create_engine(resolved, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine
