"""Serving: HTTP-level Truto behaviour (429 + headers, expiry, second factor, token paths), the
background ServerThread, the foreground ``python -m sandbox serve`` (redacted access log, clean
Ctrl-C), stdio, and the flag → SandboxConfig mapping."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import mcp
import pytest
from mcp import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from sandbox.app import Sandbox
from sandbox.serve import ServeOptions, redact_path
from sandbox.world.config import RateLimit, SandboxConfig

ROOT = Path(__file__).resolve().parents[1]
JSON_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
FEW = 40  # calls in the seeded workspace: these tests need few, and smaller builds faster
RATE_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def rpc(method: str, params: dict[str, Any] | None = None, request_id: int = 1) -> dict[str, Any]:
    """A JSON-RPC request in the handshake era (what Truto's own clients send: one POST, one body)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


async def post(http: httpx2.AsyncClient, url: str, method: str, params: dict[str, Any] | None = None,
               **headers: str) -> httpx2.Response:
    """One MCP POST (legacy stateless form: protocol version header, no session)."""
    return await http.post(url, json=rpc(method, params),
                           headers={**JSON_HEADERS, "MCP-Protocol-Version": "2025-06-18", **headers})


# ---------------------------------------------------------------- rate limit
async def test_rate_limit_answers_429_with_headers_then_recovers(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=FEW, rate_limit=RateLimit(3, 1))
    async with httpx2.AsyncClient(timeout=30) as http:
        await asyncio.sleep(0)  # windows start at the first request, not at startup
        answers = [await post(http, sandbox.mcp_url, "tools/list") for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        for response in answers:
            assert all(h in response.headers for h in RATE_HEADERS), response.headers
            assert response.headers["ratelimit-limit"] == "3;w=1"
        assert [r.headers["ratelimit-remaining"] for r in answers] == ["2", "1", "0", "0"]
        limited = answers[-1]
        assert limited.headers["content-type"] == "application/json"
        assert limited.json() == {"statusCode": 429, "error": "Too Many Requests",
                                  "message": limited.json()["message"], "truto_is_remote_error": True}
        reset = int(limited.headers["ratelimit-reset"])
        assert reset == 1  # whole seconds, rounded up
        await asyncio.sleep(reset)
        call = {"name": "list_all_vapi_calls", "arguments": {"limit": 1}}
        again = await post(http, sandbox.mcp_url, "tools/call", call)
        assert again.status_code == 200 and again.headers["ratelimit-remaining"] == "2"
    entries = sandbox.log.entries("mcp")
    assert [e.status for e in entries] == [200, 200, 200, 429, 200]
    assert entries[-1].tool == "list_all_vapi_calls" and entries[-1].arguments == {"limit": 1}
    assert all(e.t_start <= e.t_end for e in entries)


async def test_rate_limit_reset_is_rounded_up(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=FEW, rate_limit=RateLimit(1, 2.5))
    async with httpx2.AsyncClient(timeout=30) as http:
        first = await post(http, sandbox.mcp_url, "tools/list")
        second = await post(http, sandbox.mcp_url, "tools/list")
    assert first.status_code == 200 and second.status_code == 429
    assert second.headers["ratelimit-limit"] == "1;w=2.5"
    assert second.headers["ratelimit-reset"] == "3"  # 2.5 s minus a few ms, rounded up


async def test_mcp_client_sees_429_as_an_error_and_the_session_survives(
    serve_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = serve_sandbox(calls=FEW, rate_limit=RateLimit(3, 1))
    statuses: list[int] = []

    async def record(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    http = httpx2.AsyncClient(event_hooks={"response": [record]})
    async with http, mcp.Client(streamable_http_client(sandbox.mcp_url, http_client=http)) as client:
        await client.list_tools()
        with pytest.raises(mcp.MCPError):
            for _ in range(4):
                await client.call_tool("list_all_vapi_assistants", {"limit": 1})
        assert 429 in statuses
        await asyncio.sleep(1.05)
        assert not (await client.call_tool("list_all_vapi_assistants", {"limit": 1})).is_error


# ---------------------------------------------------------------- token, expiry, second factor
async def test_wrong_token_is_a_404_envelope_and_the_token_is_never_logged(
    serve_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = serve_sandbox(calls=FEW, token="sentinel-token-1234567890")
    async with httpx2.AsyncClient(timeout=30) as http:
        wrong = await post(http, f"{sandbox.public_url}/mcp/not-the-token", "tools/list")
        bare = await post(http, f"{sandbox.public_url}/mcp", "tools/list")
        slash = await post(http, sandbox.mcp_url + "/", "tools/list")
    assert wrong.status_code == 404 and wrong.json()["statusCode"] == 404 and wrong.json()["error"] == "Not Found"
    assert bare.status_code == 404
    assert slash.status_code == 200 and slash.json()["result"]["tools"]
    dump = json.dumps([e.to_dict() for e in sandbox.log.entries()])
    assert "sentinel-token" not in dump and "/mcp/***" in dump


async def test_token_expires(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=FEW, expires_in=0.6)
    async with httpx2.AsyncClient(timeout=30) as http:
        assert (await post(http, sandbox.mcp_url, "tools/list")).status_code == 200
        await asyncio.sleep(0.7)
        dead = await post(http, sandbox.mcp_url, "tools/list")
    assert dead.status_code == 404 and dead.json()["statusCode"] == 404
    assert "truto_is_remote_error" not in dead.json()


async def test_second_factor(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=FEW, require_api_token="truto-api-token")
    async with httpx2.AsyncClient(timeout=30) as http:
        missing = await post(http, sandbox.mcp_url, "tools/list")
        wrong = await post(http, sandbox.mcp_url, "tools/list", Authorization="Bearer nope")
        right = await post(http, sandbox.mcp_url, "tools/list", Authorization="Bearer truto-api-token")
    assert missing.status_code == 401 and missing.json()["error"] == "Unauthorized"
    assert wrong.status_code == 401
    assert right.status_code == 200
    http = httpx2.AsyncClient(headers={"Authorization": "Bearer truto-api-token"})
    async with http, mcp.Client(streamable_http_client(sandbox.mcp_url, http_client=http)) as client:
        page = await client.call_tool("list_all_vapi_assistants", {"limit": 1})
        assert not page.is_error


async def test_dns_rebinding_protection(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=FEW)
    async with httpx2.AsyncClient(timeout=30) as http:
        evil = await post(http, sandbox.mcp_url, "tools/list", Host="evil.example:80")
    assert evil.status_code == 421  # mcp answers "Invalid Host header"


# ---------------------------------------------------------------- ServerThread
async def test_server_thread_sets_public_url_and_serves_both_apis(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=FEW)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.public_url)
    async with httpx2.AsyncClient(base_url=sandbox.public_url) as http:
        rest = await http.get("/assistant", headers={"Authorization": f"Bearer {sandbox.config.api_key}"})
        assert rest.status_code == 200 and isinstance(rest.json(), list)
    async with mcp.Client(streamable_http_client(sandbox.mcp_url)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "list_all_vapi_calls" in names


def test_server_thread_stop_is_clean_and_idempotent(make_sandbox: Callable[..., Sandbox]) -> None:
    from sandbox.serve import ServerThread

    sandbox = make_sandbox(calls=20)
    with ServerThread(sandbox) as thread:
        port = thread.port
        assert httpx2.get(f"{sandbox.public_url}/assistant", headers={"Authorization": "Bearer sandbox-key"}).is_success
    thread.stop()
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"http://127.0.0.1:{port}/assistant", timeout=2)


# ---------------------------------------------------------------- stdio
async def test_stdio_round_trip() -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "sandbox", "stdio", "--calls", "40", "--page-cap", "5"], cwd=str(ROOT)
    )
    async with mcp.Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "list_all_vapi_calls" in names
        result = await client.call_tool("list_all_vapi_calls", {"limit": 50})
        page = json.loads(result.content[0].text)
        assert len(page["result"]) == 5 and page["next_cursor"]


# ---------------------------------------------------------------- foreground serve
def test_serve_prints_the_url_redacts_the_access_log_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    token = "sentinel-serve-token-987654"
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "serve", "--port", "0", "--calls", "30", "--token", token],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert proc.stdout is not None
    banner: list[str] = []
    try:
        url = None
        while url is None:
            line = proc.stdout.readline()  # the banner arrives within seconds; EOF ends the loop
            if not line:
                break
            banner.append(line)
            if match := re.search(r"(http://127\.0\.0\.1:\d+/mcp/\S+)", line):
                url = match.group(1)
        assert url is not None, "".join(banner) + stderr_path.read_text()
        base = url.split("/mcp/")[0]
        # an MCP request, a storage URL with a signature, and a REST call all hit the access log
        headers = {**JSON_HEADERS, "MCP-Protocol-Version": "2025-06-18"}
        assert httpx2.post(url, json=rpc("tools/list"), headers=headers).status_code == 200
        httpx2.get(f"{base}/_storage/x/mono.wav?X-Amz-Signature=secretsig")
        httpx2.get(f"{base}/assistant", headers={"Authorization": "Bearer sandbox-key"})
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        banner.append(proc.stdout.read())
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    out, log = "".join(banner), stderr_path.read_text()
    assert proc.returncode == 0, out + log
    assert "Traceback" not in log
    assert out.count(token) == 1 and "Press Ctrl-C" in out and "Sandbox stopped." in out
    assert token not in log and "secretsig" not in log
    assert '"POST /mcp/*** HTTP/1.1" 200' in log and "/_storage/x/mono.wav HTTP" in log and "/assistant" in log


# ---------------------------------------------------------------- units
def test_redact_path() -> None:
    token = "tok-abc123-xyz"
    assert redact_path(f"/mcp/{token}", token) == "/mcp/***"
    assert redact_path(f"/mcp/{token}/", token) == "/mcp/***/"
    assert redact_path("/mcp/other", token) == "/mcp/***"
    assert redact_path("/_storage/c/mono.wav?X-Amz-Signature=s", token) == "/_storage/c/mono.wav"
    assert redact_path(f"/call?x={token}", token) == "/call?x=***"
    assert redact_path("/call?limit=5", token) == "/call?limit=5"


def test_serve_options_map_every_flag() -> None:
    config = ServeOptions(
        calls=10, seed=3, anchor="2025-06-01T00:00:00Z", api_key="k", token="t", page_cap=7,
        rate_limit="10/2", api_rate_limit="5/1", methods="read,custom", tags=["calls", "assistants"],
        tool_exposure="discovery", expires_in=60, require_api_token="T", recording_shape="embedded",
        latency=0.1, error_rate=0.2, write_fault="timeout", write_fault_count=2, expire_first=True,
        drop_sse=True, time_scale=60, link_ttl=30,
    ).to_config()
    assert config.calls == 10 and config.seed == 3 and config.anchor is not None and config.anchor.year == 2025
    assert config.rate_limit == RateLimit(10, 2) and config.api_rate_limit == RateLimit(5, 1)
    assert config.methods == ("read", "custom") and config.tags == ("calls", "assistants")
    assert (config.tool_exposure, config.recording_shape, config.write_fault) == ("discovery", "embedded", "timeout")
    assert config.expire_first and config.drop_sse and config.page_cap == 7 and config.link_ttl == 30
    assert ServeOptions().to_config().calls == SandboxConfig().calls
    for bad in (ServeOptions(rate_limit="fast"), ServeOptions(tool_exposure="some"), ServeOptions(page_cap=0),
                ServeOptions(error_rate=2.0), ServeOptions(anchor="yesterday")):
        with pytest.raises(ValueError):
            bad.to_config()
