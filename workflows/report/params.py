"""The report's flags as a dataclass, validated without importing pandas (a bad flag fails fast)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.errors import ConfigError
from agent.files import output_folder
from workflows.report.window import parse_instant, parse_zone, resolve_window

GROUP_BY = ("assistant", "endedReason", "squad")
SOURCES = ("auto", "analytics", "calls")

FORMATS = ("md", "csv", "html", "json", "png")


@dataclass(frozen=True)
class Thresholds:
    """When a group counts as worse than the previous period."""

    success_pp: float = 5.0
    cost_pct: float = 10.0
    min_calls: int = 10


def parse_formats(text: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """``md,csv`` (or a list) -> formats in canonical order; unknown ones are exit 2."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in str(t).split(",")]
    wanted = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(wanted - set(FORMATS))
    if unknown:
        raise ConfigError(f"unknown --format {', '.join(unknown)}", hint=f"choose from {','.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in wanted)


@dataclass
class ReportParams:
    """Inputs of one report (the CLI flags). ``start``/``end`` are ``--from``/``--to``."""

    since: str | None = None
    start: str | None = None
    end: str | None = None
    tz: str = "UTC"
    group_by: str = "assistant"
    formats: str | list[str] | tuple[str, ...] | None = None
    out: str | None = None
    as_of: str | None = None
    source: str = "auto"
    worse_success_pp: float = 5.0
    worse_cost_pct: float = 10.0
    min_calls: int = 10

    def validate(self) -> None:
        """Bad values are exit 2 before anything is fetched."""
        if self.group_by not in GROUP_BY:
            raise ConfigError(f"--group-by {self.group_by!r} is not one of {', '.join(GROUP_BY)}")
        if self.source not in SOURCES:
            raise ConfigError(f"--source {self.source!r} is not one of {', '.join(SOURCES)}")
        thresholds = (self.worse_success_pp, self.worse_cost_pct, self.min_calls)
        if not all(math.isfinite(value) and value >= 0 for value in thresholds):
            raise ConfigError("the worse thresholds and --min-calls must be finite and not negative")
        parse_formats(self.formats)
        zone = parse_zone(self.tz)
        as_of = parse_instant(self.as_of, zone, option="--as-of") if self.as_of is not None else datetime.now(UTC)
        resolve_window(since=self.since, start=self.start, end=self.end, tz=self.tz, as_of=as_of)
        if self.out is not None:
            output_folder(self.out, option="--out")  # a folder we can write into, before any request

    def output_formats(self) -> tuple[str, ...]:
        """The formats to write: ``--format``, or every format when only ``--out`` is given."""
        chosen = parse_formats(self.formats)
        return chosen or (FORMATS if self.out else ())

    def thresholds(self) -> Thresholds:
        """The "worse" thresholds."""
        return Thresholds(self.worse_success_pp, self.worse_cost_pct, self.min_calls)
