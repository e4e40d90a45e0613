"""How much start-up time ``vapi-agent`` adds to a bare Python: ``vapi-agent --help`` vs ``python -c pass``.

Usage (from the repository root, with the project venv)::

    .venv/bin/python -m bench.startup [--json] [--quick] [--rounds 15] [--target 0.35]

Both commands run ``--rounds`` times, interleaved (so a load spike on the machine hits both alike),
after two warm-up runs each (byte-code and page caches); the figure is the difference of the
medians (the ideal adds nothing to a bare Python start). It also lists any heavy library (openai,
mcp, pandas, ...) that ``--help`` imports: those must load lazily, inside the commands that need
them. Exits 1 when the added time is over the target or a heavy library is imported, so it can gate
CI on a quiet machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import harness

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 0.35
# Libraries whose import alone costs tens to hundreds of milliseconds; none may load for --help.
HEAVY = ("openai", "mcp", "pandas", "numpy", "httpx2", "httpx", "pydantic", "rich", "starlette", "uvicorn",
         "tenacity", "jsonschema", "vapi", "phonenumbers", "sandbox", "workflows")


def time_once(argv: Sequence[str]) -> float:
    """Wall-clock seconds of one run (output discarded; a failing command is an error)."""
    start = time.perf_counter()
    subprocess.run(list(argv), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env=_quiet_env())
    return time.perf_counter() - start


def _quiet_env() -> dict[str, str]:
    return harness.clean_env(XDG_CONFIG_HOME="/nonexistent-vapi-agent-bench")


COMMANDS = {"python -c pass": lambda: [sys.executable, "-c", "pass"],
            "vapi-agent --help": lambda: [*harness.cli_command(), "--help"]}


def heavy_imports() -> list[str]:
    """Heavy top-level packages that ``vapi-agent --help`` imports (``python -X importtime``)."""
    script = harness.cli_command()
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
    parser = harness.parser(__doc__)
    parser.set_defaults(rounds=15)
    parser.add_argument("--target", type=float, default=TARGET_SECONDS, help="allowed added seconds (0.35)")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else harness.check_rounds(args)
    for argv_of in COMMANDS.values():  # warm-up: byte-code and page caches
        for _ in range(2):
            time_once(argv_of())
    result = harness.Result("startup", args.quick, rounds)
    scenario = harness.Scenario(
        "start-up: what vapi-agent adds to a bare Python", workload={"runs_each": rounds},
        ideal={"added_s": 0.0, "target_added_s": args.target}, contenders=list(COMMANDS),
        columns={"seconds": "seconds"})
    scenario.run(rounds, lambda name, _round: {"seconds": time_once(COMMANDS[name]())})
    added = scenario.median("vapi-agent --help", "seconds") - scenario.median("python -c pass", "seconds")
    heavy = heavy_imports()
    scenario.workload["heavy_imports_of_help"] = heavy
    scenario.ideal["added_s_measured"] = round(added, 4)
    ok = added < args.target and not heavy
    scenario.notes += [f"added by vapi-agent: {added:.3f} s (target < {args.target:.2f} s): "
                       f"{'OK' if added < args.target else 'OVER TARGET'}",
                       "heavy libraries imported by --help: " + (", ".join(heavy) if heavy else "none")]
    result.scenarios.append(scenario)
    result.finish(args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
