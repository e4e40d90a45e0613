"""Benchmark: our rate-limit handling against a naive client, through a rate-limited sandbox.

Run (never run by CI; about three minutes)::

    .venv/bin/python bench/ratelimit.py                 # both clients, 300 calls, 10 per 2 s, 8 at once
    .venv/bin/python bench/ratelimit.py --only ours --calls 100

Each client gets a fresh sandbox served by ``python -m sandbox serve`` in its own process (so the
server never competes with the client for the GIL), limited on the MCP path to ``--limit`` (every
POST counts: ``initialize``, ``tools/list`` and the notification too). The client makes ``--calls``
``get_single_vapi_call_by_id`` calls, ``--concurrency`` at a time:

* ``ours``: the product's stack (``agent.runtime.open_runtime``: governor, header-aware retries,
  all below the MCP session), calls fanned out with ``asyncio.gather``;
* ``naive``: the mcp SDK with a plain HTTP client; every failed ``call_tool`` is retried after a
  fixed exponential backoff (``--naive-base`` x 2^n, rate-limit headers ignored) up to
  ``--naive-attempts`` attempts, then the call is lost.

Figures come from the sandbox's own request log (``GET /_sandbox/log``): successful requests, 429s
(in total and per rate-limit window, windows rebuilt by replaying the sandbox's limiter), and
``wall / ideal`` where ``ideal = (ceil(successful requests / N) - 1) x W`` for a limit of N per W
seconds: the time the last window opens at the earliest (wall is measured by the client, from
before it connects until its last call returns; module imports are done before the clock starts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import httpx2  # noqa: E402
from served import auth, served_sandbox  # noqa: E402 - bench/ is on sys.path as the script's folder

TOOL = "get_single_vapi_call_by_id"


@dataclass
class RunResult:
    """What one client run produced, from its own side and from the sandbox's request log."""

    name: str
    started: float  # epoch seconds (the sandbox log's clock) when the client started
    wall: float
    ok_calls: int
    lost_calls: int
    waits_reported: int
    log: list[dict[str, Any]]


def call_ids(origin: str, count: int) -> list[str]:
    """``count`` call ids over the REST API (not rate limited: only the MCP path is)."""
    response = httpx2.get(f"{origin}/call", params={"limit": count}, headers=auth(), timeout=30)
    response.raise_for_status()
    ids = [c["id"] for c in response.json()]
    if len(ids) < count:
        raise RuntimeError(f"the sandbox has only {len(ids)} calls, {count} wanted")
    return ids


def mcp_log(origin: str) -> list[dict[str, Any]]:
    """The sandbox's record of every request on the MCP path."""
    response = httpx2.get(f"{origin}/_sandbox/log", params={"transport": "mcp"}, headers=auth(), timeout=30)
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()
    return entries


# ---------------------------------------------------------------- the two clients
async def run_ours(url: str, ids: list[str], concurrency: int) -> tuple[int, int, int]:
    """The product's stack; returns (calls ok, calls lost, waits reported on stderr)."""
    from agent.config import load_settings
    from agent.runtime import open_runtime

    waits: list[str] = []
    settings = load_settings({"mcp_url": url, "mcp_kind": "sandbox", "concurrency": concurrency}, env={})
    async with open_runtime(settings, notice=waits.append, store=None, prompt=None) as rt:
        results = await asyncio.gather(*(rt.vapi.get_call(i) for i in ids), return_exceptions=True)
    ok = sum(1 for r, i in zip(results, ids, strict=True) if isinstance(r, dict) and r.get("id") == i)
    return ok, len(ids) - ok, len(waits)


async def run_naive(url: str, ids: list[str], concurrency: int, attempts: int, base: float) -> tuple[int, int, int]:
    """The mcp SDK with retries around ``call_tool``: fixed exponential backoff, headers ignored."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    gate = asyncio.Semaphore(concurrency)
    ok = lost = retries = 0
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(60.0))

    async def one(client: Any, call_id: str) -> None:
        nonlocal ok, lost, retries
        async with gate:
            for attempt in range(attempts):
                try:
                    result = await client.call_tool(TOOL, {"id": call_id})
                    if not result.is_error:
                        ok += 1
                        return
                except Exception:  # the SDK reports an HTTP 429 as a generic error: no status, no headers
                    pass
                if attempt + 1 < attempts:
                    retries += 1
                    await asyncio.sleep(base * 2**attempt)
            lost += 1

    async with http, Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client:
        for attempt in range(attempts):  # the handshake is retried the same way (it is rate limited too)
            try:
                await client.list_tools()
                break
            except Exception:
                await asyncio.sleep(base * 2**attempt)
        await asyncio.gather(*(one(client, i) for i in ids))
    return ok, lost, retries


def warm_imports() -> None:
    """Import what both clients load lazily, so the timed runs measure rate-limit handling, not imports."""
    import importlib

    for module in ("mcp", "mcp.client.streamable_http", "tenacity", "agent.config", "agent.runtime",
                   "agent.mcp.connection", "agent.mcp.servers", "agent.policy", "agent.model",
                   "agent.ratelimit.transport", "agent.ratelimit.policy", "agent.ratelimit.breaker"):
        importlib.import_module(module)


def run_client(name: str, args: argparse.Namespace) -> RunResult:
    """One client against a fresh sandbox; returns its figures."""
    warm_imports()
    with served_sandbox("--rate-limit", args.limit, "--calls", str(max(args.calls + 50, 400))) as (url, origin):
        ids = call_ids(origin, args.calls)
        started, epoch = time.monotonic(), time.time()
        if name == "ours":
            ok, lost, waits = asyncio.run(run_ours(url, ids, args.concurrency))
        else:
            ok, lost, waits = asyncio.run(run_naive(url, ids, args.concurrency, args.naive_attempts, args.naive_base))
        wall = time.monotonic() - started
        return RunResult(name, epoch, wall, ok, lost, waits, mcp_log(origin))


def run_processes(name: str, args: argparse.Namespace) -> RunResult:
    """Second scenario: ``--processes`` vapi-agent processes on one machine read one org at once.

    ``shared``: they share the org's window (agent/ratelimit/shared.py, the default); ``separate``: each
    has only its own governor (``VAPI_AGENT_SHARED_RATE_LIMITS=0``), as before the shared store.
    """
    import subprocess
    import tempfile

    client = ROOT / "tests" / "fixtures" / "ratelimit_client.py"
    each = args.calls // args.processes
    with served_sandbox("--rate-limit", args.limit, "--calls", str(max(each + 50, 400))) as (url, origin), \
            tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "VAPI_AGENT_DATA_DIR": home, "PYTHONPATH": str(ROOT),
               "VAPI_AGENT_SHARED_RATE_LIMITS": "1" if name == "shared" else "0"}
        started, epoch = time.monotonic(), time.time()
        procs = [subprocess.Popen([sys.executable, str(client), url, str(each), str(args.concurrency)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                 for _ in range(args.processes)]
        outs = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
        wall = time.monotonic() - started
        ok = sum(o["calls"] - o["failed"] for o in outs)
        return RunResult(f"{args.processes} processes, {name}", epoch, wall, ok,
                         sum(o["failed"] for o in outs), sum(o["waits"] for o in outs), mcp_log(origin))


# ---------------------------------------------------------------- figures
def windows(posts: list[dict[str, Any]], length: float) -> list[list[dict[str, Any]]]:
    """Replay the sandbox's limiter: a window opens with the first POST at or after the last one ended."""
    out: list[list[dict[str, Any]]] = []
    end = -math.inf
    for entry in sorted(posts, key=lambda e: e["t_start"]):
        if entry["t_start"] >= end:
            end = entry["t_start"] + length
            out.append([])
        out[-1].append(entry)
    return out


def figures(result: RunResult, limit: int, window: float) -> dict[str, Any]:
    """The reported numbers of one run."""
    posts = [e for e in result.log if e["method"] == "POST"]
    successful = sum(1 for e in posts if 200 <= e["status"] < 300)
    refused = sum(1 for e in posts if e["status"] == 429)
    ideal = (math.ceil(successful / limit) - 1) * window
    per_window = [sum(1 for e in w if e["status"] == 429) for w in windows(posts, window)]
    calls_sent = sum(1 for e in posts if e.get("tool") == TOOL)
    first = min((e["t_start"] for e in posts), default=result.started)
    span = max((e["t_end"] for e in posts), default=first) - first
    return {
        "client": result.name, "wall_s": round(result.wall, 2), "ideal_s": round(ideal, 2),
        "wall_over_ideal": round(result.wall / ideal, 3) if ideal else None,
        "successful_requests": successful, "requests_429": refused, "windows": len(per_window),
        "429_per_window_mean": round(refused / len(per_window), 2) if per_window else 0.0,
        "429_per_window_max": max(per_window, default=0),
        "startup_s": round(first - result.started, 3), "server_span_s": round(span, 2),
        "span_over_ideal": round(span / ideal, 3) if ideal else None,
        "calls_ok": result.ok_calls, "calls_lost": result.lost_calls, "tool_calls_sent": calls_sent,
        "waits_or_retries": result.waits_reported,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print one table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--limit", default="10/2", help="sandbox MCP rate limit N/SECONDS (default 10/2)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--naive-attempts", type=int, default=6)
    parser.add_argument("--naive-base", type=float, default=0.5, help="naive backoff: base x 2^attempt seconds")
    parser.add_argument("--only", choices=("ours", "naive", "both"), default="both")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--processes", type=int, default=0,
                        help="second scenario: this many processes share one org (shared vs separate governors)")
    args = parser.parse_args(argv)
    count, _, seconds = args.limit.partition("/")
    limit, window = int(count), float(seconds)
    os.environ.pop("VAPI_AGENT_MCP_URL", None)

    if args.processes:
        rows = [figures(run_processes(name, args), limit, window) for name in ("shared", "separate")]
    else:
        names = ["ours", "naive"] if args.only == "both" else [args.only]
        rows = [figures(run_client(name, args), limit, window) for name in names]
    columns = ["client", "wall_s", "ideal_s", "wall_over_ideal", "successful_requests", "requests_429", "windows",
               "429_per_window_mean", "429_per_window_max", "calls_ok", "calls_lost", "tool_calls_sent",
               "startup_s", "server_span_s", "span_over_ideal"]
    who = f", {args.processes} processes" if args.processes else ""
    print(f"{args.calls} x {TOOL}, limit {args.limit}, concurrency {args.concurrency}{who}")
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[c]) for c in columns))
    if len(rows) == 2 and rows[0]["wall_over_ideal"] and rows[1]["wall_over_ideal"] and not args.processes:
        print(f"naive / ours wall time: {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}x; "
              f"429s: {rows[1]['requests_429']} vs {rows[0]['requests_429']}")
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
