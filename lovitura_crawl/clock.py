"""The crawl's clock.

Replays and the demo world's simulated days need a crawl to believe it is another day. The
setting ``LOVITURA_CLOCK`` (ISO 8601 with a time zone) fixes the time every observation of a
crawl is stamped with; unset, the real time is used.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class ClockError(ValueError):
    """LOVITURA_CLOCK is not an ISO 8601 time with a time zone."""


def parse_clock(value: str, source: str = "LOVITURA_CLOCK") -> datetime:
    """``value`` as a time with a zone; ``source`` names where it came from in the error."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ClockError(
            f"{source}={value!r} is not an ISO 8601 time; use e.g. 2026-11-02T12:00:00+01:00"
        ) from exc
    if moment.tzinfo is None:
        raise ClockError(f"{source}={value!r} has no time zone; add one, e.g. +01:00")
    return moment


def crawl_now(settings: Any) -> datetime:
    """The time to stamp an observation with: the fixed clock if set, else now (UTC)."""
    value = settings.get("LOVITURA_CLOCK") if settings is not None else None
    if value:
        return parse_clock(str(value))
    return datetime.now(UTC)
