"""POST /analytics against an independent computation from the raw Call JSON.

The reference below shares no code with sandbox/rest/analytics.py: it reads every call's JSON
(``workspace.all_calls_raw()``), buckets each createdAt with plain ``datetime``/``zoneinfo``
arithmetic, one call at a time, and aggregates with a pandas groupby.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from sandbox.app import Sandbox

ANCHOR = datetime(2025, 4, 6, 15, 30, tzinfo=UTC)  # the 30-day window spans the US and EU DST switches
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Adelaide", "Pacific/Chatham",
         "America/Los_Angeles", "Asia/Tokyo"]
STEPS = ["second", "minute", "hour", "day", "week", "month", "quarter", "year", "decade", "century", "millennium"]
GROUPS = ["type", "assistantId", "endedReason", "analysis.successEvaluation", "status"]
NUMERIC = ["cost", "duration", "costBreakdown.llm", "costBreakdown.stt", "costBreakdown.tts", "costBreakdown.vapi",
           "costBreakdown.transport", "costBreakdown.ttsCharacters", "costBreakdown.llmPromptTokens",
           "costBreakdown.llmCompletionTokens", "costBreakdown.transcriber"]
OPS = ["sum", "avg", "count", "min", "max"]


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def reference_rows(calls: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per call, read straight from its JSON (duration in minutes, as documented)."""
    rows = []
    for call in calls:
        breakdown = call.get("costBreakdown") or {}
        row: dict[str, Any] = {
            "created": _parse(call["createdAt"]),
            "cost": call.get("cost"),
            "duration": ((_parse(call["endedAt"]) - _parse(call["startedAt"])).total_seconds() / 60
                         if call.get("endedAt") and call.get("startedAt") else None),
            "type": call.get("type"),
            "assistantId": call.get("assistantId"),
            "endedReason": call.get("endedReason"),
            "analysis.successEvaluation": (call.get("analysis") or {}).get("successEvaluation"),
            "status": call.get("status"),
        }
        for column in NUMERIC:
            if column.startswith("costBreakdown."):
                row[column] = breakdown.get(column.split(".", 1)[1])
        rows.append(row)
    return pd.DataFrame(rows)


def bucket(created: datetime, step: str, zone: ZoneInfo) -> datetime:
    """The bucket start of one instant, the slow obvious way."""
    if step == "second":
        return created.replace(microsecond=0)
    if step == "minute":
        return created.replace(second=0, microsecond=0)
    local = created.astimezone(zone)
    if step == "hour":
        return (local - timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond))
    year = local.year
    start = {
        "day": (year, local.month, local.day),
        "week": None,
        "month": (year, local.month, 1),
        "quarter": (year, (local.month - 1) // 3 * 3 + 1, 1),
        "year": (year, 1, 1),
        "decade": (year - year % 10, 1, 1),
        "century": ((year - 1) // 100 * 100 + 1, 1, 1),
        "millennium": ((year - 1) // 1000 * 1000 + 1, 1, 1),
    }[step]
    if start is None:
        monday = local.date() - timedelta(days=local.weekday())
        start = (monday.year, monday.month, monday.day)
    return datetime(*start, tzinfo=zone)


def reduce_values(operation: str, values: list[float]) -> float:
    if operation == "sum":
        return sum(values)
    if operation == "avg":
        return sum(values) / len(values)
    return min(values) if operation == "min" else max(values)


def expected_result(frame: pd.DataFrame, query: dict[str, Any], start: datetime, end: datetime) -> list[dict]:
    tr = query.get("timeRange") or {}
    zone = ZoneInfo(tr.get("timezone") or "UTC")
    window = frame[(frame["created"] >= start) & (frame["created"] < end)].copy()
    keys = []
    if tr.get("step"):
        window["date"] = [_iso(bucket(c, tr["step"], zone)) for c in window["created"]]
        keys.append("date")
    keys += query.get("groupBy") or []
    if window.empty:
        return []
    if keys:
        grouped = window.groupby(keys, dropna=False)
        groups = [(k if isinstance(k, tuple) else (k,), g) for k, g in grouped]
    else:
        groups = [((), window)]
    rows = []
    for key, group in groups:
        row: dict[str, Any] = {
            k: (None if (isinstance(v, float) and math.isnan(v)) else v) for k, v in zip(keys, key, strict=True)
        }
        for op in query["operations"]:
            name = op.get("alias") or op["operation"] + op["column"][0].upper() + op["column"][1:]
            if op["column"] == "id":
                row[name] = len(group)
                continue
            values = [float(v) for v in group[op["column"]] if v is not None and not pd.isna(v)]
            if op["operation"] == "count":
                row[name] = len(values)
            elif not values:
                row[name] = None
            else:
                row[name] = reduce_values(op["operation"], values)
        rows.append(row)
    return rows


def assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]], query: dict[str, Any]) -> None:
    """Same groups (date + groupBy values) with the same metric values (floats approximately)."""
    keys = (["date"] if (query.get("timeRange") or {}).get("step") else []) + (query.get("groupBy") or [])
    metrics = [op.get("alias") or op["operation"] + op["column"][0].upper() + op["column"][1:]
               for op in query["operations"]]

    def index(rows: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
        for row in rows:
            assert set(row) == set(keys) | set(metrics), (query, row)
        return {tuple(row[k] for k in keys): row for row in rows}

    mine, theirs = index(got), index(want)
    assert len(mine) == len(got) and set(mine) == set(theirs), query
    for key, row in mine.items():
        for metric in metrics:
            expected = theirs[key][metric]
            if expected is None:
                assert row[metric] is None, (query, key, metric)
            else:
                assert row[metric] == pytest.approx(expected, rel=1e-9, abs=1e-9), (query, key, metric)


def random_query(rng: random.Random, n: int) -> dict[str, Any]:
    ops: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 4)):
        column = rng.choice(["id", *NUMERIC])
        operation = "count" if column == "id" else rng.choice(OPS)
        op: dict[str, Any] = {"operation": operation, "column": column}
        if rng.random() < 0.5 or any(o["column"] == column and o["operation"] == operation for o in ops):
            op["alias"] = f"m{len(ops)}"
        ops.append(op)
    query: dict[str, Any] = {"table": "call", "name": f"q{n}", "operations": ops}
    if rng.random() < 0.8:
        query["groupBy"] = rng.sample(GROUPS, rng.randint(1, 2))
    end = ANCHOR - timedelta(hours=rng.uniform(0, 72))
    start = end - timedelta(days=rng.uniform(0.2, 29))
    tr: dict[str, Any] = {"end": _iso(end) if rng.random() < 0.5 else end.isoformat()}
    if rng.random() < 0.85:
        tr["start"] = _iso(start)
    if rng.random() < 0.85:
        tr["step"] = rng.choice(STEPS[1:] if rng.random() < 0.9 else STEPS)
    if rng.random() < 0.8:
        tr["timezone"] = rng.choice(ZONES)
    query["timeRange"] = tr
    return query


async def test_randomized_queries_match_an_independent_computation(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(calls=600, anchor=ANCHOR)
    frame = reference_rows(list(sandbox.workspace.all_calls_raw()))
    rng = random.Random(20250406)
    async with sandbox.rest_client() as client:
        for batch in range(10):
            queries = [random_query(rng, batch * 10 + i) for i in range(8)]
            response = await client.post("/analytics", json={"queries": queries})
            assert response.status_code == 201, response.text
            results = response.json()
            assert [r["name"] for r in results] == [q["name"] for q in queries]
            for query, result in zip(queries, results, strict=True):
                tr = query["timeRange"]
                end = _parse(tr["end"])
                start = _parse(tr["start"]) if "start" in tr else end - timedelta(days=7)
                echoed = result["timeRange"]
                assert _parse(echoed["start"]) == start.replace(microsecond=start.microsecond // 1000 * 1000)
                assert echoed["timezone"] == tr.get("timezone", "UTC") and echoed.get("step") == tr.get("step")
                assert_same(result["result"], expected_result(frame, query, start, end), query)


async def test_defaults_live_calls_and_row_order(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(calls=200)  # anchored now: the default 7-day window has calls
    async with sandbox.rest_client() as client:
        assistant = (await client.get("/assistant")).json()[0]["id"]
        created = await client.post("/call", json={"assistantId": assistant, "customer": {"number": "+14155550111"}})
        assert created.status_code == 201
        query = {"table": "call", "name": "all", "operations": [{"operation": "count", "column": "id"},
                                                                {"operation": "sum", "column": "cost"}],
                 "groupBy": ["status", "assistantId"]}
        result = (await client.post("/analytics", json={"queries": [query]})).json()[0]
    tr = result["timeRange"]
    assert set(tr) == {"start", "end", "timezone"} and tr["timezone"] == "UTC"
    end = _parse(tr["end"])
    assert abs((end - datetime.now(tz=UTC)).total_seconds()) < 30
    assert end - _parse(tr["start"]) == timedelta(days=7)
    frame = reference_rows(list(sandbox.workspace.all_calls_raw()))
    assert_same(result["result"], expected_result(frame, query, _parse(tr["start"]), end), query)
    assert any(r["status"] != "ended" for r in result["result"])  # the queued API call is counted
    keys = [(r["status"], r["assistantId"] or "") for r in result["result"]]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        ([{"table": "call"}], ["queries must be an array", "queries should not be empty"]),
        ({"queries": [{"table": "call", "name": "x", "operations": [{"operation": "sum", "column": "cost"}],
                       "groupBy": "type"}]}, ["queries.0.groupBy must be an array"]),
        ({"queries": [{"table": "calls", "name": "x", "operations": [{"operation": "median", "column": "cost"}]}]},
         ["queries.0.table must be one of the following values: call, subscription",
          "queries.0.operations.0.operation must be one of the following values: sum, avg, count, min, max, history"]),
        ({"queries": [{"table": "call", "name": "x", "operations": [{"operation": "sum", "column": "price"}],
                       "extra": 1}]},
         ["queries.0.property extra should not exist",
          "queries.0.operations.0.column must be one of the following values: " + ", ".join(
              ["id", "cost", "costBreakdown.llm", "costBreakdown.stt", "costBreakdown.tts", "costBreakdown.vapi",
               "costBreakdown.transport", "costBreakdown.analysisBreakdown.summary", "costBreakdown.transcriber",
               "costBreakdown.ttsCharacters", "costBreakdown.llmPromptTokens", "costBreakdown.llmCompletionTokens",
               "costBreakdown.llmCachedPromptTokens", "duration", "concurrency", "minutesUsed"])]),
        ({"queries": [{"table": "call", "name": "x", "operations": [{"operation": "sum", "column": "id"}],
                       "timeRange": {"timezone": "Mars/Olympus", "start": "2025-01-02T00:00:00Z",
                                     "end": "2025-01-01T00:00:00Z", "step": "fortnight"}}]},
         ["queries.0.timeRange.step must be one of the following values: " + ", ".join(STEPS)]),
        ({"queries": [{"table": "call", "name": "x", "operations": [{"operation": "sum", "column": "id"}],
                       "timeRange": {"timezone": "Mars/Olympus", "start": "2025-01-02T00:00:00Z",
                                     "end": "2025-01-01T00:00:00Z"}}]},
         ["queries.0.timeRange.timezone must be a valid IANA time zone",
          "queries.0.timeRange.start must be before timeRange.end",
          "queries.0.operations.0.operation sum cannot be applied to column id (use count)"]),
        ({"queries": [{"table": "call", "name": "x", "operations": [{"operation": "history", "column": "cost"}]}]},
         ["queries.0.operations.0.operation history is not supported by the sandbox"]),
        ({"queries": []}, ["queries must contain at least 1 elements"]),
    ],
)
async def test_invalid_queries_are_400(
    make_sandbox: Callable[..., Sandbox], body: Any, messages: list[str]
) -> None:
    async with make_sandbox(calls=50).rest_client() as client:
        response = await client.post("/analytics", json=body)
        assert response.status_code == 400
        assert response.json() == {"message": messages, "error": "Bad Request", "statusCode": 400}


async def test_a_large_workspace_counts_every_call(make_sandbox: Callable[..., Sandbox]) -> None:
    # how fast is measured by bench/throughput (the analytics scenario), never asserted here
    sandbox = make_sandbox(calls=30_000, anchor=ANCHOR)
    query = {"table": "call", "name": "big", "operations": [
        {"operation": "avg", "column": "duration"}, {"operation": "sum", "column": "cost"},
        {"operation": "count", "column": "id"}], "groupBy": ["assistantId", "endedReason"],
        "timeRange": {"start": _iso(ANCHOR - timedelta(days=31)), "end": _iso(ANCHOR), "step": "day",
                      "timezone": "America/New_York"}}
    async with sandbox.rest_client() as client:
        response = await client.post("/analytics", json={"queries": [query]})
    assert response.status_code == 201
    rows = response.json()[0]["result"]
    assert sum(r["countId"] for r in rows) == 30_000  # every call, the live ones included, is in range
