"""Issue 13 item 10: a server whose MCP answer never ends cannot grow the client's memory.

A loopback HTTP server speaks just enough MCP (initialize, then ``tools/list``) and answers
``tools/list`` with a body that never ends, as JSON or as one SSE event. The client must stop
reading at ``max_message_bytes`` (default 64 MiB) and fail with exit 3 and one line; the server
counts what it managed to send, which bounds what the client could have held.
"""

from __future__ import annotations

import json
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import cli
from agent.mcp.limits import DEFAULT_MAX_MESSAGE_BYTES, describe_size

SAFETY_STOP = 256 * 1024 * 1024  # without a cap the client would take this much, then fail to parse it
CHUNK = b"a" * 65536


class EndlessMCP(ThreadingHTTPServer):
    """``mode``: json | sse (endless answers) or big-json | big-sse (a finite answer of ``big`` bytes)."""

    daemon_threads = True

    def __init__(self, mode: str, big: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode, self.big, self.sent = mode, big, 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/mcp"


class _Handler(BaseHTTPRequestHandler):
    server: EndlessMCP
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_DELETE(self) -> None:
        self._answer(200, b"")

    def do_GET(self) -> None:
        self._answer(405, b"")

    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        method, rpc_id = message.get("method"), message.get("id")
        if rpc_id is None:
            self._answer(202, b"")
        elif method == "initialize":
            result = {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                      "serverInfo": {"name": "endless", "version": "1"}}
            self._answer(200, json.dumps({"jsonrpc": "2.0", "id": rpc_id, "result": result}).encode(),
                         "application/json")
        elif method == "tools/list" and self.server.mode.startswith("big"):
            tool = {"name": "list_things", "description": "x" * self.server.big, "inputSchema": {"type": "object"}}
            body = json.dumps({"jsonrpc": "2.0", "id": rpc_id, "result": {"tools": [tool]}})
            if self.server.mode == "big-sse":
                self._answer(200, f"event: message\ndata: {body}\n\n".encode(), "text/event-stream")
            else:
                self._answer(200, body.encode(), "application/json")
        else:
            self._endless(rpc_id)

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _endless(self, rpc_id: Any) -> None:
        sse = self.server.mode == "sse"
        self.send_response(200)
        self.send_header("content-type", "text/event-stream" if sse else "application/json")
        self.send_header("connection", "close")  # the body ends when the connection does
        self.end_headers()
        start = f'{{"jsonrpc":"2.0","id":{json.dumps(rpc_id)},"result":{{"tools":[],"x":"'
        try:
            self.wfile.write(("event: message\ndata: " + start if sse else start).encode())
            while self.server.sent < SAFETY_STOP:
                self.wfile.write(CHUNK)
                self.server.sent += len(CHUNK)
        except OSError:  # the client hung up: what we expect
            pass
        self.close_connection = True


@pytest.fixture
def endless() -> Iterator[Any]:
    servers: list[EndlessMCP] = []

    def start(mode: str, big: int = 0) -> EndlessMCP:
        server = EndlessMCP(mode, big)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize("mode", ["json", "sse"])
def test_endless_answer_is_cut_at_the_configured_cap(endless: Any, mode: str, capfd: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    server = endless(mode)
    monkeypatch.setenv("VAPI_AGENT_MAX_MESSAGE_BYTES", str(1024 * 1024))
    code = cli.main(["tools", "list", "--mcp-url", server.url])
    out, err = capfd.readouterr()
    assert code == 3, err
    line = _one_line(err)
    assert "larger than the 1 MiB limit" in line and "VAPI_AGENT_MAX_MESSAGE_BYTES" in line
    assert out == ""
    # What the client could hold is bounded by what the server could send before it hung up
    # (the cap plus socket buffers), far below the server's own safety stop.
    assert server.sent < 16 * 1024 * 1024


@pytest.mark.parametrize("mode", ["json", "sse"])
def test_memory_stays_bounded_while_an_answer_never_ends(endless: Any, mode: str, capfd: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAPI_AGENT_MAX_MESSAGE_BYTES", str(1024 * 1024))
    warm = endless("big-json", big=1000)  # first-time imports are not the answer's memory
    assert cli.main(["--json", "tools", "list", "--mcp-url", warm.url]) == 0
    server = endless(mode)
    tracemalloc.start()
    try:
        code = cli.main(["tools", "list", "--mcp-url", server.url])
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    capfd.readouterr()
    # Python's own allocations while the client read an endless answer: about twice the 1 MiB cap
    # (measured ~2.3 MiB); without the cap they would reach the server's 256 MiB safety stop.
    assert code == 3 and peak < 16 * 1024 * 1024, peak


def test_default_cap_is_64_mib(endless: Any, capfd: pytest.CaptureFixture[str]) -> None:
    server = endless("json")
    code = cli.main(["tools", "list", "--mcp-url", server.url])
    _out, err = capfd.readouterr()
    assert code == 3 and "larger than the 64 MiB limit" in _one_line(err)
    assert DEFAULT_MAX_MESSAGE_BYTES - 16 * 1024 * 1024 < server.sent < 96 * 1024 * 1024


@pytest.mark.parametrize("mode", ["big-json", "big-sse"])
def test_answers_under_the_cap_pass_whole(endless: Any, mode: str, capfd: pytest.CaptureFixture[str]) -> None:
    # 3 MiB in one SSE event: over the mcp SDK's own 1 MiB default, under ours.
    server = endless(mode, big=3 * 1024 * 1024)
    code = cli.main(["--json", "tools", "list", "--mcp-url", server.url])
    out, err = capfd.readouterr()
    assert code == 0, err
    assert [t["name"] for t in json.loads(out)["result"]["tools"]] == ["list_things"]


def test_describe_size() -> None:
    assert describe_size(64 * 1024 * 1024) == "64 MiB"
    assert describe_size(1536) == "1,536 bytes"
    assert describe_size(2048) == "2 KiB"
