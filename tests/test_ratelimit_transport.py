"""The httpx2 transports: capture and JSON-RPC conversion, retries, and a concurrent limited upstream."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import pytest

from agent.errors import CircuitOpen
from agent.ratelimit.breaker import CircuitBreaker
from agent.ratelimit.governor import Governor, GovernorRegistry, WaitReporter, upstream_key
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
    RetryConfig,
    RetryPolicy,
    RunBudget,
)
from agent.ratelimit.transport import (
    RETRY_EXTENSION,
    RateLimitAwareTransport,
    RetryingTransport,
    request_is_write,
    take_fault,
    write_intent,
)
from agent.usage import Usage
from tests.test_ratelimit_governor import FakeClock

TOKEN = "tok_SENTINEL_secret_987654"
URL = f"https://api.truto.one/mcp/{TOKEN}"
Handler = Callable[[httpx2.Request], Awaitable[httpx2.Response]]


def rpc(method: str = "tools/call", id_: Any = 7, **params: Any) -> dict[str, Any]:
    """A JSON-RPC message (a notification when ``id_`` is None)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if id_ is not None:
        message["id"] = id_
    return message


def answering(status: int, **kwargs: Any) -> httpx2.MockTransport:
    """A mock upstream that always answers ``status``."""
    return httpx2.MockTransport(lambda request: httpx2.Response(status, **kwargs))


def raising(exc: Exception) -> httpx2.MockTransport:
    """A mock upstream whose every request fails with ``exc``."""
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise exc
    return httpx2.MockTransport(handler)


async def post(transport: httpx2.AsyncBaseTransport, body: Any, url: str = URL) -> httpx2.Response:
    """POST ``body`` as JSON through ``transport``."""
    async with httpx2.AsyncClient(transport=transport) as client:
        return await client.post(url, json=body)


def rpc_error(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC error of a converted answer (and a check that it is one)."""
    payload = response.json()
    assert payload["jsonrpc"] == "2.0" and "error" in payload
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = payload["error"]
    return error


# ---------------------------------------------------------------- RateLimitAwareTransport
async def test_429_on_a_post_becomes_a_jsonrpc_error_with_status_and_headers() -> None:
    inner = answering(429, text="Too Many Requests",
                      headers={"ratelimit-limit": "110;w=10", "ratelimit-remaining": "0", "ratelimit-reset": "7",
                               "set-cookie": "session=SECRETCOOKIE", "Retry-After": "7"})
    response = await post(RateLimitAwareTransport(inner), rpc(id_=42, name="list_calls"))
    assert response.status_code == 429 and response.json()["id"] == 42
    error = rpc_error(response)
    assert error["code"] == HTTP_RATE_LIMITED == -32029
    assert error["message"] == "HTTP 429 Too Many Requests"
    data = error["data"]
    assert data["status"] == 429 and data["kind"] == "rate_limited" and data["is_write"] is True
    assert data["headers"] == {"ratelimit-limit": "110;w=10", "ratelimit-remaining": "0",
                               "ratelimit-reset": "7", "retry-after": "7"}
    assert data["upstream"] == "api.truto.one"
    assert TOKEN not in response.text and "SECRETCOOKIE" not in response.text


@pytest.mark.parametrize(("status", "body", "code", "kind", "detail"), [
    (503, b"upstream down", HTTP_SERVER_ERROR, "server_error", ""),
    (500, b'{"message":"Internal","statusCode":500}', HTTP_SERVER_ERROR, "server_error", "Internal"),
    (401, b'{"message":"Invalid Key. Hot tip, you may be using the private key","error":"Unauthorized"}',
     HTTP_AUTH, "auth", "Invalid Key"),
    (403, b"", HTTP_AUTH, "auth", ""),
    (404, b"Not Found", HTTP_NOT_FOUND, "not_found", ""),
    (418, b"teapot", HTTP_CLIENT_ERROR, "client_error", ""),
    (408, b"", HTTP_TIMEOUT, "timeout", ""),
])
async def test_other_failures_carry_status_and_kind(status: int, body: bytes, code: int, kind: str,
                                                    detail: str) -> None:
    response = await post(RateLimitAwareTransport(answering(status, content=body)), rpc())
    error = rpc_error(response)
    assert (response.status_code, error["code"], error["data"]["kind"], error["data"]["status"]) == (
        status, code, kind, status)
    assert error["message"].startswith(f"HTTP {status}")
    assert detail in error["message"]


async def test_server_jsonrpc_errors_on_plain_4xx_pass_through() -> None:
    body = {"jsonrpc": "2.0", "id": 7, "error": {"code": -32022, "message": "Unsupported protocol version",
                                                 "data": {"supported": ["2025-11-25"]}}}
    response = await post(RateLimitAwareTransport(answering(400, json=body)), rpc())
    assert response.status_code == 400 and response.json() == body


async def test_server_jsonrpc_error_on_429_is_nested_under_our_code() -> None:
    body = {"jsonrpc": "2.0", "id": 7, "error": {"code": -32000, "message": "rate limited", "data": {"reset": 7}}}
    response = await post(RateLimitAwareTransport(answering(429, json=body, headers={"ratelimit-reset": "7"})), rpc())
    error = rpc_error(response)
    assert error["code"] == HTTP_RATE_LIMITED and error["message"] == "HTTP 429 Too Many Requests: rate limited"
    assert error["data"]["upstream_error"] == body["error"]


@pytest.mark.parametrize(("exc", "status", "code", "kind", "sent"), [
    (httpx2.ConnectError("refused"), 502, HTTP_NETWORK, "network", False),
    (httpx2.RemoteProtocolError("dropped"), 502, HTTP_NETWORK, "network", True),
    (httpx2.ReadTimeout("slow"), 504, HTTP_TIMEOUT, "timeout", True),
    (CircuitOpen("api.truto.one failed 5 times", retry_after=12.0), 503, HTTP_CIRCUIT_OPEN, "circuit_open", False),
])
async def test_exceptions_of_a_post_become_errors_instead_of_killing_the_session(
        exc: Exception, status: int, code: int, kind: str, sent: bool) -> None:
    response = await post(RateLimitAwareTransport(raising(exc)), rpc(id_="abc"))
    error = rpc_error(response)
    assert response.json()["id"] == "abc"
    assert (response.status_code, error["code"], error["data"]["kind"], error["data"]["sent"]) == (
        status, code, kind, sent)
    assert TOKEN not in response.text


@pytest.mark.parametrize("session", [{"headers": {"mcp-session-id": "abc123"}}, {"params": {"session_id": "abc"}}])
async def test_a_404_to_a_request_of_a_session_means_the_session_ended(session: dict[str, Any]) -> None:
    body = {"jsonrpc": "2.0", "id": "server-error", "error": {"code": -32600, "message": "Session not found"}}
    async with httpx2.AsyncClient(transport=RateLimitAwareTransport(answering(404, json=body))) as client:
        response = await client.post(URL, json=rpc(), **session)
    error = rpc_error(response)
    assert (error["code"], error["data"]["kind"], error["data"]["session"]) == (HTTP_SESSION_ENDED, "session_ended",
                                                                               True)
    # without a session, a 404 is the server's own answer (a wrong URL, an unknown method)
    plain = await post(RateLimitAwareTransport(answering(404, json=body)), rpc())
    assert plain.json() == body


async def test_our_own_bug_below_the_session_is_handed_back_not_disguised() -> None:
    bug = TypeError("unsupported operand type(s) for -: 'NoneType' and 'float'")
    response = await post(RateLimitAwareTransport(raising(bug)), rpc(id_=5))
    error = rpc_error(response)
    assert error["code"] == HTTP_INTERNAL and error["data"]["kind"] == "internal"
    assert "sent" not in error["data"]  # never "may have been applied"
    assert take_fault(error["data"]["fault"]) is bug
    assert take_fault(error["data"]["fault"]) is None  # handed back once
    with pytest.raises(TypeError):  # outside JSON-RPC, it simply propagates
        async with httpx2.AsyncClient(transport=RateLimitAwareTransport(raising(bug))) as client:
            await client.get(URL)


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", b'{"jsonrpc": "2.0", "id": 7, "res'),
    ("application/json", b'{"hello": "world"}'),
    ("text/html", b"<html>\x1b[31mred</html>"),
])
async def test_a_malformed_2xx_answer_is_named_in_one_line(content_type: str, body: bytes) -> None:
    inner = answering(200, content=body, headers={"content-type": content_type})
    error = rpc_error(await post(RateLimitAwareTransport(inner), rpc()))
    assert error["code"] == HTTP_MALFORMED and "\n" not in error["message"]
    assert content_type in error["message"] and "\x1b" not in error["message"]  # control codes escaped
    assert error["message"].startswith("answered something that is")


async def test_a_valid_event_stream_passes_and_garbage_events_are_replaced() -> None:
    answer = {"jsonrpc": "2.0", "id": 7, "result": {"content": []}}
    note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
    good = (f"id: e1\nevent: message\ndata: {json.dumps(note)}\n\n"
            f"event: message\ndata: {json.dumps(answer)}\n\n").encode()
    headers = {"content-type": "text/event-stream"}
    response = await post(RateLimitAwareTransport(answering(200, content=good, headers=headers)), rpc())
    events = [block for block in response.text.split("\n\n") if block]
    assert [json.loads(e.split("data: ", 1)[1]) for e in events] == [note, answer]
    assert events[0].startswith("id: e1\n")

    bad = b"event: message\ndata: not json\n\n"
    response = await post(RateLimitAwareTransport(answering(200, content=bad, headers=headers)), rpc())
    [event] = [block for block in response.text.split("\n\n") if block]
    error = json.loads(event.split("data: ", 1)[1])["error"]
    assert error["code"] == HTTP_MALFORMED and "'not json'" in error["message"]


async def test_notifications_never_raise() -> None:
    note = rpc("notifications/initialized", id_=None)
    response = await post(RateLimitAwareTransport(raising(httpx2.ConnectError("down"))), note)
    assert response.json()["id"] is None and response.status_code == 502
    response = await post(RateLimitAwareTransport(answering(500)), note)
    assert response.json()["id"] is None


async def test_non_jsonrpc_traffic_is_untouched() -> None:
    transport = RateLimitAwareTransport(answering(503, text="down"))
    async with httpx2.AsyncClient(transport=transport) as client:
        assert (await client.get(URL)).text == "down"
        assert (await client.post(URL, content=b"not json")).text == "down"
    with pytest.raises(httpx2.ConnectError):
        async with httpx2.AsyncClient(transport=RateLimitAwareTransport(raising(httpx2.ConnectError("x")))) as c:
            await c.get(URL)


async def test_on_response_sees_every_answer_and_may_fail_safely() -> None:
    seen: list[tuple[str, int, str | None, float]] = []
    clock = FakeClock()

    def record(key: str, status: int, headers: Any, received_at: float) -> None:
        seen.append((key, status, headers.get("ratelimit-remaining"), received_at))

    ok = answering(200, json={"jsonrpc": "2.0", "id": 7, "result": {}}, headers={"ratelimit-remaining": "9"})
    response = await post(RateLimitAwareTransport(ok, on_response=record, clock=clock), rpc())
    assert response.status_code == 200 and response.json()["result"] == {}
    assert seen == [(upstream_key(URL), 200, "9", 100.0)]

    def explode(*_: Any) -> None:
        raise RuntimeError("hook broke")

    response = await post(RateLimitAwareTransport(answering(429), on_response=explode), rpc())
    assert rpc_error(response)["code"] == HTTP_RATE_LIMITED


async def test_concurrent_captures_stay_separate() -> None:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        n = json.loads(request.content)["id"]
        await asyncio.sleep(0.001 * (10 - n))  # answer in reverse order
        status = 429 if n % 2 else 200
        return httpx2.Response(status, json={"jsonrpc": "2.0", "id": n, "result": {}},
                               headers={"ratelimit-remaining": str(n)})

    transport = RateLimitAwareTransport(httpx2.MockTransport(handler))
    async with httpx2.AsyncClient(transport=transport) as client:
        responses = await asyncio.gather(*(client.post(URL, json=rpc(id_=n)) for n in range(10)))
    for n, response in enumerate(responses):
        assert response.json()["id"] == n
        if n % 2:
            assert rpc_error(response)["data"]["headers"]["ratelimit-remaining"] == str(n)


def test_write_classification() -> None:
    call = httpx2.Request("POST", URL, json=rpc("tools/call"))
    listing = httpx2.Request("POST", URL, json=rpc("tools/list"))
    assert request_is_write(call) and not request_is_write(listing)
    assert not request_is_write(httpx2.Request("GET", URL)) and request_is_write(httpx2.Request("DELETE", URL))
    with write_intent(False):
        assert not request_is_write(call)
    with write_intent(True):
        assert request_is_write(listing)
    assert request_is_write(call)


# ---------------------------------------------------------------- RetryingTransport
class Upstream:
    """A scripted mock upstream: answers the queued (status, headers) in order, then 200; logs bodies."""

    def __init__(self, *answers: tuple[int, dict[str, str]] | Exception) -> None:
        self.answers = list(answers)
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.bodies.append(request.content)
        answer = self.answers.pop(0) if self.answers else (200, {})
        if isinstance(answer, Exception):
            raise answer
        status, headers = answer
        return httpx2.Response(status, headers=headers, json={"jsonrpc": "2.0", "id": 7, "status": status})


def retrying(upstream: Upstream | httpx2.AsyncBaseTransport, clock: FakeClock, *, usage: Usage | None = None,
             breaker: CircuitBreaker | None = None, governors: Governor | GovernorRegistry | None = None,
             **config: Any) -> RetryingTransport:
    """A RetryingTransport on the fake clock, with zero jitter unless configured."""
    reporter = WaitReporter(None, usage)
    cfg = RetryConfig(**{"jitter": 0.0, **config})
    policy = RetryPolicy(cfg, clock=clock, wall=clock.wall, sleep=clock.sleep, budget=RunBudget(900, clock),
                         reporter=reporter)
    inner = upstream if isinstance(upstream, httpx2.AsyncBaseTransport) else httpx2.MockTransport(upstream)
    governors = governors or Governor(upstream_key(URL), clock=clock, wall=clock.wall, sleep=clock.sleep,
                                      reporter=reporter)
    return RetryingTransport(inner, policy, governors, breakers=breaker)


async def test_a_refused_post_is_sent_again_byte_for_byte() -> None:
    clock, usage = FakeClock(), Usage()
    upstream = Upstream((429, {"ratelimit-reset": "3"}))
    response = await post(retrying(upstream, clock, usage=usage), rpc(id_=7, name="create_call"))
    assert response.status_code == 200
    assert len(upstream.bodies) == 2 and upstream.bodies[0] == upstream.bodies[1]
    assert clock.now >= 103.0 and usage.rate_limit_waits >= 1


async def test_a_writes_5xx_is_returned_not_resent() -> None:
    clock = FakeClock()
    upstream = Upstream((503, {}))
    response = await post(retrying(upstream, clock), rpc("tools/call"))
    assert response.status_code == 503 and response.json()["status"] == 503
    assert len(upstream.bodies) == 1  # an ambiguous write is never sent twice
    assert response.extensions[RETRY_EXTENSION] == {"attempts": 1, "is_write": True, "gave_up": None}


async def test_a_writes_timeout_is_raised_not_resent() -> None:
    upstream = Upstream(httpx2.ReadTimeout("slow"))
    with pytest.raises(httpx2.ReadTimeout):
        await post(retrying(upstream, FakeClock()), rpc("tools/call"))
    assert len(upstream.bodies) == 1


async def test_reads_are_retried_on_5xx_and_timeouts() -> None:
    upstream = Upstream((502, {}), httpx2.ReadTimeout("slow"), (503, {"retry-after": "1"}))
    response = await post(retrying(upstream, FakeClock()), rpc("tools/list"))
    assert response.status_code == 200 and len(upstream.bodies) == 4


async def test_write_intent_false_makes_a_tools_call_a_read() -> None:
    upstream = Upstream((503, {}))
    with write_intent(False):
        response = await post(retrying(upstream, FakeClock()), rpc("tools/call", name="list_calls"))
    assert response.status_code == 200 and len(upstream.bodies) == 2


async def test_reset_beyond_the_budget_returns_the_429_at_once() -> None:
    clock = FakeClock()
    upstream = Upstream(*[(429, {"ratelimit-reset": "600", "ratelimit-remaining": "0"})] * 3)
    transport = RateLimitAwareTransport(retrying(upstream, clock))
    response = await post(transport, rpc(id_=9))
    assert len(upstream.bodies) == 1 and clock.sleeps == []
    error = rpc_error(response)
    assert error["code"] == HTTP_RATE_LIMITED and error["data"]["headers"]["ratelimit-reset"] == "600"
    retry = error["data"]["retry"]
    assert retry["gave_up"] == "reset_beyond_budget" and retry["retry_after"] == 600.0 and retry["attempts"] == 1
    assert "resets in 600 s" in retry["message"] and TOKEN not in response.text


async def test_requests_after_a_long_refusal_fail_fast_without_being_sent() -> None:
    clock = FakeClock()
    upstream = Upstream((429, {"ratelimit-reset": "600"}))
    transport = RateLimitAwareTransport(retrying(upstream, clock))
    first = await post(transport, rpc(id_=1))
    second = await post(transport, rpc(id_=2))
    assert len(upstream.bodies) == 1 and clock.sleeps == []
    assert rpc_error(first)["code"] == rpc_error(second)["code"] == HTTP_RATE_LIMITED
    assert rpc_error(second)["data"]["retry"]["gave_up"] == "reset_beyond_budget"
    assert second.json()["id"] == 2


async def test_attempts_run_out_and_the_last_429_is_returned() -> None:
    clock = FakeClock()
    upstream = Upstream(*[(429, {})] * 10)  # refusals that never say when to come back
    response = await post(retrying(upstream, clock, max_attempts=3), rpc())
    assert response.status_code == 429 and len(upstream.bodies) == 3
    assert response.json()["status"] == 429  # the body is still readable
    assert response.extensions[RETRY_EXTENSION]["gave_up"] == "attempts"


async def test_announced_refusals_are_retried_past_the_attempt_cap() -> None:
    clock = FakeClock()
    upstream = Upstream(*[(429, {"retry-after": "1"})] * 10)
    response = await post(retrying(upstream, clock, max_attempts=3), rpc())
    assert response.status_code == 200 and len(upstream.bodies) == 11


async def test_compressed_error_bodies_survive_buffering() -> None:
    body = gzip.compress(b'{"message":"busy"}')
    inner = answering(503, content=body, headers={"content-encoding": "gzip", "content-type": "application/json"})
    response = await post(retrying(inner, FakeClock()), rpc("tools/call"))
    assert response.json() == {"message": "busy"}


async def test_circuit_opens_after_consecutive_failures_and_recovers() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("api.truto.one", failure_threshold=2, cool_down=30.0, clock=clock)
    upstream = Upstream((500, {}), (500, {}))
    transport = retrying(upstream, clock, breaker=breaker)
    for _ in range(2):
        assert (await post(transport, rpc("tools/call"))).status_code == 500
    with pytest.raises(CircuitOpen):
        await post(transport, rpc("tools/call"))
    assert len(upstream.bodies) == 2  # failing fast: nothing sent
    converted = await post(RateLimitAwareTransport(transport), rpc("tools/call"))
    assert rpc_error(converted)["code"] == HTTP_CIRCUIT_OPEN
    clock.now += 30.0
    assert (await post(transport, rpc("tools/call"))).status_code == 200  # the half-open trial
    assert breaker.state == "closed"


# ---------------------------------------------------------------- a limited upstream under concurrency
class WindowedUpstream:
    """N requests per fixed window on the fake clock, with latency; Truto-style headers on every answer."""

    def __init__(self, clock: FakeClock, limit: int, window: float, latency: float = 0.05,
                 headers_on_success: bool = True) -> None:
        self.clock, self.limit, self.window, self.latency = clock, limit, window, latency
        self.headers_on_success = headers_on_success
        self.counts: dict[int, int] = {}
        self.log: list[tuple[float, int]] = []

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        await self.clock.sleep(self.latency)
        now = self.clock.now
        index = int(now // self.window)
        used = self.counts.get(index, 0)
        refused = used >= self.limit
        if not refused:
            self.counts[index] = used + 1
        reset = math.ceil((index + 1) * self.window - now)
        remaining = max(0, self.limit - self.counts.get(index, 0))
        headers = {"ratelimit-limit": f"{self.limit};w={int(self.window)}",
                   "ratelimit-remaining": str(remaining), "ratelimit-reset": str(reset)}
        status = 429 if refused else 200
        self.log.append((now, status))
        if not refused and not self.headers_on_success:
            headers = {}
        body = json.loads(request.content)
        return httpx2.Response(status, headers=headers, json={"jsonrpc": "2.0", "id": body["id"], "result": {}})

    def waves(self) -> set[int]:
        """The windows in which a 429 was answered."""
        return {int(t // self.window) for t, status in self.log if status == 429}


@pytest.mark.parametrize("headers_on_success", [True, False])
async def test_eight_concurrent_requests_meet_at_most_one_429_wave(headers_on_success: bool) -> None:
    clock = FakeClock(start=100.0)
    upstream = WindowedUpstream(clock, limit=3, window=10.0, headers_on_success=headers_on_success)
    usage = Usage()
    transport = RateLimitAwareTransport(retrying(httpx2.MockTransport(upstream), clock, usage=usage,
                                                 jitter=0.5))
    async with httpx2.AsyncClient(transport=transport) as client:
        responses = await asyncio.gather(*(client.post(URL, json=rpc(id_=n)) for n in range(8)))

    assert [r.status_code for r in responses] == [200] * 8
    assert [r.json()["id"] for r in responses] == list(range(8))
    refusals = sum(1 for _, status in upstream.log if status == 429)
    assert 1 <= refusals <= 5             # one wave: only requests already in flight were refused
    assert len(upstream.waves()) <= 1     # ... and only in the first window
    assert sum(1 for _, status in upstream.log if status == 200) == 8
    assert clock.now < 100.0 + 3 * 10.0 + 1  # 8 requests at 3 per window: done in the third window
    assert usage.rate_limit_waits >= 1


async def test_paced_requests_see_no_429_at_all_once_the_limit_is_known() -> None:
    clock = FakeClock(start=100.0)
    upstream = WindowedUpstream(clock, limit=3, window=10.0)
    transport = retrying(httpx2.MockTransport(upstream), clock)
    async with httpx2.AsyncClient(transport=transport) as client:
        await client.post(URL, json=rpc(id_=0))  # learn the limit
        responses = await asyncio.gather(*(client.post(URL, json=rpc(id_=n)) for n in range(1, 9)))
    assert all(r.status_code == 200 for r in responses)
    assert upstream.waves() == set()


# ---------------------------------------------------------------- through the real mcp client
class MCPRateLimit:
    """ASGI middleware: at most ``limit`` tools/call per ``window`` seconds of the fake clock, else 429."""

    def __init__(self, app: Any, clock: FakeClock, limit: int, window: float) -> None:
        self.app, self.clock, self.limit, self.window = app, clock, limit, window
        self.counts: dict[int, int] = {}
        self.log: list[tuple[float, int]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and \
                dict(scope["headers"]).get(b"mcp-method") == b"tools/call":
            await self.clock.sleep(0.05)
            index = int(self.clock.now // self.window)
            reset = math.ceil((index + 1) * self.window - self.clock.now)
            if self.counts.get(index, 0) >= self.limit:
                self.log.append((self.clock.now, 429))
                headers = [(b"ratelimit-limit", f"{self.limit};w={int(self.window)}".encode()),
                           (b"ratelimit-remaining", b"0"), (b"ratelimit-reset", str(reset).encode()),
                           (b"content-type", b"text/plain")]
                await send({"type": "http.response.start", "status": 429, "headers": headers})
                await send({"type": "http.response.body", "body": b"Too Many Requests"})
                return
            self.counts[index] = self.counts.get(index, 0) + 1
            self.log.append((self.clock.now, 200))
        await self.app(scope, receive, send)


async def test_mcp_client_gets_status_and_headers_or_a_retried_success() -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.server import MCPServer
    from mcp.shared.exceptions import MCPError

    server = MCPServer("limited", log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> int:
        return a + b

    clock = FakeClock(start=100.0)
    limited = MCPRateLimit(server.streamable_http_app(), clock, limit=2, window=10.0)
    base = "http://127.0.0.1:8000"

    async def connect(transport: httpx2.AsyncBaseTransport) -> Any:
        http = httpx2.AsyncClient(transport=transport, base_url=base)
        return http, Client(streamable_http_client(f"{base}/mcp", http_client=http), mode="2026-07-28")

    async with server.session_manager.run():
        # capture only: the third call in a window fails with the 429's status and headers
        http, client = await connect(RateLimitAwareTransport(httpx2.ASGITransport(app=limited)))
        async with http, client:
            for b in range(2):
                assert (await client.call_tool("add", {"a": 1, "b": b})).structured_content == {"result": 1 + b}
            with pytest.raises(MCPError) as caught:
                await client.call_tool("add", {"a": 1, "b": 2})
            assert caught.value.code == HTTP_RATE_LIMITED
            assert caught.value.data["status"] == 429
            assert caught.value.data["headers"]["ratelimit-reset"] == str(math.ceil(110 - clock.now))
            # the session survived
            clock.now = 110.0
            assert (await client.call_tool("add", {"a": 2, "b": 2})).structured_content == {"result": 4}

        # with retries below the session: eight concurrent calls all succeed, one 429 wave at most
        clock.now, limited.log = 200.0, []
        http, client = await connect(RateLimitAwareTransport(retrying(httpx2.ASGITransport(app=limited), clock)))
        async with http, client:
            results = await asyncio.gather(*(client.call_tool("add", {"a": n, "b": n}) for n in range(8)))
    assert [r.structured_content for r in results] == [{"result": 2 * n} for n in range(8)]
    windows_with_429 = {int(t // 10.0) for t, status in limited.log if status == 429}
    assert len(windows_with_429) <= 1
    assert sum(1 for _, status in limited.log if status == 200) == 8
