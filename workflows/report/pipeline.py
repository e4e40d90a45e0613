"""report: calls, minutes, cost and how calls ended, by assistant (or ended reason, or squad) and day.

``run(runtime, params)`` is the whole workflow (the CLI command and the chat tool both call it):

1. resolve the window (``--since``/``--from``/``--to`` in ``--tz``, relative to ``--as-of``) and the
   previous period of equal length;
2. get both periods' cubes from Vapi's analytics tool when the server has it and the grouping
   allows, else by paging the calls once (``workflows.report.pipeline.data``);
3. build the pandas tables (``workflows.report.pipeline.tables``);
4. write the requested formats into ``--out`` as ``report-YYYY-MM-DD.<ext>`` (the day of
   ``--as-of``, or of now, in ``--tz``), all rendered in memory first and then renamed into place together, so a
   deadline or an error never leaves a partial file. With ``--as-of`` every file is byte for byte
   the same on each run over the same data.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.errors import CircuitOpen, ConfigError, RateLimited, UpstreamError
from agent.runtime import Runtime
from workflows.report import render
from workflows.report.data import analytics_cubes, calls_cubes, choose_source, group_labels
from workflows.report.params import FORMATS, ReportParams, parse_formats
from workflows.report.result import ReportResult, records
from workflows.report.tables import build_tables
from workflows.report.window import parse_instant, parse_zone, resolve_window

__all__ = ["FORMATS", "ReportParams", "ReportResult", "parse_formats", "records", "run"]

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
        # rendering (charts) is CPU work: off the event loop, so a deadline can still cancel the run
        contents = await asyncio.to_thread(render.render_files, result, formats)
        result.files = [str(p) for p in render.write_all(Path(params.out or "."), contents)]
    return result


def _progress(rt: Runtime) -> Any:
    """A "calls read" counter on stderr for a person at a terminal; nothing otherwise (cron, --json)."""
    if not rt.show_progress:
        return None

    def show(count: int) -> None:
        if count % 10_000 == 0:
            rt.notice(f"  {count:,} calls read")

    return show
