"""Recorded whole runs: ``ask`` and ``qa-grade`` with a model, OpenAI and MCP traffic together.

By default the cassettes in ``tests/cassettes/test_cassettes/`` are replayed offline: record mode
``none`` and every socket blocked (``block_network``), so a request that was not recorded fails the
run at once instead of reaching anything. Where the run's targets come from:

- replaying: the cassette itself (the MCP URL and model endpoint it recorded, token scrubbed);
- ``--record-mode=rewrite`` (re-record): a sandbox served on loopback and the scripted OpenAI
  server, with sentinel secrets (this is how the committed cassettes were made);
- ``LIVE=1 ... --record-mode=rewrite``: real services from ``VAPI_AGENT_MCP_URL`` (with
  ``TRUTO_API_TOKEN`` if needed) or ``VAPI_API_KEY``, and ``OPENAI_API_KEY`` (``OPENAI_BASE_URL``).

Scrubbing and matching: ``tests/cassette_support.py``. ``test_cassettes_hold_no_secret`` greps the
cassettes for every secret shape and for the sentinels used while recording.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import cli

pytest.register_assert_rewrite("tests.cassette_support")  # its vcr matcher asserts; imported before pytest_plugins

from tests import cassette_support  # noqa: E402
from tests.openai_fake import ScriptedOpenAI, ToolCall, Turn  # noqa: E402

pytest_plugins = ("tests.cassette_support",)

CASSETTES = Path(__file__).parent / "cassettes"
MODULE_CASSETTES = CASSETTES / "test_cassettes"
LIVE = os.environ.get("LIVE") == "1"
# Read now: the autouse conftest fixture clears these variables before every test.
_LIVE_ENV = {name: os.environ.get(name) for name in (
    "VAPI_AGENT_MCP_URL", "VAPI_AGENT_MCP_KIND", "TRUTO_API_TOKEN", "VAPI_API_KEY", "OPENAI_API_KEY",
    "OPENAI_BASE_URL", "VAPI_AGENT_MODEL", "LIVE_ASSISTANT")}

SENTINEL = "c4ss3tt3-s3ntin3l"  # in every secret used while recording; the grep test looks for it
SANDBOX_OPTIONS: dict[str, Any] = {
    "calls": 60, "seed": 33, "anchor": datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
    # Kept small the way a Truto token can be scoped: read methods only (the runs below only read), and
    # pages of 4 (the qa-grade run reads one page of calls). Cassettes hold every request and response.
    "methods": ("read",), "page_cap": 4,
    "token": f"mcp-token-{SENTINEL}", "api_key": f"api-key-{SENTINEL}",
}
REPLAY_TOKEN = "replay-token"  # any token: the path is matched after scrubbing
ASK_PROMPT = ("Which assistant answers the Primary US Toll-Free number? Also get me a link to the recording of "
              "that assistant's newest ended call.")
# The MCP tools the model is offered (--tools): every model request carries their schemas. Truto's names,
# then Vapi's hosted server's (for LIVE recordings there); globs that match nothing are harmless.
ASK_TOOLS = ("list_all_vapi_phone_numbers,get_single_vapi_assistant_by_id,list_all_vapi_*_recordings,"
             "list_phone_numbers,get_assistant,list_calls,get_call")
MAX_CASSETTE_BYTES = 150_000


@pytest.fixture(scope="module")
def vcr_config(cassette_vcr_config: dict[str, Any]) -> dict[str, Any]:
    """pytest-recording reads this module's ``vcr_config`` (see ``tests/cassette_support.py``)."""
    return cassette_vcr_config


# ---------------------------------------------------------------- where a run goes
@dataclass
class Targets:
    """The environment a recorded run needs, and what the scripted side knows (when there is one)."""

    env: dict[str, str]
    scripted: ScriptedOpenAI | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def recorded_requests(cassette: Any) -> list[Any]:
    """The requests stored in a cassette, in order."""
    return list(cassette.requests)


def replay_targets(cassette: Any) -> Targets:
    """Point the run at what the cassette recorded (the MCP URL with a stand-in token, the model)."""
    requests = recorded_requests(cassette)
    assert requests, f"cassette {cassette._path} is empty or missing: record it (see the README)"
    mcp = next(r for r in requests if is_mcp(r))
    model = next(r for r in requests if r.path.endswith("/chat/completions"))
    model_parts = urlsplit(model.uri)
    base = f"{model_parts.scheme}://{model_parts.netloc}{model_parts.path.removesuffix('/chat/completions')}"
    env = {"VAPI_AGENT_MCP_URL": mcp.uri.replace("/mcp/***", f"/mcp/{REPLAY_TOKEN}"), "OPENAI_BASE_URL": base,
           "OPENAI_API_KEY": "sk-replay-key", "VAPI_AGENT_MODEL": json.loads(model.body)["model"]}
    if urlsplit(mcp.uri).hostname == "127.0.0.1":
        env["VAPI_AGENT_MCP_KIND"] = "sandbox"
    return Targets(env)


def live_targets() -> Targets:
    """Real services from the environment of the pytest process (LIVE=1)."""
    given = {k: v for k, v in _LIVE_ENV.items() if v}
    if not (given.get("VAPI_AGENT_MCP_URL") or given.get("VAPI_API_KEY")) or not given.get("OPENAI_API_KEY"):
        pytest.fail("LIVE=1 needs VAPI_AGENT_MCP_URL (or VAPI_API_KEY) and OPENAI_API_KEY")
    return Targets({k: v for k, v in given.items() if k != "LIVE_ASSISTANT"})


@contextmanager
def run_targets(cassette: Any, monkeypatch: pytest.MonkeyPatch,
                script: Callable[[Any, ScriptedOpenAI], None]) -> Iterator[Targets]:
    """Replay, live, or the sandbox and the scripted model (see the module docstring); env applied."""
    with ExitStack() as stack:
        if cassette.write_protected:
            targets = replay_targets(cassette)
        elif LIVE:
            from tests.conftest import _real_connect, _real_connect_ex

            # Recording real services: lift the suite's loopback-only guard for this test.
            monkeypatch.setattr(socket.socket, "connect", _real_connect)
            monkeypatch.setattr(socket.socket, "connect_ex", _real_connect_ex)
            targets = live_targets()
        else:
            from sandbox.app import Sandbox
            from sandbox.serve import ServerThread
            from sandbox.world.config import SandboxConfig

            sandbox = Sandbox(SandboxConfig(**SANDBOX_OPTIONS))
            stack.enter_context(ServerThread(sandbox))
            scripted = ScriptedOpenAI()
            script(sandbox, scripted)
            base_url = stack.enter_context(scripted.serve())
            targets = Targets({"VAPI_AGENT_MCP_URL": sandbox.mcp_url, "VAPI_AGENT_MCP_KIND": "sandbox",
                               "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": f"sk-openai-{SENTINEL}"}, scripted)
        for name, value in targets.env.items():
            monkeypatch.setenv(name, value)
        yield targets
        if targets.scripted is not None:
            assert targets.scripted.rejections == []
            targets.scripted.assert_all_used()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    """``vapi-agent <argv>`` in-process; (exit code, the --json envelope, stderr)."""
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def is_mcp(request: Any) -> bool:
    """True for a recorded MCP (JSON-RPC) request."""
    body = cassette_support.jsonrpc_key(request.body)
    return isinstance(body, dict) and body.get("jsonrpc") == "2.0"


def recorded(cassette: Any, suffix: str) -> list[Any]:
    """Recorded requests whose path ends with ``suffix`` (``/chat/completions``) or MCP ``tools/call``s."""
    if suffix == "tools/call":
        return [r for r in recorded_requests(cassette)
                if is_mcp(r) and cassette_support.jsonrpc_key(r.body).get("method") == "tools/call"]
    return [r for r in recorded_requests(cassette) if r.path.endswith(suffix)]


def against_sandbox(cassette: Any) -> bool:
    """True when the cassette was recorded against the sandbox and the scripted model (loopback)."""
    return all(urlsplit(r.uri).hostname == "127.0.0.1" for r in recorded_requests(cassette))


# ---------------------------------------------------------------- ask
def script_ask(sandbox: Any, scripted: ScriptedOpenAI) -> None:
    """What the scripted model does for ``ASK_PROMPT``: phone numbers, the assistant, its newest recording."""
    ws = sandbox.workspace
    phone = next(p for p in ws.list_objects("phone_numbers") if p["name"] == "Primary US Toll-Free")
    assistant = ws.get_object("assistants", phone["assistantId"])
    newest = next(c for c in ws.list_calls(assistant_id=assistant["id"]) if c["status"] == "ended")
    scripted.add(
        Turn.calls(ToolCall("list_all_vapi_phone_numbers", {"limit": 10}), prompt_tokens=2400, completion_tokens=20),
        Turn.calls(ToolCall("get_single_vapi_assistant_by_id", {"id": assistant["id"]}), prompt_tokens=3100,
                   completion_tokens=24),
        Turn.calls(ToolCall("list_all_vapi_mono_recordings", {"call_id": newest["id"]}), prompt_tokens=3800,
                   completion_tokens=30),
        Turn.text(f"The Primary US Toll-Free number is answered by **{assistant['name']}**. The recording of its "
                  f"newest ended call ({newest['id']}) is at the link the recording tool returned; the link "
                  "expires within minutes, so download it soon.", prompt_tokens=4300, completion_tokens=60),
    )


@pytest.mark.vcr
@pytest.mark.block_network
def test_ask_run_replays(vcr: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with run_targets(vcr, monkeypatch, script_ask):
        code, envelope, err = run_cli(capsys, "ask", "--json", "--tools", ASK_TOOLS, ASK_PROMPT)

    assert code == 0, err
    assert envelope["status"] == "ok" and envelope["errors"] == []
    result, usage = envelope["result"], envelope["usage"]
    assert result["answer"] and result["tool_calls"] and all(c["ok"] for c in result["tool_calls"])
    # The whole run came from (or went into) the cassette: one model call per recorded completion,
    # one tool call per recorded tools/call, and nothing recorded was left unplayed.
    assert usage["model_calls"] == len(recorded(vcr, "/chat/completions"))
    assert usage["tool_calls"] == len(recorded(vcr, "tools/call")) == len(result["tool_calls"])
    if vcr.write_protected:
        assert vcr.all_played, "a recorded request was not replayed"
    if against_sandbox(vcr):
        assert [c["name"] for c in result["tool_calls"]] == [
            "list_all_vapi_phone_numbers", "get_single_vapi_assistant_by_id", "list_all_vapi_mono_recordings"]
        assert "answered by **Support**" in result["answer"]
        assert usage["input_tokens"] == 2400 + 3100 + 3800 + 4300


# ---------------------------------------------------------------- qa-grade
_TRANSCRIPT_LINE = re.compile(r"^\[(\d+(?:\.\d+)?)s\] (Assistant|Customer): (.*)$")


class Analyst:
    """ASGI app in front of the scripted model: answers each analysis request with a true finding.

    It reads the transcript the request carries and quotes its last assistant line at that line's
    time, so the finding survives the workflow's check against the call, as a good model's would.
    """

    def __init__(self, scripted: ScriptedOpenAI, inner: Any) -> None:
        self.scripted, self.inner = scripted, inner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Queue the answer for this request, then let the scripted app serve it."""
        if scope.get("type") != "http" or not str(scope.get("path", "")).endswith("/chat/completions"):
            await self.inner(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        self.scripted.add(Turn.text(self.answer(json.loads(raw)["messages"]), prompt_tokens=1500,
                                    completion_tokens=90))
        replayed = [{"type": "http.request", "body": raw, "more_body": False}]

        async def again() -> Any:
            return replayed.pop(0) if replayed else await receive()

        await self.inner(scope, again, send)

    @staticmethod
    def answer(messages: list[dict[str, Any]]) -> str:
        """A findings JSON quoting the last assistant line of the transcript in ``messages``."""
        request = next(m for m in messages if m["role"] == "user")
        lines = [_TRANSCRIPT_LINE.match(line) for line in str(request["content"]).splitlines()]
        said = [(float(m.group(1)), m.group(3)) for m in lines if m and m.group(2) == "Assistant"]
        at, quote = said[-1]
        finding = {"at_seconds": at, "quote": quote, "problem": "The call ended without a summary of next steps.",
                   "recommendation": "Summarise what happens next before ending the call."}
        return json.dumps({"findings": [finding], "recommendations": ["Close every call with a short summary."]})


def script_qa(sandbox: Any, scripted: ScriptedOpenAI) -> None:
    """The scripted model answers every analysis request from its own transcript (``Analyst``)."""
    scripted.app = Analyst(scripted, scripted.app)  # serve() serves whatever ``app`` is when it starts


@pytest.mark.vcr
@pytest.mark.block_network
def test_qa_grade_run_replays(vcr: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VAPI_AGENT_CONCURRENCY", "1")  # analyses in call order: a stable recording
    assistant = "Support"
    if LIVE and not vcr.write_protected:
        assistant = _LIVE_ENV.get("LIVE_ASSISTANT") or assistant
    with run_targets(vcr, monkeypatch, script_qa):
        code, envelope, err = run_cli(capsys, "qa-grade", "--json", "--assistant", assistant, "--last", "3",
                                      "--recordings", "none")

    assert code == 0, err
    assert envelope["status"] == "ok", envelope["errors"]
    result, usage = envelope["result"], envelope["usage"]
    assert len(result["calls"]) == 3
    failing = [c for c in result["calls"] if c["failed"]]
    assert usage["model_calls"] == len(failing) == len(recorded(vcr, "/chat/completions"))
    for call in result["calls"]:
        assert bool(call["findings"]) == call["failed"]  # only failing calls were analysed
    if vcr.write_protected:
        assert vcr.all_played, "a recorded request was not replayed"
    if against_sandbox(vcr):
        assert failing, "dataset precondition: a failing call among the newest 3 (else no model traffic)"
        assert result["assistant"]["name"] == "Support" and result["metric"] == "Support QA"
        assert all(len(c["findings"]) == 1 and c["findings"][0]["quote"] for c in failing)
        assert result["recommendations"][0]["text"] == "Close every call with a short summary."


# ---------------------------------------------------------------- a request with no recording fails loudly
def test_a_request_missing_from_the_cassette_fails_loudly(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = MODULE_CASSETTES / "test_ask_run_replays.yaml"
    assert path.is_file(), f"{path} is missing: record it (see the README)"
    with cassette_support.make_vcr().use_cassette(str(path), record_mode="none") as cassette:
        for name, value in replay_targets(cassette).env.items():
            monkeypatch.setenv(name, value)
        code, envelope, _ = run_cli(capsys, "ask", "--json", "--tools", ASK_TOOLS, "a question never recorded")

    assert code == 3 and envelope["status"] == "error"
    message = envelope["errors"][0]["message"]
    assert "CannotOverwriteExistingCassetteException" in message and "Can't play back this request" in message
    assert "/chat/completions" in message  # it names the request that had no recording
    assert not cassette.all_played


# ---------------------------------------------------------------- nothing secret in the cassettes
SECRET_PATTERNS = {
    "sentinel used while recording": re.compile(re.escape(SENTINEL)),
    "presigned signature": re.compile(r"(?i)x-amz-(signature|credential|security-token)=(?!\*\*\*)"),
    "signed query value": re.compile(r"[?&](?:sig|signature|token|access_token|api_key|apikey|key)=(?!\*\*\*)"),
    "MCP URL token": re.compile(r"/mcp/(?!\*\*\*)[A-Za-z0-9_\-.~%]{6,}"),
    "recording link token": re.compile(r"/_links/(?!\*\*\*)[A-Za-z0-9_\-.~%]{6,}"),
    "bearer token": re.compile(r"(?i)bearer\s+(?!\*\*\*)[A-Za-z0-9_\-.~+/=]{6,}"),
    "authorization header": re.compile(r"(?im)^\s*(authorization|x-api-key|cookie|set-cookie):"),
    "OpenAI-style key": re.compile(r"\bsk-(?!replay-key)[A-Za-z0-9_\-]{10,}"),
}


def test_cassettes_hold_no_secret() -> None:
    files = sorted(p for p in CASSETTES.rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert {"test_ask_run_replays.yaml", "test_qa_grade_run_replays.yaml"} <= names, "cassettes are missing"
    for path in files:
        text = path.read_text(encoding="utf-8")
        for what, pattern in SECRET_PATTERNS.items():
            found = pattern.search(text)
            assert found is None, f"{path.name}: {what} at {text[max(0, found.start() - 60):found.end() + 20]!r}"
        assert path.stat().st_size <= MAX_CASSETTE_BYTES, f"{path.name} is {path.stat().st_size} bytes: keep it short"


def test_scrubbers_mask_every_secret_shape_and_are_idempotent() -> None:
    """Shapes the committed recordings may not contain (a 302 to S3, a bearer header dump) are covered too."""
    signed = ("https://storage.example.com/rec/call-1/mono.wav?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
              "X-Amz-Credential=AKIAEXAMPLE%2F20260302&X-Amz-Date=20260302T120000Z&X-Amz-Signature=deadbeef0123")
    response = {
        "status": {"code": 302, "message": "Found"},
        "headers": {"Location": [signed], "Set-Cookie": ["session=abc"], "Date": ["Mon, 02 Mar 2026"],
                    "content-type": ["application/json"]},
        "body": {"string": json.dumps({"url": "http://127.0.0.1:9/_links/AbCdEf123456", "auth": "Bearer abcdef123456",
                                       "next": "https://api.truto.one/mcp/tok3n-value-123"}).encode()},
    }
    once = cassette_support.scrub_response(json.loads(json.dumps(response, default=lambda b: b.decode())))
    once["body"]["string"] = once["body"]["string"].encode() if isinstance(once["body"]["string"], str) \
        else once["body"]["string"]
    text = json.dumps(once, default=lambda b: b.decode())
    for pattern in SECRET_PATTERNS.values():
        assert pattern.search(text) is None, text
    assert "mono.wav?X-Amz-Algorithm=***&X-Amz-Credential=***&X-Amz-Date=***&" in text  # names stay, values go
    assert set(once["headers"]) == {"Location", "content-type"}
    twice = cassette_support.scrub_response(json.loads(json.dumps(once, default=lambda b: b.decode())))
    assert json.dumps(twice, default=lambda b: b.decode()) == json.dumps(once, default=lambda b: b.decode())

    from vcr.request import Request

    request = Request("POST", "https://api.truto.one/mcp/tok3n-value-123?key=abc123", b'{"a": 1}', {})
    scrubbed = cassette_support.scrub_request(request)
    assert scrubbed.uri == "https://api.truto.one/mcp/***?key=***"
    assert cassette_support.scrub_request(scrubbed).uri == scrubbed.uri


def test_requests_the_sandbox_makes_to_itself_are_not_recorded() -> None:
    import threading

    from vcr.request import Request

    seen: list[Any] = []
    worker = threading.Thread(target=lambda: seen.append(cassette_support.scrub_request(
        Request("GET", "http://127.0.0.1:1/phone-number", b"", {}))), name="sandbox-server-1")
    worker.start()
    worker.join()
    assert seen == [None]
    assert cassette_support.scrub_request(Request("GET", "http://127.0.0.1:1/phone-number", b"", {})) is not None
