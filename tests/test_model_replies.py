"""A model endpoint answering something that is not a chat completion: exit 3, one line, never "ok".

The scripted server answers an HTML page (a proxy's error page with status 200), broken JSON, JSON
of another shape, and an event stream of garbage. ``ask`` (which streams) and ``qa-grade``'s
analysis (which does not) must both exit 3 with one line naming the endpoint and what came back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from sandbox.app import Sandbox
from tests.ask_support import AskRunner, Endpoint, make_runner
from tests.openai_fake import ScriptedOpenAI, Turn

SECRET = "sk-proxy-secret-0123456789abcdef"
HTML = f"<html><head><title>502</title></head><body>Bad gateway (key {SECRET})</body></html>"
MALFORMED = {
    "html": Turn.malformed(HTML, "text/html; charset=utf-8"),
    "bad-json": Turn.malformed('{"id": "chatcmpl-1", "choices": [{"message": ', "application/json"),
    "non-chat-json": Turn.malformed('{"status": "ok", "result": "hello"}', "application/json"),
}
SHOWN = {"html": "<html><head><title>502", "bad-json": '{"id": "chatcmpl-1"',
         "non-chat-json": '{"status": "ok"'}


@pytest.fixture
def sandbox(serve_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A small sandbox served on loopback."""
    return serve_sandbox(calls=12)  # small: every object served is validated against the SDK models


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], endpoint: Endpoint,
        sandbox: Sandbox) -> AskRunner:
    """``vapi-agent ...`` against the scripted server and the served sandbox."""
    monkeypatch.setenv("VAPI_AGENT_CONCURRENCY", "1")  # qa-grade: one analysis at a time, one malformed answer
    # The servers run in threads of this process: their own logs (a client that went away) are not the CLI's.
    monkeypatch.setattr(logging.getLogger("uvicorn.error"), "disabled", True)
    return make_runner(monkeypatch, capsys, endpoint, sandbox)


def error_lines(stderr: str) -> list[str]:
    """What the run said on stderr, without the sandbox's notices."""
    return [line for line in stderr.splitlines() if line.strip() and "rate limited" not in line]


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_ask_exits_3_with_one_line(run: AskRunner, fake: ScriptedOpenAI, kind: str, endpoint: Endpoint) -> None:
    fake.add(MALFORMED[kind])
    result = run("ask", "hello")
    assert result.code == 3, result.stderr
    assert len(error_lines(result.stderr)) == 1, result.stderr
    (line,) = error_lines(result.stderr)
    assert endpoint.base_url in line and SHOWN[kind] in line
    assert "Traceback" not in result.stderr and SECRET not in result.stderr and result.stdout.strip() == ""


def test_ask_json_envelope_says_error_not_ok(run: AskRunner, fake: ScriptedOpenAI) -> None:
    fake.add(MALFORMED["html"])
    envelope = run("ask", "--json", "hello").envelope
    assert envelope["status"] == "error" and envelope["result"]["answer"] == ""
    (error,) = envelope["errors"]
    assert error["code"] == "model_error" and "text/html" in error["message"]


def test_a_garbage_event_stream_is_one_line_too(run: AskRunner, fake: ScriptedOpenAI) -> None:
    fake.add(Turn.malformed(b"data: <<not json>>\n\ndata: [DONE]\n\n", "text/event-stream"),
             Turn.malformed(b'data: {"hello": "world"}\n\ndata: [DONE]\n\n', "text/event-stream"))
    for _ in range(2):
        result = run("ask", "hello")
        assert result.code == 3, result.stderr
        (line,) = error_lines(result.stderr)
        assert "event stream of something else" in line and "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_qa_grade_exits_3_with_one_line(run: AskRunner, fake: ScriptedOpenAI, kind: str,
                                        endpoint: Endpoint) -> None:
    fake.add(MALFORMED[kind])
    # A threshold no call reaches: the first graded call fails, so its analysis asks the model.
    result = run("qa-grade", "--assistant", "Support", "--last", "3", "--threshold", "101",
                 "--recordings", "none")
    assert result.code == 3, result.stderr
    assert len(error_lines(result.stderr)) == 1, result.stderr
    (line,) = error_lines(result.stderr)
    assert endpoint.base_url in line and SHOWN[kind] in line
    assert "Traceback" not in result.stderr and "AttributeError" not in result.stderr and SECRET not in line
