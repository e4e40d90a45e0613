"""A cap on the size of one MCP message received over HTTP (``max_message_bytes``, default 64 MiB).

A broken or hostile server can answer with a body that never ends; the mcp SDK reads a JSON answer
whole (``response.aread()``), so without a cap the client grows until the machine runs out of memory.
``MessageSizeCap`` sits directly above the network transport (below retries and rate-limit capture,
so error bodies that those layers buffer are capped too) and counts *decoded* bytes (a gzip bomb
counts at its real size):

- a JSON (or any non-SSE) answer is read here, at most ``max_bytes``; past that the connection is
  closed and the request gets a JSON-RPC error answer with code ``MESSAGE_TOO_LARGE`` instead, so
  the SDK fails that one call (exit 3) and the session survives;
- an SSE stream is passed on one whole event at a time; an event growing past ``max_bytes`` is
  dropped, the stream closed, and the request's JSON-RPC error is sent as the last event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2

from agent.ratelimit.policy import HTTP_TOO_LARGE as MESSAGE_TOO_LARGE

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_DROP_ON_REBUILD = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_EVENT_ENDS = (b"\r\n\r\n", b"\n\n", b"\r\r")
_NO_ID = object()


def describe_size(size: int) -> str:
    """``67108864`` -> ``64 MiB``; sizes that are not whole MiB/KiB stay in bytes."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size:,} bytes"


class MessageSizeCap(httpx2.AsyncBaseTransport):
    """Wraps a transport so that no single MCP message above ``max_bytes`` is ever held in memory."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.inner = inner
        self.max_bytes = max_bytes

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Forward ``request``; return its answer with the body bounded (see the module docstring)."""
        if request.method.upper() == "POST":
            await request.aread()  # its JSON-RPC id names the request in an error answer
        response = await self.inner.handle_async_request(request)
        response.request = request
        content_type = response.headers.get("content-type", "").lower()
        if content_type.startswith("text/event-stream"):
            stream = _CappedEvents(response, self.max_bytes, _too_large_event(request, self.max_bytes))
            return _rebuild(response, request, stream=stream)
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    return _too_large_answer(request, self.max_bytes)
        finally:
            await response.aclose()
        return _rebuild(response, request, content=bytes(body))

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()


class _CappedEvents(httpx2.AsyncByteStream):
    """Whole SSE events from ``response``; an event over the cap ends the stream with ``last``."""

    def __init__(self, response: httpx2.Response, max_bytes: int, last: bytes | None) -> None:
        self._response = response
        self._max_bytes = max_bytes
        self._last = last

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pending = bytearray()
        async for chunk in self._response.aiter_bytes():
            searched_from = max(0, len(pending) - 3)
            pending += chunk
            end = _last_event_end(pending, searched_from)
            if end:
                yield bytes(pending[:end])
                del pending[:end]
            if len(pending) > self._max_bytes:
                await self._response.aclose()
                if self._last is not None:
                    yield self._last
                return
        if pending:
            yield bytes(pending)  # an unterminated event: the SSE parser discards it

    async def aclose(self) -> None:
        await self._response.aclose()


def _last_event_end(buffer: bytearray, start: int) -> int:
    """Offset just past the last blank line (end of an SSE event) at or after ``start``, else 0."""
    ends = [at + len(mark) for mark in _EVENT_ENDS if (at := buffer.rfind(mark, start)) >= 0]
    return max(ends, default=0)


def _message(request: httpx2.Request, max_bytes: int) -> str:
    host = request.url.host + (f":{request.url.port}" if request.url.port else "")
    return (f"{host} sent an MCP message larger than the {describe_size(max_bytes)} limit; it was discarded "
            "(raise max_message_bytes / VAPI_AGENT_MAX_MESSAGE_BYTES only for a server you trust)")


def _error_payload(request: httpx2.Request, rpc_id: Any, max_bytes: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rpc_id,
            "error": {"code": MESSAGE_TOO_LARGE, "message": _message(request, max_bytes),
                      "data": {"kind": "too_large", "limit": max_bytes, "upstream": request.url.host}}}


def _too_large_answer(request: httpx2.Request, max_bytes: int) -> httpx2.Response:
    rpc_id = _request_id(request)
    if rpc_id is _NO_ID:  # not a JSON-RPC request (a GET stream, a DELETE): nothing to answer in-band
        return httpx2.Response(413, json={"message": _message(request, max_bytes)}, request=request)
    return httpx2.Response(200, json=_error_payload(request, rpc_id, max_bytes), request=request)


def _too_large_event(request: httpx2.Request, max_bytes: int) -> bytes | None:
    rpc_id = _request_id(request)
    if rpc_id is _NO_ID:
        return None
    data = json.dumps(_error_payload(request, rpc_id, max_bytes))
    return f"event: message\ndata: {data}\n\n".encode()


def _request_id(request: httpx2.Request) -> Any:
    """The JSON-RPC id of a request POST, else ``_NO_ID`` (notifications, GET, DELETE)."""
    if request.method.upper() != "POST":
        return _NO_ID
    try:
        parsed = json.loads(request.content or b"null")
    except (ValueError, UnicodeDecodeError, httpx2.RequestNotRead):
        return _NO_ID
    if isinstance(parsed, dict) and "id" in parsed and "method" in parsed:
        return parsed["id"]
    return _NO_ID


def _rebuild(response: httpx2.Response, request: httpx2.Request, *, content: bytes | None = None,
             stream: httpx2.AsyncByteStream | None = None) -> httpx2.Response:
    # The body is decoded here: drop the encoding and length headers of the original.
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DROP_ON_REBUILD]
    extensions = {k: v for k, v in response.extensions.items() if k in ("http_version", "reason_phrase")}
    return httpx2.Response(response.status_code, headers=headers, content=content, stream=stream,
                           request=request, extensions=extensions)
