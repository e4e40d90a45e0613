"""The time window of a report: ``--since``/``--from``/``--to``/``--as-of`` resolved in ``--tz``.

A window is ``[start, end)`` in UTC; its days are the local calendar dates of ``tz`` it touches (the
first and last may be partial). The previous period has the same length and ends where this starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.errors import ConfigError
from agent.timeparse import iso_ms, parse_duration

DEFAULT_SINCE = "7d"
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def parse_zone(name: str) -> ZoneInfo:
    """An IANA zone (``UTC``, ``Europe/Berlin``); a bad name is exit 2."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--tz {name!r} is not an IANA time zone", hint="e.g. UTC, Europe/Berlin") from None


def parse_instant(text: str, zone: ZoneInfo, *, option: str) -> datetime:
    """ISO 8601 date or date-time; without an offset it is wall time in ``zone`` (a date = local midnight)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not an ISO 8601 date or time",
                          hint="e.g. 2025-06-01 or 2025-06-01T08:00:00Z") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in UTC with the zone whose calendar days the report uses."""

    start: datetime
    end: datetime
    tz: str

    @property
    def zone(self) -> ZoneInfo:
        """The ``ZoneInfo`` of ``tz``."""
        return ZoneInfo(self.tz)

    @property
    def length(self) -> timedelta:
        """How long the window is."""
        return self.end - self.start

    def previous(self) -> Window:
        """The period of equal length just before this one."""
        return Window(self.start - self.length, self.start, self.tz)

    def local_date(self, instant: datetime) -> date:
        """The calendar date of ``instant`` in the window's zone."""
        return instant.astimezone(self.zone).date()

    def days(self) -> list[str]:
        """Every local date the window touches, as ``YYYY-MM-DD``, oldest first."""
        first = self.local_date(self.start)
        last = self.local_date(self.end - timedelta(microseconds=1))
        return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]

    def to_dict(self) -> dict[str, str]:
        """``{"start", "end", "tz"}`` with UTC ISO times."""
        return {"start": iso_ms(self.start), "end": iso_ms(self.end), "tz": self.tz}


def resolve_window(*, since: str | None, start: str | None, end: str | None, tz: str,
                   as_of: datetime) -> Window:
    """The report window from the flags: ``--since`` back from ``--to`` (default: as-of), or ``--from``..``--to``."""
    zone = parse_zone(tz)
    if since is not None and start is not None:
        raise ConfigError("--since and --from cannot be combined", hint="use --since 7d, or --from ISO --to ISO")
    stop = parse_instant(end, zone, option="--to") if end is not None else as_of.astimezone(UTC)
    if start is not None:
        begin = parse_instant(start, zone, option="--from")
    else:
        length = parse_duration(since or DEFAULT_SINCE, option="--since")
        if stop - EARLIEST < 2 * length:
            raise _too_far_back(f"{length.days}d before {stop.date().isoformat()}")
        begin = stop - length
    if begin >= stop:
        raise ConfigError(f"the report window is empty: {iso_ms(begin)} is not before {iso_ms(stop)}",
                          hint="--from must be before --to")
    if begin - EARLIEST < stop - begin:
        raise _too_far_back(f"{begin.date().isoformat()} .. {stop.date().isoformat()}")
    return Window(begin, stop, tz)


def _too_far_back(window: str) -> ConfigError:
    # The previous period (as long as the window, just before it) must still be a real time:
    # 0001-01-01 would overflow, and nothing on Vapi is older than the Unix epoch anyway.
    return ConfigError(f"the report window {window} reaches too far back",
                       hint="it and its previous period, as long as the window, must start after 1970-01-01")
