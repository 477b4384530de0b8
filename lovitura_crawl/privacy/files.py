"""Removing expired files outside the database: exports, caches, job folders, temporary files.

Lovitura's own temporary files and folders carry the prefix :data:`TEMP_PREFIX` in the system's
temporary folder (make them with :func:`temp_dir`), so ``lovitura purge`` can find them.
Exported files are removed only while they still hold what was exported (same SHA-256 as in
the audit log), so a file that was replaced by something else is left alone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TEMP_PREFIX = "lovitura-"


class UnsafeFolderError(ValueError):
    """A folder given to clean is one that must never be emptied (the root, a home folder)."""


def temp_dir() -> Path:
    """A new private temporary folder that ``lovitura purge`` removes once it is expired."""
    return Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.lstat().st_mtime, UTC)


def _check_folder(folder: Path) -> Path:
    resolved = folder.resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        raise UnsafeFolderError(
            f"refusing to clean {resolved}: name the cache or job folder itself in the "
            "retention policy, not the root or a home folder"
        )
    return resolved


def remove_old_files(
    folder: Path, cutoff: datetime, protect: Collection[Path] = (), dry_run: bool = False
) -> int:
    """Remove files under ``folder`` last changed before ``cutoff`` (and emptied folders);
    never the ``protect``ed paths. Return how many files were (or would be) removed."""
    if not folder.is_dir():
        return 0
    root = _check_folder(folder)
    kept = {p.resolve() for p in protect}
    removed = 0
    for current, dirs, files in os.walk(root, topdown=False, followlinks=False):
        for name in files:
            path = Path(current) / name
            if path in kept or _mtime(path) >= cutoff:
                continue
            if not dry_run:
                path.unlink()
            removed += 1
        for name in dirs:
            sub = Path(current) / name
            if not dry_run and not sub.is_symlink() and _mtime(sub) < cutoff:
                _remove_if_empty(sub)
    return removed


def _remove_if_empty(folder: Path) -> None:
    if not any(folder.iterdir()):
        folder.rmdir()


def remove_temp(cutoff: datetime, dry_run: bool = False) -> int:
    """Remove Lovitura's temporary files and folders last changed before ``cutoff``."""
    removed = 0
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        if _mtime(path) >= cutoff:
            continue
        if not dry_run:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        removed += 1
    return removed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_exports(exports: Iterable[tuple[str, str]], dry_run: bool = False) -> int:
    """Remove exported files (path, sha256) that still exist and still hold the export."""
    removed = 0
    for name, digest in exports:
        path = Path(name)
        if not path.is_file() or _sha256(path) != digest:
            continue
        if not dry_run:
            path.unlink()
        removed += 1
    return removed


def crawl_directories(settings: Any) -> list[Path]:
    """Folders the crawl may leave data in, from its Scrapy settings: JOBDIR, the HTTP cache,
    local FILES_STORE / IMAGES_STORE, and the WARC archives of LOVITURA_WARC_DIR (whole pages,
    phone numbers included)."""
    found: list[Path] = []
    if settings.get("JOBDIR"):
        found.append(Path(settings.get("JOBDIR")))
    if settings.getbool("HTTPCACHE_ENABLED"):
        from scrapy.utils.project import data_path

        found.append(Path(data_path(settings.get("HTTPCACHE_DIR"), createdir=False)))
    for name in ("FILES_STORE", "IMAGES_STORE", "LOVITURA_WARC_DIR"):
        value = settings.get(name)
        if value and "://" not in str(value):
            found.append(Path(value))
    return found
