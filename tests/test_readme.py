"""The README's examples run, so the README cannot drift from the program (issue 14, Done when).

Every fenced ``bash`` block of README.md that calls ``vapi-agent`` is run line by line in one bash
process (so a line may use a variable an earlier one set), from an empty folder, on a fresh embedded
sandbox with nothing configured; the first line that exits non-zero fails the test and is named. A
line is skipped only when it ends in ``# not tested: REASON`` with a reason: the marker is visible to
every reader of the README.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]
SKIP = re.compile(r"\s#\s*not tested:\s*(?P<reason>.*)$")
CALLS_US = re.compile(r"(^|[\s/($;&|])vapi-agent\s")


@dataclass(frozen=True)
class Line:
    """One command line of a README block: where it is, what it runs, and why not (when skipped)."""

    number: int
    text: str
    skipped: str | None = None


def readme_blocks(text: str) -> list[list[Line]]:
    """The command lines of each fenced bash block that calls vapi-agent (comments and blanks dropped)."""
    blocks: list[list[Line]] = []
    current: list[Line] | None = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if current is None:
            if re.fullmatch(r"```(bash|sh|shell)", stripped):
                current = []
            continue
        if stripped.startswith("```"):
            if any(CALLS_US.search(line.text) for line in current):
                blocks.append(current)
            current = None
            continue
        if not stripped or (stripped.startswith("#") and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        command, pending = pending + stripped, ""
        found = SKIP.search(command)
        if found:
            current.append(Line(number, command[: found.start()].rstrip(), found["reason"].strip()))
        else:
            current.append(Line(number, command))
    return blocks


def test_the_readme_parser_finds_commands_and_markers() -> None:
    sample = "\n".join([
        "text", "```bash", "# a comment", "vapi-agent doctor", "X=$(vapi-agent calls list --json | jq -r .x)",
        "vapi-agent ask \\", "  \"hello\"  # not tested: needs a model", "```",
        "```bash", "python -m pytest -q", "```", "```text", "vapi-agent doctor", "```",
    ])
    (block,) = readme_blocks(sample)
    assert [(line.number, line.text, line.skipped) for line in block] == [
        (4, "vapi-agent doctor", None), (5, "X=$(vapi-agent calls list --json | jq -r .x)", None),
        (7, 'vapi-agent ask "hello"', "needs a model")]


def test_the_first_screen_has_two_commands() -> None:
    """Install and grade on the sandbox; install and run the tests: nothing else before the first output."""
    first = readme_blocks((ROOT / "README.md").read_text(encoding="utf-8"))[0]
    assert [line.number for line in first][-1] < 25, "the first commands moved off the first screen"
    assert len(first) == 2, [line.text for line in first]
    install_grade, install_test = (line.text for line in first)
    assert "pip install" in install_grade and "vapi-agent qa-grade --assistant Support" in install_grade
    assert "pip install -q -e '.[test]'" in install_test and "pytest" in install_test
    # CI runs exactly the README's test command (after its own venv and tools)
    test_command = install_test.split("&&")[-1].split("#")[0].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_every_readme_command_runs_on_the_embedded_sandbox(tmp_path: Path) -> None:
    require_tool("jq", "the README's examples read --json envelopes with jq")
    executable = Path(sys.executable).parent / "vapi-agent"
    if not executable.exists():
        pytest.fail(f"{executable} is missing: install the project into the venv that runs the tests")
    blocks = readme_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    lines = [line for block in blocks for line in block]
    skipped = [line for line in lines if line.skipped is not None]
    assert all(line.skipped for line in skipped), "a `# not tested:` marker needs a reason"
    run = [line for line in lines if line.skipped is None]
    assert len(run) >= 20, "the README's tour of every command is missing"

    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(executable.parent.parent)  # the README's `.venv/bin/vapi-agent` lines
    script = ["set -euo pipefail", 'trap \'echo "README.md line $README_LINE failed (exit $?): $README_TEXT" >&2\' ERR']
    for line in run:
        script += [f"README_LINE={line.number}; README_TEXT={shlex.quote(line.text)}", line.text]
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("OPENAI_", "VAPI_API_KEY", "TRUTO_", "VAPI_AGENT_"))}
    env.update({"PATH": f"{executable.parent}{os.pathsep}{env.get('PATH', '')}", "COLUMNS": "100",
                "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
                "XDG_DATA_HOME": str(tmp_path / "data"), "VAPI_AGENT_DATA_DIR": str(tmp_path / "data" / "vapi-agent")})
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n--- stdout ---\n{done.stdout[-2000:]}"
    assert "Traceback" not in done.stderr
    assert list((work / "reports").glob("report-2026-12-01.*")) and list((work / "recordings").glob("*.wav"))
    shutil.rmtree(work)

