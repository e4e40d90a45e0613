"""Structured concurrency in the agent loop: a batch of parallel tool calls lives and dies with its run.

The calls really go through the MCP client to a sandbox; an ASGI gate in front of the sandbox's MCP
path holds some calls (they are in flight) and answers one with HTTP 401 (refused auth: not a tool
error, so the run stops). What must hold: when ``run_agent`` returns, none of its tool-call tasks is
still running, nothing is recorded after it, and every call is listed with its outcome: in the result,
and end to end (``vapi-agent ask --json`` over real HTTP) in the envelope and the run log.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from agent.config import Settings
from agent.errors import UpstreamError
from agent.loop import run_agent
from agent.model import ModelTurn
from agent.model import ToolCall as ModelToolCall
from agent.model.scripted import ScriptedModel
from agent.runtime import open_runtime
from agent.store import RunStore, default_store_path
from sandbox.app import Sandbox
from sandbox.serve import ServerThread
from sandbox.world.config import SandboxConfig
from tests.ask_support import make_runner, tool_calls_logged
from tests.openai_fake import ToolCall, Turn
from tests.test_ratelimit_e2e import restore_logging
from tests.test_write_reconcile import McpPostGate, _replay

_FIXTURES = (restore_logging,)

HELD = (b"list_all_vapi_squads", b"list_all_vapi_phone_numbers")
REFUSED = b"get_single_vapi_assistant_by_id"


class HoldAndRefuse(McpPostGate):
    """ASGI gate: MCP POSTs naming a ``HELD`` tool wait until ``release``; the ``REFUSED`` one is answered
    HTTP 401 once both held calls are in flight (so the failure meets running siblings).

    ``release`` is a ``threading.Event`` so that a test may open the gate of a server running in another
    thread's event loop (the held requests poll it)."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.release = threading.Event()
        self.held = 0
        self.both_held = asyncio.Event()

    async def post(self, scope: Scope, message: Message, receive: Receive, send: Send) -> None:
        body = message.get("body", b"")
        if any(tool in body for tool in HELD):
            self.held += 1
            if self.held == len(HELD):
                self.both_held.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        elif REFUSED in body:
            await self.both_held.wait()
            payload = json.dumps({"statusCode": 401, "error": "Unauthorized", "message": "token revoked"}).encode()
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": payload})
            return
        await self.app(scope, _replay(message, receive), send)


def _dispatch_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if "AgentRun._dispatch" in getattr(t.get_coro(), "__qualname__", "")]


async def test_a_non_tool_error_cancels_the_siblings_and_every_call_is_listed(make_sandbox: Any,
                                                                             tmp_path: Path) -> None:
    sandbox = make_sandbox(calls=30)
    gate = HoldAndRefuse(sandbox.app)
    sandbox.app = gate
    calls = [ModelToolCall("c1", "list_all_vapi_squads", '{"limit": 1}'),
             ModelToolCall("c2", "list_all_vapi_phone_numbers", '{"limit": 1}'),
             ModelToolCall("c3", "get_single_vapi_assistant_by_id", '{"id": "a"}')]
    model = ScriptedModel([ModelTurn(tool_calls=calls)])  # no second turn: the run must stop at the error
    store = RunStore(tmp_path / "runs.sqlite3")
    run_log = store.start_run("ask", ["ask", "audit"], "audit")
    async with open_runtime(Settings(), sandbox=sandbox, model=model, prompt=None, store=None,
                            notice=lambda _: None) as rt:
        result = await run_agent(rt, "audit", run_log=run_log)
        running = _dispatch_tasks()
        recorded = len(rt.hub.records)
        gate.release.set()  # the held answers now arrive: nobody may be left to receive them
        await asyncio.sleep(0.3)

        assert running == [], "a tool call of the run was still running after it returned"
        assert len(rt.hub.records) == recorded, "a call was recorded after the run returned"
        assert result.stopped_by == "error" and isinstance(result.stop_error, UpstreamError)
        assert "HTTP 401" in result.stop_error.message
        outcomes = {c["name"]: c["outcome"] for c in result.to_dict()["tool_calls"]}
        assert outcomes == {"list_all_vapi_squads": "cancelled", "list_all_vapi_phone_numbers": "cancelled",
                            "get_single_vapi_assistant_by_id": "error"}
        cut = [c for c in result.tool_calls if c["outcome"] == "cancelled"]
        assert all(c["cancelled"] == "another call of the batch failed" for c in cut)
        assert sorted((r.name, r.outcome) for r in rt.hub.records) == [
            ("get_single_vapi_assistant_by_id", "error"), ("list_all_vapi_phone_numbers", "cancelled"),
            ("list_all_vapi_squads", "cancelled")]
        # Every call the model made has an answer in the conversation (the next request would be valid).
        answered = [m["tool_call_id"] for m in result.messages if m["role"] == "tool"]
        assert answered == ["c1", "c2", "c3"]
    model.assert_all_used()
    logged = {c.name: c.outcome for c in store.get_run(run_log.id).tool_calls}  # the run log says the same
    assert logged == outcomes
    store.close()


@pytest.mark.usefixtures("restore_logging")
def test_the_ask_envelope_and_run_log_list_every_call_of_the_stopped_batch(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], endpoint: Any, fake: Any) -> None:
    """The same failure end to end: ``vapi-agent ask --json`` over real HTTP exits with the upstream error,
    and both its envelope and its run log (complete when the command has returned) list the three calls."""
    sandbox = Sandbox(SandboxConfig(calls=12, seed=7))
    gate = HoldAndRefuse(sandbox.app)
    sandbox.app = gate
    server = ServerThread(sandbox, host="127.0.0.1", port=0).start()
    try:
        fake.add(Turn.calls(ToolCall("list_all_vapi_squads", {"limit": 1}),
                            ToolCall("list_all_vapi_phone_numbers", {"limit": 1}),
                            ToolCall("get_single_vapi_assistant_by_id", {"id": "a"})))  # no second turn
        run = make_runner(monkeypatch, capsys, endpoint, sandbox)("ask", "--json", "audit")
        held_answered = [e for e in tool_calls_logged(sandbox) if e.tool != "get_single_vapi_assistant_by_id"]
    finally:
        gate.release.set()
        server.stop()

    assert run.code == 3, run.stderr
    envelope = run.envelope
    assert envelope["status"] == "error" and "HTTP 401" in envelope["errors"][0]["message"]
    outcomes = {c["name"]: c["outcome"] for c in envelope["result"]["tool_calls"]}
    assert outcomes == {"list_all_vapi_squads": "cancelled", "list_all_vapi_phone_numbers": "cancelled",
                        "get_single_vapi_assistant_by_id": "error"}
    assert held_answered == []  # the held calls were still at the gate when the command returned
    with RunStore(default_store_path()) as store:
        logged = store.get_run("last")
        assert logged.status == "error" and logged.exit_code == 3
        assert {c.name: c.outcome for c in logged.tool_calls} == outcomes
