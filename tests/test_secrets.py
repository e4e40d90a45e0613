"""Secrets at the most verbose level: each reaches its rightful server and nothing else, ever.

One test, sentinel values for the secrets (the MCP URL token, a Truto API token, a Vapi API key, an
OpenAI key, and a password and a query value in an ``--mcp-url``), real commands through the
installed ``vapi-agent`` (qa-grade with recordings and a report, calls recording, ask, doctor, tools
call, a Vapi-kind server, an ``mcpServers`` file with three servers, a URL with userinfo and a
query) at ``-vv --debug``, each with its own HOME / XDG / data / temp dirs, on success and on each
failure path (a bad flag: exit 2; refused auth, a model error body quoting the secrets, a download
over the size limit: exit 3; a rate limit beyond the wait budget: exit 4; a write without approval:
exit 5; a deadline: exit 6; another run of the job holding its lock: exit 7; Ctrl-C mid-run: exit
130), and an answer
that quotes secrets printed by plain ``ask``. Then:

- each sentinel DID reach its server: the servers' recorded request lines and headers say so (and
  the servers refuse requests without them, so every successful call proves it too);
- no sentinel appears in any stdout, stderr or file written (run store, recordings, report...),
  and no ``X-Amz-Signature=<hex>`` either (the sandbox's presigned recording URLs carry one);
- the Truto token never went anywhere else: not to another MCP server, not to the recording link
  or the storage it redirects to, not to the model API (headers and request bodies).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.joblock import JOB_ENV, job_key, job_lock
from agent.paths import STATE_DIR_ENV
from sandbox.app import Sandbox
from sandbox.serve import ServerThread
from sandbox.world.config import RateLimit, SandboxConfig
from tests.openai_fake.server import ErrorReply, ScriptedOpenAI, ToolCall, Turn, serve_app

ROOT = Path(__file__).resolve().parents[1]
VAPI_AGENT = str(Path(sys.executable).with_name("vapi-agent"))
SIGNATURE = re.compile(rb"X-Amz-Signature=[0-9a-fA-F]{16,}")


def sentinel(kind: str) -> str:
    """A unique value that cannot appear by accident (URL-safe, so it can be a path token too)."""
    return f"{kind}-SENTINEL-{secrets.token_hex(12)}"


# ---------------------------------------------------------------- what servers received
@dataclass
class Seen:
    """One HTTP request as the server received it (the raw path, before any routing or redaction)."""

    path: str
    raw_path: str
    query: str
    headers: dict[str, str]


@dataclass
class HeaderRecorder:
    """ASGI middleware that records every request's raw path, query and headers, then passes it on."""

    app: Any
    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        """Record (http only) and delegate."""
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            raw = scope.get("raw_path") or scope["path"].encode()
            self.seen.append(Seen(scope["path"], raw.decode("latin-1"), scope.get("query_string", b"").decode(),
                                  headers))
        await self.app(scope, receive, send)

    def mcp(self) -> list[Seen]:
        """Requests to the MCP path."""
        return [s for s in self.seen if s.path.startswith("/mcp")]


@pytest.fixture
def recorded_sandbox() -> Iterator[Callable[..., tuple[Sandbox, HeaderRecorder]]]:
    """Factory: a sandbox served on loopback behind a ``HeaderRecorder``."""
    threads: list[ServerThread] = []

    def factory(**config: Any) -> tuple[Sandbox, HeaderRecorder]:
        sandbox = Sandbox(SandboxConfig(**{"seed": 7, **config}))
        recorder = HeaderRecorder(sandbox.app)
        sandbox.app = recorder  # ServerThread serves sandbox.app
        threads.append(ServerThread(sandbox, host="127.0.0.1", port=0).start())
        return sandbox, recorder

    yield factory
    for thread in threads:
        thread.stop()


# ---------------------------------------------------------------- runs
@dataclass
class Run:
    """One command: its argv, the fake model it talks to (if any), and what it printed."""

    name: str
    argv: list[str]
    model_url: str | None = None
    expect: int = 0
    env: dict[str, str] = field(default_factory=dict)
    interrupt_when: Callable[[], bool] | None = None  # then Ctrl-C (SIGINT) as soon as this holds
    done: subprocess.CompletedProcess[bytes] | None = None


def execute(run: Run, root: Path, secrets_env: dict[str, str]) -> Run:
    """Run ``vapi-agent -vv --debug ...`` headless with every user dir (and the cwd) under ``root/<name>``."""
    base = root / run.name
    dirs = {name: base / name for name in ("home", "config", "data", "xdg-data", "state", "cache", "tmp", "work")}
    for path in dirs.values():
        path.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAPI_", "OPENAI_", "TRUTO_", "XDG_"))}
    env.update(secrets_env)
    env.update(run.env)
    env.update(HOME=str(dirs["home"]), XDG_CONFIG_HOME=str(dirs["config"]), XDG_DATA_HOME=str(dirs["xdg-data"]),
               XDG_STATE_HOME=str(dirs["state"]), XDG_CACHE_HOME=str(dirs["cache"]), TMPDIR=str(dirs["tmp"]),
               VAPI_AGENT_DATA_DIR=str(dirs["data"]), COLUMNS="200")
    if run.model_url:
        env["OPENAI_BASE_URL"] = run.model_url
    argv = [VAPI_AGENT, "-vv", "--debug", *run.argv]
    if run.interrupt_when is None:
        run.done = subprocess.run(argv, capture_output=True, env=env, cwd=dirs["work"], stdin=subprocess.DEVNULL,
                                  timeout=180)
        return run
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=dirs["work"],
                               stdin=subprocess.DEVNULL)
    waited = 0.0
    while not run.interrupt_when() and process.poll() is None and waited < 120:
        time.sleep(0.05)  # polling the server's request log: the run's own requests say when it is mid-way
        waited += 0.05
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=180)
    run.done = subprocess.CompletedProcess(argv, process.returncode, out, err)
    return run


def leaks(data: bytes, values: Sequence[str]) -> list[str]:
    """Which secret values (or presigned signatures) occur in ``data``."""
    found = [v for v in values if v.encode() in data]
    return found + (["X-Amz-Signature=<hex>"] if SIGNATURE.search(data) else [])


def finding_answer() -> Turn:
    """A valid qa-grade findings answer (no findings: nothing to check against the transcript)."""
    return Turn.text(json.dumps({"findings": [], "recommendations": ["Acknowledge the caller's problem first."]}))


# ---------------------------------------------------------------- the test
def test_no_secret_leaks_at_the_most_verbose_level(
    tmp_path: Path, recorded_sandbox: Callable[..., tuple[Sandbox, HeaderRecorder]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    url_token, truto_token = sentinel("urltoken"), sentinel("truto")
    vapi_key, openai_key = sentinel("vapikey"), sentinel("sk")
    password, query_value, wrong_token = sentinel("password"), sentinel("query"), sentinel("wrongtruto")
    all_secrets = [url_token, truto_token, vapi_key, openai_key, password, query_value, wrong_token]

    truto, truto_seen = recorded_sandbox(calls=40, token=url_token, require_api_token=truto_token)
    # 2 MCP requests per 10 minutes: the third is refused with a reset far beyond the wait budget (exit 4)
    limited, _ = recorded_sandbox(calls=5, token=url_token, require_api_token=truto_token,
                                  rate_limit=RateLimit(2, 600.0))
    slow, _ = recorded_sandbox(calls=40, token=url_token, require_api_token=truto_token, latency=0.5)
    vapi_like, vapi_seen = recorded_sandbox(calls=20, require_api_token=vapi_key)
    other, other_seen = recorded_sandbox(calls=20)

    qa_model, ask_model = ScriptedOpenAI([finding_answer() for _ in range(2)]), ScriptedOpenAI([
        Turn.calls(ToolCall("list_all_vapi_calls", {"limit": 2})),
        Turn.text("The two newest calls are listed above."),
    ])
    qa_seen, ask_seen = HeaderRecorder(qa_model.app), HeaderRecorder(ask_model.app)
    # A model that quotes secrets in its answer, and one whose error body quotes them (--debug prints it).
    echo_model = ScriptedOpenAI([Turn.text(f"Your key is {openai_key}, the link "
                                           f"{other.public_url}/x.wav?X-Amz-Signature={'ab' * 16}&k={query_value}")])
    failing_model = ScriptedOpenAI([Turn.fail(ErrorReply(400, f"bad request for key {openai_key} and token "
                                                              f"{truto_token} at /mcp/{url_token}"))])
    echo_seen, failing_seen = HeaderRecorder(echo_model.app), HeaderRecorder(failing_model.app)
    userinfo_url = other.mcp_url.replace("http://", f"http://user:{password}@") + f"?key={query_value}"

    newest = [c["id"] for c in truto.workspace.list_calls(limit=2)]
    recorded_call = next(c for c in truto.workspace.list_calls(limit=None) if c.get("artifact", {}).get("recordingUrl"))
    inputs = tmp_path / "inputs"  # files the *test* writes live outside the walked directories
    inputs.mkdir()
    mcp_config = inputs / "mcp.json"
    mcp_config.write_text(json.dumps({"mcpServers": {
        "truto": {"url": "${TRUTO_MCP_URL}", "headers": {"Authorization": "Bearer ${TRUTO_API_TOKEN}"}},
        "other": {"url": other.mcp_url},
        "local": {"command": sys.executable, "cwd": str(ROOT),
                  "args": ["-m", "sandbox", "stdio", "--calls", "20", "--api-key", "${VAPI_API_KEY}"],
                  "env": {"VAPI_API_KEY": "${VAPI_API_KEY}"}},
    }}))

    truto_url = ["--mcp-url", truto.mcp_url, "--mcp-kind", "truto"]
    root = tmp_path / "runs"
    held_state = inputs / "state"  # where another run of the job "leak-check" holds its lock (exit 7)
    monkeypatch.setenv(STATE_DIR_ENV, str(held_state))
    monkeypatch.setenv(JOB_ENV, "leak-check")
    with ExitStack() as stack:
        stack.enter_context(job_lock(job_key([]), label="qa-grade"))
        qa_url = stack.enter_context(serve_app(qa_seen)) + "/v1"
        ask_url = stack.enter_context(serve_app(ask_seen)) + "/v1"
        echo_url = stack.enter_context(serve_app(echo_seen)) + "/v1"
        failing_url = stack.enter_context(serve_app(failing_seen)) + "/v1"
        runs = [
            Run("qa-grade", ["--json", "qa-grade", "--assistant", "Support", "--last", "2", "--recordings", "failing",
                             "--recordings-dir", "recordings", "--out", "report.md", "--threshold", "101",  # all fail
                             *truto_url], qa_url),
            Run("recording", ["calls", "recording", recorded_call["id"], "--out", "call.wav", *truto_url]),
            Run("ask", ["ask", "Show me the two newest calls", *truto_url], ask_url),
            Run("doctor", ["doctor", "--mcp-url", truto.mcp_url, "--mcp-kind", "sandbox"]),  # Truto-style too
            Run("tools-call", ["tools", "call", "list_all_vapi_calls", "--args", '{"limit": 2}', *truto_url]),
            Run("vapi-kind", ["--json", "tools", "call", "list_all_vapi_assistants", "--args", '{"limit": 2}',
                              "--mcp-url", vapi_like.mcp_url, "--mcp-kind", "vapi"]),
            Run("mcp-config", ["--json", "doctor", "--mcp-config", str(mcp_config)]),
            Run("userinfo-url", ["tools", "call", "list_all_vapi_assistants", "--args", '{"limit": 1}',
                                 "--mcp-url", userinfo_url]),
            Run("ask-echo", ["ask", "What is my key?", *truto_url], echo_url),
            # failure paths
            Run("bad-flag", ["doctor", "--mcp-url", f"ftp://user:{password}@h.example/mcp/{url_token}?k={query_value}"],
                expect=2),
            Run("refused-auth", ["tools", "call", "list_all_vapi_calls", "--args", "{}", *truto_url], expect=3,
                env={"TRUTO_API_TOKEN": wrong_token}),
            Run("model-error", ["ask", "Show me the newest call", *truto_url], failing_url, expect=3),
            Run("too-large", ["calls", "recording", recorded_call["id"], "--out", "big.wav", "--max-download-bytes",
                              "100", *truto_url], expect=3),
            Run("unapproved", ["tools", "call", "create_a_vapi_squad", "--args", '{"name": "x", "members": []}',
                               *truto_url], expect=5),
            Run("deadline", ["--deadline", "0.01s", "qa-grade", "--assistant", "Support", *truto_url], expect=6),
            Run("rate-limited", ["tools", "call", "list_all_vapi_calls", "--args", "{}", "--mcp-url", limited.mcp_url,
                                 "--mcp-kind", "truto"], expect=4),
            Run("locked", ["qa-grade", "--assistant", "Support", *truto_url], expect=7,
                env={JOB_ENV: "leak-check", STATE_DIR_ENV: str(held_state)}),
            Run("ctrl-c", ["qa-grade", "--assistant", "Support", "--mcp-url", slow.mcp_url, "--mcp-kind", "truto"],
                expect=130, interrupt_when=lambda: any(e.rpc_method == "tools/call" for e in slow.log.entries("mcp"))),
        ]
        secrets_env = {"TRUTO_API_TOKEN": truto_token, "VAPI_API_KEY": vapi_key, "OPENAI_API_KEY": openai_key,
                       "TRUTO_MCP_URL": truto.mcp_url}
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda run: execute(run, root, secrets_env), runs))

    # ------------------------------------------------ every command worked (else the checks prove little)
    by_name = {run.name: run for run in runs}
    for run in runs:
        assert run.done is not None
        assert run.done.returncode == run.expect, f"{run.name}: {run.done.stderr.decode(errors='replace')[-3000:]}"
        assert b"DEBUG" in run.done.stderr or run.expect == 2, f"{run.name} did not log at debug level"
        # ask reports a model error as where it stopped; a bad setting is one line before any command runs
        # and Ctrl-C is the user's own doing: one line, no traceback
        raised = run.expect not in (0, 2, 130) and run.name != "model-error"
        assert (b"Traceback" in run.done.stderr) == raised, f"{run.name}: --debug shows a traceback of a failure"
    assert b"The two newest calls" in by_name["ask"].done.stdout  # type: ignore[union-attr]
    assert b"Your key is ***" in by_name["ask-echo"].done.stdout  # type: ignore[union-attr]
    assert b"bad request for key ***" in by_name["model-error"].done.stderr  # type: ignore[union-attr]
    qa = json.loads(by_name["qa-grade"].done.stdout)  # type: ignore[union-attr]
    failing = [c for c in qa["result"]["calls"] if c["failed"]]
    assert failing and all(c["recording"] for c in failing) and qa["status"] == "ok"
    assert len(qa_model.requests) == len(failing) and ask_model.remaining == 0
    doctor = json.loads(by_name["mcp-config"].done.stdout)  # type: ignore[union-attr]
    assert [s["name"] for s in doctor["result"]["servers"]] == ["truto", "other", "local"]
    assert all(s["tools"] > 0 for s in doctor["result"]["servers"])

    # ------------------------------------------------ nothing in any output
    for run in runs:
        assert run.done is not None
        assert leaks(run.done.stdout, all_secrets) == [], f"{run.name} stdout"
        assert leaks(run.done.stderr, all_secrets) == [], f"{run.name} stderr"

    # ------------------------------------------------ nothing in any file written
    written = [p for p in root.rglob("*") if p.is_file()]
    suffixes = {p.name for p in written}
    assert "report.md" in suffixes and "call.wav" in suffixes and "big.wav" not in suffixes
    assert any(name.endswith(".sqlite3") for name in suffixes), sorted(suffixes)
    assert len([p for p in written if p.parent.name == "recordings"]) == len(failing)
    for path in written:
        assert leaks(path.read_bytes(), all_secrets) == [], f"written file {path.relative_to(root)}"

    # ------------------------------------------------ each secret reached its rightful server
    truto_mcp = truto_seen.mcp()
    assert truto_mcp and all(s.raw_path.startswith(f"/mcp/{url_token}") for s in truto_mcp)
    auths = [s.headers.get("authorization") for s in truto_mcp]
    assert set(auths) == {f"Bearer {truto_token}", f"Bearer {wrong_token}"}  # the refused-auth run sent its own
    refused = [e.status for e in truto.log.entries("mcp") if e.status >= 400]
    assert refused and set(refused) == {401} and len(refused) == auths.count(f"Bearer {wrong_token}")
    vapi_calls = [e for e in vapi_like.log.entries("mcp") if e.rpc_method == "tools/call"]
    assert [(e.tool, e.status) for e in vapi_calls] == [("list_all_vapi_assistants", 200)]
    assert vapi_seen.mcp() and all(s.headers.get("authorization") == f"Bearer {vapi_key}" for s in vapi_seen.mcp())
    model_requests = qa_seen.seen + ask_seen.seen
    assert len(model_requests) == len(failing) + 2
    assert len(echo_seen.seen) == 1 and len(failing_seen.seen) == 1
    assert all(s.headers.get("authorization") == f"Bearer {openai_key}" for s in model_requests)

    # ------------------------------------------------ and went nowhere else
    media = [s for s in truto_seen.seen if not s.path.startswith("/mcp")]
    assert {s.path.split("/")[1] for s in media} == {"_links", "_storage"}  # the link, then the 302 target
    assert any("X-Amz-Signature=" in s.query for s in media)  # so the signature checks above had work to do
    for seen in media:
        assert "authorization" not in seen.headers and "cookie" not in seen.headers, seen.path
    assert other_seen.mcp() and all("authorization" not in s.headers or s.query == f"key={query_value}"
                                    for s in other_seen.mcp())
    everywhere_else = media + vapi_seen.seen + other_seen.seen + model_requests
    for seen in everywhere_else:
        assert truto_token not in json.dumps(seen.headers) + seen.raw_path + seen.query, seen.path
        assert url_token not in json.dumps(seen.headers) + seen.raw_path + seen.query, seen.path
    for seen in truto_seen.seen + vapi_seen.seen + other_seen.seen:
        assert openai_key not in json.dumps(seen.headers), seen.path
    for seen in truto_seen.seen + other_seen.seen:
        assert vapi_key not in json.dumps(seen.headers), seen.path
    # what the model was sent: no secret, no presigned signature (call objects carry presigned URLs)
    bodies = json.dumps(qa_model.bodies() + ask_model.bodies()).encode()
    assert leaks(bodies, all_secrets) == []
    assert all(call_id.encode() in bodies for call_id in newest)  # ask really fed call objects to the model
