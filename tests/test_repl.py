"""``vapi-agent chat`` through a real pseudo-terminal (pexpect): the REPL as a person uses it.

Each test starts the real CLI (``python -m cli chat``) in a pty against a sandbox served on loopback
(``VAPI_AGENT_MCP_URL``) and the scripted OpenAI server (the real openai SDK streams from it), types
into it and reads what the terminal shows. What reached the model is read from the scripted
server's request log; what reached the MCP server from the sandbox's own request log.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from sandbox.app import Sandbox
from tests.openai_fake import ScriptedOpenAI, ToolCall, Turn

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "vapi>"  # prompt_toolkit draws the trailing space as a cursor move, so match without it
UP_ARROW = "\x1b[A"
TIMEOUT = 60  # seconds for one expectation: generous, the pty child imports openai and mcp on a busy machine


@pytest.fixture
def fake() -> Iterator[tuple[ScriptedOpenAI, str]]:
    """A scripted OpenAI server on loopback; after the test: nothing refused, every turn used."""
    scripted = ScriptedOpenAI()
    with scripted.serve() as base_url:
        yield scripted, base_url
    assert scripted.rejections == [], scripted.rejections
    scripted.assert_all_used()


@pytest.fixture
def sandbox(serve_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A small sandbox served on loopback."""
    return serve_sandbox(calls=30)


def spawn_chat(sandbox: Sandbox, base_url: str, *args: str) -> Any:
    """``vapi-agent chat`` in a pseudo-terminal, wired to the sandbox and the scripted model."""
    env = dict(os.environ)  # holds this test's private VAPI_AGENT_DATA_DIR (conftest)
    env.update({
        "VAPI_AGENT_MCP_URL": sandbox.mcp_url, "VAPI_AGENT_MCP_KIND": "sandbox",
        "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-test-repl",
        # No terminal answers cursor-position requests in a pty; without this prompt_toolkit waits for one.
        "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm-256color",
    })
    child = pexpect.spawn(sys.executable, ["-m", "cli", *args, "chat"], cwd=str(ROOT), env=env, encoding="utf-8",
                          timeout=TIMEOUT, dimensions=(50, 160))
    # Everything the terminal showed, for the failure report (pexpect's own shows only 100 characters).
    child.logfile_read = open(Path(os.environ["VAPI_AGENT_DATA_DIR"]).parent / "pty.log", "a", encoding="utf-8")  # noqa: SIM115
    child.expect(PROMPT)
    return child


def finish(child: Any) -> int:
    """Leave with Ctrl-D; returns the exit status."""
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus)


def user_messages(fake: ScriptedOpenAI, index: int) -> list[str]:
    """The user messages of the ``index``-th request the model received."""
    return [m["content"] for m in fake.requests[index].body["messages"] if m["role"] == "user"]


def tool_calls(sandbox: Sandbox, tool: str) -> list[Any]:
    """``tools/call`` requests for ``tool`` the sandbox's MCP server received."""
    return [e for e in sandbox.log.entries("mcp") if e.rpc_method == "tools/call" and e.tool == tool]


def created(sandbox: Sandbox, name: str) -> int:
    """How many assistants called ``name`` the workspace holds."""
    return [a["name"] for a in sandbox.workspace.list_objects("assistants")].count(name)


# ---------------------------------------------------------------- history and a slash command
def test_history_is_recalled_in_a_second_session_and_usage_shows(sandbox: Sandbox,
                                                                 fake: tuple[ScriptedOpenAI, str]) -> None:
    scripted, base_url = fake
    question = "how many assistants are there?"
    scripted.add(Turn.text("There are **six** assistants.", prompt_tokens=321, completion_tokens=9),
                 Turn.text("Still six."))

    first = spawn_chat(sandbox, base_url)
    first.sendline(question)
    first.expect("six")  # the answer, rendered from markdown (no asterisks needed to match)
    first.expect(PROMPT)
    first.sendline("/usage")
    first.expect_exact("model calls 1 · tokens 321 in / 9 out")
    first.expect(PROMPT)
    first.sendline("/exit")
    first.expect(pexpect.EOF)
    first.close()
    assert first.exitstatus == 0

    history = Path(os.environ["VAPI_AGENT_DATA_DIR"]) / "chat-history"
    stored = [line[1:] for line in history.read_text(encoding="utf-8").splitlines() if line.startswith("+")]
    assert stored == [question, "/usage", "/exit"]
    assert stat.S_IMODE(history.stat().st_mode) == 0o600

    second = spawn_chat(sandbox, base_url)
    second.send(UP_ARROW * 3)  # back past /exit and /usage to the question of the earlier session
    second.expect_exact(question)
    second.send("\r")
    second.expect("Still six")
    second.expect(PROMPT)
    assert finish(second) == 0
    # The recalled line was really sent, as a new conversation (the first session's answers are not in it).
    assert user_messages(scripted, 1) == [question]
    assert len(scripted.requests[1].body["messages"]) == 2  # system + the recalled question


# ---------------------------------------------------------------- an approval answered "no"
def test_write_declined_at_the_prompt_sends_nothing(sandbox: Sandbox, fake: tuple[ScriptedOpenAI, str]) -> None:
    scripted, base_url = fake
    scripted.add(Turn.calls(ToolCall("create_a_vapi_assistant", {"name": "Pexpect Test Assistant"})),
                 Turn.text("Understood: I did not create it."))

    child = spawn_chat(sandbox, base_url)
    child.sendline("create an assistant called Pexpect Test Assistant")
    child.expect("WRITE create_a_vapi_assistant")  # the prompt shows the tool, its class...
    child.expect_exact('"name": "Pexpect Test Assistant"')  # ...and its arguments
    child.expect_exact("Run it? [y/N]")
    child.sendline("n")
    child.expect("refused")
    child.expect("I did not create it")
    child.expect(PROMPT)
    assert finish(child) == 0

    assert tool_calls(sandbox, "create_a_vapi_assistant") == []  # nothing reached the server
    assert created(sandbox, "Pexpect Test Assistant") == 0
    refused = [m for m in scripted.requests[1].body["messages"] if m["role"] == "tool"]
    assert len(refused) == 1 and refused[0]["content"].startswith("REFUSED: write tool create_a_vapi_assistant was "
                                                                  "declined")


# ---------------------------------------------------------------- Ctrl-C mid-stream, then a working turn
def test_ctrl_c_cancels_a_streaming_turn_and_the_next_turn_works(sandbox: Sandbox,
                                                                fake: tuple[ScriptedOpenAI, str]) -> None:
    scripted, base_url = fake
    long_answer = " ".join(f"word{i}" for i in range(300))  # ~260 chunks: 26 s at 0.1 s per chunk
    scripted.add(Turn.text(long_answer), Turn.text("The next answer arrived."))

    child = spawn_chat(sandbox, base_url)
    scripted.chunk_delay = 0.1
    child.sendline("tell me a long story")
    child.expect("word3")  # streaming has started
    child.sendintr()
    child.expect("turn cancelled")
    child.expect(PROMPT)
    assert "word299" not in child.before  # cut mid-stream: the stream (26 s) did not run to its end

    scripted.chunk_delay = 0.0
    # A three-line message: a trailing backslash and Esc+Enter both start a new line; Enter sends.
    child.send("and\\\r")
    child.send("now?\x1b\r")
    child.send("really?\r")
    child.expect("The next answer arrived")
    child.expect(PROMPT)
    assert finish(child) == 0  # the program survived the Ctrl-C

    # The conversation carries on: the cancelled turn is there, marked as cancelled.
    messages = scripted.requests[1].body["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["tell me a long story", "and\nnow?\nreally?"]
    assert any(m["role"] == "assistant" and "cancelled this turn" in (m["content"] or "") for m in messages)


# ---------------------------------------------------------------- a write in flight survives Ctrl-C
def test_ctrl_c_lets_a_write_already_sent_finish_and_shows_it(serve_sandbox: Callable[..., Sandbox],
                                                              fake: tuple[ScriptedOpenAI, str]) -> None:
    # The sandbox applies the write, then holds its answer for 3 s: Ctrl-C lands while it is in flight.
    sandbox = serve_sandbox(calls=30, write_fault="timeout", write_fault_delay=3.0)
    scripted, base_url = fake
    scripted.add(Turn.calls(ToolCall("create_a_vapi_assistant", {"name": "Inflight Assistant"})),
                 Turn.text("Noted."))

    child = spawn_chat(sandbox, base_url)
    child.sendline("create an assistant called Inflight Assistant")
    child.expect_exact("Run it? [y/N]")
    child.sendline("y")
    deadline = time.monotonic() + TIMEOUT
    while not created(sandbox, "Inflight Assistant") and time.monotonic() < deadline:
        time.sleep(0.05)  # applied, its answer held for 3 s: the write is in flight
    assert not tool_calls(sandbox, "create_a_vapi_assistant"), "the write was answered before Ctrl-C"
    child.sendintr()
    child.expect_exact("waiting for 1 write(s) already sent")
    child.expect(r"✓ (\x1b\[[0-9;]*m)*create_a_vapi_assistant")  # its outcome (colour codes between)
    child.expect("turn cancelled")
    child.expect(PROMPT)
    child.sendline("did it work?")
    child.expect("Noted")
    child.expect(PROMPT)
    assert finish(child) == 0

    assert created(sandbox, "Inflight Assistant") == 1
    assert len(tool_calls(sandbox, "create_a_vapi_assistant")) == 1  # sent once, answered after the Ctrl-C
    note = [m["content"] for m in scripted.requests[1].body["messages"] if m["role"] == "assistant"][-1]
    assert "create_a_vapi_assistant: done" in note


# ---------------------------------------------------------------- slash commands, in-process
class _NoInput:
    """A prompt session stand-in: the in-process tests call the REPL's methods directly."""

    async def prompt_async(self, *args: Any, **kwargs: Any) -> str:
        raise EOFError


async def test_slash_commands_read_only_model_save_and_clear(make_sandbox: Callable[..., Sandbox],
                                                           tmp_path: Path) -> None:
    import io
    import json

    from rich.console import Console

    from agent.config import Settings
    from agent.loop import Limits
    from agent.model import ModelTurn
    from agent.model.scripted import ScriptedModel
    from agent.runtime import open_runtime
    from cli.repl.session import Repl
    from cli.repl.slash import handle_command
    from cli.repl.view import InlineApproval, TurnView
    from workflows.chat_tools import workflow_tools

    out = io.StringIO()
    view = TurnView(Console(file=out, width=200, force_terminal=False))
    model = ScriptedModel([ModelTurn(content="Noted: I will not open that link.", input_tokens=50, output_tokens=9)])
    signed = "https://storage.example.com/a.wav?X-Amz-Signature=c0ffee1234567890"
    async with open_runtime(Settings(read_only=True), sandbox=make_sandbox(calls=30), model=model,
                            prompt=InlineApproval(view), store=None, notice=view.notice) as rt:
        repl = Repl(rt, view, InlineApproval(view), limits=Limits(), local_tools=workflow_tools(rt),
                    session=_NoInput())

        await handle_command(repl, "/read-only off")  # --read-only at start cannot be lifted
        assert rt.hub.gate.read_only and "read-only stays on" in out.getvalue()
        await handle_command(repl, "/tools")
        listed = out.getvalue()
        assert "list_all_vapi_assistants" in listed and "create_a_vapi_assistant" not in listed
        assert "qa_grade" in listed and "campaign_create" not in listed  # write workflows hidden too

        await repl.turn(f"here is a recording link {signed}")
        assert repl.turns == 1 and model.requests[0]["messages"][-1]["content"].endswith(signed)
        await handle_command(repl, "/model gpt-4o")
        assert rt.model is not None and rt.model.name == "gpt-4o" and rt.price == (2.50, 10.00)
        await handle_command(repl, "/save " + str(tmp_path / "chat.md"))
        await handle_command(repl, "/save " + str(tmp_path / "chat.json"))
        await handle_command(repl, "/usage")
        assert "model calls 1 · tokens 50 in / 9 out" in out.getvalue()
        await handle_command(repl, "/servers")
        await handle_command(repl, "/help")
        assert "sandbox" in out.getvalue() and "/read-only on|off" in out.getvalue()
        await handle_command(repl, "/clear")
        assert repl.history == []
        await handle_command(repl, "/exit")
        assert repl.running is False

    markdown = (tmp_path / "chat.md").read_text(encoding="utf-8")
    saved = json.loads((tmp_path / "chat.json").read_text(encoding="utf-8"))
    assert "Noted: I will not open that link." in markdown and "X-Amz-Signature=***" in markdown
    assert "c0ffee1234567890" not in markdown + json.dumps(saved)  # redacted in both forms
    assert [m["role"] for m in saved] == ["system", "user", "assistant"]
    assert stat.S_IMODE((tmp_path / "chat.md").stat().st_mode) == 0o600


def test_chat_refuses_without_a_terminal_or_with_json(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import json

    import cli

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-repl")
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n"))
    assert cli.main(["--sandbox", "chat"]) == 2
    assert "chat needs a terminal" in capsys.readouterr().err
    assert cli.main(["--sandbox", "--json", "chat"]) == 2
    assert json.loads(capsys.readouterr().out)["errors"][0]["message"].startswith("chat is interactive")


async def test_tool_lines_and_rate_limit_waits_are_shown(make_sandbox: Callable[..., Sandbox]) -> None:
    """A turn shows each tool call (name, short arguments, outcome) and the waits the rate limit caused."""
    import io

    from rich.console import Console

    from agent.config import Settings
    from agent.loop import Limits
    from agent.model import ModelTurn
    from agent.model import ToolCall as ModelToolCall
    from agent.model.scripted import ScriptedModel
    from agent.runtime import open_runtime
    from cli.repl.session import Repl
    from cli.repl.view import InlineApproval, TurnView
    from sandbox.world.config import RateLimit

    out = io.StringIO()
    view = TurnView(Console(file=out, width=200, force_terminal=False))
    calls = [ModelToolCall("c1", "list_all_vapi_phone_numbers", '{"limit": 2}'),
             ModelToolCall("c2", "list_all_vapi_squads", '{"limit": 1}'),
             ModelToolCall("c3", "get_single_vapi_assistant_by_id", '{"id": "no-such-assistant"}')]
    model = ScriptedModel([ModelTurn(tool_calls=calls), ModelTurn(content="Two numbers, one squad.")])
    sandbox = make_sandbox(calls=30, rate_limit=RateLimit(2, 0.4))
    async with open_runtime(Settings(), sandbox=sandbox, model=model, prompt=None, store=None,
                            notice=view.notice) as rt:
        repl = Repl(rt, view, InlineApproval(view), limits=Limits(), local_tools=[], session=_NoInput())
        await repl.turn("what numbers and squads are there?")

    shown = out.getvalue()
    assert '→ list_all_vapi_phone_numbers {"limit":2}' in shown and "✓ list_all_vapi_phone_numbers" in shown
    assert "✓ list_all_vapi_squads" in shown
    assert "✗ get_single_vapi_assistant_by_id failed" in shown  # a 404 from the server: the outcome says so
    assert "rate limited by" in shown and rt.usage.rate_limit_waits >= 1
    assert shown.rstrip().endswith("Two numbers, one squad.")


def test_typed_history_is_stored_redacted(tmp_path: Path) -> None:
    from cli.repl.session import make_session

    path = tmp_path / "history"
    session = make_session(path)
    session.history.store_string("fetch https://storage.example.com/a.wav?X-Amz-Signature=c0ffee1234567890")
    stored = path.read_text(encoding="utf-8")
    assert "X-Amz-Signature=***" in stored and "c0ffee1234567890" not in stored
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ---------------------------------------------------------------- three parallel writes: one prompt at a time
def test_parallel_writes_are_approved_one_prompt_at_a_time(sandbox: Sandbox, fake: tuple[ScriptedOpenAI, str]) -> None:
    """Each prompt shows one call; the next appears only after it is answered, so an answer always
    belongs to the call the person just read (the declined one is the one not created)."""
    import re

    scripted, base_url = fake
    names = ["Parallel One", "Parallel Two", "Parallel Three"]
    scripted.add(Turn.calls(*(ToolCall("create_a_vapi_assistant", {"name": n}) for n in names)),
                 Turn.text("Two of three created."))
    child = spawn_chat(sandbox, base_url)
    child.sendline("create three assistants")
    shown: list[str] = []
    for answer in ("y", "n", "y"):
        child.expect("WRITE create_a_vapi_assistant")
        child.expect_exact("Run it? [y/N]")
        (name,) = re.findall(r'"name": "(Parallel \w+)"', child.before)  # exactly one call per prompt
        shown.append(name)
        # No second prompt is drawn while this one waits for its answer.
        assert child.expect(["WRITE create_a_vapi_assistant", pexpect.TIMEOUT], timeout=1.0) == 1
        child.sendline(answer)
    child.expect("Two of three created")
    child.expect(PROMPT)
    assert finish(child) == 0

    assert sorted(shown) == sorted(names)
    assert [created(sandbox, n) for n in shown] == [1, 0, 1]  # "n" declined exactly the call it was shown
    assert len(tool_calls(sandbox, "create_a_vapi_assistant")) == 2
