"""Benchmark: sandbox throughput: MCP tool calls against plain REST, paging, analytics, start-up.

Run (never run by CI)::

    .venv/bin/python -m bench.throughput [--json] [--quick] [--rounds 3] [--calls 100000]

The sandbox runs in its own process (``python -m sandbox serve``), so client and server do not share
a GIL. Each figure is measured beside a baseline, interleaved round by round:

* lookups: ``--lookups`` ``get_single_vapi_call_by_id`` through our MCP connection (JSON-RPC over
  Streamable HTTP, Truto-style proxying to the REST app), ``--concurrency`` at a time, against the
  same lookups as plain REST ``GET /call/{id}``: what the MCP layer costs;
* paging: the newest 1,000 calls of the dataset through ``list_all_vapi_calls`` (``next_cursor``
  pages of 100) against one REST ``GET /call?limit=1000``;
* analytics: one ``POST /analytics`` query over every call (sum, average and count grouped by
  assistant and ended reason, by day over 31 days), the query ``report --source analytics`` relies on;
* start-up: ``python -m sandbox serve --calls N`` until it answers, for a small and the full dataset
  (calls are generated on demand from (seed, index), so the size should barely matter).

There is no ideal computed from the workload here: each MCP figure is compared with REST doing the
same work, the cost of the protocol layer.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2

from bench import harness
from bench.served import auth, rest_get, served_sandbox

ANCHOR = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def _runtime(url: str) -> Any:
    from agent.config import load_settings
    from agent.runtime import open_runtime

    return open_runtime(load_settings({"mcp_url": url, "mcp_kind": "sandbox"}, env={}), store=None,
                        notice=lambda _m: None, prompt=None)


async def rest_lookups(origin: str, ids: list[str], concurrency: int) -> float:
    """Seconds for every ``GET /call/{id}``, ``concurrency`` at a time."""
    limit = asyncio.Semaphore(concurrency)
    async with httpx2.AsyncClient(base_url=origin, headers=auth(), timeout=60) as http:
        async def one(call_id: str) -> None:
            async with limit:
                (await http.get(f"/call/{call_id}")).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in ids))
        return time.perf_counter() - started


async def mcp_lookups(url: str, ids: list[str], concurrency: int) -> float:
    """Seconds for every ``get_single_vapi_call_by_id`` through our connection (session already open)."""
    limit = asyncio.Semaphore(concurrency)
    async with _runtime(url) as rt:
        async def one(call_id: str) -> None:
            async with limit:
                (await rt.hub.call("get_single_vapi_call_by_id", {"id": call_id})).raise_for_error()

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in ids))
        return time.perf_counter() - started


async def rest_page(origin: str) -> tuple[float, int]:
    """One ``GET /call?limit=1000``: seconds and items."""
    async with httpx2.AsyncClient(base_url=origin, headers=auth(), timeout=300) as http:
        started = time.perf_counter()
        response = await http.get("/call", params={"limit": 1000})
        response.raise_for_status()
        return time.perf_counter() - started, len(response.json())


async def mcp_page(url: str) -> tuple[float, int]:
    """The newest 1,000 calls through ``list_all_vapi_calls`` pages: seconds and items."""
    async with _runtime(url) as rt:
        started = time.perf_counter()
        calls = await rt.vapi.list_all("calls.list", limit=1000, full=True)
        return time.perf_counter() - started, len(calls)


def analytics_query() -> dict[str, Any]:
    """Sum, average and count by assistant and ended reason, by day, over the dataset's 31 days."""
    iso = "%Y-%m-%dT%H:%M:%S.000Z"
    return {"queries": [{
        "table": "call", "name": "bench", "groupBy": ["assistantId", "endedReason"],
        "operations": [{"operation": "avg", "column": "duration"}, {"operation": "sum", "column": "cost"},
                       {"operation": "count", "column": "id"}],
        "timeRange": {"start": (ANCHOR - timedelta(days=31)).strftime(iso), "end": ANCHOR.strftime(iso),
                      "step": "day", "timezone": "America/New_York"}}]}


def rest_analytics(origin: str) -> tuple[float, int]:
    """One analytics query: seconds and the calls it counted."""
    started = time.perf_counter()
    response = httpx2.post(f"{origin}/analytics", json=analytics_query(), headers=auth(), timeout=300)
    response.raise_for_status()
    return time.perf_counter() - started, sum(int(r["countId"]) for r in response.json()[0]["result"])


def start_seconds(calls: int) -> float:
    """``python -m sandbox serve --calls N`` until its REST API answers."""
    started = time.perf_counter()
    with served_sandbox("--calls", str(calls), "--anchor", ANCHOR.isoformat()):
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Measure, interleaved, and print the figures (``--json``: one JSON document)."""
    parser = harness.parser(__doc__)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    args: argparse.Namespace = parser.parse_args(argv)
    rounds = harness.check_rounds(args)
    calls, lookups = (10_000, 60) if args.quick else (args.calls, args.lookups)
    result = harness.Result("throughput", args.quick, rounds)
    no_ideal = {"note": "none from the workload: MCP is compared with REST doing the same work"}

    with served_sandbox("--calls", str(calls), "--anchor", ANCHOR.isoformat()) as (url, origin):
        ids = [c["id"] for c in rest_get(origin, "/call", limit=lookups)]
        asyncio.run(rest_lookups(origin, ids[:20], args.concurrency))  # warm both paths
        asyncio.run(mcp_lookups(url, ids[:20], args.concurrency))

        lookup = harness.Scenario(
            "lookups: one call by id", workload={"lookups": len(ids), "concurrency": args.concurrency,
                                                 "dataset_calls": calls},
            ideal=no_ideal, contenders=["MCP (ours)", "REST"],
            columns={"per_second": "lookups per s", "seconds": "seconds"})

        def measure_lookups(name: str, _round: int) -> dict[str, float]:
            seconds = asyncio.run(mcp_lookups(url, ids, args.concurrency) if name == "MCP (ours)"
                                  else rest_lookups(origin, ids, args.concurrency))
            return {"seconds": seconds, "per_second": len(ids) / seconds}

        result.scenarios.append(lookup.run(rounds, measure_lookups))
        ratio = lookup.median("MCP (ours)", "seconds") / lookup.median("REST", "seconds")
        lookup.notes.append(f"MCP takes {ratio:.2f}x the REST time")

        paging = harness.Scenario(
            f"paging: the newest 1,000 of {calls:,} calls", workload={"items": 1000, "dataset_calls": calls},
            ideal=no_ideal, contenders=["MCP (ours), 10 pages of 100", "REST, one request of 1,000"],
            columns={"seconds": "seconds", "items": "items"})

        def measure_paging(name: str, _round: int) -> dict[str, float]:
            seconds, items = asyncio.run(mcp_page(url) if name.startswith("MCP") else rest_page(origin))
            return {"seconds": seconds, "items": items}

        result.scenarios.append(paging.run(rounds, measure_paging))
        mcp_s, rest_s = (paging.median(name, "seconds") for name in paging.contenders)
        paging.notes.append(f"MCP paging takes {mcp_s / rest_s:.2f}x the one REST request")

        analytics = harness.Scenario(
            f"analytics: one query over {calls:,} calls", workload={"query": "avg duration, sum cost, count by "
                                                                    "assistant x ended reason x day, 31 days"},
            ideal=no_ideal, contenders=["REST POST /analytics"],
            columns={"seconds": "seconds", "counted": "calls counted"})

        def measure_analytics(_name: str, _round: int) -> dict[str, float]:
            seconds, counted = rest_analytics(origin)
            return {"seconds": seconds, "counted": counted}

        result.scenarios.append(analytics.run(rounds, measure_analytics))

    sizes = {f"{n:,} calls": n for n in (2_000, calls)}
    start = harness.Scenario("start-up: serve until the REST API answers", workload={"sizes": list(sizes.values())},
                             ideal=no_ideal, contenders=list(sizes), columns={"seconds": "seconds"})
    result.scenarios.append(start.run(rounds, lambda name, _r: {"seconds": start_seconds(sizes[name])}))
    return result.finish(args)


if __name__ == "__main__":
    raise SystemExit(main())
