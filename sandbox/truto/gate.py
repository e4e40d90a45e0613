"""HTTP-level Truto behaviour on the MCP path: rate limit, token expiry, second factor, request log,
and (a test knob, not Truto's) MCP sessions that end after N requests.

All of it is one pure-ASGI middleware (``TrutoGate``) in front of the Streamable HTTP app, because
these are properties of the HTTP exchange, not of JSON-RPC: a 429 is the status of the MCP POST
itself (Truto passes 429s through with ``ratelimit-*`` headers, reference/mcp-servers.md §2.6),
and an expired or unauthenticated token never reaches the MCP server. Error bodies are Truto's
envelope ``{statusCode, error, message, ...}``, not JSON-RPC errors.
"""

from __future__ import annotations

import hmac
import json
import math
import secrets
import threading
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.core.requestlog import LogEntry
from sandbox.world.config import RateLimit

if TYPE_CHECKING:
    from sandbox.core import SandboxCore

REDACTED_MCP_PATH = "/mcp/***"


def reason(status: int) -> str:
    """The HTTP reason phrase Truto puts in ``error`` (``Too Many Requests`` for 429)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def envelope(status: int, message: str, *, remote: bool = False, raw: Any = None) -> dict[str, Any]:
    """Truto's error envelope. ``remote`` marks provider-originated errors (``raw_response`` is the body)."""
    body: dict[str, Any] = {"statusCode": status, "error": reason(status), "message": message}
    if remote:
        body["truto_is_remote_error"] = True
        if raw is not None:
            body["raw_response"] = raw
    return body


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer a whole HTTP response with a JSON body."""
    payload = json.dumps(body).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


# ---------------------------------------------------------------- rate limit
@dataclass
class RateDecision:
    """Outcome of counting one request: allowed or not, plus the three ``ratelimit-*`` header values."""

    allowed: bool
    limit: int
    window: float
    remaining: int
    reset: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``ratelimit-limit: N;w=W``, ``ratelimit-remaining``, ``ratelimit-reset`` (whole seconds)."""
        window = f"{self.window:g}"
        return [
            (b"ratelimit-limit", f"{self.limit};w={window}".encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset).encode()),
        ]


class FixedWindowLimiter:
    """``limit`` requests per ``window`` seconds; a window opens with the first request after the last.

    Thread-safe: the same sandbox can be served by uvicorn on a thread and used in-process.
    """

    def __init__(self, rate: RateLimit) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._window_end = 0.0
        self._count = 0

    def _roll(self, now: float) -> None:
        if now >= self._window_end:
            self._window_end = now + self.rate.window
            self._count = 0

    def _decision(self, now: float, allowed: bool) -> RateDecision:
        # Rounded UP: a client that sleeps the advertised seconds must land in the next window.
        reset = max(1, math.ceil(self._window_end - now))
        remaining = max(0, self.rate.limit - self._count)
        return RateDecision(allowed, self.rate.limit, self.rate.window, remaining, reset)

    def hit(self, now: float) -> RateDecision:
        """Count one request at ``now`` (real epoch seconds) and decide."""
        with self._lock:
            self._roll(now)
            self._count += 1
            return self._decision(now, self._count <= self.rate.limit)

    def peek(self, now: float) -> RateDecision:
        """The header values at ``now`` without counting (for non-POST requests)."""
        with self._lock:
            if now >= self._window_end:
                return RateDecision(True, self.rate.limit, self.rate.window, self.rate.limit,
                                    max(1, math.ceil(self.rate.window)))
            return self._decision(now, True)


# ---------------------------------------------------------------- sessions (SandboxConfig.session_requests)
SESSION_HEADER = b"mcp-session-id"


class SessionTable:
    """``Mcp-Session-Id`` sessions that end after ``limit`` requests each.

    The MCP app behind the gate is stateless, so the sessions are the gate's own: an ``initialize``
    POST opens one (its answer carries the id) and every later request must carry a live id. The
    request after the ``limit``-th ends the session: as the MCP spec says of a session the server has
    terminated, it and every later request with that id get HTTP 404 and are not processed, so the
    client initializes a new session and sends them again. Thread-safe, like the limiter.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("session_requests must be at least 1")
        self.limit = limit
        self.ended = 0  # sessions ended by the limit (not by the client's DELETE)
        self._lock = threading.Lock()
        self._served: dict[str, int] = {}

    def open(self) -> str:
        """A new session id (visible ASCII, as the spec requires)."""
        session_id = secrets.token_hex(16)
        with self._lock:
            self._served[session_id] = 0
        return session_id

    def admit(self, session_id: str) -> bool:
        """Count one request of ``session_id``; False when the session is unknown or has ended."""
        with self._lock:
            served = self._served.get(session_id)
            if served is None:
                return False
            if served >= self.limit:
                del self._served[session_id]
                self.ended += 1
                return False
            self._served[session_id] = served + 1
            return True

    def live(self, session_id: str) -> bool:
        """Whether ``session_id`` is open (without counting a request)."""
        with self._lock:
            return session_id in self._served

    def close(self, session_id: str) -> bool:
        """End a session at the client's request (DELETE); False when it was not open."""
        with self._lock:
            return self._served.pop(session_id, None) is not None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _session_not_found(rpc_id: Any) -> dict[str, Any]:
    # The mcp SDK's server answers an unknown session the same way (a JSON-RPC error with HTTP 404).
    return {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": -32600, "message": "Session not found"}}


# ---------------------------------------------------------------- JSON-RPC peek (for the log)
@dataclass
class RpcInfo:
    """What the request log records about one MCP POST body."""

    method: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    id: Any = None


def parse_rpc(body: bytes) -> RpcInfo:
    """Read method / tool / arguments from a JSON-RPC body; tolerant of garbage and batches."""
    try:
        data = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return RpcInfo()
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return RpcInfo()
    raw_method, raw_params = data.get("method"), data.get("params")
    method = raw_method if isinstance(raw_method, str) else None
    params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
    rpc_id = data.get("id") if isinstance(data.get("id"), (str, int)) else None
    if method != "tools/call":
        return RpcInfo(method, id=rpc_id)
    tool = params.get("name") if isinstance(params.get("name"), str) else None
    arguments = params.get("arguments") if isinstance(params.get("arguments"), dict) else None
    if tool == "call_tool" and arguments is not None and isinstance(arguments.get("tool_name"), str):
        # Discovery exposure: log the tool that actually runs, with its own arguments.
        inner = arguments.get("arguments")
        return RpcInfo(method, arguments["tool_name"], inner if isinstance(inner, dict) else None, rpc_id)
    return RpcInfo(method, tool, arguments, rpc_id)


# ---------------------------------------------------------------- the gate
class TrutoGate:
    """Pure-ASGI middleware for ``/mcp/<token>``: limit, expiry, second factor, then the MCP app; logs all.

    Order per request: count it against the rate limit (POSTs only; 429 when over), refuse an
    expired token (404, as Truto deletes expired tokens), refuse a missing/wrong second factor
    (401), with ``session_requests`` set check the session (``SessionTable``), else replay the
    buffered body into ``app``. The three ``ratelimit-*`` headers go on every response of the path.
    Every request is appended to ``sandbox.log`` with the path redacted to ``/mcp/***`` (and the
    first characters of its session id in ``extra["session"]``).
    """

    def __init__(self, app: ASGIApp, sandbox: SandboxCore, *, started_at: float,
                 limiter: FixedWindowLimiter | None = None, log_extra: dict[str, Any] | None = None) -> None:
        self.app = app
        self.sandbox = sandbox
        self.started_at = started_at
        rate = sandbox.config.rate_limit
        # ``limiter``: a shared one (every MCP server minted for one Truto account counts against the
        # account's limit); ``log_extra``: tags added to each log entry (the minted server's id).
        self.limiter = limiter or (FixedWindowLimiter(rate) if rate else None)
        self.log_extra = dict(log_extra or {})
        limit = sandbox.config.session_requests
        self.sessions = SessionTable(limit) if limit is not None else None

    def expired(self, now: float) -> bool:
        """True once ``expires_in`` seconds have passed since the sandbox started."""
        expires_in = self.sandbox.config.expires_in
        return expires_in is not None and now - self.started_at >= expires_in

    def _authorised(self, scope: Scope) -> bool:
        expected = self.sandbox.config.require_api_token
        if expected is None:
            return True
        supplied = ""
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                supplied = value.decode("latin-1")
        scheme, _, token = supplied.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request on the MCP path."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        clock = self.sandbox.clock
        t_start = clock.real()
        body = await _read_body(receive)
        info = parse_rpc(body) if scope["method"] == "POST" else RpcInfo()
        status_box: list[int] = [0]
        extra_headers: list[tuple[bytes, bytes]] = []
        session_id = _header(scope, SESSION_HEADER)

        logged = False

        def log_entry() -> None:
            nonlocal logged
            if logged:
                return
            logged = True
            self.sandbox.log.add(
                LogEntry(
                    t_start=t_start,
                    t_end=clock.real(),
                    transport="mcp",
                    method=scope["method"],
                    path=REDACTED_MCP_PATH,
                    status=status_box[0],
                    rpc_method=info.method,
                    tool=info.tool,
                    arguments=info.arguments,
                    extra={**self.log_extra, **({"session": session_id[:8]} if session_id else {})},
                )
            )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *extra_headers]}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Log before the last byte leaves: a client that reads the log right after its answer
                # must find the request there.
                log_entry()
            await send(message)

        try:
            if self.limiter is not None:
                decision = (
                    self.limiter.hit(t_start) if scope["method"] == "POST" else self.limiter.peek(t_start)
                )
                extra_headers.extend(decision.headers())
                if not decision.allowed:
                    message = f"Rate limit exceeded: {decision.limit} requests per {decision.window:g} s."
                    # A passed-through 429 in Truto's shape: the envelope marks it remote.
                    body_429 = envelope(429, message, remote=True)
                    await send_json(send_with_headers, 429, body_429)
                    return
            if self.expired(t_start):
                await send_json(send_with_headers, 404, envelope(404, "MCP server not found or expired."))
                return
            if not self._authorised(scope):
                text = "This MCP server requires an API token: send Authorization: Bearer <api token>."
                await send_json(send_with_headers, 401, envelope(401, text))
                return
            if self.sessions is not None:
                answered = await self._session_gate(scope, info, session_id, extra_headers, send_with_headers)
                if answered:
                    return
            await self.app(scope, _replay(body, receive), send_with_headers)
        finally:
            log_entry()

    async def _session_gate(self, scope: Scope, info: RpcInfo, session_id: str | None,
                            extra_headers: list[tuple[bytes, bytes]], send: Send) -> bool:
        """Apply ``SessionTable``; True when the request was answered here (not for the MCP app)."""
        assert self.sessions is not None
        method = scope["method"]
        if session_id is None:
            if method == "POST" and info.method == "initialize":
                extra_headers.append((SESSION_HEADER, self.sessions.open().encode()))
                return False
            await send_json(send, 400, {"jsonrpc": "2.0", "id": info.id,
                                        "error": {"code": -32600, "message": "Bad Request: Missing session ID"}})
            return True
        if method == "DELETE":
            closed = self.sessions.close(session_id)
            if closed:
                await send({"type": "http.response.start", "status": 204, "headers": []})
                await send({"type": "http.response.body", "body": b""})
            else:
                await send_json(send, 404, _session_not_found(None))
            return True
        if method == "GET":
            # No server-to-client stream here: 405, as the spec allows (404 once the session ended).
            if self.sessions.live(session_id):
                await send_json(send, 405, envelope(405, "This server offers no GET stream."))
            else:
                await send_json(send, 404, _session_not_found(None))
            return True
        if not self.sessions.admit(session_id):
            await send_json(send, 404, _session_not_found(info.id))
            return True
        return False


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the buffered body once, then defers to the real one (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
