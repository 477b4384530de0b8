"""Posting dates as ad sites show them, normalised to ISO dates.

Sites write "3 november 2026", "03-11-2026 14:22", "3 Nov 2026", "2026-11-03" or an ISO time.
``iso_date`` turns any of these into "2026-11-03"; anything else gives None, and the spider keeps
the text as shown. Numeric dates are read day first, as every site in the Netherlands and its
neighbours writes them.
"""

from __future__ import annotations

import re
from datetime import date

MONTHS = {
    # Dutch, English, German and Romanian month names and their usual abbreviations
    "januari": 1, "january": 1, "januar": 1, "ianuarie": 1, "jan": 1, "ian": 1,
    "februari": 2, "february": 2, "februar": 2, "februarie": 2, "feb": 2, "febr": 2,
    "maart": 3, "march": 3, "märz": 3, "maerz": 3, "martie": 3, "mrt": 3, "mar": 3, "mär": 3,
    "april": 4, "aprilie": 4, "apr": 4,
    "mei": 5, "may": 5, "mai": 5,
    "juni": 6, "june": 6, "iunie": 6, "jun": 6, "iun": 6,
    "juli": 7, "july": 7, "iulie": 7, "jul": 7, "iul": 7,
    "augustus": 8, "august": 8, "aug": 8,
    "september": 9, "septembrie": 9, "sep": 9, "sept": 9,
    "oktober": 10, "october": 10, "octombrie": 10, "okt": 10, "oct": 10,
    "november": 11, "noiembrie": 11, "nov": 11, "noi": 11,
    "december": 12, "dezember": 12, "decembrie": 12, "dec": 12, "dez": 12,
}  # fmt: skip

_NAMED = re.compile(r"\b(\d{1,2})\.?\s+([^\W\d_]+)\.?,?\s+(\d{4})\b")
_NAMED_MONTH_FIRST = re.compile(r"\b([^\W\d_]+)\.?\s+(\d{1,2}),?\s+(\d{4})\b")
_NUMERIC = re.compile(r"\b(\d{1,2})[-./](\d{1,2})[-./](\d{4})\b")
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})(?!\d)")  # an ISO time's date is its local date


def iso_date(shown: str | None) -> str | None:
    """The ISO date ("2026-11-03") a shown date stands for, or None when it is not a date."""
    if not shown:
        return None
    text = shown.strip().lower()
    for parse in (_from_iso, _from_numeric, _from_named, _from_named_month_first):
        found = parse(text)
        if found is not None:
            return found.isoformat()
    return None


def _from_iso(text: str) -> date | None:
    match = _ISO.search(text)
    return _date(int(match[1]), int(match[2]), int(match[3])) if match else None


def _from_numeric(text: str) -> date | None:
    match = _NUMERIC.search(text)
    return _date(int(match[3]), int(match[2]), int(match[1])) if match else None


def _from_named(text: str) -> date | None:
    match = _NAMED.search(text)
    if match is None or match[2] not in MONTHS:
        return None
    return _date(int(match[3]), MONTHS[match[2]], int(match[1]))


def _from_named_month_first(text: str) -> date | None:
    match = _NAMED_MONTH_FIRST.search(text)
    if match is None or match[1] not in MONTHS:
        return None
    return _date(int(match[3]), MONTHS[match[1]], int(match[2]))


def _date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None
