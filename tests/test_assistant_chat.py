"""``vapi-agent assistant chat``: text conversations with a sandbox assistant, streamed and not.

The REST route streams ``POST /chat/responses`` as SSE from a sandbox served on loopback; the MCP
route goes through the chat-response tool. What was really sent is read from the sandbox's request
log and its stored chats (``previousChatId`` links a continued chat to the one before).
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import cli
from agent.assistant_chat import COMPLETED, DELTA, ChatEvent, parse_sse_text, reply_from_tool_result
from agent.config import Settings
from cli.commands.chat import AssistantChatOptions, assistant_chat_body
from cli.runner import run_command
from sandbox.app import Sandbox
from sandbox.serve import ServerThread
from sandbox.world.config import SandboxConfig

CHAT_TOOL = "create_a_vapi_chat_response"


class SlowStream:
    """ASGI wrapper pausing before each body chunk of an SSE answer: a slow network, so arrival times show."""

    def __init__(self, app: Any, delay: float) -> None:
        self.app, self.delay = app, delay

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Forward the request; delay every ``http.response.body`` message of ``/chat/responses``."""
        import asyncio

        if scope.get("type") != "http" or scope.get("path") != "/chat/responses":
            await self.app(scope, receive, send)
            return

        async def slow_send(message: Any) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                await asyncio.sleep(self.delay)
            await send(message)

        await self.app(scope, receive, slow_send)


@pytest.fixture
def slow_sandbox() -> Iterator[Sandbox]:
    """A sandbox served on loopback whose SSE chunks arrive 0.15 s apart."""
    sandbox = Sandbox(SandboxConfig(calls=30, seed=7))
    sandbox.app = SlowStream(sandbox.app, 0.15)
    with ServerThread(sandbox):
        yield sandbox


def run_chat(sandbox: Sandbox | None, *, message: str | None = None, lines: list[str] | None = None,
             settings: Settings | None = None, via: str = "auto", previous: str | None = None,
             on_event: Callable[[ChatEvent], None] | None = None) -> tuple[int, dict[str, Any] | None]:
    """``assistant chat Support`` through the command runner; (exit code, envelope when --json)."""
    settings = settings or Settings()
    options = AssistantChatOptions("Support", message, previous, via)
    out = io.StringIO()
    body = assistant_chat_body(options, sandbox=sandbox, on_event=on_event, lines=lines)
    code = run_command("assistant.chat", settings, body, stdout=out)
    return code, json.loads(out.getvalue()) if settings.json else None


def chats(sandbox: Sandbox) -> list[dict[str, Any]]:
    """The chats the workspace stored, oldest first."""
    return sorted(sandbox.workspace.list_objects("chats"), key=lambda c: c["createdAt"])


def rest_chat_posts(sandbox: Sandbox) -> list[Any]:
    """``POST /chat/responses`` requests the REST API received."""
    return [e for e in sandbox.log.entries("rest") if e.method == "POST" and e.path == "/chat/responses"]


# ---------------------------------------------------------------- streaming, for real
def test_streamed_deltas_arrive_before_the_end(slow_sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    events: list[ChatEvent] = []
    printed = [""]  # the terminal's text so far, read as each delta arrives (before it is printed)
    seen_before: list[str] = []

    def watch(event: ChatEvent) -> None:
        events.append(event)
        if event.type == DELTA:
            printed[0] += capsys.readouterr().out
            seen_before.append(printed[0])

    code, _ = run_chat(slow_sandbox, message="hello, my invoice looks wrong", on_event=watch)

    assert code == 0
    deltas = [e for e in events if e.type == DELTA]
    completed = [e for e in events if e.type == COMPLETED]
    assert len(deltas) >= 5 and len(completed) == 1 and events[-1] is completed[0]
    # Each delta was handed over as it arrived, well before the stream ended (0.15 s per chunk).
    assert completed[0].at - deltas[0].at > 0.5
    assert all(b.at - a.at > 0.05 for a, b in itertools.pairwise(deltas))
    stored = chats(slow_sandbox)
    assert len(stored) == 1 and len(rest_chat_posts(slow_sandbox)) == 1
    reply = stored[0]["output"][0]["content"]
    assert "".join(e.data["delta"] for e in deltas) == reply
    # Each delta was on the terminal before the next one arrived, not printed at the end; only the word
    # still being streamed is held back (a secret split across deltas is redacted before it is shown).
    for i, seen in enumerate(seen_before):
        so_far = "".join(e.data["delta"] for e in deltas[:i])
        assert so_far.startswith(seen) and len(so_far[len(seen):].split()) <= 1, (seen, so_far)
    assert sum(bool(seen.strip()) for seen in seen_before) >= 3
    assert (printed[0] + capsys.readouterr().out).strip() == reply


def test_json_result_names_the_chat_and_its_events(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(calls=30)
    code, envelope = run_chat(sandbox, message="hello", settings=Settings(json=True))

    assert code == 0 and envelope is not None and envelope["status"] == "ok"
    result = envelope["result"]
    stored = chats(sandbox)
    assert result["route"] == "rest" and result["assistant"]["name"] == "Support"
    assert result["chat_id"] == stored[0]["id"] and result["reply"] == stored[0]["output"][0]["content"]
    kinds = [e["type"] for e in result["events"]]
    assert kinds[-2:] == ["response.output_text.done", COMPLETED] and kinds.count(DELTA) >= 3


# ---------------------------------------------------------------- a dropped stream
def test_dropped_stream_is_one_line_and_exit_3(serve_sandbox: Callable[..., Sandbox],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    sandbox = serve_sandbox(calls=30, drop_sse=True)
    capsys.readouterr()
    code, _ = run_chat(sandbox, message="hello")

    assert code == 3
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert len(errors) == 1, captured.err
    assert errors[0].startswith("error: the chat stream from http://127.0.0.1:")
    assert "ended before response.completed (2 deltas" in errors[0] and "partial reply was discarded" in errors[0]
    assert "chat " not in captured.err.replace("the chat stream", "")  # no chat id to continue from


def test_dropped_stream_in_json_is_an_upstream_error(make_sandbox: Callable[..., Sandbox]) -> None:
    code, envelope = run_chat(make_sandbox(calls=30, drop_sse=True), message="hello", settings=Settings(json=True))

    assert code == 3 and envelope is not None
    assert envelope["status"] == "error" and envelope["errors"][0]["code"] == "upstream"
    assert "ended before response.completed" in envelope["errors"][0]["message"]


# ---------------------------------------------------------------- multi-turn: previousChatId
@pytest.mark.parametrize("via", ["rest", "mcp"])
def test_second_turn_continues_the_chat(make_sandbox: Callable[..., Sandbox], via: str) -> None:
    sandbox = make_sandbox(calls=30)
    code, envelope = run_chat(sandbox, lines=["hello", "I was charged twice on my invoice"], via=via,
                              settings=Settings(json=True))

    assert code == 0 and envelope is not None
    first, second = envelope["result"]["turns"]
    stored = chats(sandbox)
    assert [c["id"] for c in stored] == [first["chat_id"], second["chat_id"]]
    assert first["previous_chat_id"] is None and second["previous_chat_id"] == first["chat_id"]
    assert stored[1]["previousChatId"] == stored[0]["id"]  # what the server was sent
    # The assistant saw the first exchange: no second greeting, and it answered the billing question.
    assert [m["content"] for m in stored[1]["messages"]][:2] == ["hello", first["reply"]]
    assert "billing" in second["reply"] and not second["reply"].startswith(first["reply"][:20])
    if via == "mcp":
        calls = [e for e in sandbox.log.entries("mcp") if e.tool == CHAT_TOOL]
        assert [c.arguments.get("previousChatId") for c in calls] == [None, first["chat_id"]]
    else:
        assert not [e for e in sandbox.log.entries("mcp") if e.tool == CHAT_TOOL]


def test_cli_continues_an_earlier_chat_over_mcp(serve_sandbox: Callable[..., Sandbox],
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Through ``cli.main``: an MCP URL (no REST key known) uses the chat tool; --previous-chat-id continues."""
    sandbox = serve_sandbox(calls=30)
    monkeypatch.setenv("VAPI_AGENT_MCP_URL", sandbox.mcp_url)
    monkeypatch.setenv("VAPI_AGENT_MCP_KIND", "sandbox")
    capsys.readouterr()

    assert cli.main(["assistant", "chat", "Support", "hello", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["result"]
    assert first["route"] == "mcp"
    assert cli.main(["--json", "assistant", "chat", "Support", "my login is broken",
                     "--previous-chat-id", first["chat_id"]]) == 0
    second = json.loads(capsys.readouterr().out)["result"]

    stored = chats(sandbox)
    assert [c["id"] for c in stored] == [first["chat_id"], second["chat_id"]]
    assert stored[1]["previousChatId"] == first["chat_id"]
    assert "fixed" in second["reply"]  # the technical-topic answer, without a second greeting


# ---------------------------------------------------------------- approval
def test_read_only_refuses_before_anything_is_sent(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(calls=30)
    for via in ("rest", "mcp"):
        code, envelope = run_chat(sandbox, message="hello", via=via, settings=Settings(json=True, read_only=True))
        assert code == 5 and envelope is not None
        assert envelope["errors"][0]["code"] == "approval_required"
        assert "read-only" in envelope["errors"][0]["message"]
    assert chats(sandbox) == [] and rest_chat_posts(sandbox) == []
    assert not [e for e in sandbox.log.entries("mcp") if e.tool == CHAT_TOOL]


def test_the_command_is_the_approval_without_a_terminal(make_sandbox: Callable[..., Sandbox]) -> None:
    """No TTY, no --yes: the chat tool still runs, because running the command asked for it."""
    sandbox = make_sandbox(calls=30)
    code, envelope = run_chat(sandbox, message="hello", via="mcp", settings=Settings(json=True))

    assert code == 0 and envelope is not None and len(chats(sandbox)) == 1


# ---------------------------------------------------------------- a tool result that carries the SSE text
async def test_sse_text_in_a_tool_result_is_parsed(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(calls=30)
    support = next(a for a in sandbox.workspace.list_objects("assistants") if a["name"] == "Support")
    async with sandbox.rest_client() as client:  # the stream exactly as the REST API sends it
        raw = (await client.post("/chat/responses", json={"assistantId": support["id"], "input": "hello"})).text

    events = parse_sse_text(raw.replace("\n", "\r\n"))  # CRLF line ends are SSE too
    reply = reply_from_tool_result({"content": raw}["content"], previous=None)

    stored = chats(sandbox)[0]
    assert [e["type"] for e in events][-1] == COMPLETED
    assert reply.chat_id == stored["id"] and reply.text == stored["output"][0]["content"]
    assert reply.route == "mcp" and [e.type for e in reply.events][-1] == COMPLETED
