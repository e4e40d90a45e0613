"""The embedded sandbox across commands: real CLI processes share one remembered workspace.

Every command is its own process (``python -c "... cli.main()"``), as when a user types them one after
the other. Where a test needs a process to start at a given moment, the child's wall clock
(``time.time``) is pinned before anything is imported: that is what "a process started at T" means
to the sandbox, whose history after its persisted anchor is a function of absolute time.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESET_HINT = "`vapi-agent sandbox reset`"


def child_env() -> dict[str, str]:
    """The test's environment (its own data dir, set by conftest) for a child CLI process."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "NO_COLOR": "1"}


def launch(cwd: Path, *argv: str, at: datetime | None = None) -> subprocess.Popen[str]:
    """Start ``vapi-agent ARGV`` in a child process, its clock pinned to ``at`` when given."""
    pin = f"import time\ntime.time = lambda: {at.timestamp()!r}\n" if at is not None else ""
    script = pin + "import sys, cli\nsys.exit(cli.main())\n"
    return subprocess.Popen([sys.executable, "-c", script, *argv], cwd=cwd, env=child_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def cli(cwd: Path, *argv: str, at: datetime | None = None, code: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``vapi-agent ARGV`` to the end and check its exit code."""
    proc = launch(cwd, *argv, at=at)
    out, err = proc.communicate(timeout=180)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert done.returncode == code, f"{argv}: exit {done.returncode}\n{err}"
    return done


def result(done: subprocess.CompletedProcess[str]) -> Any:
    """The ``result`` of a ``--json`` envelope."""
    return json.loads(done.stdout)["result"]


def tool_data(cwd: Path, tool: str, args: dict[str, Any], **kwargs: Any) -> Any:
    """``tools call TOOL --args ARGS --json``: the tool's decoded data."""
    return result(cli(cwd, "tools", "call", tool, "--args", json.dumps(args), "--yes", "--json", **kwargs))["data"]


# ---------------------------------------------------------------- 14.3: the sandbox remembers
def test_the_embedded_sandbox_remembers_writes_across_commands_until_reset(tmp_path: Path) -> None:
    (tmp_path / "leads.csv").write_text("number,name\n+14155550123,Ann\n+14155550124,Bob\n")
    created = cli(tmp_path, "campaign", "create", "--name", "Spring", "--assistant", "Support", "--phone-number",
                  "primary", "--leads", "leads.csv", "--yes", "--json")
    campaign_id = result(created)["campaign"]["id"]
    status = result(cli(tmp_path, "campaign", "status", campaign_id, "--json"))
    assert (status["id"], status["name"], status["counters"]["customers"]) == (campaign_id, "Spring", 2)
    assert RESET_HINT in created.stderr  # the notice says the sandbox remembers, and how to start over

    owl = tool_data(tmp_path, "create_a_vapi_assistant", {"name": "Night Owl", "firstMessage": "Night desk, Owl here."})
    first = result(cli(tmp_path, "assistant", "chat", "Night Owl", "hello", "--json"))
    assert first["assistant"]["id"] == owl["id"] and first["reply"].startswith("Night desk, Owl here.")
    follow = result(cli(tmp_path, "assistant", "chat", "Night Owl", "my bill is wrong", "--previous-chat-id",
                        first["chat_id"], "--json"))
    assert "billing" in follow["reply"] and follow["chat_id"] != first["chat_id"]

    reset = cli(tmp_path, "sandbox", "reset")
    assert "reset the embedded sandbox" in reset.stdout
    listed = result(cli(tmp_path, "campaign", "list", "--json"))
    assert listed["campaigns"] == []


def test_concurrent_commands_write_into_one_workspace_and_lose_nothing(tmp_path: Path) -> None:
    names = [f"Concurrent {k}" for k in range(3)]
    procs = [launch(tmp_path, "tools", "call", "create_a_vapi_assistant", "--args", json.dumps({"name": name}),
                    "--yes", "--json") for name in names]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        ids.append(json.loads(out)["result"]["data"]["id"])
    assert len(set(ids)) == len(names)
    assistants = tool_data(tmp_path, "list_all_vapi_assistants", {"limit": 100})
    listed = assistants["result"] if isinstance(assistants, dict) else assistants
    assert sorted(a["id"] for a in listed if a["name"] in names) == sorted(ids)


def test_a_corrupt_state_is_exit_2_with_the_way_out(tmp_path: Path) -> None:
    state_dir = Path(os.environ["VAPI_AGENT_DATA_DIR"]) / "sandbox"
    state_dir.mkdir(parents=True)
    (state_dir / "seed7-calls2000.jsonl").write_text("garbage\n")
    broken = cli(tmp_path, "campaign", "list", code=2)
    assert "sandbox reset" in broken.stderr and "Traceback" not in broken.stderr
    assert "seed7-calls2000" in cli(tmp_path, "sandbox", "reset").stdout


# ---------------------------------------------------------------- 14.4: ended calls never change
def _without_presigned(value: Any) -> Any:
    """A call as served, minus the fresh presigned links (new on every response, as on Vapi)."""
    if isinstance(value, dict):
        return {k: _without_presigned(v) for k, v in value.items() if not k.startswith("presigned")}
    if isinstance(value, list):
        return [_without_presigned(v) for v in value]
    return value


def _calls_until(cwd: Path, moment: datetime, at: datetime) -> dict[str, Any]:
    data = tool_data(cwd, "list_all_vapi_calls", {"limit": 100, "createdAtLe": moment.isoformat()}, at=at)
    return {c["id"]: _without_presigned(c) for c in data["result"]}


def _report(cwd: Path, period: tuple[datetime, datetime], at: datetime) -> dict[str, Any]:
    start, end = (day.date().isoformat() for day in period)
    report = result(cli(cwd, "report", "--from", start, "--to", end, "--json", at=at))
    return {k: report[k] for k in ("period", "previous_period", "summary", "daily", "ended_reasons",
                                   "success_evaluation")}


def _recording_sha(cwd: Path, call_id: str, at: datetime) -> str:
    out = cwd / f"{call_id}-{at.timestamp():.0f}.wav"
    cli(cwd, "calls", "recording", call_id, "--out", str(out), at=at)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def test_processes_started_at_different_times_agree_on_every_ended_call_and_past_report(tmp_path: Path) -> None:
    """The first command anchors the workspace; one started two days later sees the same ended calls (assistant,
    values, transcript, cost, recording), the calls live then have ended, and a report of a past week has the
    same totals. (New calls arriving meanwhile: ``tests/test_sandbox_state.py``.)"""
    # The first process runs now (its clock pinned, so "before t1" is exact), the second as if 2 days later.
    t1 = datetime.now(tz=UTC).replace(microsecond=0)
    t2 = t1 + timedelta(days=2, hours=5)
    past_week = (t1 - timedelta(days=9), t1 - timedelta(days=2))
    before = _calls_until(tmp_path, t1, at=t1)
    report_before = _report(tmp_path, past_week, at=t1)
    ended = {cid: call for cid, call in before.items() if call["status"] == "ended"}
    assert len(ended) >= 90 and len(before) == 100
    recorded = next(cid for cid, call in ended.items() if call.get("artifact", {}).get("recordingUrl"))
    sha_before = _recording_sha(tmp_path, recorded, at=t1)

    after = _calls_until(tmp_path, t1, at=t2)
    assert {cid: after[cid] for cid in ended} == ended
    assert all(after[cid]["status"] == "ended" for cid in before)  # the live ones have ended since
    assert _report(tmp_path, past_week, at=t2) == report_before
    assert _recording_sha(tmp_path, recorded, at=t2) == sha_before

    # `sandbox ground-truth` describes this same workspace (what every command above was served).
    cli(tmp_path, "sandbox", "ground-truth", "--out", "truth.json", "--recordings", "none", at=t2)
    truth = json.loads((tmp_path / "truth.json").read_text())
    described = {cid: call for group in truth["assistants"].values() for cid, call in group["calls"].items()}
    assert truth["anchor"].startswith(t1.isoformat()[:19]) and truth["calls"] > 2000  # arrivals since t1
    for cid, call in after.items():
        assert (described[cid]["status"], described[cid]["endedReason"]) == (call["status"], call["endedReason"])
