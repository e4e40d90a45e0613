"""Benchmark: `vapi-agent report` over 100,000 sandbox calls, against a naive load-everything client.

Run (never run by CI; about 15 minutes, the sandbox builds every call's JSON as it is paged)::

    .venv/bin/python bench/report.py                    # 100,000 calls, both clients
    .venv/bin/python bench/report.py --calls 20000      # quicker
    .venv/bin/python bench/report.py --readme           # also append the figures to bench/README.md

One sandbox is served by ``python -m sandbox serve`` in its own process (the server never competes
with a client for the GIL), with a fixed ``--anchor``. Each client is a fresh Python process that
reports its wall time (from before it connects until its table is built; imports done before the
clock starts) and its peak memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at the end):

* ``lean``: the product, ``workflows.report.pipeline.run`` with ``source="calls"`` over a window holding every
  call: it pages the calls once and folds each into a small cube as it arrives;
* ``naive``: the same pages collected into one list of every call's JSON, then ``pd.json_normalize``
  and a groupby, the obvious way to write it;
* ``analytics`` (for reference): ``workflows.report.pipeline.run`` with Vapi's analytics tool, the server
  does the work.

The clients must agree on the totals (calls and cost), or the script fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

ANCHOR = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
TARGET_MB = 400.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------- the clients (each in its own process)
async def _lean(url: str, start: str, end: str, source: str) -> dict[str, Any]:
    from agent.config import Settings
    from agent.runtime import open_runtime
    from workflows import report

    began = time.perf_counter()
    async with open_runtime(Settings(mcp_url=url), store=None) as rt:
        result = await report.run(rt, report.ReportParams(start=start, end=end, source=source, as_of=end))
    total = result.tables.summary.iloc[-1]
    return {"wall": time.perf_counter() - began, "calls": int(total["calls"]), "cost": float(total["cost"])}


async def _naive(url: str, start: str, end: str) -> dict[str, Any]:
    import pandas as pd

    from agent.config import Settings
    from agent.runtime import open_runtime

    began = time.perf_counter()
    async with open_runtime(Settings(mcp_url=url), store=None) as rt:
        calls = await rt.vapi.list_all("calls.list", full=True, createdAtGe=start, createdAtLt=end)
    frame = pd.json_normalize(calls)
    by_assistant = frame.groupby("assistantId").agg(calls=("id", "size"), cost=("cost", "sum"))
    return {"wall": time.perf_counter() - began, "calls": int(by_assistant["calls"].sum()),
            "cost": round(float(by_assistant["cost"].sum()), 6)}


def client_main(args: argparse.Namespace) -> int:
    """``bench/report.py client MODE URL START END``: one measurement, printed as JSON."""
    import pandas  # noqa: F401  (imports before the clock, as for every mode)

    import agent.runtime  # noqa: F401
    import workflows.report.pipeline  # noqa: F401

    baseline, cpu = _peak_mb(), _cpu()
    if args.mode == "naive":
        figures = asyncio.run(_naive(args.url, args.start, args.end))
    else:
        figures = asyncio.run(_lean(args.url, args.start, args.end, "calls" if args.mode == "lean" else "analytics"))
    print(json.dumps({"mode": args.mode, **figures, "cpu": _cpu() - cpu, "peak_mb": _peak_mb(),
                      "baseline_mb": baseline}))
    return 0


# ---------------------------------------------------------------- the driver
@contextmanager
def served_sandbox(calls: int) -> Iterator[str]:
    """A sandbox with ``calls`` calls in a child process; yields its MCP URL."""
    cmd = [sys.executable, "-m", "sandbox", "serve", "--port", "0", "--no-access-log", "--calls", str(calls),
           "--anchor", ANCHOR.isoformat()]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "MCP (Truto-style" in line:
                yield line.split(": ", 1)[1].strip()
                return
        raise RuntimeError("the sandbox exited before printing its URL")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_client(mode: str, url: str, start: str, end: str) -> dict[str, Any]:
    """One client process; its JSON line."""
    done = subprocess.run([sys.executable, __file__, "client", mode, url, start, end], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} client failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def section(calls: int, rows: list[dict[str, Any]]) -> str:
    """The README section with the figures."""
    by_mode = {r["mode"]: r for r in rows}
    lean, naive = by_mode["lean"], by_mode["naive"]
    ratio = lean["peak_mb"] / naive["peak_mb"]
    load = os.getloadavg()[0]
    lines = [
        "## Report over 100,000 calls: `bench/report.py`", "",
        "```", ".venv/bin/python bench/report.py [--calls 100000] [--readme]", "```", "",
        "One sandbox with the calls in its own process; each client is a fresh process. `lean` is",
        "`workflows.report.pipeline.run` paging the calls (`source=\"calls\"`) over a window holding every call and",
        "folding each into the report's cube as it arrives; `naive` collects every call's JSON in a list,",
        "then `pd.json_normalize` and a groupby; `analytics` is the same report from Vapi's analytics tool",
        "(the server aggregates). Peak memory is the client's `ru_maxrss`; `baseline` is the same process",
        "after its imports, before connecting. All clients agree on the totals.", "",
        f"Measured with {calls:,} calls (Python {platform.python_version()}, {os.cpu_count()} vCPU, load average "
        f"about {load:.0f} from other work on the machine):", "",
        "| client    | wall    | client CPU | peak memory | baseline | calls   | total cost  |",
        "|-----------|---------|------------|-------------|----------|---------|-------------|",
    ]
    for mode in ("lean", "naive", "analytics"):
        if mode in by_mode:
            r = by_mode[mode]
            lines.append(f"| {mode:<9} | {r['wall']:>5.0f} s | {r['cpu']:>8.1f} s | {r['peak_mb']:>8.0f} MB | "
                         f"{r['baseline_mb']:>5.0f} MB | {r['calls']:>7,} | ${r['cost']:>10,.2f} |")
    verdict = "met" if lean["peak_mb"] < TARGET_MB and ratio <= 0.5 else "NOT met"
    lines += ["", f"**lean peak {lean['peak_mb']:.0f} MB = {ratio:.0%} of naive** (target: under "
              f"{TARGET_MB:.0f} MB and at most half the naive peak: {verdict}). The wall time is mostly the",
              "sandbox building each call's JSON (both paging clients read the same pages; client CPU is the",
              "client's own work), and moves with the machine's load; the lean client holds one page at a",
              "time, so its peak stays near its baseline whatever the number of calls.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Serve the sandbox, run the clients one after the other, print (and optionally append) the figures."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["client"]:
        parser = argparse.ArgumentParser()
        for name in ("mode", "url", "start", "end"):
            parser.add_argument(name)
        return client_main(parser.parse_args(argv[1:]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--only", choices=("lean", "naive", "analytics"), action="append")
    parser.add_argument("--readme", action="store_true", help="append the figures to bench/README.md")
    args = parser.parse_args(argv)
    start = (ANCHOR - timedelta(days=31)).isoformat().replace("+00:00", "Z")  # the dataset spans 30 days
    end = ANCHOR.isoformat().replace("+00:00", "Z")
    rows = []
    with served_sandbox(args.calls) as url:
        for mode in args.only or ("analytics", "naive", "lean"):
            row = run_client(mode, url, start, end)
            print(json.dumps(row), flush=True)
            rows.append(row)
    totals = {(r["calls"], round(r["cost"], 4)) for r in rows}
    if len(totals) != 1:
        print(f"the clients disagree on the totals: {totals}", file=sys.stderr)
        return 1
    if {"lean", "naive"} <= {r["mode"] for r in rows}:
        text = section(args.calls, rows)
        print(text)
        if args.readme:
            with (ROOT / "bench" / "README.md").open("a", encoding="utf-8") as readme:
                readme.write("\n" + text)
        lean = next(r for r in rows if r["mode"] == "lean")
        naive = next(r for r in rows if r["mode"] == "naive")
        return 0 if lean["peak_mb"] < TARGET_MB and lean["peak_mb"] <= naive["peak_mb"] / 2 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
