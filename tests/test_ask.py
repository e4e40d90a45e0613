"""``vapi-agent ask`` end to end: the real openai SDK against the scripted OpenAI server, on a sandbox.

Each test scripts what the model answers, runs ``vapi-agent ask`` in-process (``cli.main``) against
a sandbox served on loopback, and checks the exit code, the ``--json`` envelope, what the model was
sent (the scripted server records every request and refuses what OpenAI would refuse: the fixture
fails the test on any refusal or unused turn) and what reached the MCP server (the sandbox's log).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.app import Sandbox
from tests.ask_support import (
    AskRunner,
    Endpoint,
    make_runner,
    offered_names,
    strict_arguments,
    tool_calls_logged,
)
from tests.openai_fake import ErrorReply, ScriptedOpenAI, ToolCall, Turn

FINAL_NUDGE = "Stop calling tools now"


@pytest.fixture
def sandbox(serve_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A small sandbox served on loopback."""
    return serve_sandbox(calls=50)


@pytest.fixture
def ask(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], endpoint: Endpoint,
        sandbox: Sandbox) -> AskRunner:
    """Run ``vapi-agent ...`` against the scripted server and the served sandbox."""
    return make_runner(monkeypatch, capsys, endpoint, sandbox)


def assistant_id(sandbox: Sandbox, name: str) -> str:
    """The id of the sandbox assistant called ``name``."""
    return next(a["id"] for a in sandbox.workspace.list_objects("assistants") if a["name"] == name)


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool-result messages of a recorded request."""
    return [m for m in body["messages"] if m["role"] == "tool"]


# ---------------------------------------------------------------- one tool, --json shape
def test_one_tool_json_envelope(ask: AskRunner, fake: ScriptedOpenAI, sandbox: Sandbox) -> None:
    # A strict-mode model sends every property, null for the ones it does not want.
    args = strict_arguments(sandbox, "list_all_vapi_assistants", limit=10)
    fake.add(Turn.calls(ToolCall("list_all_vapi_assistants", args)),
             Turn.text("Support handles inbound support.", prompt_tokens=900, completion_tokens=12))

    run = ask("ask", "--json", "which assistant handles inbound support?")

    assert run.code == 0, run.stderr
    envelope = run.envelope
    assert envelope["workflow"] == "ask" and envelope["status"] == "ok" and envelope["errors"] == []
    assert envelope["result"] == {
        "answer": "Support handles inbound support.",
        "tool_calls": [{"name": "list_all_vapi_assistants", "arguments": {"limit": 10}, "ok": True,
                        "approved_by": "read", "outcome": "ok"}],
    }
    usage = envelope["usage"]
    assert usage["model_calls"] == 2 and usage["tool_calls"] == 1
    assert usage["input_tokens"] == 10 + 900 and usage["output_tokens"] == 5 + 12
    assert usage["cost_usd"] is not None and usage["cost_usd"] > 0  # the default model has a known price

    first, second = fake.bodies()
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    assert first["messages"][-1] == {"role": "user", "content": "which assistant handles inbound support?"}
    assert "list_all_vapi_assistants" in offered_names(first)
    # The real tool result went back to the model, answering the call it made.
    (result,) = tool_messages(second)
    assert result["tool_call_id"] == second["messages"][-2]["tool_calls"][0]["id"]
    assert "Support Legacy" in result["content"] and assistant_id(sandbox, "Support") in result["content"]
    # The nulls of strict mode were dropped before the call reached the MCP server.
    (logged,) = tool_calls_logged(sandbox)
    assert logged.tool == "list_all_vapi_assistants" and logged.arguments == {"limit": 10}


def test_plain_output_is_the_answer(ask: AskRunner, fake: ScriptedOpenAI) -> None:
    fake.add(Turn.calls(ToolCall("list_all_vapi_phone_numbers", {"limit": 5})),
             Turn.text("You have a toll-free number."))
    run = ask("ask", "what numbers do I have?")
    assert run.code == 0, run.stderr
    assert run.stdout == "You have a toll-free number.\n"
    assert "list_all_vapi_phone_numbers" in run.stderr  # progress goes to stderr, never stdout


# ---------------------------------------------------------------- parallel tool calls
def test_parallel_tools_run_concurrently_and_answer_in_order(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], endpoint: Endpoint,
        fake: ScriptedOpenAI, serve_sandbox: Callable[..., Sandbox]) -> None:
    slow = serve_sandbox(calls=50, latency=0.4)  # every REST request behind a tool sleeps 0.4 s
    support = assistant_id(slow, "Support")
    calls = [ToolCall("list_all_vapi_phone_numbers", {"limit": 10}),
             ToolCall("get_single_vapi_assistant_by_id", {"id": support}),
             ToolCall("list_all_vapi_observability_scorecards", {})]
    fake.add(Turn.calls(*calls), Turn.text("Here is the overview."))

    run = make_runner(monkeypatch, capsys, endpoint, slow)("ask", "--json", "overview of numbers, Support, scorecards")

    assert run.code == 0, run.stderr
    assert [c["name"] for c in run.result["tool_calls"]] == [c.name for c in calls]
    assert all(c["ok"] for c in run.result["tool_calls"])
    logged = tool_calls_logged(slow)
    assert sorted(e.tool or "" for e in logged) == sorted(c.name for c in calls)
    # Concurrent: every call had started before any of them finished.
    assert max(e.t_start for e in logged) < min(e.t_end for e in logged)
    # In order: the results answer the calls in the order the model made them, whatever finished first.
    second = fake.bodies()[1]
    made = second["messages"][-4]["tool_calls"]
    results = tool_messages(second)
    assert [r["tool_call_id"] for r in results] == [c["id"] for c in made]
    assert "Primary US Toll-Free" in results[0]["content"]
    assert support in results[1]["content"] and "Primary US Toll-Free" not in results[1]["content"]
    scorecard = slow.workspace.list_objects("scorecards")[0]["id"]
    assert scorecard in results[2]["content"] and scorecard not in results[0]["content"]


# ---------------------------------------------------------------- unknown tool
def test_unknown_tool_is_reported_to_the_model(ask: AskRunner, fake: ScriptedOpenAI, sandbox: Sandbox) -> None:
    fake.add(Turn.calls(ToolCall("list_every_vapi_thing", {"limit": 3})),
             Turn.calls(ToolCall("list_all_vapi_squads", {})),
             Turn.text("There are no squads."))
    run = ask("ask", "--json", "list squads")
    assert run.code == 0, run.stderr
    assert run.result["answer"] == "There are no squads."
    unknown, squads = run.result["tool_calls"]
    assert unknown["name"] == "list_every_vapi_thing" and unknown["ok"] is False
    assert squads["name"] == "list_all_vapi_squads" and squads["ok"] is True
    (reported,) = tool_messages(fake.bodies()[1])
    assert "no tool named 'list_every_vapi_thing'" in reported["content"]
    assert [e.tool for e in tool_calls_logged(sandbox)] == ["list_all_vapi_squads"]


# ---------------------------------------------------------------- repeated call
def test_same_call_three_times_in_a_row_stops_and_asks_for_an_answer(
        ask: AskRunner, fake: ScriptedOpenAI, sandbox: Sandbox) -> None:
    same = ToolCall("list_all_vapi_calls", {"limit": 2})
    fake.add(Turn.calls(same), Turn.calls(same), Turn.calls(same), Turn.text("I keep getting the same two calls."))
    run = ask("ask", "--json", "show my calls")
    assert run.code == 6, run.stderr
    envelope = run.envelope
    assert envelope["status"] == "partial" and envelope["result"]["answer"] == "I keep getting the same two calls."
    assert envelope["errors"][0]["code"] == "budget_exceeded" and "repeated" in envelope["errors"][0]["message"]
    last = fake.bodies()[-1]
    assert "tools" not in last  # the final answer is asked for without tools
    assert last["messages"][-1]["role"] == "user" and FINAL_NUDGE in last["messages"][-1]["content"]
    assert len(tool_calls_logged(sandbox)) == 3


def test_same_call_twice_is_allowed(ask: AskRunner, fake: ScriptedOpenAI) -> None:
    same = ToolCall("list_all_vapi_calls", {"limit": 2})
    fake.add(Turn.calls(same), Turn.calls(same), Turn.calls(ToolCall("list_all_vapi_calls", {"limit": 3})),
             Turn.text("Done."))
    run = ask("ask", "--json", "show my calls")
    assert run.code == 0, run.stderr
    assert len(run.result["tool_calls"]) == 3


# ---------------------------------------------------------------- max turns
def test_max_turns_gives_partial_envelope_with_final_answer(ask: AskRunner, fake: ScriptedOpenAI) -> None:
    fake.add(Turn.calls(ToolCall("list_all_vapi_assistants", {})), Turn.calls(ToolCall("list_all_vapi_squads", {})),
             Turn.text("Partial: assistants and squads only."))
    run = ask("ask", "--json", "--max-turns", "2", "audit everything")
    assert run.code == 6, run.stderr
    envelope = run.envelope
    assert envelope["status"] == "partial"
    assert envelope["result"]["answer"] == "Partial: assistants and squads only."
    assert [c["name"] for c in envelope["result"]["tool_calls"]] == ["list_all_vapi_assistants", "list_all_vapi_squads"]
    assert "max turns (2)" in envelope["errors"][0]["message"]
    assert len(fake.requests) == 3 and "tools" not in fake.bodies()[-1]


# ---------------------------------------------------------------- budgets
def test_max_cost_with_price_stops_at_once(ask: AskRunner, fake: ScriptedOpenAI) -> None:
    # $2 / $8 per 1M tokens: each turn of 10k in + 1k out costs $0.028; the budget is crossed after two.
    fake.add(Turn.calls(ToolCall("list_all_vapi_assistants", {}), prompt_tokens=10_000, completion_tokens=1_000),
             Turn.calls(ToolCall("list_all_vapi_squads", {}), prompt_tokens=10_000, completion_tokens=1_000))
    run = ask("ask", "--json", "--model", "my-local-llama", "--price", "2,8", "--max-cost", "0.05", "audit")
    assert run.code == 6, run.stderr
    envelope = run.envelope
    assert envelope["status"] == "partial" and envelope["result"]["answer"] == ""
    assert envelope["usage"]["cost_usd"] == pytest.approx(0.056)
    assert "cost budget of $0.05" in envelope["errors"][0]["message"]
    assert len(fake.requests) == 2  # no further model call once the money is spent
    assert fake.bodies()[0]["model"] == "my-local-llama"


def test_max_cost_without_a_known_price_is_a_usage_error(ask: AskRunner, fake: ScriptedOpenAI) -> None:
    run = ask("ask", "--json", "--model", "my-local-llama", "--max-cost", "0.50", "audit")
    assert run.code == 2
    (error,) = run.envelope["errors"]
    assert error["code"] == "config" and "my-local-llama" in error["message"] and "--price" in error["message"]
    assert fake.requests == []
    # Without --max-cost an unknown price is fine: the cost is just unknown.
    fake.add(Turn.text("Hello."))
    run = ask("ask", "--json", "--model", "my-local-llama", "hi")
    assert run.code == 0 and run.envelope["usage"]["cost_usd"] is None


def test_deadline_stops_the_run_even_inside_a_hanging_tool_call(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], endpoint: Endpoint,
        fake: ScriptedOpenAI, serve_sandbox: Callable[..., Sandbox]) -> None:
    hanging = serve_sandbox(calls=50, latency=30.0)  # the tool call outlasts the deadline by far
    fake.add(Turn.calls(ToolCall("list_all_vapi_assistants", {})))
    run = make_runner(monkeypatch, capsys, endpoint, hanging)("ask", "--json", "--deadline", "3s", "audit")
    # the run ended while the sandbox was still holding the tool call (30 s): the deadline bounded the wait
    assert [e.status for e in tool_calls_logged(hanging)] == [], "the run waited for the tool's answer"
    assert run.code == 6, run.stderr
    envelope = run.envelope
    assert envelope["status"] == "partial" and "deadline of 3 s" in envelope["errors"][0]["message"]
    (cut,) = envelope["result"]["tool_calls"]
    assert cut["name"] == "list_all_vapi_assistants" and cut["ok"] is False and cut["cancelled"] == "deadline"
    assert len(fake.requests) == 1  # no model call after the deadline


def test_max_tool_calls_caps_a_parallel_batch(ask: AskRunner, fake: ScriptedOpenAI, sandbox: Sandbox) -> None:
    fake.add(Turn.calls(ToolCall("list_all_vapi_assistants", {}), ToolCall("list_all_vapi_squads", {}),
                        ToolCall("list_all_vapi_phone_numbers", {})),
             Turn.text("I looked at assistants and squads."))
    run = ask("ask", "--json", "--max-tool-calls", "2", "audit")
    assert run.code == 6, run.stderr
    envelope = run.envelope
    assert envelope["status"] == "partial" and envelope["result"]["answer"] == "I looked at assistants and squads."
    assert "max tool calls (2)" in envelope["errors"][0]["message"]
    # The budget holds even inside one batch: the third call never reached the server ...
    assert [e.tool for e in tool_calls_logged(sandbox)] in (["list_all_vapi_assistants", "list_all_vapi_squads"],
                                                           ["list_all_vapi_squads", "list_all_vapi_assistants"])
    assert [(c["name"], c["outcome"]) for c in envelope["result"]["tool_calls"]] == [
        ("list_all_vapi_assistants", "ok"), ("list_all_vapi_squads", "ok"), ("list_all_vapi_phone_numbers", "not_run")]
    # ... and the model was told so (every call it made still gets an answer).
    last = fake.bodies()[-1]
    assert "tools" not in last
    skipped = tool_messages(last)[2]
    assert "not run" in skipped["content"].lower() and "max tool calls" in skipped["content"]


# ---------------------------------------------------------------- OpenAI 429
def openai_429(retry_after_ms: int) -> ErrorReply:
    """A 429 as OpenAI sends it: a precise ``retry-after-ms`` beside coarser headers."""
    headers = {"retry-after-ms": str(retry_after_ms), "retry-after": "30", "x-ratelimit-limit-requests": "500",
               "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s"}
    return ErrorReply(429, "Rate limit reached for gpt-4.1-mini in organization org-fake on requests per min "
                           "(RPM): Limit 500, Used 500, Requested 1.", "requests", "rate_limit_exceeded",
                      None, headers)


def test_openai_429_retry_after_ms_is_honoured(ask: AskRunner, fake: ScriptedOpenAI, endpoint: Endpoint,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # retry-after-ms says 0.4 s; the coarse headers say 30 s, beyond the 10 s a request may wait, so
    # honouring anything but retry-after-ms would end the run with exit 4 instead of retrying.
    monkeypatch.setenv("VAPI_AGENT_MAX_WAIT_PER_REQUEST", "10")
    fake.add(Turn.fail(openai_429(400)), Turn.text("Hello again."))
    run = ask("ask", "--json", "hi")
    assert run.code == 0, run.stderr
    envelope = run.envelope
    assert envelope["result"]["answer"] == "Hello again."
    # The policy waits the announced time plus at most 1 s of jitter (added, never subtracted).
    first, second = endpoint.clock.arrivals
    assert 0.4 <= second - first < 2.0
    usage = envelope["usage"]
    assert usage["rate_limit_waits"] == 1 and 0.4 <= usage["wait_seconds"] <= 1.4
    assert usage["model_calls"] == 1  # the refused attempt is not a completed model call
    assert "rate limited by" in run.stderr


# ---------------------------------------------------------------- no model, prompt from stdin
def test_no_model_configured_exits_2_saying_how(ask: AskRunner, fake: ScriptedOpenAI, sandbox: Sandbox) -> None:
    run = ask("ask", "--json", "list my assistants", model=False)
    assert run.code == 2
    (error,) = run.envelope["errors"]
    assert error["code"] == "config" and "needs a model" in error["message"]
    assert "OPENAI_API_KEY" in error["message"] and "OPENAI_BASE_URL" in error["message"]
    assert "OPENAI_API_KEY" in run.stderr
    assert sandbox.log.entries() == []  # refused before connecting to anything


@pytest.mark.parametrize("dash", [[], ["-"]], ids=["absent", "dash"])
def test_prompt_from_stdin(ask: AskRunner, fake: ScriptedOpenAI, dash: list[str]) -> None:
    fake.add(Turn.text("Seven assistants."))
    run = ask("ask", "--json", *dash, stdin="how many assistants do I have?\n")
    assert run.code == 0, run.stderr
    assert run.result["answer"] == "Seven assistants."
    assert fake.bodies()[0]["messages"][-1] == {"role": "user", "content": "how many assistants do I have?"}


def test_empty_stdin_is_a_usage_error(ask: AskRunner, fake: ScriptedOpenAI) -> None:
    run = ask("ask", "--json", "-", stdin="  \n")
    assert run.code == 2 and "empty" in json.dumps(run.envelope["errors"])
    assert fake.requests == []


# ---------------------------------------------------------------- start-up stays light
HEAVY = ("openai", "mcp", "pandas", "numpy", "httpx2", "pydantic", "rich", "starlette", "uvicorn", "tenacity",
         "jsonschema", "vapi", "sandbox", "workflows")


@pytest.mark.parametrize("argv", [["--help"], ["ask", "--help"]], ids=["help", "ask-help"])
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    # What keeps `vapi-agent --help` within its start-up budget (bench/startup.py measures it):
    # heavy libraries load inside the commands that use them, never to print help.
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import sys, cli; sys.exit(cli.main())", *argv],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Usage" in done.stdout
    loaded = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in done.stderr.splitlines()
              if line.startswith("import time:") and line.count("|") == 2}
    assert "typer" in loaded  # the import log was read at all
    # typer itself coerces a command's parameters through pydantic, so a subcommand's help has it.
    allowed = {"pydantic"} if argv[0] != "--help" else set()
    assert sorted(loaded.intersection(HEAVY) - allowed) == []
