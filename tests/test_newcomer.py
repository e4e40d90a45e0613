"""Issue 14: a newcomer's first day. One test (or a few) per numbered item, through ``cli.main``."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import cli
from agent.store import RunStore


@dataclass
class Ran:
    """One in-process CLI run: exit code, stdout, stderr."""

    code: int
    out: str
    err: str

    def envelope(self) -> dict[str, Any]:
        """The ``--json`` envelope on stdout."""
        return dict(json.loads(self.out))


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Ran]:
    """``vapi-agent ARGV`` in-process (no terminal: stdin empty, stdout captured)."""
    import io

    def go(*argv: str, stdin: str = "") -> Ran:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return go


# ---------------------------------------------------------------- 1. logs list|show|prune
def test_logs_subcommands_and_the_short_forms(run: Callable[..., Ran]) -> None:
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    with RunStore(now=lambda: clock[0]) as store:
        old = store.start_run("report", ["report", "--since", "7d"])
        old.finish("ok", 0)
        clock[0] = datetime.now(tz=UTC)
        new = store.start_run("qa-grade", ["qa-grade", "--assistant", "Support"])
        new.finish("ok", 0)

    listed = run("logs", "--json")
    assert listed.code == 0 and [r["workflow"] for r in listed.envelope()["result"]["runs"]] == ["qa-grade", "report"]
    assert run("logs", "list", "--limit", "1", "--json").envelope()["result"]["runs"][0]["workflow"] == "qa-grade"
    assert run("logs", "--limit", "1", "--json").envelope()["result"]["runs"][0]["workflow"] == "qa-grade"
    for argv in (("logs", new.id[:6]), ("logs", "show", new.id[:6])):
        shown = run(*argv, "--json")
        assert shown.code == 0 and shown.envelope()["result"]["run"]["id"] == new.id

    help_text = run("logs", "prune", "--help")
    assert help_text.code == 0 and "--older-than" in help_text.out and "logs prune" in help_text.out
    pruned = run("logs", "prune", "--older-than", "30d")
    assert pruned.code == 0 and "deleted 1 run(s) older than 30d" in pruned.out
    assert [r["workflow"] for r in run("logs", "--json").envelope()["result"]["runs"]] == ["qa-grade"]

    unknown = run("logs", "show", "fffffff")
    assert unknown.code == 2 and "no run id starts with" in unknown.err
    group_help = run("logs", "--help").out
    assert all(name in group_help for name in ("list", "show", "prune"))


# ---------------------------------------------------------------- 2. assistant chat prints the reply on every route
GREETING = "Thanks for calling Brightline support"


def test_assistant_chat_prints_the_reply_on_every_route(run: Callable[..., Ran], serve_sandbox: Callable[..., Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for argv in (("--via", "rest"), ("--via", "mcp")):  # the embedded sandbox: streamed, then whole
        shown = run("assistant", "chat", "Support", "Hi", *argv)
        assert shown.code == 0 and GREETING in shown.out, (argv, shown.out)
    sandbox = serve_sandbox(calls=30)
    monkeypatch.setenv("VAPI_AGENT_MCP_URL", sandbox.mcp_url)  # the route every Truto user takes
    served = run("assistant", "chat", "Support", "Hi")
    assert served.code == 0 and served.out.startswith(GREETING) and served.out.count("\n") == 1, served.out
    assert "--previous-chat-id" in served.err


# ---------------------------------------------------------------- helpers for a served sandbox
@pytest.fixture
def served(serve_sandbox: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """One small sandbox on loopback, used by every command of the test (``--mcp-url``)."""
    sandbox = serve_sandbox(calls=120)
    monkeypatch.setenv("VAPI_AGENT_MCP_URL", sandbox.mcp_url)
    monkeypatch.setenv("VAPI_AGENT_MCP_KIND", "sandbox")
    return sandbox


def recording_tool_calls(sandbox: Any) -> int:
    """How many recording links the sandbox handed out (each download asks for one)."""
    return sum(1 for e in sandbox.log.entries("mcp") if e.tool == "list_all_vapi_mono_recordings")


def ended_calls(sandbox: Any, assistant: str = "Support") -> list[dict[str, Any]]:
    """The assistant's ended calls, newest first (what qa-grade and calls list see)."""
    (found,) = sandbox.workspace.list_objects("assistants", name=assistant)
    calls = sandbox.workspace.list_calls(assistant_id=found["id"], limit=None)
    return sorted((c for c in calls if c.get("status") == "ended"), key=lambda c: c["createdAt"], reverse=True)


# ---------------------------------------------------------------- 5. --out: folders, existing files, unwritable places
def test_out_folder_means_the_default_name_inside_and_existing_files_are_replaced(
        run: Callable[..., Ran], served: Any, tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    graded = run("qa-grade", "--assistant", "Support", "--last", "3", "--recordings", "none", "--out", str(folder))
    assert graded.code == 0, graded.err
    (written,) = folder.iterdir()
    assert re.fullmatch(r"qa-grade-\d{4}-\d{2}-\d{2}\.md", written.name)
    assert f"wrote {written}" in graded.out  # like report
    written.write_text("old")
    again = run("qa-grade", "--assistant", "Support", "--last", "3", "--recordings", "none", "--out", str(written))
    assert again.code == 0 and written.read_text().startswith("# QA report") and len(list(folder.iterdir())) == 1

    call_id = ended_calls(served)[0]["id"]
    saved = run("calls", "recording", call_id, "--out", str(folder))
    assert saved.code == 0, saved.err
    assert (folder / f"{call_id}-mono.wav").is_file() and re.search(r"\(\d{1,3}(,\d{3})* bytes", saved.out)

    existing_file = tmp_path / "report.txt"
    existing_file.write_text("keep me")
    refused = run("report", "--out", str(existing_file), "--as-of", "2026-12-01T00:00:00Z")
    assert refused.code == 2 and existing_file.read_text() == "keep me"
    assert refused.err.count("\n") == 1 and "--out" in refused.err and "Traceback" not in refused.err


UNREACHABLE = "http://127.0.0.1:9/mcp"  # nothing listens: a request would fail with exit 3, not 2


@pytest.mark.parametrize("argv", [
    ("qa-grade", "--assistant", "Support", "--out", "{proc}"),
    ("qa-grade", "--assistant", "Support", "--out", "{under_file}"),
    ("qa-grade", "--assistant", "Support", "--recordings-dir", "{under_file}"),
    ("qa-grade", "--assistant", "Support", "--recordings-dir", "{proc}"),
    ("calls", "recording", "0123abcd", "--out", "{proc}"),
    ("calls", "recording", "0123abcd", "--out", "{under_file}"),
    ("report", "--out", "{proc}"),
    ("report", "--out", "{under_file}"),
])
def test_unwritable_outputs_are_exit_2_before_any_request(run: Callable[..., Ran], tmp_path: Path,
                                                          argv: tuple[str, ...]) -> None:
    regular = tmp_path / "file"
    regular.write_text("x")
    places = {"proc": "/proc/vapi-agent-test/x", "under_file": str(regular / "sub" / "x.md")}
    failed = run(*(a.format(**places) for a in argv), "--mcp-url", UNREACHABLE)
    assert failed.code == 2, failed.err
    assert failed.err.count("\n") == 1 and failed.err.startswith("error: --") and "Traceback" not in failed.err


def test_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    """Root may write into a 0555 folder, so as root the check runs in a child that drops to nobody."""
    import os
    import tempfile

    from agent.errors import ConfigError
    from agent.files import output_file, output_folder

    base = Path(tempfile.mkdtemp(prefix="vapi-agent-ro-"))
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        locked.chmod(0o555)

        def check() -> int:
            codes = 0
            for probe in (lambda: output_file(locked / "x.md", "d.md"), lambda: output_folder(locked / "new")):
                try:
                    probe()
                except ConfigError as exc:
                    codes += exc.exit_code == 2 and "cannot create files in" in exc.message
            return codes

        if os.geteuid() != 0:
            assert check() == 2
            return
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            try:
                os.setgid(65534)
                os.setuid(65534)
                os._exit(10 + check())
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 12
    finally:
        (base / "locked").chmod(0o755)
        import shutil

        shutil.rmtree(base)


# ---------------------------------------------------------------- 6. id prefixes everywhere; unknown ids are exit 2
def test_id_prefixes_are_accepted_and_unknown_ids_are_exit_2(run: Callable[..., Ran], served: Any,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    call = ended_calls(served)[0]
    saved = run("calls", "recording", call["id"][:8], "--json")
    assert saved.code == 0, saved.err
    assert saved.envelope()["result"]["call_id"] == call["id"] and (tmp_path / f"{call['id']}-mono.wav").is_file()

    for unknown in ("00000000-0000-4000-8000-000000000000", "zz", "0123456789abcdef"):
        missing = run("calls", "recording", unknown, "--json")
        assert missing.code == 2, (unknown, missing.err)
        assert missing.envelope()["errors"][0]["code"] == "config"

    (renewal,) = served.workspace.list_objects("assistants", name="Renewal Outreach")
    (number,) = served.workspace.list_objects("phone_numbers", name="Primary US Toll-Free")
    campaign = served.workspace.create_object("campaigns", {
        "name": "prefixed", "assistantId": renewal["id"], "phoneNumberId": number["id"],
        "customers": [{"number": "+14155550199"}], "schedulePlan": {"earliestAt": "2030-01-01T00:00:00.000Z"}})
    status = run("campaign", "status", campaign["id"][:8], "--json")
    assert status.code == 0 and status.envelope()["result"]["id"] == campaign["id"]
    assert run("campaign", "status", "00000000-0000-4000-8000-000000000000").code == 2
    graded = run("calls", "list", "--assistant", renewal["id"][:8], "--limit", "1", "--json")
    assert graded.code == 0 and graded.envelope()["result"]["assistant"]["id"] == renewal["id"]


def test_an_unknown_previous_chat_id_is_exit_2_with_nothing_on_stdout(run: Callable[..., Ran]) -> None:
    for route in ("rest", "mcp"):
        unknown = run("assistant", "chat", "Support", "Hi", "--previous-chat-id", "24df0296", "--via", route)
        assert unknown.code == 2 and unknown.out == "", (route, unknown.out, unknown.err)
        assert unknown.err.splitlines()[-1].startswith("error: --previous-chat-id '24df0296': no such chat")


# ---------------------------------------------------------------- 7. only intact recordings; a new folder gets them
def test_recordings_are_reported_only_while_intact_and_a_new_folder_gets_them(
        run: Callable[..., Ran], served: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    argv = ("--json", "qa-grade", "--assistant", "Support", "--last", "10")
    graded = run(*argv, "--recordings", "all", "--recordings-dir", str(first))
    assert graded.code == 0, graded.err
    calls = graded.envelope()["result"]["calls"]
    with_files = [c for c in calls if c["recording"]]
    assert len(with_files) >= 3
    deleted, changed, *intact = with_files
    Path(deleted["recording"]["path"]).unlink()
    Path(changed["recording"]["path"]).write_bytes(b"not the recording")

    listed = run(*argv, "--recordings", "none", "--recordings-dir", str(first)).envelope()["result"]["calls"]
    shown = {c["id"]: c["recording"] for c in listed}
    assert shown[deleted["id"]] is None and shown[changed["id"]] is None
    assert [shown[c["id"]] for c in intact] == [c["recording"] for c in intact]

    before = recording_tool_calls(served)
    moved = run(*argv, "--recordings", "all", "--recordings-dir", str(second))
    assert moved.code == 0, moved.err
    assert recording_tool_calls(served) - before == 2  # the deleted and the changed one; the rest are copied
    for call in moved.envelope()["result"]["calls"]:
        if call["recording"]:
            path = Path(call["recording"]["path"])
            assert path.parent == second
            assert hashlib.sha256(path.read_bytes()).hexdigest() == call["recording"]["sha256"]
    assert {p.name for p in second.iterdir()} == {f"{c['id']}-mono.wav" for c in with_files}


# ---------------------------------------------------------------- 8. a metric the calls lack
def test_a_metric_the_calls_lack_is_reported(run: Callable[..., Ran], served: Any) -> None:
    argv = ("qa-grade", "--assistant", "Support", "--last", "4", "--recordings", "none", "--metric",
            "scorecard:Renewal QA")
    lacking = run(*argv, "--json")
    envelope = lacking.envelope()
    assert lacking.code == 0 and envelope["status"] == "partial"
    (error,) = [e for e in envelope["errors"] if e["code"] == "metric_missing"]
    assert error["calls"] == error["of"] == 4 and "Renewal QA" in error["message"]
    shown = run(*argv)
    assert shown.code == 0 and "4 of 4 calls have no Renewal QA value" in shown.out

    graded = run("qa-grade", "--assistant", "Support", "--last", "4", "--recordings", "none", "--json")
    assert graded.envelope()["status"] in ("ok", "partial")  # partial only for the skipped analysis
    assert not [e for e in graded.envelope()["errors"] if e["code"] == "metric_missing" and e["calls"] == e["of"]]


# ---------------------------------------------------------------- 11. campaign status --watch off a terminal
def test_watch_off_a_terminal_prints_a_line_per_change_and_a_final_line(
        run: Callable[..., Ran], serve_sandbox: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = serve_sandbox(calls=30, time_scale=60.0)  # a minute-long call lasts a second
    monkeypatch.setenv("VAPI_AGENT_MCP_URL", sandbox.mcp_url)
    (renewal,) = sandbox.workspace.list_objects("assistants", name="Renewal Outreach")
    (number,) = sandbox.workspace.list_objects("phone_numbers", name="Primary US Toll-Free")
    campaign = sandbox.workspace.create_object("campaigns", {
        "name": "watched", "assistantId": renewal["id"], "phoneNumberId": number["id"],
        "customers": [{"number": "+14155552671"}, {"number": "+16502530000"}]})
    watched = run("campaign", "status", campaign["id"], "--watch", "--interval", "0.1")
    assert watched.code == 0, watched.err
    lines = [line for line in watched.err.splitlines() if re.match(r"\d\d:\d\d:\d\dZ ", line)]
    assert len(lines) >= 2 and lines[-1].split(" ", 1)[1].startswith("final: ended")
    bodies = [line.split(" ", 1)[1] for line in lines[:-1]]
    assert len(bodies) == len(set(bodies))  # one line per change, not per poll
    assert "ended 2 (voicemail" in lines[-1] and "ended" in watched.out


# ---------------------------------------------------------------- 14. consistency
def test_sandbox_serve_help_names_the_command(run: Callable[..., Ran]) -> None:
    shown = run("sandbox", "serve", "--help")
    assert shown.code == 0 and "usage: vapi-agent sandbox serve" in shown.out
    refused = run("sandbox", "serve", "--port", "nope")
    assert refused.code == 2 and "vapi-agent sandbox serve --help" in refused.err


def test_doctor_and_config_show_name_one_model(run: Callable[..., Ran], monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ({}, {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "VAPI_AGENT_MODEL": "m-1"}):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        configured = run("config", "show", "--json").envelope()["result"]
        doctor = run("doctor", "--json").envelope()["result"]["model"]
        assert configured["model"] == doctor, env
        assert doctor["name"] == ("m-1" if env else "gpt-4.1-mini")
        assert f"model: {doctor['summary']}" in run("doctor").out.replace("\n", " ")


def test_one_wording_for_files_bytes_columns_and_plans(run: Callable[..., Ran], served: Any, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """qa-grade says "wrote FILE" like report; bytes with thousands separators; the ended reason says so;
    report files are named after the --as-of day in --tz; the squad plan is a tree, not JSON."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    graded = run("qa-grade", "--assistant", "Support", "--last", "3", "--recordings", "none", "--out", "qa.md")
    assert graded.code == 0 and "wrote qa.md" in graded.out, graded.out
    call_id = ended_calls(served)[0]["id"]
    saved = run("calls", "recording", call_id)
    assert saved.code == 0 and re.search(r"\(\d{1,3}(,\d{3})+ bytes", saved.out), saved.out

    listed = run("calls", "list", "--assistant", "Support", "--limit", "3")
    assert listed.code == 0 and "ended reason" in listed.out, listed.out

    reported = run("report", "--since", "1d", "--as-of", "2026-12-01T00:00:00Z", "--tz", "America/Los_Angeles",
                   "--format", "md", "--out", "reports")
    assert reported.code == 0, reported.err
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["report-2026-11-30.md"]  # 16:00 on the 30th there
    assert "--tz" in run("report", "--help").out.replace("\n", " ")

    planned = run("squad", "create", "--name", "Triage", "--member", "Support", "--member", "Technical Fallback",
                  "--route", "Support -> Technical Fallback: when the caller has a technical problem", "--dry-run")
    assert planned.code == 0, planned.err
    shown = planned.out + planned.err  # the plan is on stderr, the one-line outcome on stdout
    assert "{" not in shown and "└── → transfers to Technical Fallback" in shown, shown


# ---------------------------------------------------------------- output into a pipe its reader closed
def test_a_closed_stdout_is_exit_141_and_the_run_is_recorded(tmp_path: Path) -> None:
    """`vapi-agent tools list | head -1`: no traceback, no "internal error", no run left "running"."""
    import os
    import subprocess

    executable = Path(sys.executable).parent / "vapi-agent"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("OPENAI_", "VAPI_API_KEY", "TRUTO_", "VAPI_AGENT_"))}
    env.update({"VAPI_AGENT_DATA_DIR": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
                "COLUMNS": "100"})
    for argv in (["tools", "list"], ["--json", "tools", "list"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before anything is written: every write is EPIPE
        try:
            done = subprocess.run([str(executable), *argv], stdout=write, stderr=subprocess.PIPE, env=env,
                                  text=True, timeout=120, stdin=subprocess.DEVNULL)
        finally:
            os.close(write)
        assert done.returncode == 141, (argv, done.stderr)
        assert "Traceback" not in done.stderr and "error" not in done.stderr, done.stderr
    logged = subprocess.run([str(executable), "logs", "--json"], env=env, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
    runs = json.loads(logged.stdout)["result"]["runs"]
    assert [r["workflow"] for r in runs] == ["tools.list", "tools.list"]
    assert all(not r["status"].startswith("running") for r in runs), runs
