"""Benchmark: rate-limit handling, ours against three peers, and two processes of ours on one org.

Run (never run by CI)::

    .venv/bin/python -m bench.ratelimit [--json] [--quick] [--rounds 3] [--only single|overlap|processes]

Both scenarios use one sandbox served by ``python -m sandbox serve --rate-limit N/W`` in its own
process (the server never competes with a client for the GIL); every POST on the MCP path counts
(``initialize``, the ``initialized`` notification, ``tools/list``, every tool call). Figures come from
the sandbox's own request log. Before each sample the bench waits out the window, so every sample
starts on a fresh one. Each scenario has one ideal, computed from its workload alone:
``ideal = (ceil(minimal requests / N) - 1) x W``, the earliest moment the last window can open.

**single**: ``--calls`` ``get_single_vapi_call_by_id`` calls, ``--concurrency`` at a time, by each of

* ``naive``: the mcp SDK over plain httpx2; a failed ``call_tool`` is retried after a fixed
  exponential backoff (0.5 s x 2^n, at most 30 s a wait), rate-limit headers ignored;
* ``header-aware``: the mcp SDK over httpx2 with a 25-line transport that, on a 429, sleeps what
  ``ratelimit-reset`` says and sends the request again (``HonourReset`` below);
* ``openai-agents``: openai-agents-python's ``MCPServerStreamableHttp`` with its own retry options
  (``max_retry_attempts``, ``retry_backoff_seconds_base`` 0.5, ``retry_backoff_seconds_max`` 30);
* ``ours``: the product's stack (``agent.runtime.open_runtime``: governor, header-aware retries).

Equal retry budgets: every contender has 8 attempts per request (ours: ``RetryConfig.max_attempts``);
ours also caps waiting at 120 s per request, which the fixed backoffs never reach (61.5 s in all).
Minimal requests: the calls plus the two handshake POSTs (``tools/list`` is not needed to call a
tool by name, so a client that lists tools pays for it).

**overlap**: two processes of ours on one org, as a cron ``vapi-agent report --source calls`` overlapping
an interactive ``vapi-agent qa-grade`` (no model: failing calls are not analysed, their recordings are
fetched), both started at once sharing the org's window (the default: ``agent/ratelimit/shared.py``),
both started at once with a governor each (``VAPI_AGENT_SHARED_RATE_LIMITS=0``), and the same two
commands one after the other. Minimal requests come from the dataset, read over REST (not rate limited):
report: 2 handshake + the pages of the calls of both periods + 1 assistant list; qa-grade: 2 handshake +
1 assistant list + the pages up to the last graded call + 1 scorecard list + 1 recording link per failing
call.

**processes**: ``--processes`` (2) copies of ``tests/fixtures/ratelimit_client.py`` (our runtime reading
one MCP server hard: one list, then a lookup per call, 4 at a time) started together on one org,
``--process-calls`` calls in all: sharing the org's window against a governor each. Minimal requests:
per process the handshake, the list and its lookups.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2

from bench import harness, minimal
from bench.minimal import HANDSHAKE
from bench.served import rest_get, served_sandbox
from bench.windows import Window, ideal_seconds, log_figures, rate

TOOL = "get_single_vapi_call_by_id"
ATTEMPTS = 8  # per request, for every contender: ours is RetryConfig.max_attempts
BACKOFF_BASE, BACKOFF_MAX = 0.5, 30.0  # the fixed backoffs: 0.5, 1, 2, ... s, at most 30 s a wait
ANCHOR = "2026-03-02T12:00:00+00:00"
SINGLE = ["naive", "header-aware", "openai-agents", "ours"]
OVERLAP = ["overlapping, one shared window", "overlapping, a governor each", "one after the other"]
PROCESSES = ["shared window", "a governor each"]
NOT_SHARED = {"VAPI_AGENT_SHARED_RATE_LIMITS": "0"}  # agent/ratelimit/shared.py: each process on its own


@dataclass
class Outcome:
    """What a client saw: calls answered and calls lost (retries exhausted)."""

    ok: int
    lost: int


# ---------------------------------------------------------------- the four clients of the first scenario
async def _fan_out(ids: list[str], concurrency: int, one: Callable[[str], Coroutine[Any, Any, bool]]) -> Outcome:
    gate = asyncio.Semaphore(concurrency)

    async def limited(call_id: str) -> bool:
        async with gate:
            return await one(call_id)

    done = await asyncio.gather(*(limited(i) for i in ids))
    return Outcome(sum(done), len(ids) - sum(done))


def _backoff(attempt: int) -> float:
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt))


async def run_naive(url: str, ids: list[str], concurrency: int) -> Outcome:
    """The mcp SDK; every failed ``call_tool`` retried after a fixed exponential backoff."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(timeout=60) as http, \
            Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client:

        async def one(call_id: str) -> bool:
            for attempt in range(ATTEMPTS):
                try:
                    if not (await client.call_tool(TOOL, {"id": call_id})).is_error:
                        return True
                except Exception:  # the SDK reports an HTTP 429 as a generic error: no status, no headers
                    pass
                if attempt + 1 < ATTEMPTS:
                    await asyncio.sleep(_backoff(attempt))
            return False

        return await _fan_out(ids, concurrency, one)


class HonourReset(httpx2.AsyncBaseTransport):
    """The header-aware minimal client's whole rate-limit handling: on a 429, sleep ``ratelimit-reset``
    seconds (as the server says) and send the same request again, up to ``ATTEMPTS`` in all."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send; on 429 wait the announced reset and resend."""
        for attempt in range(1, ATTEMPTS + 1):
            response = await self.inner.handle_async_request(request)
            if response.status_code != 429 or attempt == ATTEMPTS:
                return response
            await response.aclose()
            await asyncio.sleep(float(response.headers.get("ratelimit-reset", "1")))
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.inner.aclose()


async def run_header_aware(url: str, ids: list[str], concurrency: int) -> Outcome:
    """The mcp SDK over ``HonourReset``; no other retry."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(transport=HonourReset(), timeout=60) as http, \
            Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client:

        async def one(call_id: str) -> bool:
            try:
                return not (await client.call_tool(TOOL, {"id": call_id})).is_error
            except Exception:
                return False

        return await _fan_out(ids, concurrency, one)


async def run_openai_agents(url: str, ids: list[str], concurrency: int) -> Outcome:
    """openai-agents-python's ``MCPServerStreamableHttp`` with its retry options (it ignores 429 headers)."""
    from agents.mcp import MCPServerStreamableHttp

    server = MCPServerStreamableHttp(
        params={"url": url, "timeout": 60}, client_session_timeout_seconds=60, cache_tools_list=True,
        max_retry_attempts=ATTEMPTS - 1, retry_backoff_seconds_base=BACKOFF_BASE,
        retry_backoff_seconds_max=BACKOFF_MAX)
    await server.connect()
    try:
        async def one(call_id: str) -> bool:
            try:
                return not (await server.call_tool(TOOL, {"id": call_id})).is_error
            except Exception:  # retries exhausted
                return False

        return await _fan_out(ids, concurrency, one)
    finally:
        await server.cleanup()


async def run_ours(url: str, ids: list[str], concurrency: int) -> Outcome:
    """The product's stack: ``open_runtime`` (governor, header-aware retries below the MCP session)."""
    from agent.config import load_settings
    from agent.runtime import open_runtime

    settings = load_settings({"mcp_url": url, "mcp_kind": "sandbox", "concurrency": concurrency}, env={})
    async with open_runtime(settings, notice=lambda _m: None, store=None, prompt=None) as rt:

        async def one(call_id: str) -> bool:
            try:
                call = await rt.vapi.get_call(call_id)
            except Exception:
                return False
            return isinstance(call, dict) and call.get("id") == call_id

        return await _fan_out(ids, concurrency, one)


CLIENTS = {"naive": run_naive, "header-aware": run_header_aware, "openai-agents": run_openai_agents,
           "ours": run_ours}


def warm_imports() -> None:
    """Import what the clients load lazily, so the clock measures rate-limit handling, not imports."""
    import importlib

    for module in ("mcp", "mcp.client.streamable_http", "agents.mcp", "tenacity", "agent.config", "agent.runtime",
                   "agent.mcp.connection", "agent.mcp.servers", "agent.policy", "agent.model",
                   "agent.ratelimit.transport", "agent.ratelimit.policy", "agent.ratelimit.breaker"):
        importlib.import_module(module)


# ---------------------------------------------------------------- scenario 1: four clients, one workload
def single(args: argparse.Namespace, rounds: int) -> harness.Scenario:
    """The four contenders on the same calls, interleaved; figures from the sandbox's log."""
    calls = 20 if args.quick else args.calls
    limit_text = "20/1" if args.quick else args.limit
    limit, seconds = rate(limit_text)
    warm_imports()
    with served_sandbox("--rate-limit", limit_text, "--calls", str(max(calls + 50, 400)),
                        "--anchor", ANCHOR) as (url, origin):
        ids = [c["id"] for c in rest_get(origin, "/call", limit=calls)]
        if len(ids) < calls:
            raise RuntimeError(f"the sandbox has only {len(ids)} calls, {calls} wanted")
        minimal = calls + HANDSHAKE
        ideal = ideal_seconds(minimal, limit, seconds)
        scenario = harness.Scenario(
            "single: one client, many calls",
            workload={"calls": calls, "tool": TOOL, "limit": limit_text, "concurrency": args.concurrency,
                      "attempts_per_request": ATTEMPTS},
            ideal={"minimal_requests": minimal, "wall_s": ideal},
            contenders=list(SINGLE),
            columns={"wall_over_ideal": "wall / ideal", "wall_s": "wall s", "requests_429": "429s",
                     "429_per_window_mean": "429s per window", "429_per_window_max": "max 429s in a window",
                     "calls_lost": "calls lost", "requests_sent": "requests sent"})
        window = Window(origin, seconds)

        def measure(name: str, _round: int) -> dict[str, float]:
            epoch = window.fresh()
            began = time.monotonic()
            outcome = asyncio.run(CLIENTS[name](url, ids, args.concurrency))
            wall = time.monotonic() - began
            return {**log_figures(window.posts_since(epoch), wall, ideal, seconds), "calls_lost": outcome.lost}

        return scenario.run(rounds, measure)


# ---------------------------------------------------------------- scenario 2: two processes of ours
@dataclass
class OverlapWork:
    """The two commands and what their data needs at the least."""

    report: list[str]
    qa: list[str]
    minimal_report: int
    minimal_qa: int


def overlap_work(origin: str, quick: bool) -> OverlapWork:
    """The report and qa-grade command lines, and the minimal requests their data needs."""
    anchor = datetime.fromisoformat(ANCHOR).astimezone(UTC)
    days, last = (1, 5) if quick else (5, 100)
    end = anchor - timedelta(hours=1)
    start = end - timedelta(days=days)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    # the report reads both periods: [start - days, end)
    minimal_report = minimal.report_requests(origin, (start - timedelta(days=days)).strftime(iso), end.strftime(iso))
    minimal_qa = minimal.qa_plan(origin, "Support", last, None, anchor.strftime(iso)).requests
    report = ["report", "--source", "calls", "--from", start.strftime(iso), "--to", end.strftime(iso),
              "--as-of", end.strftime(iso), "--format", "json"]
    qa = ["qa-grade", "--assistant", "Support", "--last", str(last), "--recordings", "failing"]
    return OverlapWork(report, qa, minimal_report, minimal_qa)


def overlap(args: argparse.Namespace, rounds: int) -> harness.Scenario:
    """A cron report and an interactive qa-grade, two processes on one org: at once, and one after the other."""
    limit_text = "10/1" if args.quick else args.limit
    limit, seconds = rate(limit_text)
    with served_sandbox("--rate-limit", limit_text, "--calls", "600" if args.quick else "4000",
                        "--anchor", ANCHOR) as (url, origin), tempfile.TemporaryDirectory(prefix="bench-rl-") as tmp:
        work = overlap_work(origin, args.quick)
        minimal = work.minimal_report + work.minimal_qa
        ideal = ideal_seconds(minimal, limit, seconds)
        scenario = harness.Scenario(
            "overlap: two processes of ours on one org (cron report + interactive qa-grade)",
            workload={"report": " ".join(work.report), "qa_grade": " ".join(work.qa), "limit": limit_text},
            ideal={"minimal_requests": minimal, "report_requests": work.minimal_report,
                   "qa_grade_requests": work.minimal_qa, "wall_s": ideal},
            contenders=list(OVERLAP),
            columns={"wall_over_ideal": "combined wall / ideal", "wall_s": "combined wall s", "requests_429": "429s",
                     "429_per_window_mean": "429s per window", "429_per_window_max": "max 429s in a window",
                     "requests_sent": "requests sent", "failed_commands": "failed commands"})
        scenario.notes += ["combined wall: from the first request of either process to the last answer of either "
                           "(the sandbox's log); processes_wall_s in the JSON adds the start-ups",
                           "one shared window: the default (agent/ratelimit/shared.py, one window per org for every "
                           "process on the machine); a governor each: VAPI_AGENT_SHARED_RATE_LIMITS=0"]
        window = Window(origin, seconds)
        env = harness.clean_env(VAPI_AGENT_MCP_URL=url, VAPI_AGENT_DATA_DIR=str(Path(tmp) / "data"),
                                XDG_CONFIG_HOME=str(Path(tmp) / "config"))

        cli = harness.cli_command()

        def start(which: str, sample: int, shared: bool = True) -> subprocess.Popen[bytes]:
            out = Path(tmp) / f"out-{sample}"
            argv = ([*work.report, "--out", str(out)] if which == "report"
                    else [*work.qa, "--recordings-dir", str(out / "rec"), "--fresh"])
            return subprocess.Popen([*cli, *argv], env=env if shared else {**env, **NOT_SHARED}, cwd=tmp,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        samples = iter(range(1_000_000))

        def measure(name: str, _round: int) -> dict[str, float]:
            epoch = window.fresh()
            began = time.monotonic()
            if name.startswith("overlapping"):
                shared = name == OVERLAP[0]
                procs = [start("report", next(samples), shared), start("qa", next(samples), shared)]
                codes = [p.wait() for p in procs]
            else:
                codes = [start("report", next(samples)).wait(), start("qa", next(samples)).wait()]
            wall = time.monotonic() - began
            posts = window.posts_since(epoch)
            # Combined wall: the first request of either process to the last answer of either (the sandbox's
            # log), so that two Python start-ups and the local rendering are not counted as rate limiting.
            span = max(e["t_end"] for e in posts) - min(e["t_start"] for e in posts)
            return {**log_figures(posts, span, ideal, seconds), "processes_wall_s": wall,
                    "failed_commands": sum(1 for c in codes if c != 0)}

        return scenario.run(rounds, measure)


# ---------------------------------------------------------------- scenario 3: N processes, one org
def processes(args: argparse.Namespace, rounds: int) -> harness.Scenario:
    """``--processes`` copies of a hard-reading client of ours (tests/fixtures/ratelimit_client.py) on one org,
    started together: sharing the org's window (the default) against a governor each."""
    count = args.processes
    each = (16 if args.quick else args.process_calls) // count
    limit_text = "20/1" if args.quick else args.limit
    limit, seconds = rate(limit_text)
    client = harness.ROOT / "tests" / "fixtures" / "ratelimit_client.py"
    with served_sandbox("--rate-limit", limit_text, "--calls", str(max(each + 50, 400)),
                        "--anchor", ANCHOR) as (url, origin), tempfile.TemporaryDirectory(prefix="bench-rl-") as tmp:
        # each process: handshake, one list of its calls, then one lookup per call
        minimal = count * (HANDSHAKE + 1 + each)
        ideal = ideal_seconds(minimal, limit, seconds)
        scenario = harness.Scenario(
            f"processes: {count} processes of ours reading one org at once",
            workload={"processes": count, "calls_each": each, "concurrency_each": 4, "limit": limit_text},
            ideal={"minimal_requests": minimal, "wall_s": ideal}, contenders=list(PROCESSES),
            columns={"wall_over_ideal": "combined wall / ideal", "requests_429": "429s",
                     "429_per_window_mean": "429s per window", "429_per_window_max": "max 429s in a window",
                     "calls_lost": "calls lost", "requests_sent": "requests sent"})
        scenario.notes.append("combined wall: first request of any process to the last answer of any (the "
                              "sandbox's log); a governor each: VAPI_AGENT_SHARED_RATE_LIMITS=0")
        window = Window(origin, seconds)
        env = harness.clean_env(VAPI_AGENT_DATA_DIR=str(Path(tmp) / "data"), PYTHONPATH=str(harness.ROOT))

        def measure(name: str, _round: int) -> dict[str, float]:
            epoch = window.fresh()
            run_env = env if name == PROCESSES[0] else {**env, **NOT_SHARED}
            procs = [subprocess.Popen([sys.executable, str(client), url, str(each), "4"], env=run_env,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                     for _ in range(count)]
            outs = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
            posts = window.posts_since(epoch)
            span = max(e["t_end"] for e in posts) - min(e["t_start"] for e in posts)
            return {**log_figures(posts, span, ideal, seconds), "calls_lost": sum(o["failed"] for o in outs)}

        return scenario.run(rounds, measure)


SCENARIOS = {"single": single, "overlap": overlap, "processes": processes}


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print the figures (``--json``: one JSON document)."""
    parser = harness.parser(__doc__)
    parser.add_argument("--calls", type=int, default=80, help="calls in the single scenario (default 80)")
    parser.add_argument("--limit", default="10/2", help="sandbox MCP rate limit N/SECONDS (default 10/2)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2, help="processes in the processes scenario (default 2)")
    parser.add_argument("--process-calls", type=int, default=60,
                        help="calls of all processes together in the processes scenario (default 60)")
    parser.add_argument("--only", choices=tuple(SCENARIOS), action="append", help="run only this scenario")
    args = parser.parse_args(argv)
    rounds = harness.check_rounds(args)
    result = harness.Result("ratelimit", args.quick, rounds)
    names = args.only or tuple(SCENARIOS)
    if args.quick:
        # A smoke check: the scenarios (each with its own sandbox, so its own limiter) run at once, so that
        # their sample-by-sample waits (a fresh window each, process start-ups) overlap and the whole run
        # stays under a minute. They then share the CPUs: quick figures are not quoted anywhere.
        with ThreadPoolExecutor(len(names)) as pool:
            done = list(pool.map(lambda name: SCENARIOS[name](args, rounds), names))
        for scenario in done:
            scenario.notes.append("QUICK: the scenarios ran at once, sharing the machine (smoke check only)")
        result.scenarios.extend(done)
    else:
        for name in names:
            result.scenarios.append(SCENARIOS[name](args, rounds))
    return result.finish(args)


if __name__ == "__main__":
    raise SystemExit(main())
