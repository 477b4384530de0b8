"""One crawl per site at a time, with a lock that a killed run cannot leave stuck.

On PostgreSQL the lock is a session-level advisory lock, shared by every crawler machine of the
database and released by the server when the holding connection dies. On SQLite it is an
``flock`` on a file beside the database, released by the kernel when the holding process dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import psycopg
from sqlalchemy.engine import make_url

from lovitura_crawl.db.engine import resolve_url


class SiteLocked(RuntimeError):
    """Another crawl of the same site is running."""

    def __init__(self, site: str) -> None:
        super().__init__(
            f"another crawl of {site!r} is running; this one is skipped (try again when it ends)"
        )
        self.site = site


def _lock_key(site: str) -> int:
    digest = hashlib.sha256(f"lovitura-crawl:{site}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_file(site: str, url: str) -> Path:
    """``locks/<database file>.<site>.lock`` beside the database: one lock per database and site
    (two databases in one folder, e.g. one per case, do not block each other)."""
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        database = Path(parsed.database).resolve()
        return database.parent / "locks" / f"{database.name}.{site}.lock"
    return Path("var") / "locks" / f"memory.{site}.lock"


@contextmanager
def site_lock(site: str, db_url: str | None = None) -> Iterator[None]:
    """Hold the crawl lock of ``site``; raise :class:`SiteLocked` at once if it is taken."""
    url = resolve_url(db_url)
    if make_url(url).get_backend_name() == "postgresql":
        with _postgres_lock(site, url):
            yield
    else:
        with _file_lock(site, _lock_file(site, url)):
            yield


@contextmanager
def _postgres_lock(site: str, url: str) -> Iterator[None]:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(site),)).fetchone()
        if not row or not row[0]:
            raise SiteLocked(site)
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(site),))


@contextmanager
def _file_lock(site: str, path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = path.open("a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SiteLocked(site) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()
