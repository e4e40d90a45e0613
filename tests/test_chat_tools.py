"""Files chosen by the model are writes (issue 13, item 5).

The model picks the arguments of the workflow tools; a call that would write files on this machine
(the report's files, qa_grade's recordings) is refused under ``--read-only``, needs approval
otherwise (``--yes``, ``--allow write_local_files`` or a yes), and may only write inside the working
directory or a folder the user named with ``--write-dir``. Runs are real ``ask`` commands (headless:
no terminal to ask) over an in-process sandbox and a scripted model.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings
from agent.model import ModelTurn, ToolCall
from agent.model.scripted import ScriptedModel
from cli.commands.ask import AskOptions, ask_body
from cli.runner import run_command
from sandbox.app import Sandbox
from sandbox.world.config import SandboxConfig


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    """One small in-process sandbox (these runs only read the account)."""
    return Sandbox(SandboxConfig(calls=300, seed=7))


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory of the run (and nothing else written under tmp_path)."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def ask(sandbox: Sandbox, capsys: pytest.CaptureFixture[str], tool: str, args: dict[str, Any],
        **settings: Any) -> tuple[int, dict[str, Any], ScriptedModel]:
    """``ask --json`` where the model calls ``tool`` with ``args`` once, then answers (if it gets the chance)."""
    model = ScriptedModel([ModelTurn(tool_calls=[ToolCall("c1", tool, json.dumps(args))]), ModelTurn(content="done")])
    capsys.readouterr()
    code = run_command("ask", replace(Settings(json=True), **settings),
                       ask_body(AskOptions("do it"), model=model, sandbox=sandbox))
    return code, json.loads(capsys.readouterr().out), model


def files_under(folder: Path) -> list[str]:
    """Every file written under ``folder`` (relative, sorted)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


REPORT = {"since": "7d", "format": "md", "out": "reports"}


@pytest.mark.parametrize(("settings", "why"), [
    ({"read_only": True, "yes": True}, "read-only"),  # nothing overrides read-only
    ({}, "needs approval and there is no terminal to ask"),
])
def test_report_files_are_a_write(settings: dict[str, Any], why: str, sandbox: Sandbox, work: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, envelope, _ = ask(sandbox, capsys, "report", REPORT, **settings)
    assert code == 5 and envelope["status"] == "error"
    (error,) = envelope["errors"]
    assert error["code"] == "approval_required" and why in error["message"]
    assert "write_local_files" in error["message"]
    (call,) = envelope["result"]["tool_calls"]
    assert call["name"] == "report" and call["outcome"] == "refused"
    assert files_under(work.parent) == []


@pytest.mark.parametrize("approval", [{"yes": True}, {"allow": ("write_local_files",)}])
def test_approved_report_files_land_in_the_working_directory(approval: dict[str, Any], sandbox: Sandbox, work: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, envelope, _ = ask(sandbox, capsys, "report", REPORT, **approval)
    assert code == 0, envelope
    (call,) = envelope["result"]["tool_calls"]
    assert call["approved_by"] == ("yes" if "yes" in approval else "allow")
    written = files_under(work.parent)
    assert len(written) == 1 and written[0].startswith("work/reports/report-") and written[0].endswith(".md")


@pytest.mark.parametrize("out", ["../outside", "/tmp", "reports/../../outside", "~"])
def test_a_folder_outside_the_working_directory_is_refused_even_with_yes(out: str, sandbox: Sandbox, work: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, envelope, _ = ask(sandbox, capsys, "report", {**REPORT, "out": out}, yes=True)
    assert code == 5
    assert "outside the working directory" in envelope["errors"][0]["message"]
    assert "--write-dir" in envelope["errors"][0]["message"]
    assert files_under(work.parent) == []


def test_a_folder_the_user_named_is_allowed(sandbox: Sandbox, work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    named = work.parent / "named"
    code, envelope, _ = ask(sandbox, capsys, "report", {**REPORT, "out": str(named)}, yes=True,
                            write_dirs=(str(named),))
    assert code == 0, envelope
    assert [p.startswith("named/report-") for p in files_under(work.parent)] == [True]


def test_a_symlink_out_of_the_working_directory_is_refused(sandbox: Sandbox, work: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (work.parent / "elsewhere").mkdir()
    (work / "reports").symlink_to(work.parent / "elsewhere")
    code, envelope, _ = ask(sandbox, capsys, "report", REPORT, yes=True)
    assert code == 5 and "outside the working directory" in envelope["errors"][0]["message"]
    assert files_under(work.parent / "elsewhere") == []


def test_qa_grade_recordings_are_a_write_and_extra_keys_are_refused(sandbox: Sandbox, work: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    grade = {"assistant": "Support", "last": 2, "threshold": 0}  # nothing fails: no model analysis
    code, envelope, _ = ask(sandbox, capsys, "qa_grade", {**grade, "recordings": "failing"}, read_only=True)
    assert code == 5 and "read-only" in envelope["errors"][0]["message"]

    code, envelope, model = ask(sandbox, capsys, "qa_grade", grade, read_only=True)  # no recordings asked for
    assert code == 0, envelope
    assert envelope["result"]["tool_calls"][0]["approved_by"] == "read"

    # A key the tool does not declare (where QAParams would have written the recordings) is refused.
    code, envelope, model = ask(sandbox, capsys, "qa_grade", {**grade, "recordings": "all",
                                                              "recordings_dir": str(work.parent / "stolen")}, yes=True)
    assert code == 0 and envelope["result"]["tool_calls"][0]["outcome"] == "error"
    told = next(m for m in model.requests[1]["messages"] if m["role"] == "tool")["content"]
    assert "unknown argument(s) 'recordings_dir'" in told
    assert files_under(work.parent) == []

    code, envelope, _ = ask(sandbox, capsys, "qa_grade", {**grade, "recordings": "all"}, yes=True)
    assert code == 0, envelope
    assert envelope["result"]["tool_calls"][0]["approved_by"] == "yes"
    assert files_under(work.parent) and all(p.startswith("work/recordings/") for p in files_under(work.parent))
