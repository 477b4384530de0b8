"""``-s NAME=VALUE`` settings of ``lovitura crawl`` and ``lovitura ingest``, checked before a run.

A setting given on the command line reaches Scrapy as a string, and Scrapy reads it only when
the component that needs it starts: a mistyped name was silently ignored (a politeness setting
among them), and a value that is no number or no true/false stopped the crawl half-way with a
traceback. Here, before anything is written:

* a name with Lovitura's prefix must be one of Lovitura's settings (docs/settings.md);
* a name close to a known setting of Scrapy or Lovitura is taken for a typo and refused;
* any other unknown name passes with a warning, for an add-on that reads it; the add-ons this
  project uses (scrapy-playwright, scrapy-redis) are known by their prefixes;
* the value of a known setting must read as the type of its default: a number, true or false,
  a JSON object, a list of whole numbers; a log level, a clock and a Redis URL are read as such.

Shortcoming: a setting whose default is a whole number takes any number here, as Scrapy reads
some of them (timeouts) as decimals; where Scrapy reads one as a whole number, a fraction still
fails when that component starts.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from scrapy.settings import BaseSettings

OWN_PREFIX = "LOVITURA_"
# Settings of the add-ons this project installs, which they read themselves.
ADDON_PREFIXES = ("PLAYWRIGHT_", "REDIS_", "SCHEDULER_", "DUPEFILTER_")
# How close an unknown name must be to a known one to be taken for its typo (difflib ratio).
TYPO_CUTOFF = 0.85


class SettingError(ValueError):
    """A ``-s`` setting that would be ignored or would stop the run half-way."""


def parse_overrides(values: Iterable[str]) -> dict[str, str]:
    """``NAME=VALUE`` strings as a dict; a string without a name or ``=`` is refused."""
    overrides: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name.strip():
            raise SettingError(f"{value!r} is not NAME=VALUE")
        overrides[name.strip()] = rest
    return overrides


def known_settings() -> dict[str, Any]:
    """Every setting of Scrapy and of this project, with its default (the project's first)."""
    from scrapy.settings import default_settings

    from lovitura_crawl import settings as project

    known: dict[str, Any] = {}
    for module in (default_settings, project):
        known.update((name, getattr(module, name)) for name in dir(module) if name.isupper())
    return known


# Settings that a command sets from its own options, after checking them.
OWN_OPTIONS = {
    "LOVITURA_DATABASE_URL": "--db",
    "LOVITURA_PURPOSE": "--purpose",
    "LOVITURA_CLOCK": "--clock",
    "LOVITURA_REDIS_URL": "--redis",
    "LOVITURA_REDIS_RUN": "--redis-run",
    "LOVITURA_SITE_URLS": "--site-url",
}


def check_overrides(overrides: Mapping[str, str]) -> list[str]:
    """Warnings for names passed on to add-ons; :class:`SettingError` for a refused setting."""
    known = known_settings()
    warnings = []
    for name, value in overrides.items():
        if name in OWN_OPTIONS:
            raise SettingError(f"{name} is set with {OWN_OPTIONS[name]}, not with -s")
        if name in known:
            _check_value(name, value, known[name])
            continue
        if name.upper() in known:
            raise SettingError(f"{name}: setting names are upper case ({name.upper()})")
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=TYPO_CUTOFF)
        hint = f" (did you mean {close[0]}?)" if close else ""
        if name.startswith(OWN_PREFIX):
            raise SettingError(
                f"{name} is no Lovitura setting{hint}; docs/settings.md lists them all"
            )
        if close:
            raise SettingError(f"{name} is no setting of Scrapy or Lovitura{hint}")
        if not name.startswith(ADDON_PREFIXES):
            warnings.append(
                f"{name} is no setting of Scrapy or Lovitura: passed on for an add-on that reads it"
            )
    return warnings


def _check_value(name: str, value: str, default: Any) -> None:
    special = _SPECIAL.get(name)
    if special is not None:
        wanted, check = special
    elif isinstance(default, bool):  # before int: a bool is an int
        wanted, check = "true or false", lambda s: s.getbool(name)
    elif isinstance(default, int | float):
        wanted, check = "a number", lambda s: s.getfloat(name)
    elif isinstance(default, dict):
        wanted, check = "a JSON object", lambda s: s.getdict(name)
    elif isinstance(default, list | tuple) and default and all(type(v) is int for v in default):
        wanted, check = "whole numbers separated by commas", lambda s: _ints(s.getlist(name))
    else:
        return
    try:
        check(BaseSettings({name: value}))
    except (ValueError, TypeError) as exc:
        shown = "" if default is None else f" (its default is {default!r})"
        raise SettingError(f"{name}={value!r}: {name} takes {wanted}{shown}") from exc


def _ints(values: list[Any]) -> None:
    for value in values:
        int(value)


def _log_level(settings: BaseSettings) -> None:
    import logging

    level = settings.get("LOG_LEVEL")
    if not isinstance(logging.getLevelName(str(level).upper()), int):
        raise ValueError(level)


def _clock(settings: BaseSettings) -> None:
    from lovitura_crawl.clock import parse_clock

    parse_clock(settings.get("LOVITURA_CLOCK"))


def _redis_url(settings: BaseSettings) -> None:
    url = str(settings.get("LOVITURA_REDIS_URL"))
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(url)


def _writable_folder(settings: BaseSettings) -> None:
    """The folder is there or can be made, and can be written to (it is made here)."""
    import os
    from pathlib import Path

    folder = Path(str(settings.get("LOVITURA_WARC_DIR")))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(str(exc)) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{folder} is not writable")


# Settings whose values take more than their default's type tells.
_SPECIAL: dict[str, tuple[str, Any]] = {
    "LOG_LEVEL": ("a level: DEBUG, INFO, WARNING, ERROR or CRITICAL", _log_level),
    "LOVITURA_CLOCK": ("an ISO 8601 time with a zone, e.g. 2026-11-02T12:00+01:00", _clock),
    "LOVITURA_REDIS_URL": ("a redis://, rediss:// or unix:// URL", _redis_url),
    "LOVITURA_WARC_DIR": ("a folder that can be made and written to", _writable_folder),
}
