"""Posting dates as sites show them, normalised to ISO dates."""

from __future__ import annotations

import pytest

from lovitura_crawl.dates import iso_date


@pytest.mark.parametrize(
    ("shown", "iso"),
    [
        ("3 november 2026", "2026-11-03"),
        ("Geplaatst op 3 november 2026", "2026-11-03"),
        ("03-11-2026", "2026-11-03"),
        ("03-11-2026 14:22", "2026-11-03"),
        ("3.11.2026", "2026-11-03"),
        ("3/11/2026", "2026-11-03"),
        ("3 Nov 2026", "2026-11-03"),
        ("Nov 3, 2026", "2026-11-03"),
        ("12:12, 21 Oct 2026", "2026-10-21"),
        ("3. März 2026", "2026-03-03"),
        ("3 martie 2026", "2026-03-03"),
        ("1 mrt 2026", "2026-03-01"),
        ("2026-11-03", "2026-11-03"),
        ("2026-11-03T23:30:00+01:00", "2026-11-03"),
    ],
)
def test_shown_dates_become_iso_dates(shown: str, iso: str) -> None:
    assert iso_date(shown) == iso


@pytest.mark.parametrize(
    "shown", [None, "", "gisteren", "31-02-2026", "3 brumaire 2026", "20261-11-03", "06-1234 5678"]
)
def test_what_is_not_a_date_gives_none(shown: str | None) -> None:
    assert iso_date(shown) is None
