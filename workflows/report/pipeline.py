"""report: calls, minutes, cost and how calls ended, by assistant (or ended reason, or squad) and day.

``run(runtime, params)`` is the whole workflow (the CLI command and the chat tool both call it):

1. resolve the window (``--since``/``--from``/``--to`` in ``--tz``, relative to ``--as-of``) and the
   previous period of equal length;
2. get both periods' cubes from Vapi's analytics tool when the server has it and the grouping
   allows, else by paging the calls once (``workflows.report_data``);
3. build the pandas tables (``workflows.report_tables``);
4. write the requested formats into ``--out`` as ``report-YYYY-MM-DD.<ext>`` (the last local day the
   window covers), all rendered in memory first and then renamed into place together, so a
   deadline or an error never leaves a partial file. With ``--as-of`` every file is byte for byte
   the same on each run over the same data.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from agent.errors import CircuitOpen, ConfigError, RateLimited, UpstreamError
from agent.runtime import Runtime
from agent.timeparse import iso_ms
from workflows.report_data import analytics_cubes, calls_cubes, choose_source, group_labels
from workflows.report_params import FORMATS, ReportParams, Thresholds, parse_formats
from workflows.report_tables import Tables, build_tables
from workflows.report_window import Window, parse_instant, parse_zone, resolve_window

__all__ = ["FORMATS", "ReportParams", "ReportResult", "parse_formats", "records", "run"]

@dataclass
class ReportResult:
    """The tables and where they came from; ``files`` are the paths written."""

    window: Window
    previous: Window
    as_of: datetime
    group_by: str
    source: str
    tables: Tables
    thresholds: Thresholds
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def report_date(self) -> str:
        """``YYYY-MM-DD``: the last local day the window covers (names the files)."""
        return self.window.days()[-1]

    def to_dict(self, *, compact: bool = False, files: bool = True) -> dict[str, Any]:
        """JSON-ready: the envelope's ``result`` (``compact``: summary only, for the chat tool).

        The ``--format json`` file is this without ``files`` (so it does not depend on ``--out``).
        """
        data: dict[str, Any] = {
            "as_of": iso_ms(self.as_of), "period": self.window.to_dict(), "previous_period": self.previous.to_dict(),
            "group_by": self.group_by, "source": self.source,
            "thresholds": {"worse_success_pp": self.thresholds.success_pp,
                           "worse_cost_pct": self.thresholds.cost_pct, "min_calls": self.thresholds.min_calls},
            "summary": records(self.tables.summary),
            "worse": [r["group"] for r in records(self.tables.worse())],
        }
        if not compact:
            data.update(daily=records(self.tables.daily), ended_reasons=records(self.tables.ended),
                        success_evaluation=records(self.tables.success))
        data["notes"] = list(self.notes)
        if files:
            data["files"] = list(self.files)
        return data


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with plain Python values (NaN -> None), in column order."""
    out = []
    for row in frame.to_dict("records"):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if hasattr(value, "item"):
                value = value.item()  # numpy scalar -> Python
            if isinstance(value, float) and math.isnan(value):
                value = None
            clean[str(key)] = value
        out.append(clean)
    return out


def _as_of(rt: Runtime, params: ReportParams) -> datetime:
    if params.as_of is not None:
        return parse_instant(params.as_of, parse_zone(params.tz), option="--as-of")
    # to the millisecond (Vapi's precision), rounded up: a call created this very millisecond is in
    now = datetime.fromtimestamp(math.ceil(rt.clock() * 1000) / 1000, tz=UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


async def run(rt: Runtime, params: ReportParams) -> ReportResult:
    """The whole report (see the module docstring); writes files only when formats/out are given."""
    params.validate()
    as_of = _as_of(rt, params)
    window = resolve_window(since=params.since, start=params.start, end=params.end, tz=params.tz, as_of=as_of)
    if window.length > timedelta(days=400):
        raise ConfigError("the report window is longer than 400 days", hint="report on a shorter period")
    source = choose_source(rt, params.source, params.group_by)
    notes = []
    if params.source == "auto" and source == "calls":
        why = "Vapi's analytics cannot group by squad" if params.group_by == "squad" else \
            "the server has no analytics tool"
        notes.append(f"computed from the calls: {why}")
    if source == "analytics":
        try:
            current, previous = await analytics_cubes(rt, window, params.group_by)
        except UpstreamError as exc:
            # auto: a server whose analytics rejects our query still has its calls (a rate limit or an
            # open circuit would hit the paging just the same, so those are reported as they are)
            if params.source != "auto" or isinstance(exc, RateLimited | CircuitOpen) or \
                    not rt.vapi.supports("calls.list"):
                raise
            notes.append(f"computed from the calls: Vapi's analytics failed ({exc.line()})")
            source = "calls"
    if source == "calls":
        current, previous = await calls_cubes(rt, window, params.group_by, progress=_progress(rt))
    labels = await group_labels(rt, params.group_by, set(current["key"]) | set(previous["key"]))
    tables = build_tables(current, previous, window, labels, params.thresholds())
    result = ReportResult(window=window, previous=window.previous(), as_of=as_of, group_by=params.group_by,
                          source=source, tables=tables, thresholds=params.thresholds(), notes=notes)
    formats = params.output_formats()
    if formats:
        from workflows.report_render import render_files, write_all

        # rendering (charts) is CPU work: off the event loop, so a deadline can still cancel the run
        contents = await asyncio.to_thread(render_files, result, formats)
        result.files = [str(p) for p in write_all(Path(params.out or "."), contents)]
    return result


def _progress(rt: Runtime) -> Any:
    """A "calls read" counter on stderr for a person at a terminal; nothing otherwise (cron, --json)."""
    if not rt.show_progress:
        return None

    def show(count: int) -> None:
        if count % 10_000 == 0:
            rt.notice(f"  {count:,} calls read")

    return show
