"""Timestamps and ages for the run log: fixed-width UTC ISO strings and ``30d``-style durations."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from agent.errors import ConfigError

Clock = Callable[[], datetime]

_AGE_PART = re.compile(r"(\d+)\s*([smhdw])")
_AGE_FULL = re.compile(r"(?:\d+\s*[smhdw]\s*)+")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock of the store)."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (a naive one, e.g. from an injected test clock, is taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_iso(moment: datetime) -> str:
    """``moment`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (naive datetimes are taken as UTC).

    The width is fixed so that string order is time order: prune and listing compare the text.
    """
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_iso(text: str) -> datetime:
    """Parse a timestamp written by ``to_iso`` back into an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def parse_age(text: str) -> timedelta:
    """Parse an age such as ``30d``, ``12h``, ``90m``, ``2w``, ``45s`` or ``1d12h``; bad input is a ConfigError."""
    cleaned = (text or "").strip().lower()
    if not cleaned or not _AGE_FULL.fullmatch(cleaned):
        raise ConfigError(
            f"cannot read age {text!r}",
            hint="use a number and a unit: 30d, 12h, 90m, 2w, 45s (units can be combined: 1d12h)",
        )
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _AGE_PART.findall(cleaned))
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ConfigError(f"age {text!r} is too large", hint="use at most a few thousand weeks") from None


def format_seconds(seconds: float | None) -> str:
    """A short human duration: ``850ms``, ``12.3s``, ``4m05s``, ``2h03m``; empty for None."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
