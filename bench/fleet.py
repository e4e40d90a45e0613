"""Benchmark: a fleet run over many rate-limited sandbox accounts, in-process and with two Postgres workers.

Run (never run by CI)::

    .venv/bin/python -m bench.fleet [--json] [--quick] [--rounds 3] [--accounts 40] [--concurrency 10]

A sandbox fleet (``python -m sandbox serve --accounts N --rate-limit 10/2``) runs in its own process;
every account has its own limit. The client is the real CLI in its own process:
``vapi-agent fleet qa-grade --assistant Support --last 20 --recordings none`` against the fleet's Truto
admin API (each job mints its server, grades the account's 20 newest Support calls, deletes the
server). Contenders, interleaved round by round:

* ``in-process (SQLite)``: the whole fleet in the one CLI process, ``--concurrency C``;
* ``two workers (PostgreSQL)``: a throwaway cluster (tests/pg_support.py, started once), two
  ``vapi-agent worker --concurrency C/2`` processes, the run enqueued with ``--queue-url``;
* ``one account alone``: the same command limited to one account (``--account``): the reference.

Figures: span = from the first account's mint to the last account's delete (the sandbox's admin log:
process start-up excluded); the command's whole wall time; the client's peak resident memory
(``wait4`` of the CLI process; the workers' memory is not counted). There is no ideal from the workload
here: one job needs 5 MCP requests (handshake, assistant list, one page, scorecard list), so the rate
limit never binds and the run is bound by CPU. The reference is linear scaling of one account alone:
``ceil(accounts / concurrency) x`` its span (from our own one-account contender: say so when quoting it).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2

from bench import harness
from bench.served import served_fleet
from bench.windows import Window, rate

TOKEN = "bench-truto-token"  # the served fleet's Truto API token (a local simulator: not a secret)
CONTENDERS = ["in-process (SQLite)", "two workers (PostgreSQL)", "one account alone"]


def job_span(log: list[dict[str, Any]]) -> float:
    """First mint to last delete of the minted servers (the admin API's POSTs and DELETEs)."""
    admin = [e for e in log if e["transport"] == "admin" and e["method"] in ("POST", "DELETE")]
    starts = [e["t_start"] for e in admin if e["method"] == "POST"]
    ends = [e["t_end"] for e in admin if e["method"] == "DELETE"]
    if not starts or not ends:
        raise RuntimeError("the fleet run minted or deleted no server")
    return max(ends) - min(starts)


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any], float]:
    """The CLI to completion: (wall seconds, its --json envelope, its peak resident memory in MiB)."""
    with tempfile.TemporaryFile() as errors:
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "cli", "--json", *args], env=env, cwd=harness.ROOT,
                                stdout=subprocess.PIPE, stderr=errors)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"the fleet run failed ({proc.returncode}): {errors.read()[-2000:].decode()}")
    return wall, json.loads(out), usage.ru_maxrss / 1024


@contextlib.contextmanager
def workers(queue: str, concurrency: int, env: dict[str, str], home: Path) -> Iterator[None]:
    """Two ``vapi-agent worker`` processes on ``queue``; stopped on exit."""
    procs = [subprocess.Popen([sys.executable, "-m", "cli", "worker", "--queue-url", queue, "--concurrency",
                               str(concurrency)], env={**env, "VAPI_AGENT_DATA_DIR": str(home / f"w{i}")},
                              cwd=harness.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i in range(2)]
    try:
        time.sleep(3)  # both join the queue before the first run
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the contenders interleaved and print the figures (``--json``: one JSON document)."""
    parser = harness.parser(__doc__)
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--calls", type=int, default=300, help="calls generated per account")
    parser.add_argument("--limit", default="10/2", help="per-account MCP rate limit N/SECONDS")
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args(argv)
    rounds = harness.check_rounds(args)
    accounts, concurrency = (6, 2) if args.quick else (args.accounts, args.concurrency)
    _limit, seconds = rate(args.limit)
    result = harness.Result("fleet", args.quick, rounds)
    scenario = harness.Scenario(
        f"fleet qa-grade: {accounts} accounts x 20 calls",
        workload={"accounts": accounts, "calls_graded_each": 20, "limit_each": args.limit,
                  "concurrency": concurrency, "command": "fleet qa-grade --assistant Support --last 20 "
                                                         "--recordings none"},
        ideal={"note": "none from the workload: 5 requests per job, the rate limit never binds; reference: "
                       "ceil(accounts / concurrency) x one account alone (ours)"},
        contenders=list(CONTENDERS),
        columns={"span_s": "span s (mint to delete)", "command_wall_s": "command wall s",
                 "peak_rss_mib": "client peak MiB", "accounts_ok": "accounts ok", "accounts_failed": "failed"})
    from tests.pg_support import postgres_cluster

    with served_fleet(accounts, TOKEN, "--calls", str(args.calls), "--rate-limit", args.limit) as url, \
            tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp, postgres_cluster() as queue:
        env = harness.clean_env(TRUTO_API_TOKEN=TOKEN, XDG_CONFIG_HOME=str(Path(tmp) / "config"))
        first = httpx2.get(f"{url}/integrated-account", params={"status": "active", "limit": 1},
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()["results"][0]
        base = ["fleet", "qa-grade", "--assistant", "Support", "--last", "20", "--recordings", "none",
                "--truto-api", url]
        samples = itertools.count()
        window = Window(url, seconds, transport=None, token=TOKEN)  # every account's window fresh
        with workers(queue, max(1, concurrency // 2), env, Path(tmp)):

            def measure(name: str, _round: int) -> dict[str, float]:
                epoch = window.fresh()
                home = {"VAPI_AGENT_DATA_DIR": str(Path(tmp) / f"run-{next(samples)}")}
                argv = [*base, "--concurrency", str(concurrency)]
                if name == CONTENDERS[1]:
                    argv += ["--queue-url", queue]
                elif name == CONTENDERS[2]:
                    argv = [*base, "--concurrency", "1", "--account", first["tenant_id"]]
                wall, envelope, peak = run_cli(argv, {**env, **home})
                totals = envelope["result"]["totals"]
                span = job_span(window.since(epoch))
                return {"span_s": span, "command_wall_s": wall, "peak_rss_mib": peak,
                        "accounts_ok": totals["ok"] + totals["partial"], "accounts_failed": totals["error"]}

            scenario.run(rounds, measure)
    alone = scenario.median(CONTENDERS[2], "span_s")
    reference = math.ceil(accounts / concurrency) * alone
    scenario.ideal["reference_s"] = round(reference, 2)
    for name in CONTENDERS[:2]:
        scenario.notes.append(f"{name}: span {scenario.median(name, 'span_s') / reference:.2f}x the reference "
                              f"(ceil({accounts} / {concurrency}) x one account alone, {alone:.2f} s)")
    scenario.notes.append("accounts failed: the fleet's needs_reauth accounts (every index = 3 mod 20), by design")
    result.scenarios.append(scenario)
    return result.finish(args)


if __name__ == "__main__":
    raise SystemExit(main())
