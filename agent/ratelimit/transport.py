"""httpx2 transports below the mcp SDK (and openai): capture status and headers, retry refused requests.

The mcp SDK hides the HTTP status and headers of a failed POST (a bare 429 becomes
``MCPError(-32603, "Server returned an error response")``) and a transport exception on a POST
tears down the whole connection. So rate-limit handling lives one level down, in two wrappers::

    httpx2.AsyncClient(transport=RateLimitAwareTransport(
        RetryingTransport(httpx2.AsyncHTTPTransport(), policy, governors, breakers=breakers),
        on_response=callback))

``RetryingTransport`` (generic HTTP, usable for openai too): every request waits at its upstream's
``Governor``, reports each answer to it, and is re-sent under the ``RetryPolicy`` (429 always; 5xx,
408 and timeouts only for reads). A write is never re-sent after a 5xx or a timeout. When retries
end it returns the last answer (a 429 or a 5xx, its body buffered) with
``response.extensions["vapi_agent.retry"] = {"attempts", "gave_up", "retry_after", "is_write"}``; it
raises only when there is no answer (network errors), the circuit is open (``CircuitOpen``), or the
governor would hold the request past what is left of the wait budget (``RateLimited``, not sent).

``RateLimitAwareTransport`` (MCP-specific): calls ``on_response(origin_key, status, headers,
received_at)`` for every answer (2xx too; a failing callback is logged, never raised), and turns a
non-2xx answer or a transport failure of a JSON-RPC POST into a JSON-RPC error response, so mcp raises
``MCPError(code, message, data={status, kind, headers, upstream, is_write, session, retry?, sent?})``
and the session survives. Codes are in ``agent.ratelimit.policy`` (``HTTP_RATE_LIMITED = -32029`` ...).
A server's own JSON-RPC error on a plain 4xx (400 INVALID_PARAMS, 404 METHOD_NOT_FOUND, -32022 during
era negotiation) is passed through untouched, because mcp's protocol logic depends on those codes;
but a 404 to a request that carried a session id is ``HTTP_SESSION_ENDED`` whatever its body (the
MCP spec: the server ended the session and did not process the request).

Failure classes, honestly: only transport failures (``httpx2.TransportError``, timeouts) and our own
verdicts (``RateLimited``, ``CircuitOpen``) become "network"/"timeout"/... answers. Any other exception
is a bug of ours, not the server's: it becomes ``HTTP_INTERNAL`` carrying a fault id, and
``take_fault(id)`` hands the original exception (with its traceback) back to the connection, which
re-raises it (exit 1); it is never "may have been applied". A 2xx answer to a request that is not
JSON-RPC (truncated or non-JSON-RPC JSON, an HTML page, an event stream without a valid message) is
``HTTP_MALFORMED``, one line naming what came back (content type, size, first characters).

Legacy HTTP+SSE sessions read every answer from their event stream, and the SDK's writer stops at the
first failed POST (every later request of the session would wait out its timeout). So for a POST of
such a session the error answer is added to the session's stream (``_LegacyEventStream``, which
learns the session id from the ``endpoint`` event) and the POST itself is accepted with 202.

Whether a request is a write: ``with write_intent(True): await client.call_tool(...)`` (a
ContextVar; mcp sends each POST from a task started in the caller's context, so it is visible here).
Without it, an MCP ``tools/call`` counts as a write (its effect is unknown) and other MCP methods as
reads; a non-MCP request is a write unless its method is GET, HEAD or OPTIONS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx2

from agent import jsontext
from agent.errors import CircuitOpen, RateLimited, unreachable_cause
from agent.ratelimit.breaker import BreakerRegistry, CircuitBreaker
from agent.ratelimit.governor import Clock, Governor, GovernorRegistry, display_name, upstream_key
from agent.ratelimit.policy import (
    HTTP_AUTH,
    HTTP_CIRCUIT_OPEN,
    HTTP_CLIENT_ERROR,
    HTTP_INTERNAL,
    HTTP_MALFORMED,
    HTTP_NETWORK,
    HTTP_NOT_FOUND,
    HTTP_RATE_LIMITED,
    HTTP_SERVER_ERROR,
    HTTP_SESSION_ENDED,
    HTTP_TIMEOUT,
    RetryPolicy,
    classify,
    gave_up_reason,
)
from agent.redact import redact

log = logging.getLogger(__name__)

RETRY_EXTENSION = "vapi_agent.retry"
OnResponse = Callable[[str, int, Mapping[str, str], float], None]
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_HEADER_PREFIXES = ("ratelimit", "x-ratelimit", "retry-after")
_DROP_ON_REBUILD = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_NOT_JSONRPC = object()
_NOTIFICATION = object()

WRITE_INTENT: ContextVar[bool | None] = ContextVar("vapi_agent_write_intent", default=None)


@contextmanager
def write_intent(is_write: bool) -> Iterator[None]:
    """Mark the HTTP requests made inside the block as writes (``True``) or reads (``False``)."""
    token = WRITE_INTENT.set(is_write)
    try:
        yield
    finally:
        WRITE_INTENT.reset(token)


def request_is_write(request: httpx2.Request) -> bool:
    """Whether ``request`` may change something (see the module docstring for the rules)."""
    declared = WRITE_INTENT.get()
    if declared is not None:
        return declared
    body = _jsonrpc_body(request)
    if body is not None:
        return body.get("method") == "tools/call"
    return request.method.upper() not in _SAFE_METHODS


class UpstreamHTTPStatus(Exception):
    """A retry-worthy answer (429, 408, 5xx) raised inside ``RetryingTransport`` for the policy to judge.

    Carries the answer with its body buffered, so it can be handed back when retrying ends.
    """

    def __init__(self, response: httpx2.Response, received_at: float) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.status_code = response.status_code
        self.headers = response.headers
        self.received_at = received_at


class RetryingTransport(httpx2.AsyncBaseTransport):
    """Governor + retry policy (+ optional circuit breaker) around an inner transport, per request."""

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
        policy: RetryPolicy,
        governors: Governor | GovernorRegistry,
        *,
        breakers: CircuitBreaker | BreakerRegistry | None = None,
        on_response: OnResponse | None = None,
        is_write: Callable[[httpx2.Request], bool] = request_is_write,
    ) -> None:
        self.inner = inner
        self.policy = policy
        self.governors = governors
        self.breakers = breakers
        self.on_response = on_response
        self.is_write = is_write

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request``, re-sending it as the policy allows; see the module docstring."""
        governor = self.governors.for_url(request.url) if isinstance(self.governors, GovernorRegistry) \
            else self.governors
        breaker = self.breakers.for_url(request.url) if isinstance(self.breakers, BreakerRegistry) \
            else self.breakers
        is_write = self.is_write(request)
        await request.aread()  # buffer the body: a refused request is sent again, byte for byte
        trial = breaker.admit() if breaker is not None else False
        attempts, held = 0, 0.0

        async def attempt() -> httpx2.Response:
            nonlocal attempts, held
            attempts += 1
            # Time held at the governor counts against the same budgets as the policy's own sleeps
            # (approximately per request: the policy's sleeps are not subtracted here).
            start = governor.clock()
            await governor.acquire(max_wait=self.policy.allowance(held))
            waited = governor.clock() - start
            if waited > 0:
                held += waited
                self.policy.budget.charge(waited, start)
            try:
                response = await self.inner.handle_async_request(request)
                received_at = governor.clock()
                governor.observe(response.status_code, response.headers, received_at)
            finally:
                governor.release()
            _notify(self.on_response, request, response, received_at)
            if response.status_code in _RETRY_STATUSES:
                raise UpstreamHTTPStatus(await _buffered(response, request), received_at)
            return response

        try:
            response = await self.policy.run(attempt, is_write=is_write, upstream=governor.display_name)
        except UpstreamHTTPStatus as exc:  # not retryable (a write's 5xx) or the policy gave up
            response = exc.response
            response.extensions[RETRY_EXTENSION] = _retry_info(attempts, is_write, gave_up_reason(exc))
        except RateLimited as exc:  # out of attempts or budget on a 429, or the reset is beyond the budget
            cause = exc.__cause__
            if breaker is not None:
                breaker.record_neutral(trial)
            if not isinstance(cause, UpstreamHTTPStatus):
                raise
            response = cause.response
            response.extensions[RETRY_EXTENSION] = _retry_info(
                attempts, is_write, exc.details.get("reason") or "attempts", exc.retry_after, exc.message)
            return response
        except BaseException as exc:
            if breaker is not None:
                if isinstance(exc, Exception):
                    breaker.record(exc, trial)
                else:  # cancelled or interrupted: proves nothing about the upstream
                    breaker.record_neutral(trial)
            raise
        if breaker is not None:
            if response.status_code >= 500 or response.status_code == 408:
                breaker.record_failure(trial)
            elif response.status_code == 429:
                breaker.record_neutral(trial)
            else:
                breaker.record_success(trial)
        return response

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()


class RateLimitAwareTransport(httpx2.AsyncBaseTransport):
    """Records every answer and turns failed JSON-RPC POSTs into JSON-RPC errors (module docstring)."""

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport | None = None,
        *,
        on_response: OnResponse | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.inner = inner if inner is not None else httpx2.AsyncHTTPTransport()
        self.on_response = on_response
        self.clock = clock
        # Legacy HTTP+SSE sessions whose event stream passes through here: session id -> events to add.
        self._legacy_sessions: dict[str, asyncio.Queue[bytes]] = {}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Forward ``request``; convert failures of a JSON-RPC POST into a JSON-RPC error answer."""
        if request.method.upper() == "POST":
            await request.aread()
        rpc_id = _jsonrpc_id(request)
        try:
            response = await self.inner.handle_async_request(request)
        except (httpx2.TransportError, TimeoutError, RateLimited, CircuitOpen) as exc:
            if rpc_id is _NOT_JSONRPC:
                raise
            # Raising here would tear down mcp's whole connection; an error answer fails one call.
            return self._on_stream(request, _exception_answer(request, rpc_id, exc))
        except Exception as exc:
            if rpc_id is _NOT_JSONRPC:
                raise
            return self._on_stream(request, _internal_answer(request, rpc_id, exc))
        _notify(self.on_response, request, response, self.clock())
        if rpc_id is _NOT_JSONRPC:
            if request.method.upper() == "GET" and _is_event_stream(response) and response.status_code < 300:
                return _LegacyEventStream.wrap(response, request, self._legacy_sessions)
            return response
        if response.status_code >= 400:
            return self._on_stream(request, await _status_answer(request, rpc_id, response))
        if rpc_id is _NOTIFICATION or response.status_code == 202:
            return response
        return self._on_stream(request, await _checked_answer(request, rpc_id, response))

    def _on_stream(self, request: httpx2.Request, answer: httpx2.Response) -> httpx2.Response:
        """For a POST of a legacy HTTP+SSE session, deliver an error ``answer`` on the session's event
        stream and accept the POST (202): the legacy client reads answers only from the stream, and a
        failed POST would end its writer, leaving every later request of the session unanswered."""
        queue = self._legacy_sessions.get(request.url.params.get("session_id", ""))
        if queue is None or answer.status_code < 400:
            return answer
        queue.put_nowait(_encode_event("message", answer.content.decode(), None, None))
        return httpx2.Response(202, request=request)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()


# ---------------------------------------------------------------- conversions
async def _status_answer(request: httpx2.Request, rpc_id: Any, response: httpx2.Response) -> httpx2.Response:
    status = response.status_code
    try:
        body = await response.aread()
    finally:
        await response.aclose()
    upstream_error = _jsonrpc_error(body, response.headers.get("content-type", ""))
    session = _carries_session(request)
    if session and status == 404:
        code, kind = HTTP_SESSION_ENDED, "session_ended"
    elif upstream_error is not None and status not in (401, 403, 408, 429) and status < 500:
        return _rebuild(response, body, request)  # the server's own protocol error: mcp needs its code
    else:
        code, kind = _code_for(status)
    message = f"HTTP {status} {response.reason_phrase}".rstrip()
    detail = _detail(body, upstream_error)
    if detail:
        message = f"{message}: {detail}"
    data: dict[str, Any] = {"status": status, "kind": kind, "headers": _safe_headers(response.headers),
                            "upstream": display_name(request.url), "is_write": request_is_write(request),
                            "session": session}
    if upstream_error is not None:
        data["upstream_error"] = upstream_error
    retry = response.extensions.get(RETRY_EXTENSION)
    if isinstance(retry, dict):
        data["retry"] = retry
    return _error_answer(request, rpc_id, status, code, message, data)


def _exception_answer(request: httpx2.Request, rpc_id: Any, exc: Exception) -> httpx2.Response:
    upstream = display_name(request.url)
    base: dict[str, Any] = {"upstream": upstream, "is_write": request_is_write(request),
                            "error": type(exc).__name__}
    if isinstance(exc, CircuitOpen):
        return _error_answer(request, rpc_id, 503, HTTP_CIRCUIT_OPEN, exc.message,
                             {**base, "status": None, "kind": "circuit_open", "sent": False,
                              "retry_after": exc.details.get("retry_after")})
    if isinstance(exc, RateLimited):  # the governor refused to hold a request beyond its budget: not sent
        retry = _retry_info(int(exc.details.get("attempts") or 0), request_is_write(request),
                            exc.details.get("reason") or "budget", exc.retry_after, exc.message)
        return _error_answer(request, rpc_id, 429, HTTP_RATE_LIMITED, exc.message,
                             {**base, "status": 429, "kind": "rate_limited", "headers": {}, "sent": False,
                              "retry": retry})
    kind = classify(exc, is_write=False).kind
    if kind == "unreachable":
        cause = unreachable_cause(exc)
        return _error_answer(request, rpc_id, 502, HTTP_NETWORK, f"cannot connect to {upstream}: {cause}",
                             {**base, "status": None, "kind": "unreachable", "sent": False, "cause": cause})
    if kind == "timeout":
        return _error_answer(request, rpc_id, 504, HTTP_TIMEOUT, f"{upstream} did not answer in time",
                             {**base, "status": None, "kind": "timeout", "sent": True})
    sent = kind != "not_sent"
    text = f"connection to {upstream} failed" if not sent else f"connection to {upstream} dropped"
    return _error_answer(request, rpc_id, 502, HTTP_NETWORK, text,
                         {**base, "status": None, "kind": "network", "sent": sent})


# Exceptions of our own code met below the SDK, by fault id, until the connection takes them back.
_FAULTS: dict[str, BaseException] = {}
_FAULTS_LOCK = threading.Lock()


def _internal_answer(request: httpx2.Request, rpc_id: Any, exc: Exception) -> httpx2.Response:
    fault = uuid.uuid4().hex
    with _FAULTS_LOCK:
        _FAULTS[fault] = exc
    log.debug("internal error below the MCP session", exc_info=exc)
    return _error_answer(request, rpc_id, 500, HTTP_INTERNAL, f"internal error: {type(exc).__name__}",
                         {"status": None, "kind": "internal", "fault": fault, "error": type(exc).__name__,
                          "upstream": display_name(request.url), "is_write": request_is_write(request)})


def take_fault(fault: Any) -> BaseException | None:
    """The exception an ``HTTP_INTERNAL`` answer stands for (once; None when unknown)."""
    if not isinstance(fault, str):
        return None
    with _FAULTS_LOCK:
        return _FAULTS.pop(fault, None)


# ---------------------------------------------------------------- malformed answers
_SAMPLE_CHARS = 60
_MAX_MALFORMED_READ = 64 * 1024  # an HTML error page is read this far, for its first characters


def describe_body(content_type: str, body: bytes) -> str:
    """``text/html, 1,204 bytes: '<!doctype html><html>...'``: redacted, control characters escaped."""
    text = redact(body[: _SAMPLE_CHARS * 4].decode("utf-8", "replace"))
    sample = text[:_SAMPLE_CHARS] + ("..." if len(text) > _SAMPLE_CHARS else "")
    shown = ascii(sample) if sample else "nothing"
    return f"{content_type or 'no content type'}, {len(body):,} bytes: {shown}"


def _is_jsonrpc(value: Any) -> bool:
    """A JSON-RPC 2.0 message (or a batch of them), judged by shape only (the SDK validates the rest)."""
    if isinstance(value, list):
        return bool(value) and all(_is_jsonrpc(item) for item in value)
    return isinstance(value, dict) and value.get("jsonrpc") == "2.0" and (
        "result" in value or "error" in value or "method" in value)


async def _checked_answer(request: httpx2.Request, rpc_id: Any, response: httpx2.Response) -> httpx2.Response:
    """A 2xx answer to a request: JSON checked whole, an event stream event by event, anything else refused."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "text/event-stream":
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DROP_ON_REBUILD]
        checked = _CheckedEventStream(response, request, rpc_id)
        return httpx2.Response(response.status_code, headers=headers, stream=checked, request=request,
                               extensions={k: v for k, v in response.extensions.items()
                                           if k in ("http_version", "reason_phrase")})
    try:
        if content_type == "application/json":
            body = await response.aread()
        else:
            body = await _read_some(response, _MAX_MALFORMED_READ)
    finally:
        await response.aclose()
    if content_type == "application/json":
        try:
            parsed = jsontext.loads(body)
        except (ValueError, UnicodeDecodeError):
            parsed = None
        if _is_jsonrpc(parsed):
            return _rebuild(response, body, request)
        what = "something that is not JSON-RPC"
    else:
        what = "something that is neither JSON nor an event stream"
    return _malformed_answer(request, rpc_id, f"answered {what} ({describe_body(content_type, body)})")


async def _read_some(response: httpx2.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)


def _malformed_answer(request: httpx2.Request, rpc_id: Any, message: str) -> httpx2.Response:
    return _error_answer(request, rpc_id, 502, HTTP_MALFORMED, message,
                         {"status": None, "kind": "malformed", "upstream": display_name(request.url),
                          "is_write": request_is_write(request), "sent": True})


class _CheckedEventStream(httpx2.AsyncByteStream):
    """An event-stream answer passed on event by event (parsed by ``httpx2.EventSource``).

    Events whose data is not JSON-RPC are dropped; when the stream then ends without an answer to
    the request (or holds no event at all, just bytes), one JSON-RPC error event ``HTTP_MALFORMED``
    naming what came back is added, so mcp reports one clear line instead of a parse traceback. A
    clean stream is passed on unchanged in meaning (ids and retry hints kept for resumption); a
    stream cut by the network still fails as a dropped stream.
    """

    def __init__(self, response: httpx2.Response, request: httpx2.Request, rpc_id: Any) -> None:
        self.response = response
        self.request = request
        self.rpc_id = rpc_id
        self.head = bytearray()

    async def _sampled(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.aiter_bytes():  # decoded (gzip...); works on a read answer too
            if len(self.head) < _SAMPLE_CHARS * 4:
                self.head.extend(chunk[: _SAMPLE_CHARS * 4 - len(self.head)])
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        headers = [(k, v) for k, v in self.response.headers.multi_items() if k.lower() not in _DROP_ON_REBUILD]
        raw = httpx2.Response(self.response.status_code, headers=headers, stream=_Iterated(self._sampled()),
                              request=self.request)
        answered, events = False, 0
        bad: str | None = None
        try:
            async for event in httpx2.EventSource(raw, max_event_size=None):
                events += 1
                message = _event_message(event.data)
                if message is None:
                    bad = bad if bad is not None else event.data
                    continue
                answered = answered or _answers(message, self.rpc_id)
                yield _encode_event(event.event, event.data, event.id, event.retry)
        except httpx2.SSEError as exc:
            bad = bad if bad is not None else f"({exc})"
        if answered or (bad is None and (events or not self.head)):
            return
        if bad is not None:
            what = f"an event whose data is not JSON-RPC ({describe_body('text/event-stream', bad.encode())})"
        else:
            what = f"an event stream without any event ({describe_body('text/event-stream', bytes(self.head))})"
        error = {"jsonrpc": "2.0", "id": self.rpc_id, "error": {
            "code": HTTP_MALFORMED, "message": f"answered {what}",
            "data": {"status": None, "kind": "malformed", "upstream": display_name(self.request.url),
                     "is_write": request_is_write(self.request), "sent": True}}}
        yield _encode_event("message", json.dumps(error), None, None)

    async def aclose(self) -> None:
        await self.response.aclose()


def _is_event_stream(response: httpx2.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream"


class _LegacyEventStream(httpx2.AsyncByteStream):
    """The event stream of a legacy HTTP+SSE session, with our own events merged in.

    Its ``endpoint`` event names the session (``...?session_id=X``); from then on, error answers to
    that session's failed POSTs (``RateLimitAwareTransport._on_stream``) are added to the stream as
    JSON-RPC ``message`` events, which is where the legacy client waits for every answer. Other
    streams (a Streamable HTTP GET) have no ``endpoint`` event and pass through unchanged in meaning.
    """

    def __init__(self, response: httpx2.Response, request: httpx2.Request,
                 sessions: dict[str, asyncio.Queue[bytes]]) -> None:
        self.response = response
        self.request = request
        self.sessions = sessions
        self.session: str | None = None
        self.added: asyncio.Queue[bytes] = asyncio.Queue()

    @classmethod
    def wrap(cls, response: httpx2.Response, request: httpx2.Request,
             sessions: dict[str, asyncio.Queue[bytes]]) -> httpx2.Response:
        """The same answer, its body read through a ``_LegacyEventStream``."""
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DROP_ON_REBUILD]
        return httpx2.Response(response.status_code, headers=headers, stream=cls(response, request, sessions),
                               request=request, extensions={k: v for k, v in response.extensions.items()
                                                            if k in ("http_version", "reason_phrase")})

    async def _upstream(self) -> AsyncGenerator[bytes, None]:
        raw = httpx2.Response(self.response.status_code, headers=[
            (k, v) for k, v in self.response.headers.multi_items() if k.lower() not in _DROP_ON_REBUILD],
            stream=_Iterated(self.response.aiter_bytes()), request=self.request)
        async for event in httpx2.EventSource(raw, max_event_size=None):
            if event.event == "endpoint" and self.session is None:
                session = httpx2.URL(event.data.strip()).params.get("session_id")
                if session:
                    self.session = session
                    self.sessions[session] = self.added
            yield _encode_event(event.event, event.data, event.id, event.retry)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        upstream = self._upstream()
        next_up: asyncio.Future[bytes] = asyncio.ensure_future(anext(upstream))
        next_added: asyncio.Future[bytes] = asyncio.ensure_future(self.added.get())
        try:
            while True:
                done, _ = await asyncio.wait({next_up, next_added}, return_when=asyncio.FIRST_COMPLETED)
                if next_added in done:
                    yield next_added.result()
                    next_added = asyncio.ensure_future(self.added.get())
                if next_up in done:
                    try:
                        chunk = next_up.result()
                    except StopAsyncIteration:
                        return
                    yield chunk
                    next_up = asyncio.ensure_future(anext(upstream))
        finally:
            if self.session is not None:
                self.sessions.pop(self.session, None)
            for pending in (next_up, next_added):
                pending.cancel()
            await asyncio.wait({next_up, next_added})  # a generator still running cannot be closed
            await upstream.aclose()

    async def aclose(self) -> None:
        await self.response.aclose()


class _Iterated(httpx2.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks:
            yield chunk


def _event_message(data: str) -> Any:
    """The JSON-RPC message an event carries; ``""`` for a priming event (no data); None when malformed."""
    if not data:
        return ""
    try:
        parsed = jsontext.loads(data)
    except ValueError:
        return None
    return parsed if _is_jsonrpc(parsed) else None


def _answers(message: Any, rpc_id: Any) -> bool:
    items = message if isinstance(message, list) else [message]
    return any(isinstance(m, dict) and m.get("id") == rpc_id and ("result" in m or "error" in m) for m in items)


def _encode_event(event: str, data: str, event_id: str | None, retry: int | None) -> bytes:
    lines = [f"id: {event_id}"] if event_id else []
    if retry is not None:
        lines.append(f"retry: {retry}")
    lines.append(f"event: {event or 'message'}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def _error_answer(request: httpx2.Request, rpc_id: Any, status: int, code: int, message: str,
                  data: dict[str, Any]) -> httpx2.Response:
    # A notification (no id) gets the same answer with id null: mcp ignores failed notification POSTs.
    payload = {"jsonrpc": "2.0", "id": None if rpc_id is _NOTIFICATION else rpc_id,
               "error": {"code": code, "message": message, "data": data}}
    return httpx2.Response(status, json=payload, request=request)


def _code_for(status: int) -> tuple[int, str]:
    if status == 429:
        return HTTP_RATE_LIMITED, "rate_limited"
    if status in (401, 403):
        return HTTP_AUTH, "auth"
    if status in (404, 410):
        return HTTP_NOT_FOUND, "not_found"
    if status == 408:
        return HTTP_TIMEOUT, "timeout"
    if status >= 500:
        return HTTP_SERVER_ERROR, "server_error"
    return HTTP_CLIENT_ERROR, "client_error"


def _detail(body: bytes, upstream_error: dict[str, Any] | None) -> str:
    """A short human reason from the body: the JSON-RPC message, or Vapi's ``{"message": ...}``."""
    if upstream_error is not None and isinstance(upstream_error.get("message"), str):
        return upstream_error["message"][:200]
    try:
        parsed = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return ""
    if isinstance(parsed, dict):
        message = parsed.get("message") or parsed.get("error")
        if isinstance(message, list):
            message = "; ".join(str(m) for m in message)
        if isinstance(message, str):
            return message[:200]
    return ""


def _jsonrpc_error(body: bytes, content_type: str) -> dict[str, Any] | None:
    if not content_type.lower().startswith("application/json") or not body:
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(parsed, dict) and parsed.get("jsonrpc") == "2.0" and isinstance(parsed.get("error"), dict):
        error = parsed["error"]
        if isinstance(error.get("code"), int) and isinstance(error.get("message"), str):
            return {k: error[k] for k in ("code", "message", "data") if k in error}
    return None


def _jsonrpc_body(request: httpx2.Request) -> dict[str, Any] | None:
    if request.method.upper() != "POST":
        return None
    try:
        parsed = json.loads(request.content) if request.content else None
    except (ValueError, UnicodeDecodeError, httpx2.RequestNotRead):
        return None
    if isinstance(parsed, dict) and parsed.get("jsonrpc") == "2.0" and isinstance(parsed.get("method"), str):
        return parsed
    return None


def _jsonrpc_id(request: httpx2.Request) -> Any:
    body = _jsonrpc_body(request)
    if body is None:
        return _NOT_JSONRPC
    return body.get("id", _NOTIFICATION)  # no "id" key at all: a notification


def _carries_session(request: httpx2.Request) -> bool:
    """Whether the request belongs to a session: ``Mcp-Session-Id`` (Streamable HTTP) or the legacy
    SSE transport's ``session_id`` query parameter."""
    return "mcp-session-id" in request.headers or "session_id" in request.url.params


def _safe_headers(headers: httpx2.Headers) -> dict[str, str]:
    """Only rate-limit headers: cookies and the like stay out of errors."""
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith(_HEADER_PREFIXES)}


async def _buffered(response: httpx2.Response, request: httpx2.Request) -> httpx2.Response:
    """Read and close ``response`` (its connection goes back to the pool); return an equivalent copy."""
    try:
        body = await response.aread()
    finally:
        await response.aclose()
    return _rebuild(response, body, request)


def _rebuild(response: httpx2.Response, body: bytes, request: httpx2.Request) -> httpx2.Response:
    # The body is already decoded: drop the encoding and length headers of the original.
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DROP_ON_REBUILD]
    extensions = {k: v for k, v in response.extensions.items() if k in ("http_version", "reason_phrase")}
    return httpx2.Response(response.status_code, headers=headers, content=body, request=request,
                           extensions=extensions)


def _retry_info(attempts: int, is_write: bool, gave_up: str | None, retry_after: float | None = None,
                message: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"attempts": attempts, "is_write": is_write, "gave_up": gave_up}
    if retry_after is not None:
        info["retry_after"] = round(retry_after, 3)
    if message:
        info["message"] = message
    return info


def _notify(callback: OnResponse | None, request: httpx2.Request, response: httpx2.Response,
            received_at: float) -> None:
    if callback is None:
        return
    try:
        callback(upstream_key(request.url), response.status_code, response.headers, received_at)
    except Exception:  # a recording hook must never fail the request
        log.debug("on_response callback failed", exc_info=True)
