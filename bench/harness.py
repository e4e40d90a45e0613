"""The one harness every benchmark uses: options, interleaved rounds, median and spread, load, JSON.

A benchmark declares its scenarios (a workload, one ideal computed from that workload, never from a
contender, and the contenders) and a ``measure(contender, round)`` function that returns the sample's
figures. ``run_rounds`` runs every contender once per round, alternating the order from one round to
the next (A B C, then C B A, ...), so slow drift in the machine's load falls on all of them alike; the
machine's 1-minute load average is read before every sample and printed beside the figures.

Every benchmark is run as ``python -m bench.<name>`` and shares these options:

* ``--json``: stdout is one JSON document (``Result.to_json``); the human table goes to stderr;
* ``--quick``: a reduced workload that finishes in under a minute with the same JSON shape, for
  smoke checks (``tests`` never time anything; quick figures are not quoted anywhere);
* ``--rounds N``: rounds of interleaved samples (at least 3; the default).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MIN_ROUNDS = 3

Figures = Mapping[str, float]


def parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares (``--json``, ``--quick``, ``--rounds``)."""
    out = argparse.ArgumentParser(description=(description or "").split("\n\n")[0])
    out.add_argument("--json", action="store_true", help="print the result as one JSON document on stdout")
    out.add_argument("--quick", action="store_true",
                     help="reduced workload, under 60 s, same JSON shape (smoke checks; never quote its figures)")
    out.add_argument("--rounds", type=int, default=MIN_ROUNDS,
                     help=f"interleaved rounds of every contender (at least {MIN_ROUNDS})")
    return out


def check_rounds(args: argparse.Namespace) -> int:
    """``--rounds``, refused below the minimum (a median of fewer samples is not a figure)."""
    if args.rounds < MIN_ROUNDS:
        raise SystemExit(f"--rounds must be at least {MIN_ROUNDS} (got {args.rounds})")
    return int(args.rounds)


def load_average() -> list[float]:
    """The machine's 1, 5 and 15-minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def progress(message: str) -> None:
    """One progress line on stderr (stdout is kept for the result)."""
    print(message, file=sys.stderr, flush=True)


def order(contenders: Sequence[str], round_index: int) -> list[str]:
    """The contenders in the order round ``round_index`` runs them: forwards, then backwards, ..."""
    return list(contenders) if round_index % 2 == 0 else list(reversed(contenders))


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and spread (max - min, and relative to the median) of one figure's samples."""
    median = statistics.median(values)
    low, high = min(values), max(values)
    return {"median": _round(median), "min": _round(low), "max": _round(high), "spread": _round(high - low),
            "spread_pct": round(100 * (high - low) / median, 1) if median else None,
            "values": [_round(v) for v in values]}


def _round(value: float) -> float:
    return round(value, 4 if abs(value) < 10 else 2)


@dataclass
class Sample:
    """One contender's figures in one round, with the machine's load when it started."""

    contender: str
    round: int
    figures: dict[str, float]
    load_1min: float


@dataclass
class Scenario:
    """A workload, its ideal (from the workload alone), the contenders and their samples."""

    name: str
    workload: dict[str, Any]
    ideal: dict[str, Any]
    contenders: list[str]
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # figure name -> how to print it (a label with its unit); the first ones go in the table
    columns: dict[str, str] = field(default_factory=dict)

    def run(self, rounds: int, measure: Callable[[str, int], Figures]) -> Scenario:
        """Every contender once per round, interleaved; ``measure(contender, round)`` returns its figures."""
        for index in range(rounds):
            for contender in order(self.contenders, index):
                load = load_average()[0]
                progress(f"[{self.name}] round {index + 1}/{rounds}: {contender} (load {load:.2f}) ...")
                figures = dict(measure(contender, index))
                self.samples.append(Sample(contender, index, figures, load))
                shown = ", ".join(f"{k}={_round(v)}" for k, v in figures.items() if k in self.columns)
                progress(f"[{self.name}]   {contender}: {shown}")
        return self

    def figures_of(self, contender: str) -> dict[str, dict[str, Any]]:
        """Median and spread of every figure of one contender."""
        samples = [s for s in self.samples if s.contender == contender]
        names = list(dict.fromkeys(k for s in samples for k in s.figures))
        return {name: summary([s.figures[name] for s in samples if name in s.figures]) for name in names}

    def median(self, contender: str, figure: str) -> float:
        """The median of one figure of one contender."""
        return float(self.figures_of(contender)[figure]["median"])

    def to_json(self) -> dict[str, Any]:
        """The scenario as JSON: workload, ideal, and per contender the figures and the load per round."""
        return {
            "name": self.name, "workload": self.workload, "ideal": self.ideal,
            "rounds": len({s.round for s in self.samples}), "columns": self.columns,
            "contenders": [
                {"name": name, "figures": self.figures_of(name),
                 "load_1min": [s.load_1min for s in self.samples if s.contender == name]}
                for name in self.contenders
            ],
            "notes": self.notes,
        }


@dataclass
class Result:
    """What one benchmark run produced: its scenarios and the machine's state around them."""

    benchmark: str
    quick: bool
    rounds: int
    scenarios: list[Scenario] = field(default_factory=list)
    load_start: list[float] = field(default_factory=load_average)
    started: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable result (the same shape with and without ``--quick``)."""
        loads = [s.load_1min for scenario in self.scenarios for s in scenario.samples]
        return {
            "benchmark": self.benchmark, "quick": self.quick, "rounds": self.rounds,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "seconds": round(time.time() - self.started, 1),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "system": platform.platform()},
            "load_average": {"start": self.load_start, "end": load_average(),
                             "samples_1min": {"min": min(loads, default=0.0), "max": max(loads, default=0.0)}},
            "scenarios": [scenario.to_json() for scenario in self.scenarios],
        }

    def text(self) -> str:
        """The human-readable tables (rich), one per scenario, with the load beside the figures."""
        from rich.console import Console
        from rich.table import Table

        buffer = io.StringIO()
        console = Console(file=buffer, width=160, force_terminal=False, color_system=None)
        head = f"{self.benchmark}{' (QUICK: smoke check, do not quote)' if self.quick else ''}: " \
               f"{self.rounds} interleaved rounds; load average at start {self.load_start}, end {load_average()}"
        console.print(head)
        for scenario in self.scenarios:
            table = Table(title=f"{scenario.name}\nworkload: {_kv(scenario.workload)}\n"
                                f"ideal: {_kv(scenario.ideal)}", title_justify="left")
            table.add_column("contender")
            for label in scenario.columns.values():
                table.add_column(f"{label}\nmedian [min-max]", justify="right")
            table.add_column("load (1 min)\nper round", justify="right")
            for name in scenario.contenders:
                figures = scenario.figures_of(name)
                cells = [_cell(figures.get(key)) for key in scenario.columns]
                loads = [s.load_1min for s in scenario.samples if s.contender == name]
                table.add_row(name, *cells, " ".join(f"{x:.1f}" for x in loads))
            console.print(table)
            for note in scenario.notes:
                console.print(f"  {note}")
        return buffer.getvalue()

    def finish(self, args: argparse.Namespace) -> int:
        """Print the tables (stderr with ``--json``, else stdout) and the JSON; returns the exit status."""
        text = self.text()
        if args.json:
            sys.stderr.write(text)
            print(json.dumps(self.to_json(), indent=2))
        else:
            sys.stdout.write(text)
        return 0


def _kv(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _cell(figure: Mapping[str, Any] | None) -> str:
    if not figure:
        return "-"
    return f"{_fmt(figure['median'])} [{_fmt(figure['min'])}-{_fmt(figure['max'])}]"


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"


def markdown(document: Mapping[str, Any]) -> str:
    """A result's JSON (``--json``) as Markdown tables: median [min-max] per figure, load per round."""
    lines = [f"`{document['benchmark']}`{' (QUICK: do not quote)' if document['quick'] else ''}, "
             f"{document['started']}, {document['seconds']:.0f} s; load average (1/5/15 min) at start "
             f"{document['load_average']['start']}, end {document['load_average']['end']}", ""]
    for scenario in document["scenarios"]:
        columns: dict[str, str] = scenario.get("columns") or {}
        lines += [f"**{scenario['name']}** ({scenario['rounds']} round(s)); workload: {_kv(scenario['workload'])}; "
                  f"ideal: {_kv(scenario['ideal'])}", "",
                  "| contender | " + " | ".join(columns.values()) + " | load (1 min) per round |",
                  "|---" * (len(columns) + 2) + "|"]
        for contender in scenario["contenders"]:
            cells = [_cell(contender["figures"].get(key)) for key in columns]
            loads = " ".join(f"{x:.1f}" for x in contender["load_1min"])
            lines.append(f"| {contender['name']} | " + " | ".join(cells) + f" | {loads} |")
        lines += [f"- {note}" for note in scenario.get("notes", [])] + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------- helpers for clients in their own process
def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the user's vapi-agent settings and credentials (``VAPI_*``,
    ``OPENAI_*``, ``TRUTO_*``), plus ``extra``: no user configuration influences a measurement."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAPI_", "OPENAI_", "TRUTO_"))}
    return {**env, **extra}


def cli_command() -> list[str]:
    """The installed ``vapi-agent`` console script (next to this interpreter, else on PATH).

    Falls back to running the module the script would run, when the project is not installed.
    """
    beside = Path(sys.executable).with_name("vapi-agent")
    found = str(beside) if beside.exists() else shutil.which("vapi-agent")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys, cli; sys.exit(cli.main())"]


def child(module: str, *argv: str, env: Mapping[str, str] | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run ``python -m <module> <argv>`` (a benchmark's client mode); its last stdout line, parsed as JSON."""
    done = subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=timeout, env=None if env is None else dict(env))
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(argv[:2])} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{module} printed nothing:\n{done.stderr[-3000:]}")
    return dict(json.loads(lines[-1]))


if __name__ == "__main__":  # python -m bench.harness RESULT.json ...: the results as Markdown tables
    for name in sys.argv[1:]:
        print(markdown(json.loads(Path(name).read_text())))
