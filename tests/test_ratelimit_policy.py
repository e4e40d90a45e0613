"""The tenacity retry policy and the circuit breaker, with injected clock, sleep and randomness."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx2
import pytest

from agent.errors import EXIT_RATE_LIMITED, AmbiguousWrite, CircuitOpen, RateLimited, UpstreamError
from agent.ratelimit.breaker import BreakerRegistry, CircuitBreaker, is_health_failure
from agent.ratelimit.governor import WaitEvent, WaitReporter
from agent.ratelimit.policy import (
    HTTP_NETWORK,
    HTTP_RATE_LIMITED,
    HTTP_SERVER_ERROR,
    RetryConfig,
    RetryPolicy,
    RunBudget,
    classify,
    gave_up_reason,
    headers_of,
    status_of,
)
from agent.usage import Usage
from tests.test_ratelimit_governor import FakeClock


class HTTPFailure(Exception):
    """A duck-typed failure: ``.status_code`` and ``.headers``, like the transport's own."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.headers = headers or {}


class ReadTimeout(Exception):
    """Named like httpx2's: classification goes by class name."""


class Flaky:
    """An async callable that raises the queued failures in order, then returns ``"ok"``."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def make_policy(clock: FakeClock, *, seed: int = 1, events: list[WaitEvent] | None = None,
                usage: Usage | None = None, budget: RunBudget | None = None, **config: Any) -> RetryPolicy:
    """A policy on the fake clock that records its waits."""
    cfg = RetryConfig(**config)
    return RetryPolicy(cfg, clock=clock, wall=clock.wall, sleep=clock.sleep, rng=random.Random(seed),
                       budget=budget or RunBudget(cfg.max_wait_per_run, clock),
                       reporter=WaitReporter(events.append if events is not None else None, usage))


# ---------------------------------------------------------------- waits
async def test_429_waits_the_announced_reset_plus_jitter_and_reports_it() -> None:
    clock, events, usage = FakeClock(), list[WaitEvent](), Usage()
    policy = make_policy(clock, events=events, usage=usage)
    fn = Flaky(HTTPFailure(429, {"ratelimit-reset": "2"}), HTTPFailure(429, {"retry-after-ms": "1500"}))
    assert await policy.run(fn, is_write=False, upstream="api.truto.one") == "ok"
    assert fn.calls == 3
    assert 2.0 <= clock.sleeps[0] <= 3.0 and 1.5 <= clock.sleeps[1] <= 2.5
    assert [e.reason for e in events] == ["rate_limited", "rate_limited"]
    assert events[0].message().startswith("rate limited by api.truto.one, retrying in ")
    assert usage.rate_limit_waits == 2 and usage.wait_seconds == pytest.approx(sum(clock.sleeps))


@pytest.mark.parametrize("seed", range(40))
async def test_jitter_is_only_ever_added(seed: int) -> None:
    clock = FakeClock()
    announced = random.Random(seed).choice([0.0, 0.02, 1.0, 7.0, 59.0])
    policy = make_policy(clock, seed=seed, jitter=1.0)
    await policy.run(Flaky(HTTPFailure(429, {"retry-after": str(announced)})), is_write=False)
    assert announced <= clock.sleeps[0] <= announced + 1.0


async def test_jitter_never_pushes_past_the_budget() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_wait_per_request=10.0, jitter=5.0)
    await policy.run(Flaky(HTTPFailure(429, {"retry-after": "9.5"})), is_write=False)
    assert 9.5 <= clock.sleeps[0] <= 10.0


async def test_announcement_ages_from_receipt() -> None:
    clock = FakeClock()
    failure = HTTPFailure(429, {"ratelimit-reset": "5"})
    failure.received_at = clock.now - 2.0  # type: ignore[attr-defined]
    policy = make_policy(clock, jitter=0.0)
    await policy.run(Flaky(failure), is_write=False)
    assert clock.sleeps == [pytest.approx(3.0)]


async def test_unannounced_failures_use_full_jitter_exponential_backoff() -> None:
    clock = FakeClock()
    policy = make_policy(clock, backoff_base=0.5, backoff_max=4.0)
    fn = Flaky(*(HTTPFailure(503) for _ in range(6)))
    await policy.run(fn, is_write=False)
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(clock.sleeps) == 6
    assert all(0.0 <= s <= c for s, c in zip(clock.sleeps, ceilings, strict=True))
    assert len(set(clock.sleeps)) == 6  # randomised, not a fixed ladder


async def test_503_with_retry_after_is_honoured() -> None:
    clock = FakeClock()
    await make_policy(clock, jitter=0.0).run(Flaky(HTTPFailure(503, {"retry-after": "4"})), is_write=False)
    assert clock.sleeps == [4.0]


# ---------------------------------------------------------------- budgets
async def test_unannounced_429s_run_out_of_attempts_into_rate_limited_exit_4() -> None:
    clock = FakeClock()
    fn = Flaky(*(HTTPFailure(429) for _ in range(20)))
    with pytest.raises(RateLimited) as caught:
        await make_policy(clock, max_attempts=8).run(fn, is_write=False, upstream="api.truto.one")
    assert fn.calls == 8 and len(clock.sleeps) == 7
    err = caught.value
    assert err.exit_code == EXIT_RATE_LIMITED == 4
    assert err.details["reason"] == "attempts" and "8 attempts" in err.message
    assert isinstance(err.__cause__, HTTPFailure)


async def test_announced_resets_are_bounded_by_time_not_attempts() -> None:
    # Two runs sharing one limit: refused many times in a row, each refusal saying when to come back.
    clock = FakeClock()
    fn = Flaky(*(HTTPFailure(429, {"ratelimit-reset": "1"}) for _ in range(30)))
    assert await make_policy(clock, max_attempts=8).run(fn, is_write=False) == "ok"
    assert fn.calls == 31 and 30.0 <= sum(clock.sleeps) <= 120.0


async def test_announced_resets_end_when_the_request_budget_does() -> None:
    clock = FakeClock()
    fn = Flaky(*(HTTPFailure(429, {"ratelimit-reset": "10"}) for _ in range(100)))
    with pytest.raises(RateLimited) as caught:
        await make_policy(clock, max_attempts=8, max_wait_per_request=120.0).run(fn, is_write=False)
    assert caught.value.details["reason"] == "reset_beyond_budget"
    assert 11 <= fn.calls <= 12 and sum(clock.sleeps) <= 120.0  # ~11 waits of 10 s (+jitter) fit in 120 s


async def test_attempts_count_only_failures_that_announce_nothing() -> None:
    clock = FakeClock()
    mixed = [HTTPFailure(503), HTTPFailure(429, {"retry-after": "1"})] * 6
    fn = Flaky(*mixed)
    with pytest.raises(HTTPFailure):
        await make_policy(clock, max_attempts=4).run(fn, is_write=False)
    assert fn.calls == 7  # 503, 429, 503, 429, 503, 429, 503: the fourth unannounced failure ends it


async def test_wait_budget_running_out_is_rate_limited() -> None:
    clock = FakeClock()
    fn = Flaky(*(HTTPFailure(429, {"retry-after": "50"}) for _ in range(20)))
    with pytest.raises(RateLimited) as caught:
        await make_policy(clock, max_wait_per_request=120.0).run(fn, is_write=False)
    # two waits of 50 s (+jitter) fit in 120 s; the third announcement no longer does
    assert fn.calls == 3 and len(clock.sleeps) == 2 and sum(clock.sleeps) <= 120.0
    assert caught.value.details["reason"] == "reset_beyond_budget"
    assert caught.value.retry_after == 50.0


async def test_reset_beyond_the_budget_fails_at_once() -> None:
    clock = FakeClock()
    fn = Flaky(HTTPFailure(429, {"ratelimit-reset": "300"}))
    with pytest.raises(RateLimited) as caught:
        await make_policy(clock).run(fn, is_write=False, upstream="api.truto.one")
    assert fn.calls == 1 and clock.sleeps == []  # no sleeping before failing
    assert caught.value.retry_after == 300.0
    assert "resets in 300 s" in caught.value.message and caught.value.hint


async def test_run_budget_is_shared_between_requests() -> None:
    clock = FakeClock()
    budget = RunBudget(10.0, clock)
    policy = make_policy(clock, budget=budget, jitter=0.0)
    await policy.run(Flaky(HTTPFailure(429, {"retry-after": "6"})), is_write=False)
    assert budget.remaining() == pytest.approx(4.0)
    fn = Flaky(HTTPFailure(429, {"retry-after": "6"}))
    with pytest.raises(RateLimited):
        await policy.run(fn, is_write=False)
    assert fn.calls == 1


def test_run_budget_counts_overlapping_waits_once() -> None:
    clock = FakeClock()
    budget = RunBudget(100.0, clock)
    assert budget.charge(10.0, start=0.0) == 10.0
    assert budget.charge(10.0, start=0.0) == 0.0   # the same wave
    assert budget.charge(10.0, start=5.0) == 5.0   # overlaps half
    assert budget.charge(2.0, start=30.0) == 2.0   # later, disjoint
    assert budget.spent == 17.0 and budget.remaining() == 83.0


async def test_budget_exhausted_stops_backoff_too() -> None:
    clock = FakeClock()
    budget = RunBudget(0.0, clock)
    fn = Flaky(HTTPFailure(503), HTTPFailure(503))
    with pytest.raises(HTTPFailure) as caught:
        await make_policy(clock, budget=budget).run(fn, is_write=False)
    assert fn.calls == 1 and gave_up_reason(caught.value) == "budget"


async def test_concurrent_waits_share_one_budget_wave() -> None:
    clock = FakeClock()
    budget = RunBudget(20.0, clock)
    policy = make_policy(clock, budget=budget, jitter=0.0)
    fns = [Flaky(HTTPFailure(429, {"retry-after": "8"})) for _ in range(8)]
    assert await asyncio.gather(*(policy.run(f, is_write=False) for f in fns)) == ["ok"] * 8
    assert budget.spent == pytest.approx(8.0)


# ---------------------------------------------------------------- reads vs writes
@pytest.mark.parametrize(("failure", "is_write", "retried"), [
    (HTTPFailure(429), True, True),                 # refused: safe even for a write
    (HTTPFailure(503), False, True),
    (HTTPFailure(503), True, False),                # a write's 5xx is ambiguous
    (HTTPFailure(408), False, True),
    (HTTPFailure(404), False, False),
    (HTTPFailure(401), False, False),
    (ReadTimeout(), False, True),
    (ReadTimeout(), True, False),
    (httpx2.ConnectError("refused"), True, True),   # never left: safe for a write
    (httpx2.ReadTimeout("slow"), False, True),
    (httpx2.ReadTimeout("slow"), True, False),
    (httpx2.RemoteProtocolError("dropped"), True, False),
    (TimeoutError(), False, True),
    (ValueError("bug"), False, False),
    (UpstreamError("server said 502", status=502), False, True),
])
async def test_what_is_retried(failure: Exception, is_write: bool, retried: bool) -> None:
    clock = FakeClock()
    fn = Flaky(failure)
    if retried:
        assert await make_policy(clock).run(fn, is_write=is_write) == "ok"
        assert fn.calls == 2
    else:
        with pytest.raises(type(failure)):
            await make_policy(clock).run(fn, is_write=is_write)
        assert fn.calls == 1 and clock.sleeps == []


@pytest.mark.parametrize("verdict", [
    AmbiguousWrite("create_call timed out", status=504),
    RateLimited("gave up", retry_after=3.0),
    CircuitOpen("open"),
])
async def test_final_verdicts_are_never_retried(verdict: Exception) -> None:
    fn = Flaky(verdict)
    with pytest.raises(type(verdict)):
        await make_policy(FakeClock()).run(fn, is_write=False)
    assert fn.calls == 1  # an ambiguous write is never sent twice


# ---------------------------------------------------------------- duck typing: mcp and openai
async def test_mcp_error_from_the_transport_is_understood() -> None:
    from mcp.shared.exceptions import MCPError

    clock = FakeClock()
    refused = MCPError(HTTP_RATE_LIMITED, "HTTP 429 Too Many Requests",
                       {"status": 429, "kind": "rate_limited", "headers": {"ratelimit-reset": "3"}})
    assert status_of(refused) == 429 and headers_of(refused) == {"ratelimit-reset": "3"}
    await make_policy(clock, jitter=0.0).run(Flaky(refused), is_write=True)
    assert clock.sleeps == [3.0]
    # a transport that already gave up marks it: no second retry layer
    gave_up = MCPError(HTTP_RATE_LIMITED, "x", {"status": 429, "retry": {"gave_up": "attempts"}})
    assert classify(gave_up, is_write=False).kind == "final"
    never_left = MCPError(HTTP_NETWORK, "x", {"status": None, "sent": False})
    assert classify(never_left, is_write=True).retryable
    server = MCPError(HTTP_SERVER_ERROR, "x", {"status": 502})
    assert classify(server, is_write=False).retryable and not classify(server, is_write=True).retryable
    assert status_of(MCPError(HTTP_RATE_LIMITED, "bare")) == 429


async def test_openai_rate_limit_error_with_retry_after_ms() -> None:
    import openai

    clock = FakeClock()
    request = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")
    response = httpx2.Response(429, headers={"retry-after-ms": "1200", "x-ratelimit-reset-requests": "6m0s"},
                               request=request)
    error = openai.RateLimitError("Rate limit reached", response=response, body=None)
    await make_policy(clock, jitter=0.0).run(Flaky(error), is_write=False, upstream="api.openai.com")
    assert clock.sleeps == [1.2]


def test_config_from_settings() -> None:
    from agent.config import Settings

    cfg = RetryConfig.from_settings(Settings(max_attempts=3, max_wait_per_request=5, max_wait_per_run=60))
    assert (cfg.max_attempts, cfg.max_wait_per_request, cfg.max_wait_per_run) == (3, 5.0, 60.0)
    assert RetryConfig().max_attempts >= 8 and RetryConfig().max_wait_per_request >= 120
    assert RetryConfig().max_wait_per_run >= 900


# ---------------------------------------------------------------- circuit breaker
def test_breaker_opens_after_n_failures_and_closes_after_a_good_trial() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("api.truto.one", failure_threshold=3, cool_down=30.0, clock=clock)
    for _ in range(2):
        assert breaker.admit() is False
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.admit()
    breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as caught:
        breaker.admit()
    assert caught.value.exit_code == 3 and "api.truto.one" in caught.value.message
    clock.now += 30.0
    assert breaker.state == "half_open"
    assert breaker.admit() is True           # the single trial
    with pytest.raises(CircuitOpen):
        breaker.admit()                      # others still fail fast meanwhile
    breaker.record_success(trial=True)
    assert breaker.state == "closed" and breaker.failures == 0
    assert breaker.admit() is False


def test_breaker_failed_trial_reopens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cool_down=10.0, clock=clock)
    breaker.admit()
    breaker.record_failure()
    clock.now += 10.0
    trial = breaker.admit()
    breaker.record_failure(trial)
    assert breaker.state == "open"
    clock.now += 9.0
    with pytest.raises(CircuitOpen):
        breaker.admit()


def test_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


@pytest.mark.parametrize(("exc", "effect"), [
    (None, "success"),
    (HTTPFailure(503), "failure"),
    (httpx2.ReadTimeout("slow"), "failure"),
    (httpx2.ConnectError("refused"), "failure"),
    (AmbiguousWrite("maybe"), "failure"),
    (HTTPFailure(429), "neutral"),
    (RateLimited("gave up"), "neutral"),
    (HTTPFailure(404), "success"),
    (ValueError("bug"), "success"),
])
def test_breaker_record_rules(exc: BaseException | None, effect: str) -> None:
    breaker = CircuitBreaker(failure_threshold=5, clock=FakeClock())
    breaker.failures = 2
    breaker.record(exc)
    assert breaker.failures == {"success": 0, "failure": 3, "neutral": 2}[effect]


async def test_breaker_guard() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cool_down=5.0, clock=clock)
    for _ in range(2):
        with pytest.raises(httpx2.ConnectError):
            async with breaker.guard():
                raise httpx2.ConnectError("down")
    with pytest.raises(CircuitOpen):
        async with breaker.guard():
            pytest.fail("must not run while open")
    clock.now += 5.0
    async with breaker.guard():
        pass
    assert breaker.state == "closed"
    # a cancelled trial proves nothing: the next call may be the trial again
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 5.0
    with pytest.raises(asyncio.CancelledError):
        async with breaker.guard():
            raise asyncio.CancelledError
    assert breaker.admit() is True


def test_breaker_registry_and_health_rules() -> None:
    registry = BreakerRegistry(failure_threshold=2)
    a = registry.for_url("https://api.truto.one/mcp/tok_secret_abcdef")
    assert registry.for_url("https://api.truto.one/mcp/tok_secret_abcdef?x=1") is a
    assert a.name == "api.truto.one" and a.failure_threshold == 2
    assert is_health_failure(HTTPFailure(500)) and not is_health_failure(HTTPFailure(400))
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)


# ---------------------------------------------------------------- unreachable upstreams
def refused() -> httpx2.ConnectError:
    """A connect failure as httpx2 raises it: the socket's ConnectionRefusedError in its cause chain."""
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
        except ConnectionRefusedError as exc:
            raise httpx2.ConnectError("All connection attempts failed") from exc
    except httpx2.ConnectError as exc:
        return exc


async def test_an_unreachable_upstream_fails_at_once_until_it_has_answered() -> None:
    clock = FakeClock()
    policy = make_policy(clock)
    first = Flaky(refused(), refused())
    with pytest.raises(httpx2.ConnectError):
        await policy.run(first, is_write=False, upstream="127.0.0.1:1")
    assert first.calls == 1 and clock.sleeps == []  # the policy's decision: no retry
    assert classify(refused(), is_write=False).kind == "unreachable"

    # Once it has answered, the same failure means "restarting": waited for like any connect error.
    assert await policy.run(Flaky(HTTPFailure(503)), is_write=False, upstream="127.0.0.1:1") == "ok"
    again = Flaky(refused())
    assert await policy.run(again, is_write=False, upstream="127.0.0.1:1") == "ok"
    assert again.calls == 2
    # Other upstreams keep their own memory.
    with pytest.raises(httpx2.ConnectError):
        await policy.run(Flaky(refused()), is_write=False, upstream="api.truto.one")


def test_unreachable_causes_are_named() -> None:
    import socket
    import ssl

    from agent.errors import unreachable_cause

    def wrapped(cause: BaseException) -> Exception:
        outer = httpx2.ConnectError("failed")
        outer.__cause__ = cause
        return outer

    assert unreachable_cause(refused()) == "connection refused"
    assert unreachable_cause(wrapped(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))) == \
        "no such host"
    assert unreachable_cause(wrapped(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"))) \
        == "DNS lookup failed (Temporary failure in name resolution)"
    tls = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    tls.reason = "WRONG_VERSION_NUMBER"  # type: ignore[misc]
    assert unreachable_cause(wrapped(tls)) == "TLS handshake failed (WRONG_VERSION_NUMBER)"
    assert unreachable_cause(httpx2.ConnectError("timed out")) is None
    assert classify(httpx2.ConnectError("timed out"), is_write=False).kind == "not_sent"
