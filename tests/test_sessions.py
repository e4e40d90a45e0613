"""MCP sessions that end mid-run: one owner per session, requests re-sent on the new session, nothing twice.

The sandbox's ``session_requests`` knob (``sandbox serve --session-requests N``) issues
``Mcp-Session-Id`` sessions and ends each after N requests: the next request carrying the id is
answered 404 and not processed (MCP spec, Streamable HTTP session management). Runs here call from
many tasks at once (qa-grade's ``gather_limited``, the agent loop's parallel tool calls), which is
where a reconnect from the wrong task used to cancel the whole run. What reached the server is read
from the sandbox's own request log: every tool call processed (answered 200) exactly once.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import pytest

from agent.config import Settings
from agent.ratelimit.transport import RateLimitAwareTransport
from agent.runtime import open_runtime
from sandbox.app import Sandbox
from sandbox.world.config import SandboxConfig
from tests.ask_support import Endpoint, make_runner, tool_calls_logged
from tests.openai_fake import ScriptedOpenAI, ToolCall, Turn
from tests.test_qa_grade import SANDBOX_OPTIONS, assert_matches_truth, load_truth, qa_runtime
from workflows.qa.grade import QAParams, run


def processed_twice(sandbox: Sandbox) -> list[tuple[str, str]]:
    """Tool calls (name, arguments) the sandbox processed more than once."""
    done = Counter((e.tool or "", json.dumps(e.arguments, sort_keys=True)) for e in sandbox.log.entries("mcp")
                   if e.rpc_method == "tools/call" and e.status == 200)
    return [key for key, n in done.items() if n > 1]


def sessions_ended_mid_run(sandbox: Sandbox) -> set[str]:
    """Sessions that refused a request with 404 because they had ended (the client's DELETE aside)."""
    return {e.extra["session"] for e in sandbox.log.entries("mcp") if e.method == "POST" and e.status == 404}


# ---------------------------------------------------------------- the sandbox knob
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}
HEADERS = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}


async def test_the_knob_ends_each_session_after_n_requests_with_404(make_sandbox: Any) -> None:
    sandbox = make_sandbox(calls=20, session_requests=2)
    path = f"/mcp/{sandbox.config.token}"
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with sandbox.rest_client() as http:
        opened = await http.post(path, json=INITIALIZE, headers=HEADERS)
        session = {**HEADERS, "mcp-session-id": opened.headers["mcp-session-id"]}
        assert (await http.post(path, json=listing, headers=HEADERS)).status_code == 400  # no session id
        assert [(await http.post(path, json=listing, headers=session)).status_code for _ in range(2)] == [200, 200]
        ended = await http.post(path, json=listing, headers=session)
        assert ended.status_code == 404 and ended.json()["error"]["message"] == "Session not found"
        assert (await http.post(path, json=listing, headers=session)).status_code == 404
        assert (await http.delete(path, headers=session)).status_code == 404

        again = await http.post(path, json=INITIALIZE, headers=HEADERS)
        fresh = {**HEADERS, "mcp-session-id": again.headers["mcp-session-id"]}
        assert fresh != session
        assert (await http.get(path, headers=fresh)).status_code == 405  # no server-to-client stream
        assert (await http.delete(path, headers=fresh)).status_code == 204
        assert (await http.post(path, json=listing, headers=fresh)).status_code == 404
    assert sandbox.mcp is not None and len(sessions_ended_mid_run(sandbox)) == 2


def test_sandbox_serve_takes_the_knob() -> None:
    from sandbox.__main__ import build_parser
    from sandbox.serve import banner, options_from_namespace

    options = options_from_namespace(build_parser().parse_args(["serve", "--session-requests", "7"]))
    config = options.to_config()
    assert config.session_requests == 7
    assert "MCP sessions end after 7 requests each (then 404)" in "\n".join(banner(Sandbox(config), custom_key=False))
    with pytest.raises(ValueError, match="--session-requests 0 must be at least 1"):
        options_from_namespace(build_parser().parse_args(["serve", "--session-requests", "0"])).to_config()


# ---------------------------------------------------------------- one renewal per dead session
async def test_concurrent_callers_that_saw_one_session_end_open_one_new_session(make_sandbox: Any) -> None:
    sandbox = make_sandbox(calls=50, session_requests=5)
    async with open_runtime(Settings(concurrency=8), sandbox=sandbox, notice=lambda _: None, store=None,
                            prompt=None) as rt:
        outputs = await asyncio.gather(*(rt.hub.call("list_all_vapi_assistants", {"limit": n}) for n in range(1, 17)))
        generation = rt.hub.connections[0].generation
    assert all(output.ok for output in outputs)
    opened = [e for e in sandbox.log.entries("mcp") if e.rpc_method == "initialize"]
    assert generation == len(opened) >= 3  # every session opened once, by one of the callers
    assert len(sessions_ended_mid_run(sandbox)) == generation - 1  # ...and only when the last one ended
    assert processed_twice(sandbox) == []


async def test_qa_grade_with_every_recording_survives_sessions_ending_every_7_requests(
        serve_sandbox: Any, tmp_path: Path) -> None:
    truth = load_truth()
    sandbox = serve_sandbox(**SANDBOX_OPTIONS, session_requests=7)
    settings = Settings(mcp_url=sandbox.mcp_url, concurrency=4)

    async with qa_runtime(sandbox, settings=settings) as rt:
        result = await run(rt, QAParams("Support", last=10, recordings="all", recordings_dir=str(tmp_path / "rec")))

    card = truth.scorecard_ids("Support")[0]
    assert_matches_truth(result, truth, "Support", 10, ("scorecard", card), recordings="all")
    assert len(sessions_ended_mid_run(sandbox)) >= 2
    assert processed_twice(sandbox) == []


# ---------------------------------------------------------------- ask: parallel tool calls across a session end
def test_ask_parallel_tool_calls_survive_a_session_ending_mid_batch(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], endpoint: Endpoint,
        fake: ScriptedOpenAI, serve_sandbox: Any) -> None:
    # Sessions end every 7 requests, as in the qa-grade test. notifications/initialized and tools/list
    # count 2 of a session's 7 (initialize opens it): the first batch of 6 calls meets the first end,
    # its last call is re-sent on the second session (which lists the tools again: 3 of 7), and the
    # second batch of 6 meets the second end (4 calls on, 2 re-sent on a third session).
    sandbox = serve_sandbox(calls=50, latency=0.2, session_requests=7)
    assistants = [a["id"] for a in sandbox.workspace.list_objects("assistants")]
    # Six kinds of read, each twice with other arguments (few routes: the SDK validation of what is
    # served builds a model per route, which takes seconds).
    first = [ToolCall("list_all_vapi_phone_numbers", {"limit": 10}),
             ToolCall("get_single_vapi_assistant_by_id", {"id": assistants[0]}),
             ToolCall("list_all_vapi_observability_scorecards", {}),
             ToolCall("list_all_vapi_squads", {}),
             ToolCall("list_all_vapi_assistants", {"limit": 5}),
             ToolCall("list_all_vapi_tools", {})]
    second = [ToolCall("list_all_vapi_phone_numbers", {"limit": 2}),
              ToolCall("get_single_vapi_assistant_by_id", {"id": assistants[1]}),
              ToolCall("list_all_vapi_observability_scorecards", {"limit": 3}),
              ToolCall("list_all_vapi_squads", {"limit": 2}),
              ToolCall("list_all_vapi_assistants", {"limit": 3}),
              ToolCall("list_all_vapi_tools", {"limit": 4})]
    fake.add(Turn.calls(*first), Turn.calls(*second), Turn.text("Here is the overview."))

    run = make_runner(monkeypatch, capsys, endpoint, sandbox)("ask", "--json", "overview of everything")

    assert run.code == 0, run.stderr
    assert [(c["name"], c["ok"]) for c in run.result["tool_calls"]] == [(c.name, True) for c in first + second]
    assert len(sessions_ended_mid_run(sandbox)) >= 2
    assert processed_twice(sandbox) == []
    assert sorted(e.tool or "" for e in tool_calls_logged(sandbox) if e.status == 200) == sorted(
        c.name for c in first + second)
    assert "Traceback" not in run.stderr


# ---------------------------------------------------------------- stdio: the server dies once
# The sandbox over stdio, logging every tool call it completes. The first process crashes on the Nth
# call it receives, without processing it, once every earlier call's answer is in the pipe (so the
# crash falls between requests: calls that arrive meanwhile are never processed either). Recordings
# come embedded in the tool results (a link would point into the child process).
DYING_SANDBOX = textwrap.dedent('''
    import asyncio, contextlib, json, os, sys
    from datetime import datetime
    import anyio
    import mcp.types as types
    from mcp.server.stdio import stdio_server
    from mcp.shared.message import SessionMessage
    from sandbox.app import Sandbox
    from sandbox.world.config import SandboxConfig

    log_path, marker, die_at, seed, calls, anchor = sys.argv[1:]
    die_at = int(die_at)
    with contextlib.redirect_stdout(sys.stderr):
        sandbox = Sandbox(SandboxConfig(seed=int(seed), calls=int(calls), anchor=datetime.fromisoformat(anchor),
                                        recording_shape="embedded"))
    serve = sandbox.mcp.call
    crash = not os.path.exists(marker)
    counts = {"received": 0, "answered": 0}

    class CountingWrites:
        """The write stream of the server: counts tool results handed to the stdout writer."""
        def __init__(self, inner):
            self.inner = inner
        async def send(self, message):
            await self.inner.send(message)
            result = getattr(message.message, "result", None)
            if isinstance(result, dict) and "content" in result:
                counts["answered"] += 1
        def __getattr__(self, name):
            return getattr(self.inner, name)
        async def __aenter__(self):
            await self.inner.__aenter__()
            return self
        async def __aexit__(self, *exc):
            return await self.inner.__aexit__(*exc)

    async def call(name, arguments):
        counts["received"] += 1
        if not crash or counts["received"] < die_at:
            result = await serve(name, arguments)
            with open(log_path, "a") as out:
                out.write(json.dumps({"pid": os.getpid(), "tool": name, "arguments": arguments}) + "\\n")
            return result
        if counts["received"] > die_at:
            await asyncio.Event().wait()  # arrived while crashing: never processed
        while counts["answered"] < die_at - 1:
            await asyncio.sleep(0.01)
        # The writer takes a message only after writing the previous one: this send returns once
        # the last answer is in the pipe.
        await writes.inner.send(SessionMessage(types.JSONRPCNotification(
            jsonrpc="2.0", method="notifications/message", params={"level": "debug", "data": "crashing"})))
        open(marker, "w").close()
        os._exit(1)

    async def main():
        global writes
        sandbox.mcp.call = call
        server = sandbox.mcp.server
        async with stdio_server() as (read_stream, write_stream):
            writes = CountingWrites(write_stream)
            await server.run(read_stream, writes, server.create_initialization_options())

    anyio.run(main)
''')


async def test_qa_grade_over_a_stdio_server_that_dies_once(tmp_path: Path) -> None:
    truth = load_truth()
    script, log, marker = tmp_path / "dying_sandbox.py", tmp_path / "calls.jsonl", tmp_path / "died"
    script.write_text(DYING_SANDBOX)
    args = [str(script), str(log), str(marker), "7", str(SANDBOX_OPTIONS["seed"]), str(SANDBOX_OPTIONS["calls"]),
            SANDBOX_OPTIONS["anchor"].isoformat()]
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"local": {"command": sys.executable, "args": args}}}))

    async with qa_runtime(Sandbox(SandboxConfig(**SANDBOX_OPTIONS)), settings=Settings(
            mcp_config=str(config), concurrency=4)) as rt:
        result = await run(rt, QAParams("Support", last=10, recordings="all", recordings_dir=str(tmp_path / "rec")))
        assert rt.hub.connections[0].generation == 2  # restarted once

    card = truth.scorecard_ids("Support")[0]
    assert_matches_truth(result, truth, "Support", 10, ("scorecard", card), recordings="all")
    done = [json.loads(line) for line in log.read_text().splitlines()]
    assert marker.exists() and len({d["pid"] for d in done}) == 2
    keys = [(d["tool"], json.dumps(d["arguments"], sort_keys=True)) for d in done]
    assert len(keys) == len(set(keys))


# ---------------------------------------------------------------- legacy SSE: a session the server forgot
async def test_a_legacy_sse_session_the_server_forgot_is_opened_again() -> None:
    """The HTTP+SSE transport keys its session by the ``session_id`` query parameter: a server that
    forgets one (restarted, expired) answers 404 to its POSTs. The client opens a new event stream
    and sends the refused request again; the tool ran once per call."""

    from starlette.types import Receive, Scope, Send

    from agent.mcp.connection import Connection
    from agent.mcp.servers import ServerSpec
    from tests.mcp_support import quiet_mcp_server
    from tests.openai_fake import serve_app

    server = quiet_mcp_server("sse-forgetful")
    ran: list[str] = []

    @server.tool()
    def get_echo(text: str) -> str:
        """Return the text unchanged."""
        ran.append(text)
        return text

    app = server.sse_app()
    forgotten: set[str] = set()
    posts: list[str] = []

    async def forgetful(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            session = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
            sid = session.get("session_id", "")
            posts.append(sid)
            if len(posts) == 5:  # initialize, initialized, tools/list, a call: then the server forgets
                forgotten.add(sid)
            if sid in forgotten:
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b"Could not find session"})
                return
        await app(scope, receive, send)

    with serve_app(forgetful) as origin:
        spec = ServerSpec(name="forgetful", transport="sse", url=f"{origin}/sse")
        async with Connection(spec, http_client_factory=lambda s: httpx2.AsyncClient(
                transport=RateLimitAwareTransport(), headers=s.headers)) as conn:
            await conn.list_tools()
            answers = [(await conn.call("get_echo", {"text": t})).text for t in ("one", "two", "three")]
            assert conn.generation == 2
    assert answers == ["one", "two", "three"] and ran == ["one", "two", "three"]
    assert len(set(posts)) == 2 and len(forgotten) == 1
