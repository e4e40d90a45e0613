"""Benchmark: a fleet run over many rate-limited sandbox accounts, in-process and with two Postgres workers.

Run (never run by CI; several minutes)::

    .venv/bin/python bench/fleet.py                         # 200 accounts, 20 calls each, 10 req / 2 s, 50 at once
    .venv/bin/python bench/fleet.py --accounts 40 --concurrency 10 --skip-postgres

A sandbox fleet (``python -m sandbox serve --accounts N --rate-limit 10/2``) runs in its own process;
every account has its own limit. The client is the real CLI in its own process:
``vapi-agent fleet qa-grade --assistant Support --last 20 --recordings none --concurrency C`` against the
fleet's Truto admin API (each job mints its server, grades the account's 20 newest Support calls,
deletes the server).

* per-account bound: the wall time of the same job on one account alone (a one-account fleet run's
  job time, from the sandbox's log: first to last request of the account);
* ideal = ceil(accounts / concurrency) x the per-account bound;
* wall: from the moment the first account's server is minted to the moment the last one is deleted
  (the sandbox's log: process start-up and imports are excluded), and the command's whole wall time;
* peak memory: the client process's maximum resident set (``ru_maxrss`` of the child).

The Postgres scenario starts a throwaway cluster (tests/pg_support.py), two ``vapi-agent worker``
processes with ``--concurrency C/2`` each, and enqueues the same run with ``--queue-url``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402

TOKEN = "bench-truto-token"


def serve_fleet(accounts: int, calls: int, limit: str) -> tuple[subprocess.Popen[str], str]:
    """The sandbox fleet in its own process; returns (process, Truto API URL)."""
    cmd = [sys.executable, "-m", "sandbox", "serve", "--port", "0", "--no-access-log", "--accounts", str(accounts),
           "--calls", str(calls), "--rate-limit", limit, "--api-token", TOKEN]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Truto API (admin):" in line:
            url = line.split("):", 1)[1].strip()
            for _ in range(600):
                try:
                    if httpx2.get(f"{url}/integrated-account", headers=_auth(), timeout=5).status_code == 200:
                        return proc, url
                except httpx2.TransportError:
                    pass
                time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the sandbox fleet did not start")


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def fleet_log(url: str) -> list[dict[str, Any]]:
    """The sandbox fleet's request log."""
    response = httpx2.get(f"{url}/_sandbox/log", headers=_auth(), timeout=120)
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()
    return entries


def _env(home: str) -> dict[str, str]:
    return {**os.environ, "TRUTO_API_TOKEN": TOKEN, "VAPI_AGENT_DATA_DIR": home, "PYTHONPATH": str(ROOT)}


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any], float]:
    """Run the CLI to completion; (wall seconds, the --json envelope, the child's peak RSS in MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli", "--json", *args], env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode not in (0,):
        raise RuntimeError(f"the fleet run failed ({done.returncode}): {done.stderr[-2000:]}")
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return wall, json.loads(done.stdout), peak


def job_span(log: list[dict[str, Any]], accounts: set[str] | None = None) -> tuple[float, dict[str, float]]:
    """(first mint to last delete, each account's job seconds: its mint to its delete) from the admin log."""
    admin = [e for e in log if e["transport"] == "admin" and e["method"] in ("POST", "DELETE")
             and (accounts is None or e["account"] in accounts)]
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for entry in admin:
        account = entry["account"]
        if entry["method"] == "POST":
            starts[account] = min(starts.get(account, math.inf), entry["t_start"])
        else:
            ends[account] = max(ends.get(account, 0.0), entry["t_end"])
    jobs = {account: ends[account] - starts[account] for account in starts if account in ends}
    return max(ends.values()) - min(starts.values()), jobs


def qa_args(url: str, concurrency: int) -> list[str]:
    return ["fleet", "qa-grade", "--assistant", "Support", "--last", "20", "--recordings", "none",
            "--truto-api", url, "--concurrency", str(concurrency)]


def bench_in_process(args: argparse.Namespace) -> dict[str, Any]:
    """One account alone (the bound), then the whole fleet in one process."""
    proc, url = serve_fleet(args.accounts, args.calls, args.limit)
    try:
        with tempfile.TemporaryDirectory() as home:
            first = httpx2.get(f"{url}/integrated-account", params={"status": "active", "limit": 1},
                               headers=_auth()).json()["results"][0]
            _, envelope, _ = run_cli([*qa_args(url, 1), "--account", first["tenant_id"]], _env(home))
            _, jobs = job_span(fleet_log(url), {first["id"]})
            bound = jobs[first["id"]]
        mark = time.time()
        with tempfile.TemporaryDirectory() as home:
            wall, envelope, peak = run_cli(qa_args(url, args.concurrency), _env(home))
        log = [e for e in fleet_log(url) if e["t_start"] >= mark]
        span, _ = job_span(log)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    ideal = math.ceil(args.accounts / args.concurrency) * bound
    return _row("in-process (SQLite)", envelope, bound, ideal, span, wall, peak)


def bench_postgres(args: argparse.Namespace) -> dict[str, Any]:
    """The same run enqueued into Postgres and run by two workers (C/2 each)."""
    from tests.pg_support import postgres_cluster

    proc, url = serve_fleet(args.accounts, args.calls, args.limit)
    workers: list[subprocess.Popen[str]] = []
    try:
        with postgres_cluster() as queue, tempfile.TemporaryDirectory() as home:
            first = httpx2.get(f"{url}/integrated-account", params={"status": "active", "limit": 1},
                               headers=_auth()).json()["results"][0]
            per_worker = max(1, args.concurrency // 2)
            for i in range(2):
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "cli", "worker", "--queue-url", queue, "--concurrency", str(per_worker)],
                    env=_env(f"{home}/w{i}"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True))
            time.sleep(3)  # let both workers join
            _, _, _ = run_cli([*qa_args(url, 1), "--queue-url", queue, "--account", first["tenant_id"]], _env(home))
            _, jobs = job_span(fleet_log(url), {first["id"]})
            bound = jobs[first["id"]]
            mark = time.time()
            wall, envelope, peak = run_cli([*qa_args(url, args.concurrency), "--queue-url", queue], _env(home))
            log = [e for e in fleet_log(url) if e["t_start"] >= mark]
            span, _ = job_span(log)
            worker_peaks = []
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
                worker.wait(60)
            worker_peaks.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    ideal = math.ceil(args.accounts / (2 * per_worker)) * bound
    row = _row("two workers (PostgreSQL)", envelope, bound, ideal, span, wall, peak)
    row["peak_rss_mib"] = round(max([peak, *worker_peaks]), 1)
    return row


def _row(name: str, envelope: dict[str, Any], bound: float, ideal: float, span: float, wall: float,
         peak: float) -> dict[str, Any]:
    totals = envelope["result"]["totals"]
    return {"run": name, "accounts": totals["accounts"], "ok+partial": totals["ok"] + totals["partial"],
            "failed": totals["error"], "graded": totals.get("graded"), "per_account_bound_s": round(bound, 2),
            "ideal_s": round(ideal, 2), "span_s": round(span, 2), "span_over_ideal": round(span / ideal, 3),
            "command_wall_s": round(wall, 2), "peak_rss_mib": round(peak, 1)}


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print one table (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--calls", type=int, default=300, help="calls generated per account")
    parser.add_argument("--limit", default="10/2", help="per-account MCP rate limit N/SECONDS")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--only-postgres", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    if not args.only_postgres:
        rows.append(bench_in_process(args))
    if not args.skip_postgres:
        rows.append(bench_postgres(args))
    columns = list(rows[0])
    print(f"{args.accounts} accounts x qa-grade --last 20, limit {args.limit} per account, concurrency "
          f"{args.concurrency}")
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[c]) for c in columns))
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
