"""``POST /analytics``: validated queries aggregated over the workspace's calls with pandas.

Semantics (Vapi's docs are thin here; every choice below is a labelled assumption):

- A call belongs to a query when ``timeRange.start <= createdAt < timeRange.end``. ``start``
  defaults to 7 days before now, ``end`` to now, ``timezone`` to UTC; the answer echoes the filled-in
  ``timeRange``.
- ``step`` buckets calls by the *local* calendar of ``timezone`` the way Postgres ``date_trunc`` does
  (weeks start on Monday; decade = year - year % 10; century/millennium start at years ..01). Each
  row's ``date`` is the bucket start as a UTC ISO timestamp. Without ``step`` there is one bucket
  and no ``date`` key.
- Rows exist only for (bucket, group) combinations that have calls, sorted by date then group keys.
- **``duration`` is in minutes** (``(endedAt - startedAt) / 60``), like Vapi's billing and dashboard
  minutes; calls that have not ended have no duration. ``minutesUsed`` (table ``subscription``) is
  the same per-call minutes.
- SQL aggregate semantics: ``count`` counts non-null values (``count`` of ``id`` = calls); ``sum``,
  ``avg``, ``min``, ``max`` ignore nulls and are null when a group has no values.
- The result key is the ``alias``, else ``${operation}${Column}`` (e.g. ``sumCost``, ``countId``,
  ``avgDuration``, ``sumCostBreakdown.llm``).
- Not simulated (answered 400 with a clear message): the ``history`` operation, the ``concurrency``
  column and ``groupByVariableValue``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from sandbox.rest.validation import Arr, Str, VapiHttpError, bad_request, obj, validate_body
from sandbox.world.ids import iso_ms, parse_iso

OPERATIONS = ("sum", "avg", "count", "min", "max", "history")
SIMULATED_OPERATIONS = ("sum", "avg", "count", "min", "max")
COST_COLUMNS = (
    "costBreakdown.llm",
    "costBreakdown.stt",
    "costBreakdown.tts",
    "costBreakdown.vapi",
    "costBreakdown.transport",
    "costBreakdown.analysisBreakdown.summary",
    "costBreakdown.transcriber",
    "costBreakdown.ttsCharacters",
    "costBreakdown.llmPromptTokens",
    "costBreakdown.llmCompletionTokens",
    "costBreakdown.llmCachedPromptTokens",
)
COLUMNS = ("id", "cost", *COST_COLUMNS, "duration", "concurrency", "minutesUsed")
NUMERIC_COLUMNS = ("cost", *COST_COLUMNS, "duration", "minutesUsed")
GROUP_BY = ("type", "assistantId", "endedReason", "analysis.successEvaluation", "status")
STEPS = (
    "second", "minute", "hour", "day", "week", "month", "quarter", "year", "decade", "century", "millennium",
)
DEFAULT_RANGE = timedelta(days=7)

QUERY_BODY = obj(
    queries=Arr(
        items=obj(
            ("table", "name", "operations"),
            table=Str(enum=("call", "subscription")),
            name=Str(),
            operations=Arr(
                items=obj(
                    ("operation", "column"),
                    operation=Str(enum=OPERATIONS),
                    column=Str(enum=COLUMNS),
                    alias=Str(max_length=40),
                ),
                min_size=1,
            ),
            groupBy=Arr(items=Str(enum=GROUP_BY)),
            groupByVariableValue=Arr(items=obj(("key",), key=Str())),
            timeRange=obj(
                step=Str(enum=STEPS),
                start=Str(iso_date=True),
                end=Str(iso_date=True),
                timezone=Str(),
            ),
        ),
        min_size=1,
    ),
)
QUERY_BODY.required = frozenset({"queries"})


def run_queries(body: Any, frame: pd.DataFrame, now: datetime) -> list[dict[str, Any]]:
    """Validate the whole request first (a 400 lists every problem), then answer each query in order.

    ``frame`` has one row per call: ``createdAt`` (epoch ms), the ``GROUP_BY`` columns and the
    numeric ``NUMERIC_COLUMNS`` (NaN = no value), as built by ``sandbox.rest.analytics``.
    """
    if isinstance(body, list):
        raise bad_request(["queries must be an array", "queries should not be empty"])
    validate_body(body, QUERY_BODY)
    errors: list[str] = []
    plans = [_plan(query, f"queries.{i}.", now, errors) for i, query in enumerate(body["queries"])]
    if errors:
        raise bad_request(errors)
    return [_answer(plan, frame) for plan in plans]


class _Plan:
    """One validated query with its time range resolved."""

    def __init__(self, query: Mapping[str, Any], start: datetime, end: datetime, zone: ZoneInfo) -> None:
        self.query = query
        self.start = start
        self.end = end
        self.zone = zone
        time_range = query.get("timeRange") or {}
        self.step: str | None = time_range.get("step")
        self.timezone: str = time_range.get("timezone") or "UTC"
        self.group_by: list[str] = list(dict.fromkeys(query.get("groupBy") or []))
        self.operations: list[tuple[str, str, str]] = [
            (op["operation"], op["column"], op.get("alias") or _default_key(op["operation"], op["column"]))
            for op in query["operations"]
        ]

    def echo_range(self) -> dict[str, Any]:
        """The ``timeRange`` as answered: defaults filled in."""
        echoed: dict[str, Any] = {"start": iso_ms(self.start), "end": iso_ms(self.end), "timezone": self.timezone}
        if self.step:
            echoed["step"] = self.step
        return echoed


def _default_key(operation: str, column: str) -> str:
    return operation + column[:1].upper() + column[1:]


def _plan(query: Mapping[str, Any], prefix: str, now: datetime, errors: list[str]) -> _Plan:
    time_range = query.get("timeRange") or {}
    timezone = time_range.get("timezone") or "UTC"
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"{prefix}timeRange.timezone must be a valid IANA time zone")
        zone = ZoneInfo("UTC")
    end = parse_iso(time_range["end"]) if time_range.get("end") else now.astimezone(UTC)
    start = parse_iso(time_range["start"]) if time_range.get("start") else end - DEFAULT_RANGE
    if start >= end:
        errors.append(f"{prefix}timeRange.start must be before timeRange.end")
    if query.get("groupByVariableValue"):
        errors.append(f"{prefix}groupByVariableValue is not supported by the sandbox")
    seen: set[str] = set()
    for j, op in enumerate(query["operations"]):
        where = f"{prefix}operations.{j}."
        if op["operation"] not in SIMULATED_OPERATIONS:
            errors.append(f"{where}operation {op['operation']} is not supported by the sandbox")
        if op["column"] == "concurrency":
            errors.append(f"{where}column concurrency is not supported by the sandbox")
        elif op["column"] == "id" and op["operation"] != "count":
            errors.append(f"{where}operation {op['operation']} cannot be applied to column id (use count)")
        key = op.get("alias") or _default_key(op["operation"], op["column"])
        if key in seen or key in ("date", *(query.get("groupBy") or [])):
            errors.append(f"{where}alias {key} is used twice in one query")
        seen.add(key)
    return _Plan(query, start, end, zone)


def _answer(plan: _Plan, frame: pd.DataFrame) -> dict[str, Any]:
    start_ms = int(plan.start.timestamp() * 1000)
    end_ms = int(plan.end.timestamp() * 1000)
    created = frame["createdAt"].to_numpy()
    # `frame` is sorted by createdAt: slice the window with two binary searches
    lo, hi = np.searchsorted(created, [start_ms, end_ms], side="left")
    window = frame.iloc[lo:hi]
    keys: list[str] = []
    if plan.step:
        window = window.assign(date=bucket_starts(window["createdAt"].to_numpy(), plan.step, plan.zone))
        keys.append("date")
    keys += plan.group_by
    rows = _aggregate(window, keys, plan.operations)
    return {"name": plan.query["name"], "timeRange": plan.echo_range(), "result": rows}


def _aggregate(window: pd.DataFrame, keys: list[str], operations: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    if window.empty:
        return []
    values = pd.DataFrame(
        {key: _operand(window, column) for _op, column, key in operations}, index=window.index
    )
    if keys:
        # dropna=False: a null group value (e.g. no successEvaluation) is a group, as in SQL
        grouped = values.groupby([window[k] for k in keys], dropna=False, sort=True)
        table = pd.DataFrame({key: _reduce(grouped[key], op) for op, _column, key in operations})
    else:
        table = pd.DataFrame(
            {key: [_reduce(values[key], op)] for op, _column, key in operations}, index=[()]
        )
    rows: list[dict[str, Any]] = []
    for index, record in zip(table.index, table.to_dict("records"), strict=True):
        parts = index if isinstance(index, tuple) else (index,)
        row: dict[str, Any] = {}
        for key, part in zip(keys, parts, strict=True):
            if _is_null(part):
                row[key] = None
            else:
                row[key] = iso_ms(int(part) / 1000) if key == "date" else part
        for _op, _column, key in operations:
            row[key] = _json_number(record[key])
        rows.append(row)
    return rows


def _operand(window: pd.DataFrame, column: str) -> pd.Series:
    if column == "id":
        # count(id) counts calls: 1.0 per row with an id, NaN otherwise
        return window["id"].notna().astype(float).where(window["id"].notna())
    return window[column].astype(float)


def _reduce(values: Any, operation: str) -> Any:
    """SQL aggregate over a Series (scalar) or a SeriesGroupBy (Series): nulls ignored."""
    if operation == "count":
        return values.count()
    if operation == "sum":
        return values.sum(min_count=1)
    if operation == "avg":
        return values.mean()
    if operation == "min":
        return values.min()
    return values.max()


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _json_number(value: Any) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    number = float(value)
    if math.isnan(number):
        return None
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def bucket_starts(created_ms: np.ndarray, step: str, zone: ZoneInfo) -> np.ndarray:
    """Bucket start (epoch ms, int64) of each createdAt for ``step`` in the local calendar of ``zone``."""
    if len(created_ms) == 0:
        return np.empty(0, dtype=np.int64)
    instants = pd.to_datetime(created_ms, unit="ms", utc=True)
    if step in ("second", "minute"):
        size = 1000 if step == "second" else 60_000
        # every modern zone offset is a whole number of minutes: local and UTC minutes coincide
        return (created_ms // size) * size
    local = instants.tz_convert(zone)
    wall = local.tz_localize(None)
    if step == "hour":
        # the hour containing an instant has one offset: subtract the local minutes/seconds
        remainder = (wall - wall.floor("h")).to_numpy().astype("timedelta64[ms]").astype(np.int64)
        return created_ms - remainder
    floor = _calendar_floor(wall, step)
    # local midnight may not exist or be doubled on a DST day: take the first valid instant
    localized = floor.tz_localize(zone, ambiguous=np.ones(len(floor), dtype=bool), nonexistent="shift_forward")
    return localized.tz_convert("UTC").as_unit("ms").asi8.astype(np.int64)


def _calendar_floor(wall: pd.DatetimeIndex, step: str) -> pd.DatetimeIndex:
    days = wall.normalize()
    if step == "day":
        return days
    if step == "week":
        return days - pd.to_timedelta(wall.day_of_week, unit="D")
    year, month = wall.year.to_numpy(), wall.month.to_numpy()
    if step == "month":
        return _dates(year, month)
    if step == "quarter":
        return _dates(year, (month - 1) // 3 * 3 + 1)
    if step == "year":
        return _dates(year, np.ones_like(month))
    if step == "decade":
        return _dates(year - year % 10, np.ones_like(month))
    if step == "century":
        return _dates((year - 1) // 100 * 100 + 1, np.ones_like(month))
    if step == "millennium":
        return _dates((year - 1) // 1000 * 1000 + 1, np.ones_like(month))
    raise VapiHttpError(400, [f"step {step} is not supported"])


def _dates(year: np.ndarray, month: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": 1})))


def frame_from_records(records: list[dict[str, Any]]) -> pd.DataFrame:
    """A query frame from full Call dicts (for calls the columnar accessor does not cover)."""
    rows = [call_row(call) for call in records]
    return pd.DataFrame(rows, columns=["createdAt", "id", *GROUP_BY, *NUMERIC_COLUMNS])


def call_row(call: Mapping[str, Any]) -> dict[str, Any]:
    """One frame row from a Call dict (duration in minutes, see the module docstring)."""
    breakdown = call.get("costBreakdown") or {}
    analysis = breakdown.get("analysisCostBreakdown") or {}
    started, ended = call.get("startedAt"), call.get("endedAt")
    minutes = (
        (parse_iso(ended) - parse_iso(started)).total_seconds() / 60 if started and ended else np.nan
    )
    row: dict[str, Any] = {
        "createdAt": int(parse_iso(call["createdAt"]).timestamp() * 1000),
        "id": call["id"],
        "type": call.get("type"),
        "assistantId": call.get("assistantId"),
        "endedReason": call.get("endedReason"),
        "analysis.successEvaluation": (call.get("analysis") or {}).get("successEvaluation"),
        "status": call.get("status"),
        "cost": _num_or_nan(call.get("cost")),
        "duration": minutes,
        "minutesUsed": minutes,
        "costBreakdown.analysisBreakdown.summary": _num_or_nan(analysis.get("summary")),
    }
    for column in COST_COLUMNS:
        if column != "costBreakdown.analysisBreakdown.summary":
            row[column] = _num_or_nan(breakdown.get(column.split(".", 1)[1]))
    return row


def _num_or_nan(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan

