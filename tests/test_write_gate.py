"""The write gate at dispatch, end to end through the installed ``vapi-agent`` command.

Every case runs the real CLI against a sandbox served on loopback and then reads the sandbox's own
request log: a refused call must never have reached the server (no ``tools/call`` for it), and the
workspace must be unchanged. The interactive prompt runs on a real pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from agent.errors import EXIT_APPROVAL
from sandbox.app import Sandbox

ROOT = Path(__file__).resolve().parents[1]
VAPI_AGENT = str(Path(sys.executable).with_name("vapi-agent"))


# ---------------------------------------------------------------- helpers
def run_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """The real command with no terminal at all (stdin from /dev/null, output captured): headless."""
    return subprocess.run([VAPI_AGENT, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=dict(os.environ), timeout=timeout, cwd=ROOT)


def run_many(*argvs: Sequence[str]) -> list[subprocess.CompletedProcess[str]]:
    """Independent commands side by side (each is a fresh interpreter: mostly import time)."""
    with ThreadPoolExecutor(len(argvs)) as pool:
        return list(pool.map(lambda argv: run_cli(*argv), argvs))


def envelope(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one JSON envelope on stdout."""
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def tool_calls(sandbox: Sandbox, tool: str | None = None) -> list[Any]:
    """``tools/call`` requests that reached the sandbox (for a discovery call: its inner tool)."""
    return [e for e in sandbox.log.entries("mcp")
            if e.rpc_method == "tools/call" and (tool is None or e.tool == tool)]


def names(sandbox: Sandbox, kind: str) -> list[str]:
    """Names of the workspace's objects of one kind (straight from the store, not through MCP)."""
    return [str(o.get("name")) for o in sandbox.workspace.list_objects(kind)]


def assistant_id(sandbox: Sandbox, name: str) -> str:
    """The id of the one assistant with this name."""
    (found,) = [a["id"] for a in sandbox.workspace.list_objects("assistants") if a["name"] == name]
    return str(found)


def unreferenced_assistant(sandbox: Sandbox) -> str:
    """An assistant no squad or phone number uses (Vapi refuses to delete one in use: 409)."""
    used = json.dumps([sandbox.workspace.list_objects(kind) for kind in ("squads", "phone_numbers")])
    free = [a["id"] for a in sandbox.workspace.list_objects("assistants") if a["id"] not in used]
    assert free, "the dataset has no deletable assistant"
    return str(free[0])


def squad_args(sandbox: Sandbox, name: str) -> str:
    """``--args`` for ``create_a_vapi_squad``: a valid two-member squad."""
    members = [{"assistantId": assistant_id(sandbox, "Front Desk Router")},
               {"assistantId": assistant_id(sandbox, "Billing Specialist")}]
    return json.dumps({"name": name, "members": members})


def assert_refused(done: subprocess.CompletedProcess[str], tool: str) -> dict[str, Any]:
    """Exit 5 with one ``approval_required`` error naming the tool; stderr has one line for it."""
    assert done.returncode == EXIT_APPROVAL, done.stderr
    env = envelope(done)
    assert env["status"] == "error" and env["result"] == {}
    (error,) = env["errors"]
    assert error["code"] == "approval_required" and error["tool"] == tool
    assert f"error: {error['message']}" in done.stderr and "Traceback" not in done.stderr
    return error


@pytest.fixture
def sandbox(serve_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A small sandbox on loopback."""
    return serve_sandbox(calls=30)


# ---------------------------------------------------------------- read-only
def test_read_only_refuses_a_direct_write_and_nothing_overrides_it(sandbox: Sandbox) -> None:
    args = squad_args(sandbox, "Read-only squad")
    before = names(sandbox, "squads")
    plain, insisting = run_many(
        ["tools", "call", "create_a_vapi_squad", "--args", args, "--read-only", "--json", "--mcp-url", sandbox.mcp_url],
        ["--read-only", "--yes", "--allow", "create_a_vapi_squad", "--json", "tools", "call", "create_a_vapi_squad",
         "--args", args, "--mcp-url", sandbox.mcp_url],
    )
    for done in (plain, insisting):
        error = assert_refused(done, "create_a_vapi_squad")
        assert "read-only" in error["message"]
    assert tool_calls(sandbox) == []  # the refusal happened before dispatch: nothing reached the server
    assert [e.rpc_method for e in sandbox.log.entries("mcp")].count("tools/list") == 2  # they did connect
    assert names(sandbox, "squads") == before


def test_read_only_judges_a_discovery_call_by_its_inner_tool(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=30, tool_exposure="discovery")
    victim = assistant_id(sandbox, "Support Legacy")
    delete = json.dumps({"tool_name": "delete_a_vapi_assistant_by_id", "arguments": {"id": victim}})
    read = json.dumps({"tool_name": "list_all_vapi_assistants", "arguments": {"limit": 3}})
    refused, allowed = run_many(
        ["tools", "call", "call_tool", "--args", delete, "--read-only", "--json", "--mcp-url", sandbox.mcp_url],
        ["tools", "call", "call_tool", "--args", read, "--read-only", "--json", "--mcp-url", sandbox.mcp_url],
    )
    assert_refused(refused, "delete_a_vapi_assistant_by_id")
    assert allowed.returncode == 0, allowed.stderr  # a read through call_tool is fine under --read-only
    assert len(envelope(allowed)["result"]["data"]["result"]) == 3
    assert [e.tool for e in tool_calls(sandbox)] == ["list_all_vapi_assistants"]  # the delete never arrived
    assert victim in [a["id"] for a in sandbox.workspace.list_objects("assistants")]


# ---------------------------------------------------------------- headless: no TTY, no approval
def test_headless_write_needs_yes(sandbox: Sandbox) -> None:
    refused, approved = run_many(
        ["tools", "call", "create_a_vapi_squad", "--args", squad_args(sandbox, "Unapproved squad"), "--json",
         "--mcp-url", sandbox.mcp_url],
        ["tools", "call", "create_a_vapi_squad", "--args", squad_args(sandbox, "Approved squad"), "--json",
         "--mcp-url", sandbox.mcp_url, "--yes"],
    )
    error = assert_refused(refused, "create_a_vapi_squad")
    assert "no terminal" in error["message"] and "--yes" in error["message"]
    assert approved.returncode == 0, approved.stderr
    assert envelope(approved)["result"]["data"]["name"] == "Approved squad"
    (arrived,) = tool_calls(sandbox)
    assert arrived.tool == "create_a_vapi_squad" and arrived.arguments["name"] == "Approved squad"
    assert "Approved squad" in names(sandbox, "squads") and "Unapproved squad" not in names(sandbox, "squads")


def test_yes_does_not_cover_a_destructive_tool(sandbox: Sandbox) -> None:
    kept, removed = assistant_id(sandbox, "Support Legacy"), unreferenced_assistant(sandbox)
    assert kept != removed
    tool = "delete_a_vapi_assistant_by_id"
    refused, allowed = run_many(
        ["tools", "call", tool, "--args", json.dumps({"id": kept}), "--yes", "--json", "--mcp-url", sandbox.mcp_url],
        ["tools", "call", tool, "--args", json.dumps({"id": removed}), "--allow", tool, "--json",
         "--mcp-url", sandbox.mcp_url],
    )
    error = assert_refused(refused, tool)
    assert f"--allow {tool}" in error["message"]
    assert allowed.returncode == 0, allowed.stderr
    assert [(e.tool, e.arguments) for e in tool_calls(sandbox)] == [(tool, {"id": removed})]
    ids = [a["id"] for a in sandbox.workspace.list_objects("assistants")]
    assert kept in ids and removed not in ids


# ---------------------------------------------------------------- destructive by effect, the proxy (issue 13, 4 and 6)
def _campaign(sandbox: Sandbox, name: str) -> str:
    """A scheduled campaign (far in the future, so it is still running when the test ends it)."""
    phone = next(p for p in sandbox.workspace.list_objects("phone_numbers"))
    created = sandbox.workspace.create_object("campaigns", {
        "name": name, "assistantId": assistant_id(sandbox, "Renewal Outreach"), "phoneNumberId": phone["id"],
        "customers": [{"number": "+14155550199"}], "schedulePlan": {"earliestAt": "2030-01-01T00:00:00.000Z"}})
    return str(created["id"])


def _status(sandbox: Sandbox, campaign_id: str) -> str:
    return str(next(c for c in sandbox.workspace.list_objects("campaigns") if c["id"] == campaign_id)["status"])


def test_ending_a_campaign_is_destructive_whatever_the_tool_is_called(sandbox: Sandbox) -> None:
    kept, ended = _campaign(sandbox, "kept"), _campaign(sandbox, "ended")
    tool = "update_a_vapi_campaign_by_id"
    refused, renamed, allowed = run_many(
        ["tools", "call", tool, "--args", json.dumps({"id": kept, "status": "ended"}), "--yes", "--json",
         "--mcp-url", sandbox.mcp_url],
        ["tools", "call", tool, "--args", json.dumps({"id": kept, "name": "renamed"}), "--yes", "--json",
         "--mcp-url", sandbox.mcp_url],  # a change that can be undone: --yes is enough
        ["tools", "call", tool, "--args", json.dumps({"id": ended, "status": "ended"}), "--allow", tool, "--json",
         "--mcp-url", sandbox.mcp_url],
    )
    error = assert_refused(refused, tool)
    assert "ends a campaign" in error["message"] and f"--allow {tool}" in error["message"]
    assert renamed.returncode == 0, renamed.stderr
    assert allowed.returncode == 0, allowed.stderr
    assert _status(sandbox, kept) != "ended" and _status(sandbox, ended) == "ended"
    sent = [(e.tool, e.arguments) for e in tool_calls(sandbox)]
    assert sorted(json.dumps(s, sort_keys=True) for s in sent) == sorted(json.dumps(s, sort_keys=True) for s in [
        (tool, {"id": kept, "name": "renamed"}), (tool, {"id": ended, "status": "ended"})])


def test_the_proxy_is_judged_by_its_normalised_inner_tool_and_never_approved_itself(
    serve_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = serve_sandbox(calls=30, tool_exposure="discovery")
    victim = unreferenced_assistant(sandbox)
    spaced = json.dumps({"tool_name": " delete_a_vapi_assistant_by_id", "arguments": {"id": victim}})
    shouting = json.dumps({"tool_name": "DELETE_A_VAPI_ASSISTANT_BY_ID", "arguments": {"id": victim}})
    outcomes = run_many(
        ["tools", "call", "call_tool", "--args", spaced, "--yes", "--json", "--mcp-url", sandbox.mcp_url],
        ["tools", "call", "call_tool", "--args", shouting, "--allow", "call_tool", "--yes", "--json",
         "--mcp-url", sandbox.mcp_url],
    )
    for done in outcomes:
        assert done.returncode == EXIT_APPROVAL, done.stderr
        (error,) = envelope(done)["errors"]
        assert error["message"].startswith("destructive tool")
        assert "--allow delete_a_vapi_assistant_by_id" in error["message"].lower()
    assert tool_calls(sandbox) == []  # nothing reached the server
    assert victim in [a["id"] for a in sandbox.workspace.list_objects("assistants")]

# ---------------------------------------------------------------- interactive prompt on a pseudo-terminal
class Terminal:
    """A child process whose stdin, stdout and stderr are one pseudo-terminal (as in a shell)."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.master, slave = pty.openpty()
        env = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
        self.process = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT,
                                        start_new_session=True, close_fds=True)
        os.close(slave)
        self.output = b""

    def read_until(self, marker: bytes, timeout: float = 90) -> bytes:
        """Read until ``marker`` shows (or the child closes the terminal / the time runs out)."""
        deadline = time.monotonic() + timeout
        while marker not in self.output and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready and not self._read_some():
                break
        return self.output

    def _read_some(self) -> bool:
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed its side
            return False
        self.output += chunk
        return bool(chunk)

    def answer(self, text: str) -> None:
        """Type a line."""
        os.write(self.master, text.encode() + b"\r")

    def finish(self, timeout: float = 90) -> int:
        """Drain the output until the child exits; its exit code."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                self._read_some()
        while self._read_some():
            pass
        os.close(self.master)
        return self.process.wait(timeout=5)


@pytest.mark.parametrize(
    ("tool", "answer", "approved"),
    [("create_a_vapi_squad", "n", False), ("create_a_vapi_squad", "y", True),
     ("delete_a_vapi_assistant_by_id", "y", False)],  # a destructive tool needs the whole word "yes"
    ids=["write-declined", "write-approved", "destructive-needs-yes"],
)
def test_prompt_on_a_pseudo_terminal(sandbox: Sandbox, tool: str, answer: str, approved: bool) -> None:
    if tool == "create_a_vapi_squad":
        args, marker = squad_args(sandbox, "Prompted squad"), "Prompted squad"
    else:
        marker = assistant_id(sandbox, "Support Legacy")
        args = json.dumps({"id": marker})
    term = Terminal([VAPI_AGENT, "tools", "call", tool, "--args", args, "--mcp-url", sandbox.mcp_url])
    question = b"[y/N]" if tool.startswith("create") else b"type 'yes' to confirm"
    shown = term.read_until(question).decode(errors="replace")
    try:
        assert question.decode() in shown, shown[-2000:]
        # the prompt shows what would run: access class, tool and its arguments
        access = "WRITE" if tool.startswith("create") else "DESTRUCTIVE"
        assert f"{access} {tool}" in shown and marker in shown
        assert tool_calls(sandbox) == []  # nothing sent while the question is open
        term.answer(answer)
    finally:
        code = term.finish()
    output = term.output.decode(errors="replace")
    if approved:
        assert code == 0, output[-2000:]
        (arrived,) = tool_calls(sandbox)
        assert arrived.tool == tool and arrived.arguments["name"] == "Prompted squad"
        assert "Prompted squad" in names(sandbox, "squads")
    else:
        assert code == EXIT_APPROVAL, output[-2000:]
        assert "declined" in output
        assert tool_calls(sandbox) == []
        assert "Prompted squad" not in names(sandbox, "squads")
        assert assistant_id(sandbox, "Support Legacy")  # still there
