"""Times in and out: human durations on the command line (``90s``, ``2h``, ``7d``) and Vapi timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from agent.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w|wk|wks|weeks?)\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longer spans only overflow date arithmetic (``now - 99999999999d``); no window or budget needs them.
MAX_DURATION_DAYS = 36525


def parse_duration(text: str, *, option: str = "duration") -> timedelta:
    """``90s``, ``15m``, ``2h``, ``7d``, ``2w`` (also ``1h30m``) -> timedelta; anything else is exit 2."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]+)", text or "")
    if not parts or re.sub(r"[\d.\sa-zA-Z]", "", text):
        raise ConfigError(f"{option} {text!r} is not a duration", hint="use e.g. 90s, 15m, 2h, 7d or 2w")
    total = 0.0
    for number, unit in parts:
        match = _DURATION.match(number + unit)
        if not match:
            raise ConfigError(f"{option} {text!r} is not a duration", hint="use e.g. 90s, 15m, 2h, 7d or 2w")
        total += float(number) * _UNIT_SECONDS[match.group(2)[0].lower()]
    if total <= 0:
        raise ConfigError(f"{option} {text!r} must be positive")
    if total > MAX_DURATION_DAYS * 86400:
        raise ConfigError(f"{option} {text!r} is too long", hint=f"at most {MAX_DURATION_DAYS}d (100 years)")
    return timedelta(seconds=total)


def iso_ms(value: datetime) -> str:
    """UTC ISO 8601 with milliseconds and ``Z``, as Vapi writes timestamps (``2025-06-02T14:03:11.482Z``)."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
