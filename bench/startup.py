"""How much start-up time ``vapi-agent`` adds to a bare Python: ``vapi-agent --help`` vs ``python -c pass``.

Usage (from the repository root, with the project venv)::

    .venv/bin/python bench/startup.py [--runs 15] [--target 0.35] [--json]

Both commands run ``--runs`` times, interleaved (so a load spike on the machine hits both alike),
after two warm-up runs each (byte-code and page caches); the figure is the difference of the
medians. It also lists any heavy library (openai, mcp, pandas, ...) that ``--help`` imports: those
must load lazily, inside the commands that need them. Exits 1 when the added time is over the
target or a heavy library is imported, so it can gate CI on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 0.35
# Libraries whose import alone costs tens to hundreds of milliseconds; none may load for --help.
HEAVY = ("openai", "mcp", "pandas", "numpy", "httpx2", "httpx", "pydantic", "rich", "starlette", "uvicorn",
         "tenacity", "jsonschema", "vapi", "phonenumbers", "sandbox", "workflows")


def cli_command() -> list[str]:
    """The installed ``vapi-agent`` console script (next to this interpreter, else on PATH).

    Falls back to running the module the script would run, when the project is not installed.
    """
    beside = Path(sys.executable).with_name("vapi-agent")
    found = str(beside) if beside.exists() else shutil.which("vapi-agent")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys, cli; sys.exit(cli.main())"]


def time_once(argv: Sequence[str]) -> float:
    """Wall-clock seconds of one run (output discarded; a failing command is an error)."""
    start = time.perf_counter()
    subprocess.run(list(argv), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env=_quiet_env())
    return time.perf_counter() - start


def _quiet_env() -> dict[str, str]:
    # No user configuration or credentials influence the measurement.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAPI_", "OPENAI_", "TRUTO_"))}
    env["XDG_CONFIG_HOME"] = "/nonexistent-vapi-agent-bench"
    return env


def measure(runs: int) -> dict[str, list[float]]:
    """Timings of both commands, ``runs`` each, interleaved, after two warm-up runs each."""
    commands = {"python -c pass": [sys.executable, "-c", "pass"], "vapi-agent --help": [*cli_command(), "--help"]}
    for argv in commands.values():
        for _ in range(2):
            time_once(argv)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            samples[name].append(time_once(argv))
    return samples


def heavy_imports() -> list[str]:
    """Heavy top-level packages that ``vapi-agent --help`` imports (``python -X importtime``)."""
    script = cli_command()
    argv = ([sys.executable, "-X", "importtime", script[0], "--help"] if len(script) == 1
            else [sys.executable, "-X", "importtime", *script[1:], "--help"])
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True, env=_quiet_env())
    loaded = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            loaded.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return sorted(loaded.intersection(HEAVY))


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the side-by-side table (or JSON) and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (default 15)")
    parser.add_argument("--target", type=float, default=TARGET_SECONDS, help="allowed added seconds (0.35)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args(argv)

    samples = measure(max(1, options.runs))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    added = medians["vapi-agent --help"] - medians["python -c pass"]
    heavy = heavy_imports()
    ok = added < options.target and not heavy
    if options.json:
        print(json.dumps({"runs": options.runs, "median_seconds": {k: round(v, 4) for k, v in medians.items()},
                          "min_seconds": {k: round(min(v), 4) for k, v in samples.items()},
                          "added_seconds": round(added, 4), "target_seconds": options.target,
                          "heavy_imports": heavy, "ok": ok}))
    else:
        print(f"{'command':<20} {'median':>8} {'min':>8} {'max':>8}   ({options.runs} runs each, interleaved)")
        for name, values in samples.items():
            print(f"{name:<20} {medians[name]:>7.3f}s {min(values):>7.3f}s {max(values):>7.3f}s")
        verdict = "OK" if added < options.target else "OVER TARGET"
        print(f"added by vapi-agent: {added:.3f} s (target < {options.target:.2f} s): {verdict}")
        print("heavy libraries imported by --help: " + (", ".join(heavy) if heavy else "none"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
