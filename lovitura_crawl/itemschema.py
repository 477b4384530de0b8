"""The versioned item schema (docs/items.md): checking one item read from outside.

Spiders yield :class:`lovitura_crawl.items.AdItem`; importers (``lovitura ingest``) read plain
JSON objects and check each with :func:`check_item` before it enters the pipelines, so a bad
line is refused with a reason instead of failing somewhere inside a pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from lovitura_crawl.items import ITEM_SCHEMA_VERSION, REQUIRED_FIELDS, AdItem, item_from_dict

SCHEMA_KEY = "schema_version"  # optional in an item; absent means version 1
TEXT_FIELDS = ("title", "text", "place", "phone_text", "nickname", "age", "posted_at")
# Fields the pipelines compute: a value in the input is replaced, never trusted.
DERIVED_FIELDS = ("phones", "location", "fields")
FETCHABLE = ("http://", "https://", "demo://")  # demo:// photos are left alone by the pipeline
UNFETCHABLE = "unfetchable-url"  # the error stored for a photo with no file and no http URL
# Longest values the database columns take (lovitura_crawl/db/models.py).
MAX_LENGTHS = {"site": 50, "site_ad_id": 200, "nickname": 200, "posted_at": 40}


class ItemError(ValueError):
    """An item that does not follow the schema; ``reason`` is a short slug for counting."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CheckedItem:
    item: AdItem
    photo_files: int  # photos given as a local file


def check_item(data: Any, base: PurePosixPath | None = None) -> CheckedItem:
    """``data`` as an :class:`AdItem`, or :class:`ItemError` saying what is wrong.

    Unknown keys go into ``extra``; derived fields (``phones``, ``location``, ``fields``) are
    dropped, the pipelines compute them. Photo paths must be relative and stay inside the folder
    of the input file; with ``base`` (that folder) they are made absolute. A photo's
    ``fingerprint`` (as ``lovitura export`` writes it) is checked and taken as is.
    """
    if not isinstance(data, dict):
        raise ItemError("not-an-object", f"an item must be a JSON object, not {_kind(data)}")
    version = data.get(SCHEMA_KEY, 1)
    if version != ITEM_SCHEMA_VERSION:
        raise ItemError(
            "unsupported-schema-version",
            f"{SCHEMA_KEY} is {version!r}; this Lovitura reads version {ITEM_SCHEMA_VERSION} "
            "(upgrade Lovitura, or export again with the version it reads)",
        )
    values = {k: v for k, v in data.items() if k not in DERIVED_FIELDS and k != SCHEMA_KEY}
    missing = [name for name in REQUIRED_FIELDS if values.get(name) in (None, "")]
    if missing:
        raise ItemError(
            "missing-" + "-".join(missing),
            f"required field(s) {', '.join(missing)} missing or empty",
        )
    for name in (*REQUIRED_FIELDS, *TEXT_FIELDS):
        values[name] = _text(values, name)
    for name, longest in MAX_LENGTHS.items():
        if len(values.get(name) or "") > longest:
            raise ItemError(f"too-long-{name}", f"{name} is longer than {longest} characters")
    _check_time(values["observed_at"])
    extra = values.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise ItemError("bad-extra", f"extra must be a JSON object, not {_kind(extra)}")
    photos, files = _photos(values.get("photos"), base)
    values["photos"] = photos
    cleaned = {k: v for k, v in values.items() if v is not None}
    return CheckedItem(item_from_dict(cleaned), files)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _text(values: dict[str, Any], name: str) -> str | None:
    value = values.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # a site id or an age written as a number
    raise ItemError(f"bad-{name}", f"{name} must be a string, not {_kind(value)}")


def _check_time(value: str | None) -> None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise ItemError(
            "bad-observed_at",
            f"observed_at {value!r} is not an ISO 8601 time (e.g. 2026-11-02T12:00:00+01:00)",
        ) from exc
    if moment.tzinfo is None:
        raise ItemError(
            "bad-observed_at", f"observed_at {value!r} has no time zone; add one, e.g. +01:00"
        )


def _photos(value: Any, base: PurePosixPath | None) -> tuple[list[dict[str, Any]] | None, int]:
    if value is None:
        return None, 0
    if not isinstance(value, list):
        raise ItemError("bad-photos", f"photos must be a list, not {_kind(value)}")
    photos: list[dict[str, Any]] = []
    files = 0
    for position, photo in enumerate(value):
        if not isinstance(photo, dict) or not isinstance(photo.get("url"), str) or not photo["url"]:
            raise ItemError(
                "bad-photos", f"photo {position + 1} must be an object with a url string"
            )
        path = photo.get("path")
        if path is not None:
            path = _photo_path(path, base)
            files += 1
        entry: dict[str, Any] = {"url": photo["url"], "path": path}
        if photo.get("fingerprint") is not None:
            entry["fingerprint"] = _fingerprint(photo["fingerprint"], position)
        elif path is None and not photo["url"].startswith(FETCHABLE):
            # Nothing to read it from (a pseudonymised export's pf_... URL): stored as such.
            entry["error"] = UNFETCHABLE
        photos.append(entry)
    return photos, files


def _fingerprint(value: Any, position: int) -> dict[str, Any]:
    """A fingerprint as ``lovitura export`` writes it, checked (taken instead of the photo)."""
    from pipelines.photos import Fingerprint

    try:
        return Fingerprint.from_json(value).as_json()
    except (ValueError, TypeError) as exc:
        raise ItemError("bad-fingerprint", f"photo {position + 1}: {exc}") from exc


def _photo_path(path: Any, base: PurePosixPath | None) -> str:
    if not isinstance(path, str) or not path:
        raise ItemError("bad-photo-path", "a photo path must be a non-empty string")
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or "\\" in path:
        raise ItemError(
            "bad-photo-path",
            f"photo path {path!r} must be relative to the input file's folder and stay inside it",
        )
    return str(base / relative) if base is not None else path
