"""A hostile server's data stays data (issue 13, items 2 and 9), against ``SandboxConfig(hostile=True)``.

That sandbox plants what a broken or malicious server might send: the newest ended call of Support
has the id ``../../escaped-recording`` and one assistant is named with terminal control codes that
clear the screen and retitle the window. Every command runs the real CLI against it, served on
loopback; the checks read the files on disk, the sandbox's request log and the bytes printed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.app import Sandbox
from sandbox.world.config import HOSTILE_ASSISTANT_NAME, HOSTILE_CALL_ID
from tests.test_campaign import Runner, runner_for

# Anything a terminal would obey: ESC, BEL, the other C0 controls but tab/newline, DEL, C1.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.fixture
def hostile(serve_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """The hostile sandbox, served on loopback."""
    return serve_sandbox(calls=300, hostile=True)


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], hostile: Sandbox,
        tmp_path: Path) -> Runner:
    """``vapi-agent <argv>`` headless against the hostile sandbox, from ``tmp_path/work``."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return runner_for(monkeypatch, capsys, hostile)


def test_the_knob_plants_both(hostile: Sandbox) -> None:
    support = next(a for a in hostile.workspace.list_objects("assistants") if a["name"] == "Support")
    newest = next(c for c in hostile.workspace.list_calls(assistant_id=support["id"], limit=50)
                  if c["status"] == "ended")
    assert newest["id"] == HOSTILE_CALL_ID
    assert HOSTILE_ASSISTANT_NAME in [a["name"] for a in hostile.workspace.list_objects("assistants")]


def test_a_call_id_that_escapes_the_folder_is_refused_for_that_call_only(run: Runner, hostile: Sandbox,
                                                                         tmp_path: Path) -> None:
    done = run("qa-grade", "--assistant", "Support", "--last", "4", "--recordings", "all", "--recordings-dir", "rec",
               "--threshold", "101", "--json")
    assert done.code == 0, done.stderr
    envelope = json.loads(done.stdout)
    assert envelope["status"] == "partial"
    calls = envelope["result"]["calls"]
    assert len(calls) == 4 and calls[0]["id"] == HOSTILE_CALL_ID  # the run went on past it
    refused = [e for e in envelope["errors"] if e["code"] == "unsafe_input"]
    assert len(refused) == 1 and refused[0]["call_id"] == HOSTILE_CALL_ID
    assert "cannot be a file name" in refused[0]["message"]
    assert calls[0]["recording"] is None and any("recording not saved" in n for n in calls[0]["notes"])
    saved = [c for c in calls[1:] if c["recording"]]
    assert saved  # the other calls' recordings were saved, inside the folder
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(f"work/rec/{c['id']}-mono.wav" for c in saved)
    # Refused before anything was asked: the server never handed out a link for that call.
    asked = [e.arguments for e in hostile.log.entries("mcp") if e.rpc_method == "tools/call"
             and e.tool == "list_all_vapi_mono_recordings"]
    assert HOSTILE_CALL_ID not in json.dumps(asked) and len(asked) == len(calls) - 1


def test_calls_recording_refuses_a_default_name_from_an_unsafe_id(run: Runner, tmp_path: Path) -> None:
    done = run("calls", "recording", HOSTILE_CALL_ID)
    assert done.code == 2 and "--out FILE" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_control_codes_in_server_text_never_reach_the_terminal(run: Runner, hostile: Sandbox) -> None:
    evil = next(a for a in hostile.workspace.list_objects("assistants") if a["name"] == HOSTILE_ASSISTANT_NAME)
    runs = {
        "error line": run("qa-grade", "--assistant", "qqqqqqqq"),  # the hint lists the assistants' names
        "table": run("calls", "list", "--assistant", evil["id"]),  # the table's title is the name
        "tools call": run("tools", "call", "list_all_vapi_assistants", "--args", "{}"),
        "json": run("calls", "list", "--assistant", evil["id"], "--json"),
    }
    assert runs["error line"].code == 2 and "Evil" in runs["error line"].stderr
    assert len(runs["error line"].stderr.strip().splitlines()) == 1
    assert runs["table"].code == 0 and "Evil" in runs["table"].stdout
    assert all(done.code in (0, 2) for done in runs.values())
    for what, done in runs.items():
        for stream in (done.stdout, done.stderr):
            assert not CONTROL.search(stream), (what, stream[:500])
    # Data is not lost on the way: the JSON still holds the name exactly (escaped, as JSON does).
    assert json.loads(runs["json"].stdout)["result"]["assistant"]["name"] == HOSTILE_ASSISTANT_NAME
