"""Failures that tell the truth about whose they are: our bugs, malformed servers, unreachable endpoints.

- A bug of ours below the MCP session (injected in the governor) during a write is an internal error
  (exit 1, "report it"), never "the write may have been applied": nothing is reconciled.
- An MCP server answering truncated JSON, JSON that is not JSON-RPC, an HTML page or a garbage event
  stream: one line naming the server and what came back, exit 3, no traceback.
- An endpoint that cannot be reached (connection refused, no such host, TLS) fails on the first
  attempt with the real cause, naming the endpoint and the setting to check; the retry policy's
  decision is asserted, not the wall clock.
"""

from __future__ import annotations

import io
import json
import socket
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

import cli
from agent.ratelimit.governor import Governor
from agent.ratelimit.transport import WRITE_INTENT
from tests.openai_fake import serve_app
from tests.test_ratelimit_e2e import restore_logging
from tests.test_write_reconcile import SQUAD_TOOL, mcp_calls, rest_requests, run_create, squad_body

_FIXTURES = (restore_logging,)  # used by name through ``usefixtures``


# ---------------------------------------------------------------- our own bug during a write
@pytest.mark.usefixtures("restore_logging")
def test_a_bug_in_our_transport_stack_during_a_write_is_an_internal_error(make_sandbox: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = make_sandbox()
    body, matches = squad_body(sandbox)
    acquire = Governor.acquire

    async def broken(self: Governor, max_wait: float | None = None) -> None:
        if WRITE_INTENT.get():
            raise TypeError("unsupported operand type(s) for -: 'NoneType' and 'float'")
        await acquire(self, max_wait)

    monkeypatch.setattr(Governor, "acquire", broken)
    code, envelope, stderr = run_create(sandbox, body, matches)

    assert code == 1
    [error] = envelope["errors"]
    assert error["message"].startswith("internal error: TypeError: unsupported operand")
    assert "report" in error["message"] and "applied" not in error["message"]
    assert "Traceback" not in stderr
    assert mcp_calls(sandbox, SQUAD_TOOL) == 0  # nothing was sent...
    assert rest_requests(sandbox, "GET", "/squad") == []  # ...and nothing reconciled


# ---------------------------------------------------------------- malformed MCP answers
TOOL = {"name": "list_echoes", "description": "List echoes.", "inputSchema": {"type": "object", "properties": {}},
        "annotations": {"readOnlyHint": True}}
# what came back: content type, body, and the characters the error line must show of it
ANSWERS: dict[str, tuple[str, bytes, str]] = {
    "truncated JSON": ("application/json", b'{"jsonrpc": "2.0", "id": 2, "result": {"content": [{"ty',
                       '\'{"jsonrpc": "2.0", "id": 2, "result": {"content": [{"ty\''),
    "JSON that is not JSON-RPC": ("application/json", b'{"hello": "world", "status": "fine"}',
                                  '\'{"hello": "world", "status": "fine"}\''),
    "an HTML page": ("text/html; charset=utf-8", b"<!doctype html><html><body>502 Bad Gateway</body></html>",
                     "'<!doctype html><html><body>502 Bad Gateway</body></html>'"),
    "an event with garbage data": ("text/event-stream", b"event: message\ndata: <<garbage>>\n\n", "'<<garbage>>'"),
    "a stream without events": ("text/event-stream", b"this is not an event stream\nat all\n",
                                "'this is not an event stream\\nat all\\n'"),
}


class MalformedServer:
    """A handshake-era MCP server that answers ``initialize`` and ``tools/list`` properly, then every
    ``tools/call`` with ``answer`` (content type, body), or ``initialize`` itself when ``at_handshake``."""

    def __init__(self) -> None:
        self.answer: tuple[str, bytes] = ANSWERS["truncated JSON"][:2]
        self.at_handshake = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body) if body else {}
        method = request.get("method")
        results = {"initialize": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                                  "serverInfo": {"name": "malformed", "version": "1"}},
                   "tools/list": {"tools": [TOOL]}}
        if "id" not in request:
            status, content_type, payload = 202, "application/json", b""
        elif method == "tools/call" or (method == "initialize" and self.at_handshake):
            status, (content_type, payload) = 200, self.answer
        else:
            status, content_type = 200, "application/json"
            payload = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": results[method]}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode())]})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture(scope="module")
def malformed() -> Iterator[tuple[MalformedServer, str]]:
    """The malformed server on loopback; yields it and its MCP URL."""
    server = MalformedServer()
    with serve_app(server) as origin:
        yield server, f"{origin}/mcp"


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``vapi-agent <argv>`` in-process, no terminal; (exit code, stdout, stderr)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(stderr: str) -> str:
    """The only line of stderr, which must be an ``error:`` line (``ask`` says ``stopped:``)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(("error: ", "stopped: ")), stderr
    return "error: " + lines[0].split(": ", 1)[1]


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("what", list(ANSWERS))
def test_a_malformed_tool_answer_is_one_line_and_exit_3(what: str, malformed: tuple[MalformedServer, str],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    server, url = malformed
    content_type, body, shown = ANSWERS[what]
    server.answer, server.at_handshake = (content_type, body), False
    code, out, err = run_cli(monkeypatch, capsys, "tools", "call", "list_echoes", "--mcp-url", url)

    assert code == 3 and out == ""
    line = one_error_line(err)
    port = url.split(":")[2].split("/")[0]
    assert f"127.0.0.1:{port} tool list_echoes answered" in line
    assert f"({content_type.split(';')[0]}, " in line and shown in line  # what came back, escaped


@pytest.mark.usefixtures("restore_logging")
def test_a_malformed_handshake_is_one_line_and_exit_3(malformed: tuple[MalformedServer, str],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    server, url = malformed
    server.answer, server.at_handshake = ANSWERS["JSON that is not JSON-RPC"][:2], True
    code, _, err = run_cli(monkeypatch, capsys, "doctor", "--mcp-url", url)
    assert code == 3
    line = one_error_line(err)
    assert "answered something that is not JSON-RPC" in line and '"hello"' in line


# ---------------------------------------------------------------- unreachable endpoints fail at once
REFUSED = "http://127.0.0.1:1/mcp"  # nothing listens on port 1


def no_such_host(monkeypatch: pytest.MonkeyPatch, *hosts: str) -> None:
    """DNS answers "no such host" for ``hosts`` (offline, without asking a resolver)."""
    resolve = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in hosts:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# Each case: one error line naming the endpoint, the cause and what to check. A single line also
# proves the retry policy's decision: every retry would first print "... retrying in N s".
@pytest.mark.usefixtures("restore_logging")
def test_a_refused_mcp_url_fails_on_the_first_attempt(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "doctor", "--mcp-url", REFUSED)
    assert code == 3
    assert one_error_line(err) == ("error: cannot reach 127.0.0.1:1: connection refused "
                                   "(check --mcp-url (or VAPI_AGENT_MCP_URL) and that the server runs)")


@pytest.mark.usefixtures("restore_logging")
def test_vapi_api_key_offline_names_the_hosted_server_and_why_it_is_used(monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    no_such_host(monkeypatch, "mcp.vapi.ai")
    monkeypatch.setenv("VAPI_API_KEY", "x")
    code, _, err = run_cli(monkeypatch, capsys, "doctor")
    assert code == 3
    assert one_error_line(err) == (
        "error: cannot reach mcp.vapi.ai: no such host (Vapi's hosted MCP server is used because VAPI_API_KEY "
        "is set: check the network, or pick a server with --mcp-url)")


@pytest.mark.usefixtures("restore_logging")
def test_tls_to_a_plain_http_server_fails_at_once_saying_tls(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    async def plain(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve_app(plain) as origin:
        url = origin.replace("http://", "https://") + "/mcp"
        code, _, err = run_cli(monkeypatch, capsys, "doctor", "--mcp-url", url)
    assert code == 3
    # (uvicorn, serving in this process, logs the TLS hello it could not read)
    line = one_error_line("\n".join(x for x in err.splitlines() if not x.startswith("WARNING:  Invalid HTTP")))
    assert line.startswith(f"error: cannot reach {url.split('/')[2]}: TLS handshake failed (")


@pytest.mark.usefixtures("restore_logging")
def test_ask_with_a_refused_model_endpoint_names_openai_base_url(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code, _, err = run_cli(monkeypatch, capsys, "ask", "--sandbox", "how many assistants?")
    assert code == 3
    assert one_error_line(err) == ("error: cannot reach the model endpoint 127.0.0.1:1: connection refused "
                                   "(check OPENAI_BASE_URL and that the server runs)")


@pytest.mark.usefixtures("restore_logging")
def test_ask_with_the_default_model_endpoint_offline_does_not_blame_openai_base_url(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    no_such_host(monkeypatch, "api.openai.com")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code, _, err = run_cli(monkeypatch, capsys, "ask", "--sandbox", "how many assistants?")
    assert code == 3
    assert one_error_line(err) == (
        "error: cannot reach the model endpoint api.openai.com: no such host (OPENAI_BASE_URL is not set, "
        "so the default OpenAI endpoint is used: check the network)")


# ---------------------------------------------------------------- malformed answers on legacy SSE and stdio
# Those transports carry every answer on one stream, parsed by the SDK: a message that does not parse
# used to be logged by the SDK and dropped, and the request waited out its timeout (120 s).
GARBLED = {"truncated JSON": '{"jsonrpc": "2.0", "id": 3, "result": {"content": [{"ty',
           "JSON that is not JSON-RPC": '{"hello": "world"}',
           "garbage": "<<garbage>>"}


@pytest.fixture(scope="module")
def garbling_sse() -> Iterator[tuple[dict[str, str], str]]:
    """A legacy HTTP+SSE server (the SDK's ``sse_app``) whose event stream carries ``garble["data"]``
    instead of each tool result; yields that dict and the ``/sse`` URL."""
    from tests.mcp_support import quiet_mcp_server

    server = quiet_mcp_server("garbling")

    @server.tool()
    def get_echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    app = server.sse_app()
    garble = {"data": GARBLED["garbage"]}

    async def garbling(scope: Any, receive: Any, send: Any) -> None:
        async def send_garbled(message: Any) -> None:
            if message["type"] == "http.response.body" and b'"content"' in message.get("body", b""):
                message = {**message, "body": f"event: message\r\ndata: {garble['data']}\r\n\r\n".encode()}
            await send(message)

        await app(scope, receive, send_garbled if scope["type"] == "http" and scope["method"] == "GET" else send)

    with serve_app(garbling) as origin:
        yield garble, f"{origin}/sse"


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("what", list(GARBLED))
def test_a_malformed_event_on_a_legacy_sse_stream_is_one_line_and_exit_3(
        what: str, garbling_sse: tuple[dict[str, str], str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    garble, url = garbling_sse
    garble["data"] = GARBLED[what]
    code, out, err = run_cli(monkeypatch, capsys, "tools", "call", "get_echo", "--args", '{"text": "hi"}',
                             "--mcp-url", url)
    assert code == 3 and out == ""
    line = one_error_line(err)
    assert "tool get_echo answered something that is not JSON-RPC (an event, " in line
    assert ascii(GARBLED[what]) in line


# A stdio MCP server (handshake-era, one JSON message a line) whose tools/call answers are: "log"
# a log line on stdout, then the proper answer; "truncated" a cut JSON-RPC answer; "garbage" a
# line of text and nothing else.
LINE_SERVER = textwrap.dedent('''
    import json, sys
    mode = sys.argv[1]
    tool = {"name": "get_echo", "description": "Echo.", "inputSchema": {"type": "object", "properties": {}}}
    def write(line):
        sys.stdout.write(line + "\\n")
        sys.stdout.flush()
    for line in sys.stdin:
        request = json.loads(line)
        if "id" not in request:
            continue
        answer = {"jsonrpc": "2.0", "id": request["id"], "result": {
            "initialize": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                           "serverInfo": {"name": "lines", "version": "1"}},
            "tools/list": {"tools": [tool]},
            "tools/call": {"content": [{"type": "text", "text": "echo"}]}}[request["method"]]}
        if request["method"] == "tools/call":
            if mode == "truncated":
                write(json.dumps(answer)[:40])
                continue
            write("Calling echo...")  # a server logging on stdout
            if mode == "garbage":
                continue
        write(json.dumps(answer))
''')


def line_server(tmp_path: Any, mode: str) -> Any:
    """The ``ServerSpec`` of ``LINE_SERVER`` in ``mode``."""
    import sys

    from agent.mcp.servers import ServerSpec

    script = tmp_path / "line_server.py"
    script.write_text(LINE_SERVER)
    return ServerSpec(name="lines", transport="stdio", command=sys.executable, args=[str(script), mode])


async def test_a_stdio_server_logging_on_stdout_still_works_and_a_cut_answer_fails_at_once(tmp_path: Any) -> None:
    from agent.errors import UpstreamError
    from agent.mcp.connection import Connection

    async with Connection(line_server(tmp_path, "log"), tool_timeout=60) as conn:
        assert (await conn.call("get_echo", {})).text == "echo"  # the stray line was ignored

    async with Connection(line_server(tmp_path, "truncated"), tool_timeout=60) as conn:
        with pytest.raises(UpstreamError) as cut:
            await conn.call("get_echo", {})  # at once, long before the timeout
    message = str(cut.value)
    assert message.startswith("lines (") and "\n" not in message
    assert "tool get_echo answered something that is not JSON-RPC (a line, 40 bytes: '{\"jsonrpc\": " in message


async def test_a_stdio_server_that_only_logs_times_out_naming_what_it_wrote(tmp_path: Any) -> None:
    from agent.errors import UpstreamError
    from agent.mcp.connection import Connection

    async with Connection(line_server(tmp_path, "garbage"), tool_timeout=1.0) as conn:
        with pytest.raises(UpstreamError) as timed_out:
            await conn.call("get_echo", {})
    assert "tool get_echo: no answer within its timeout; the server wrote something that is not JSON-RPC " \
           "(a line, 15 bytes: 'Calling echo...')" in str(timed_out.value)
