"""Benchmark: `vapi-agent report` over many calls, against two peer clients, at 20,000 and 100,000 calls.

Run (never run by CI; bench/README.md says how long each size takes)::

    .venv/bin/python -m bench.report [--json] [--quick] [--rounds 3] [--sizes 20000,100000:1]

``SIZE:ROUNDS`` in ``--sizes`` runs that size with fewer rounds than ``--rounds`` (the 100,000-call
rounds take minutes each); the result then says so beside the figures, and its spread means little.

Per size, one sandbox is served by ``python -m sandbox serve --calls N --anchor ...`` in its own
process (the server never competes with a client for the GIL). Every sample is a fresh Python
process (``python -m bench.report --client MODE ...``) that reports its wall time (from before it
connects until its table is built; imports done before the clock starts), its CPU time and its peak
memory (``ru_maxrss`` at the end; ``baseline`` is the same figure after the imports). Contenders,
interleaved round by round:

* ``naive``: the mcp SDK pages ``list_all_vapi_calls`` (``next_cursor``), keeps every call's JSON in
  one list, then ``pd.json_normalize`` and a groupby: the obvious way to write it;
* ``streaming projection``: the same paging, but each call is projected at once onto the fields the
  report aggregates (day, assistant, ended reason, evaluation, cost, duration) and the JSON dropped,
  then one groupby: the lean way to write it by hand;
* ``ours``: the product, ``workflows.report.pipeline.run`` with ``source="calls"`` (it folds each call
  into the report's cube as pages arrive, and builds every table of the report);
* ``ours, analytics``: the same report from Vapi's analytics tool (the server aggregates), for
  reference: what ``--source auto`` does on a server that has analytics.

The window holds every call (the dataset spans 30 days before the anchor), so every client reads
the same pages, and all of them must agree on the totals (calls and cost) or the benchmark fails.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import harness
from bench.served import served_sandbox

ANCHOR = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
TOOL = "list_all_vapi_calls"
CONTENDERS = {"naive": "naive", "streaming projection": "projection", "ours": "ours",
              "ours, analytics": "analytics"}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------- the clients (each in its own process)
async def _pages(url: str, start: str, end: str) -> Any:
    """Every page of calls in [start, end) through the plain mcp SDK, following ``next_cursor``."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(timeout=300) as http, \
            Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client:
        args: dict[str, Any] = {"createdAtGe": start, "createdAtLt": end, "limit": 100}
        while True:
            result = await client.call_tool(TOOL, args)
            text = "".join(getattr(item, "text", "") for item in result.content)
            if result.is_error:
                raise RuntimeError(f"{TOOL} failed: {text[:300]}")
            page = json.loads(text)
            yield page["result"]
            if not page.get("next_cursor"):
                return
            args["next_cursor"] = page["next_cursor"]


async def naive(url: str, start: str, end: str) -> dict[str, Any]:
    """Keep every call, then ``pd.json_normalize`` and a groupby."""
    import pandas as pd

    calls: list[dict[str, Any]] = []
    async for page in _pages(url, start, end):
        calls.extend(page)
    frame = pd.json_normalize(calls)
    frame["day"] = frame["createdAt"].str.slice(0, 10)
    table = frame.groupby(["day", "assistantId"], dropna=False).agg(calls=("id", "size"), cost=("cost", "sum"))
    return {"calls": int(table["calls"].sum()), "cost": float(table["cost"].sum())}


async def projection(url: str, start: str, end: str) -> dict[str, Any]:
    """Project each call onto the aggregated fields as it arrives; one groupby at the end."""
    import pandas as pd

    rows: list[tuple[Any, ...]] = []
    async for page in _pages(url, start, end):
        for call in page:
            rows.append((call["createdAt"][:10], call.get("assistantId"), call.get("endedReason"),
                         (call.get("analysis") or {}).get("successEvaluation"), call.get("cost") or 0.0,
                         _seconds(call)))
    frame = pd.DataFrame(rows, columns=["day", "assistant", "ended", "evaluation", "cost", "seconds"])
    table = frame.groupby(["day", "assistant", "ended", "evaluation"], dropna=False).agg(
        calls=("cost", "size"), cost=("cost", "sum"), seconds=("seconds", "sum"))
    return {"calls": int(table["calls"].sum()), "cost": float(table["cost"].sum())}


def _seconds(call: dict[str, Any]) -> float:
    started, ended = call.get("startedAt"), call.get("endedAt")
    if not (started and ended):
        return 0.0
    return (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()


async def ours(url: str, start: str, end: str, source: str) -> dict[str, Any]:
    """The product's report pipeline."""
    from agent.config import Settings
    from agent.runtime import open_runtime
    from workflows import report

    async with open_runtime(Settings(mcp_url=url), store=None, notice=lambda _m: None) as rt:
        result = await report.run(rt, report.ReportParams(start=start, end=end, source=source, as_of=end))
    total = result.tables.summary.iloc[-1]
    return {"calls": int(total["calls"]), "cost": float(total["cost"])}


def client_main(mode: str, url: str, start: str, end: str) -> int:
    """``--client MODE URL START END``: one measurement, printed as one JSON line."""
    import pandas  # noqa: F401  (every import before the clock, for every mode)
    from mcp.client.streamable_http import streamable_http_client  # noqa: F401

    import agent.runtime  # noqa: F401
    import workflows.report.pipeline  # noqa: F401

    baseline, cpu = _peak_mb(), _cpu()
    began = time.perf_counter()
    if mode == "naive":
        figures = asyncio.run(naive(url, start, end))
    elif mode == "projection":
        figures = asyncio.run(projection(url, start, end))
    else:
        figures = asyncio.run(ours(url, start, end, "calls" if mode == "ours" else "analytics"))
    wall = time.perf_counter() - began
    print(json.dumps({**figures, "wall_s": wall, "cpu_s": _cpu() - cpu, "peak_mb": _peak_mb(),
                      "baseline_mb": baseline}))
    return 0


# ---------------------------------------------------------------- the driver
def size_scenario(calls: int, rounds: int) -> harness.Scenario:
    """Every contender over one served dataset of ``calls`` calls, interleaved."""
    start = (ANCHOR - timedelta(days=31)).isoformat().replace("+00:00", "Z")  # the dataset spans 30 days
    end = ANCHOR.isoformat().replace("+00:00", "Z")
    scenario = harness.Scenario(
        f"report over {calls:,} calls",
        workload={"calls": calls, "from": start, "to": end, "pages_of": 100},
        ideal={"peak_mb": "the streaming projection's (the least a client that reads every call must hold)",
               "wall_s": "the streaming projection's (the same pages, the least work on them)"},
        contenders=list(CONTENDERS),
        columns={"wall_s": "wall s", "cpu_s": "client CPU s", "peak_mb": "peak MB", "baseline_mb": "baseline MB"})
    totals: set[tuple[int, float]] = set()
    with served_sandbox("--calls", str(calls), "--anchor", ANCHOR.isoformat()) as (url, _origin):
        def measure(name: str, _round: int) -> dict[str, float]:
            row = harness.child("bench.report", "--client", CONTENDERS[name], url, start, end)
            totals.add((row["calls"], round(row["cost"], 4)))
            return {k: float(row[k]) for k in ("wall_s", "cpu_s", "peak_mb", "baseline_mb", "calls")}

        scenario.run(rounds, measure)
    if len(totals) != 1:
        raise RuntimeError(f"the clients disagree on the totals (calls, cost): {sorted(totals)}")
    (count, cost), = totals
    scenario.workload.update({"total_calls": count, "total_cost": cost})
    lean, mine = "streaming projection", "ours"
    scenario.notes.append(
        f"ours / streaming projection: wall {scenario.median(mine, 'wall_s') / scenario.median(lean, 'wall_s'):.2f}x, "
        f"peak memory {scenario.median(mine, 'peak_mb') / scenario.median(lean, 'peak_mb'):.2f}x "
        "(target: wall <= 1.00x, memory <= 1.10x)")
    return scenario


def _size(text: str, rounds: int) -> tuple[int, int]:
    size, _, fewer = text.partition(":")
    return int(size), min(rounds, int(fewer)) if fewer else rounds


def main(argv: list[str] | None = None) -> int:
    """Serve each size, run the contenders interleaved, print the figures (``--json``: one document)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--client"]:
        return client_main(*argv[1:5])
    parser = harness.parser(__doc__)
    parser.add_argument("--sizes", default="20000,100000",
                        help="dataset sizes, comma-separated; SIZE:ROUNDS runs that size with fewer rounds")
    args = parser.parse_args(argv)
    rounds = harness.check_rounds(args)
    sizes = [(500, rounds)] if args.quick else [_size(text, rounds) for text in args.sizes.split(",")]
    result = harness.Result("report", args.quick, rounds)
    for size, size_rounds in sizes:
        scenario = size_scenario(size, size_rounds)
        if size_rounds < rounds:
            scenario.notes.insert(0, f"FEWER ROUNDS: {size_rounds} round(s) at this size, not {rounds} "
                                     "(each takes minutes); the spread shown is not a spread")
        result.scenarios.append(scenario)
    return result.finish(args)


if __name__ == "__main__":
    raise SystemExit(main())
