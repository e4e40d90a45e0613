"""The data behind a report: a small "cube" of call counts and sums, from either of two sources.

A cube has one row per (local day, group key, ended reason, success evaluation) with integer
metrics: ``calls``, costs in micro-USD (``cost_u`` and the breakdown ``llm_u``...), ``duration_ms``
and ``timed`` (calls that have a duration). Integers make both sources agree exactly: Vapi's
costs have at most 4 decimals and its timestamps are whole milliseconds, so rounding each sum to
those units removes the float noise of different summation orders.

- ``analytics_cubes``: Vapi's ``POST /analytics`` (``create_a_vapi_analytics``), one query per
  period grouped by the group column, ``endedReason`` and ``analysis.successEvaluation`` with
  ``timeRange.step = day``: the server does the work.
- ``calls_cubes``: pages ``GET /call`` over both periods once and folds each call into the cube as
  it arrives (``CubeBuilder``), so memory is one page plus the cube, never every call's JSON.

Everything the tables need is derived from the cube (``workflows.report.tables``), so both sources
give the same tables by construction wherever both can answer.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from agent.errors import ConfigError, MissingCapability, ToolError
from agent.runtime import Runtime
from agent.timeparse import iso_ms
from workflows.report.params import GROUP_BY, SOURCES
from workflows.report.window import Window

__all__ = ["GROUP_BY", "SOURCES", "CubeBuilder", "analytics_cubes", "calls_cubes", "choose_source", "group_labels"]

NONE = ""  # "no value" (no assistant, not ended, not evaluated) in the cube's key columns
KEYS = ("day", "key", "reason", "success")
BREAKDOWN = ("llm", "stt", "tts", "vapi", "transport")
METRICS = ("calls", "cost_u", *(f"{part}_u" for part in BREAKDOWN), "duration_ms", "timed")
# --group-by -> the analytics groupBy column (squads cannot be grouped by analytics)
ANALYTICS_COLUMN = {"assistant": "assistantId", "endedReason": "endedReason"}


def empty_cube() -> pd.DataFrame:
    """A cube with no rows (and the right columns)."""
    return pd.DataFrame({**{k: pd.Series(dtype=object) for k in KEYS},
                         **{m: pd.Series(dtype="int64") for m in METRICS}})


def _micro(value: Any) -> int:
    """USD (number or numeric string) -> integer micro-USD; anything else is 0."""
    if isinstance(value, bool) or value is None:
        return 0
    try:
        return round(float(value) * 1_000_000)
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str:
    """A key value as text (``NONE`` for null); booleans as ``true``/``false`` like Vapi's strings."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def group_key(call: Mapping[str, Any], group_by: str) -> str:
    """The group of one call: its assistant id, ended reason or squad id (``NONE`` when it has none)."""
    if group_by == "assistant":
        return _text(call.get("assistantId"))
    if group_by == "endedReason":
        return _text(call.get("endedReason"))
    return _text(call.get("squadId"))


class CubeBuilder:
    """Folds calls into a cube one at a time; holds one row of integers per distinct cell."""

    def __init__(self, window: Window, group_by: str) -> None:
        self.window = window
        self.group_by = group_by
        self.calls = 0
        self._cells: dict[tuple[str, str, str, str], list[int]] = {}

    def add(self, call: Mapping[str, Any]) -> None:
        """Count one call (its JSON is not kept)."""
        created = datetime.fromisoformat(call["createdAt"])
        reason = _text(call.get("endedReason"))
        success = _text((call.get("analysis") or {}).get("successEvaluation"))
        cell = (self.window.local_date(created).isoformat(), group_key(call, self.group_by), reason, success)
        row = self._cells.get(cell)
        if row is None:
            row = self._cells[cell] = [0] * len(METRICS)
        breakdown = call.get("costBreakdown") or {}
        row[0] += 1
        row[1] += _micro(call.get("cost"))
        for i, part in enumerate(BREAKDOWN, start=2):
            row[i] += _micro(breakdown.get(part))
        if call.get("startedAt") and call.get("endedAt"):
            row[-2] += _ms(call["endedAt"]) - _ms(call["startedAt"])
            row[-1] += 1
        self.calls += 1

    def frame(self) -> pd.DataFrame:
        """The cube as a DataFrame, sorted by its keys."""
        if not self._cells:
            return empty_cube()
        rows = [(*cell, *values) for cell, values in self._cells.items()]
        frame = pd.DataFrame(rows, columns=[*KEYS, *METRICS])
        return frame.sort_values(list(KEYS), ignore_index=True)


# ---------------------------------------------------------------- source choice
def choose_source(rt: Runtime, source: str, group_by: str) -> str:
    """``analytics`` or ``calls`` for ``--source`` (auto: analytics when the server and grouping allow)."""
    has_analytics = rt.vapi.supports("analytics.query")
    groupable = group_by in ANALYTICS_COLUMN
    if source == "analytics":
        if not groupable:
            raise ConfigError(f"Vapi's analytics cannot group by {group_by}",
                              hint="use --source calls or --source auto")
        if not has_analytics:
            raise MissingCapability("the server has no analytics tool (create_a_vapi_analytics)",
                                    hint="use --source calls or --source auto")
        return "analytics"
    if source == "calls" or not (has_analytics and groupable):
        if not rt.vapi.supports("calls.list"):
            rt.vapi.require_workflow("report")
        return "calls"
    return "analytics"


# ---------------------------------------------------------------- the analytics path
def analytics_query(name: str, window: Window, group_by: str) -> dict[str, Any]:
    """One ``AnalyticsQuery`` giving the cube of ``window`` (every operation has an alias)."""
    column = ANALYTICS_COLUMN[group_by]
    operations = [
        {"operation": "count", "column": "id", "alias": "calls"},
        {"operation": "sum", "column": "cost", "alias": "cost"},
        *({"operation": "sum", "column": f"costBreakdown.{part}", "alias": part} for part in BREAKDOWN),
        {"operation": "sum", "column": "duration", "alias": "minutes"},
        {"operation": "count", "column": "duration", "alias": "timed"},
    ]
    return {
        "table": "call", "name": name, "operations": operations,
        "groupBy": list(dict.fromkeys([column, "endedReason", "analysis.successEvaluation"])),
        "timeRange": {"start": iso_ms(window.start), "end": iso_ms(window.end), "step": "day", "timezone": window.tz},
    }


def cube_from_analytics(rows: list[dict[str, Any]], window: Window, group_by: str) -> pd.DataFrame:
    """Analytics result rows -> a cube (durations come in minutes; costs in USD)."""
    column = ANALYTICS_COLUMN[group_by]
    records = []
    for row in rows:
        if not isinstance(row, dict) or not row.get("date"):
            raise ToolError(f"analytics returned a row without a date: {str(row)[:200]}")
        day = window.local_date(datetime.fromisoformat(str(row["date"]))).isoformat()
        minutes = row.get("minutes")
        records.append((
            day, _text(row.get(column)), _text(row.get("endedReason")),
            _text(row.get("analysis.successEvaluation")),
            int(float(row.get("calls") or 0)), _micro(row.get("cost")),
            *(_micro(row.get(part)) for part in BREAKDOWN),
            round(float(minutes) * 60_000) if minutes is not None else 0, int(float(row.get("timed") or 0)),
        ))
    if not records:
        return empty_cube()
    frame = pd.DataFrame(records, columns=[*KEYS, *METRICS])
    # several UTC buckets never share a local day, but be safe: sum duplicates
    frame = frame.groupby(list(KEYS), as_index=False, sort=True)[list(METRICS)].sum()
    return frame[frame["calls"] > 0].reset_index(drop=True)


async def analytics_cubes(rt: Runtime, window: Window, group_by: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cubes of this period and the previous one from one ``POST /analytics`` request."""
    previous = window.previous()
    results = await rt.vapi.analytics([analytics_query("current", window, group_by),
                                       analytics_query("previous", previous, group_by)])
    if len(results) != 2:
        raise ToolError(f"analytics answered {len(results)} results for 2 queries")
    by_name = {r.get("name"): r for r in results if isinstance(r, dict)}
    current, prior = (by_name.get(n) or results[i] for i, n in enumerate(("current", "previous")))
    return (cube_from_analytics(list(current.get("result") or []), window, group_by),
            cube_from_analytics(list(prior.get("result") or []), previous, group_by))


# ---------------------------------------------------------------- the calls path
async def calls_cubes(rt: Runtime, window: Window, group_by: str, *,
                      progress: Callable[[int], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cubes of this period and the previous one from one pass over the calls of both.

    Paging one list is a chain of round trips, each waiting on the server, so the calls are read in
    four time slices at once (each period in halves: ``time_slices``), and each page is folded while
    the server builds the next ones (bench/report, 20,000 calls: one chain of pages 12.6-12.9 s, four
    slices 10.5-10.8 s). Pages are folded in any order: the cube is a sum. At most ``3 + slices``
    pages are held (one folded, two queued, one arriving per slice).
    """
    previous = window.previous()
    current_cube, previous_cube = CubeBuilder(window, group_by), CubeBuilder(previous, group_by)
    start_ms, split_ms, end_ms = (round(t.timestamp() * 1000) for t in (previous.start, window.start, window.end))
    pages: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(maxsize=2)

    async def fetch(start: datetime, end: datetime) -> None:
        async for page in rt.vapi.iter_call_pages(created_at_ge=start, created_at_lt=end):
            await pages.put(page)

    async def fetch_all() -> None:
        async with asyncio.TaskGroup() as slices:
            for start, end in (*time_slices(previous.start, previous.end), *time_slices(window.start, window.end)):
                slices.create_task(fetch(start, end))
        await pages.put(None)

    seen = 0
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(fetch_all())
            while (page := await pages.get()) is not None:
                for call in page:
                    created = _ms(call["createdAt"])
                    # the server filtered already; a call outside both periods (a lax server) is not counted
                    if split_ms <= created < end_ms:
                        current_cube.add(call)
                    elif start_ms <= created < split_ms:
                        previous_cube.add(call)
                    seen += 1
                    if progress is not None and seen % 500 == 0:
                        progress(seen)
    except BaseExceptionGroup as failed:
        raise _first_leaf(failed) from None
    return current_cube.frame(), previous_cube.frame()


def time_slices(start: datetime, end: datetime, parts: int = 2) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into ``parts`` half-open slices at whole seconds (so each bound is the same
    string in both neighbouring requests: no call is read twice or missed); fewer when it is short."""
    whole = int((end - start).total_seconds())
    cuts = sorted({start + timedelta(seconds=whole * i // parts) for i in range(1, parts)} - {start})
    bounds = [start, *cuts, end]
    return list(itertools.pairwise(bounds))


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error of a (possibly nested) exception group: what a slice or the fold raised."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


# ---------------------------------------------------------------- labels
async def group_labels(rt: Runtime, group_by: str, keys: set[str]) -> dict[str, str]:
    """A display label per group key: assistant or squad names (unique), ended reasons as they are."""
    empty = {"assistant": "(no assistant)", "endedReason": "(not ended)", "squad": "(no squad)"}[group_by]
    labels = {key: key for key in keys}
    if group_by != "endedReason":
        operation = "assistants.list" if group_by == "assistant" else "squads.list"
        names: dict[str, str] = {}
        if rt.vapi.supports(operation, full=False):
            names = {str(o.get("id")): str(o.get("name") or o.get("id"))
                     for o in await rt.vapi.list_all(operation) if o.get("id")}
        for key in keys:
            labels[key] = names.get(key, f"{key[:8]} (deleted)" if names else key)
        counts: dict[str, int] = {}
        for key in keys:
            counts[labels[key]] = counts.get(labels[key], 0) + 1
        for key in keys:  # two assistants with one name: tell them apart by id
            if counts[labels[key]] > 1:
                labels[key] = f"{labels[key]} ({key[:8]})"
    if NONE in keys:
        labels[NONE] = empty
    return labels
