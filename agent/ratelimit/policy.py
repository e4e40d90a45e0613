"""The retry policy (tenacity): which failures to retry, how long to wait, when to give up.

``RetryPolicy.run(fn, is_write=..., upstream=...)`` calls ``fn`` (one HTTP request, never a whole
``call_tool``) and retries it:

* a 429 always (the server refused the request, so sending it again is safe), waiting the announced
  reset plus a little jitter (added, never subtracted), or full-jitter exponential backoff when
  nothing is announced;
* a read also on 5xx, 408 and timeouts or dropped connections; a write never on those (it may have
  happened: the connection layer raises ``AmbiguousWrite`` and the facade reconciles);
* a request that never left (connect error, pool timeout) always, except when the upstream is
  *unreachable* (connection refused, no such host, TLS failure: ``unreachable_cause``) and has not
  answered once in this run: a wrong URL or an offline machine fails at once with the real cause,
  while a server that answered before and then refuses connections (restarting) is waited for.

Caps (``RetryConfig``): seconds of waiting per request and per run (``RunBudget``, shared by every
request of a run; concurrent waits are counted once, as wall time), and attempts per request. When
the server announces when to come back (a reset on a 429, Retry-After on a 503), time is the only
budget: a run sharing a limit with others may be refused many times in a row and still finish.
Attempts bound only failures that announce nothing. When the announced reset lies beyond what is
left of the budget, the policy fails at once with ``RateLimited`` (exit 4) instead of sleeping and
failing anyway.

Failures are recognised by duck typing, so the same policy serves httpx2, mcp and openai: the status
comes from ``.status_code``, ``.status``, ``.response.status_code`` or ``.data["status"]``; headers from
``.response.headers``, ``.headers``, ``.data["headers"]`` or ``.details["headers"]``.

The JSON-RPC error codes below are what ``transport.RateLimitAwareTransport`` turns HTTP failures of
an MCP POST into; each error's ``data`` holds ``status``, ``kind``, ``headers`` (rate-limit headers
only), ``upstream`` (display name), ``is_write`` and, when a retry layer gave up, ``retry``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agent.errors import AmbiguousWrite, CircuitOpen, RateLimited, unreachable_cause
from agent.ratelimit.governor import Clock, Sleep, WaitEvent, WaitReporter
from agent.ratelimit.headers import normalize_headers, parse_rate_limit

T = TypeVar("T")

# ---------------------------------------------------------------- JSON-RPC codes for HTTP failures
HTTP_RATE_LIMITED = -32029  # 429: refused; data.retry says whether a retry layer already gave up
HTTP_AUTH = -32030  # 401, 403: credentials refused
HTTP_NOT_FOUND = -32031  # 404, 410 without a JSON-RPC body: wrong URL, or the session expired
HTTP_CLIENT_ERROR = -32032  # any other 4xx without a JSON-RPC body
HTTP_SERVER_ERROR = -32050  # 5xx: for a write, it may have happened
HTTP_TIMEOUT = -32051  # 408 or no answer in time: for a write, it may have happened
HTTP_NETWORK = -32052  # connection failed or dropped; data.sent is False when it never left
HTTP_CIRCUIT_OPEN = -32053  # the circuit breaker is open: the request was not sent
HTTP_SESSION_ENDED = -32054  # 404 to a request carrying a session id: the session ended, nothing was processed
HTTP_INTERNAL = -32055  # our own code failed below the SDK (a bug): data.fault names the exception to re-raise
HTTP_MALFORMED = -32056  # a 2xx answer that is not JSON-RPC (truncated JSON, HTML, a garbage event stream)
HTTP_TOO_LARGE = -32057  # an answer over max_message_bytes, discarded unread (agent.mcp.limits)

_CODE_KINDS = {
    HTTP_RATE_LIMITED: "rate_limited", HTTP_AUTH: "auth", HTTP_NOT_FOUND: "not_found",
    HTTP_CLIENT_ERROR: "client_error", HTTP_SERVER_ERROR: "server_error", HTTP_TIMEOUT: "timeout",
    HTTP_NETWORK: "network", HTTP_CIRCUIT_OPEN: "final", HTTP_SESSION_ENDED: "final", HTTP_INTERNAL: "final",
    HTTP_MALFORMED: "final",
}
# Exception class names (anywhere in the MRO) from httpx2, openai, asyncio and the builtins.
_NOT_SENT = {"ConnectError", "ConnectTimeout", "PoolTimeout", "ConnectionRefusedError"}
_TIMEOUTS = {"TimeoutException", "ReadTimeout", "WriteTimeout", "APITimeoutError", "TimeoutError"}
_NETWORK = {"NetworkError", "ReadError", "WriteError", "CloseError", "RemoteProtocolError", "ProtocolError",
            "APIConnectionError", "ConnectionError"}
_ALWAYS = {"rate_limited", "not_sent", "unreachable"}  # refused, or never left: safe to resend
_READS_ONLY = {"server_error", "timeout", "network"}


@dataclass(frozen=True)
class Failure:
    """How one exception is classified: ``kind`` and whether this call may retry it."""

    kind: str
    retryable: bool
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    received_at: float | None = None


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, if any (duck-typed)."""
    data = getattr(exc, "data", None)
    candidates = [getattr(exc, "status_code", None), getattr(exc, "status", None),
                  getattr(getattr(exc, "response", None), "status_code", None),
                  data.get("status") if isinstance(data, dict) else None]
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    if getattr(exc, "code", None) == HTTP_RATE_LIMITED:
        return 429
    return None


def headers_of(exc: BaseException) -> dict[str, str]:
    """The response headers an exception carries (lower-cased), or ``{}``."""
    data = getattr(exc, "data", None)
    details = getattr(exc, "details", None)
    for source in (getattr(getattr(exc, "response", None), "headers", None), getattr(exc, "headers", None),
                   data.get("headers") if isinstance(data, dict) else None,
                   details.get("headers") if isinstance(details, dict) else None):
        headers = normalize_headers(source)
        if headers:
            return headers
    return {}


def classify(exc: BaseException, *, is_write: bool) -> Failure:
    """Classify ``exc`` for a read (``is_write=False``) or a write; see the module docstring."""
    if isinstance(exc, (AmbiguousWrite, RateLimited, CircuitOpen)):
        # Final verdicts of a lower layer: retrying would multiply retry layers or duplicate a write.
        return Failure("final", False, status_of(exc), headers_of(exc))
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and isinstance(data.get("retry"), dict) and data["retry"].get("gave_up"):
        return Failure("final", False, status_of(exc), headers_of(exc))
    kind = _kind(exc)
    if kind is None:
        return Failure("other", False, status_of(exc))
    retryable = kind in _ALWAYS or (kind in _READS_ONLY and not is_write)
    received_at = getattr(exc, "received_at", None)
    return Failure(kind, retryable, status_of(exc), headers_of(exc),
                   received_at if isinstance(received_at, (int, float)) else None)


def _kind(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    data = getattr(exc, "data", None)
    if isinstance(code, int) and code in _CODE_KINDS:
        if code == HTTP_NETWORK and isinstance(data, dict) and data.get("sent") is False:
            return "not_sent"
        return _CODE_KINDS[code]
    status = status_of(exc)
    if status is not None:
        if status == 429:
            return "rate_limited"
        if status == 408:
            return "timeout"
        if status >= 500:
            return "server_error"
        return "client_error" if status >= 400 else None
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & (_NOT_SENT | {"APIConnectionError"}) and unreachable_cause(exc) is not None:
        return "unreachable"
    if names & _NOT_SENT:
        return "not_sent"
    if names & _TIMEOUTS:
        return "timeout"
    if names & _NETWORK:
        return "network"
    return None


# ---------------------------------------------------------------- configuration and run budget
@dataclass(frozen=True)
class RetryConfig:
    """Retry caps and shapes; the defaults suit cron work (a run may sit out several windows)."""

    max_attempts: int = 8
    max_wait_per_request: float = 120.0
    max_wait_per_run: float = 900.0
    jitter: float = 1.0  # at most this many seconds added to an announced wait (else 10% of it + 50 ms)
    backoff_base: float = 0.5  # full-jitter exponential: uniform(0, min(max, base * 2**(n-1)))
    backoff_max: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any) -> RetryConfig:
        """Build from any object with ``max_attempts``/``max_wait_per_request``/``max_wait_per_run``."""
        defaults = cls()
        return cls(
            max_attempts=int(getattr(settings, "max_attempts", defaults.max_attempts)),
            max_wait_per_request=float(getattr(settings, "max_wait_per_request", defaults.max_wait_per_request)),
            max_wait_per_run=float(getattr(settings, "max_wait_per_run", defaults.max_wait_per_run)),
        )


class RunBudget:
    """Seconds of waiting one run may spend, shared by all its requests.

    Waits are charged as wall time: eight callers sitting out the same window cost its length once,
    not eight times (the union of the wait intervals is counted).
    """

    def __init__(self, max_wait: float = 900.0, clock: Clock = time.monotonic) -> None:
        self.max_wait = max_wait
        self.clock = clock
        self.spent = 0.0
        self._covered_until: float | None = None

    def remaining(self) -> float:
        """Seconds still available, counting a wait in progress as already spent."""
        return max(0.0, self.max_wait - self.spent)

    def charge(self, seconds: float, start: float | None = None) -> float:
        """Charge a wait of ``seconds`` starting at ``start`` (default now); returns what it added."""
        start = self.clock() if start is None else start
        end = start + max(0.0, seconds)
        begin = start if self._covered_until is None else max(start, self._covered_until)
        added = max(0.0, end - begin)
        self.spent += added
        self._covered_until = end if self._covered_until is None else max(self._covered_until, end)
        return added


# ---------------------------------------------------------------- the policy
@dataclass
class _Call:
    """Per-call bookkeeping shared by the tenacity callbacks of one ``run``."""

    upstream: str
    is_write: bool
    failure: Failure | None = None
    announced: float | None = None
    remaining: float = 0.0
    gave_up: str | None = None
    unannounced: int = 0  # failed attempts that announced no reset: the only ones the attempt cap counts


_ANNOUNCING = {"rate_limited", "server_error"}
_REPORT_REASON = {"rate_limited": "rate_limited", "server_error": "server_error", "timeout": "timeout"}


class RetryPolicy:
    """Header-aware retries for one request at a time; share one instance (and its budget) per run."""

    def __init__(
        self,
        config: RetryConfig | None = None,
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        budget: RunBudget | None = None,
        reporter: WaitReporter | None = None,
    ) -> None:
        self.config = config or RetryConfig()
        self.clock = clock
        self.wall = wall
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.budget = budget or RunBudget(self.config.max_wait_per_run, clock)
        self.reporter = reporter or WaitReporter()
        self._answered: set[str] = set()  # upstreams that answered at least once (any status)

    def answered(self, upstream: str) -> bool:
        """Whether ``upstream`` has answered a request of this run (with any status)."""
        return upstream in self._answered

    def _retryable(self, exc: BaseException, *, is_write: bool, upstream: str) -> bool:
        failure = classify(exc, is_write=is_write)
        if failure.status is not None:
            self._answered.add(upstream)
        if failure.kind == "unreachable" and upstream not in self._answered:
            return False  # a wrong URL, an offline machine: say so now, not after minutes of retries
        return failure.retryable

    def allowance(self, spent: float = 0.0) -> float:
        """Seconds a request that already waited ``spent`` may still wait (per-request and run budgets)."""
        return max(0.0, min(self.config.max_wait_per_request - spent, self.budget.remaining()))

    async def run(self, fn: Callable[[], Awaitable[T]], *, is_write: bool, upstream: str = "upstream") -> T:
        """Call ``fn`` until it succeeds, a failure is not retryable, or a cap is reached.

        Raises the last exception as is, except for rate limits: those end in ``RateLimited`` (exit 4)
        chained to the last refusal.
        """
        # tenacity is imported here, not at module import: the CLI's startup stays fast.
        from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

        call = _Call(upstream, is_write)

        def wait(state: RetryCallState) -> float:
            exc = _exception(state)
            failure = call.failure = classify(exc, is_write=is_write)
            call.remaining = self.allowance(state.idle_for)
            # A 503 may carry Retry-After too; it is honoured the same way as on a 429.
            call.announced = self._announced(failure) if failure.kind in _ANNOUNCING else None
            if call.announced is not None:
                if call.announced > call.remaining:
                    call.gave_up = "reset_beyond_budget"
                    return 0.0
                # "A little": a tenth of the wait (so a 0.4 s retry-after-ms stays near 0.4 s), capped.
                little = min(self.config.jitter, 0.05 + 0.1 * call.announced)
                headroom = min(little, call.remaining - call.announced)
                return call.announced + self.rng.uniform(0.0, max(0.0, headroom))
            if call.remaining <= 0.0:
                call.gave_up = "budget"
                return 0.0
            ceiling = min(self.config.backoff_max, self.config.backoff_base * 2 ** call.unannounced)
            return min(self.rng.uniform(0.0, ceiling), call.remaining)

        def stop(state: RetryCallState) -> bool:
            # tenacity runs ``wait`` first, so ``call.announced`` describes this very failure.
            if call.announced is None or call.announced <= 0.0:
                call.unannounced += 1
            if call.gave_up is None and call.unannounced >= self.config.max_attempts:
                call.gave_up = "attempts"
            return call.gave_up is not None

        def before_sleep(state: RetryCallState) -> None:
            seconds = state.upcoming_sleep
            self.budget.charge(seconds)
            failure = call.failure
            self.reporter.report(WaitEvent(
                upstream, seconds, _REPORT_REASON.get(failure.kind if failure else "", "network"),
                attempt=state.attempt_number, status=failure.status if failure else None))

        def give_up(state: RetryCallState) -> Any:
            exc = _exception(state)
            if call.failure is not None and call.failure.kind == "rate_limited":
                raise self._rate_limited(call, state.attempt_number) from exc
            _mark_gave_up(exc, call.gave_up)
            raise exc

        retrying = AsyncRetrying(
            sleep=self.sleep,
            retry=retry_if_exception(lambda exc: self._retryable(exc, is_write=is_write, upstream=upstream)),
            wait=wait,
            stop=stop,
            before_sleep=before_sleep,
            retry_error_callback=give_up,
        )
        result: T = await retrying(fn)
        self._answered.add(upstream)
        return result

    def _announced(self, failure: Failure) -> float | None:
        """Seconds from now until the refusing server said to come back, if it said so."""
        now = self.clock()
        age = 0.0 if failure.received_at is None else max(0.0, now - failure.received_at)
        info = parse_rate_limit(failure.headers, now=self.wall() - age)
        if info.reset_after is None:
            return None
        return max(0.0, info.reset_after - age)

    def _rate_limited(self, call: _Call, attempts: int) -> RateLimited:
        announced = call.announced
        if call.gave_up == "reset_beyond_budget" and announced is not None:
            message = (f"rate limited by {call.upstream}: the limit resets in {announced:.0f} s, beyond the "
                       f"{call.remaining:.0f} s left of the wait budget")
        elif call.gave_up == "budget":
            message = f"rate limited by {call.upstream}: the wait budget ran out after {attempts} attempts"
        else:
            message = f"rate limited by {call.upstream}: still refused after {attempts} attempts"
        return RateLimited(message, retry_after=announced, status=429, upstream=call.upstream,
                           attempts=attempts, reason=call.gave_up,
                           hint="try again after the reset, or raise max_wait_per_request / max_wait_per_run")


def _exception(state: Any) -> BaseException:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    if exc is None:  # tenacity only consults wait/stop after a failed attempt
        raise RuntimeError("retry state without an exception")
    return exc


def gave_up_reason(exc: BaseException) -> str | None:
    """Why ``RetryPolicy.run`` stopped retrying ``exc`` (``"attempts"``, ``"budget"``,
    ``"reset_beyond_budget"``), or ``None`` when it was never retryable."""
    reason = getattr(exc, "retry_gave_up", None)
    return reason if isinstance(reason, str) else None


def _mark_gave_up(exc: BaseException, reason: str | None) -> None:
    # An exception type with __slots__ refuses the attribute: the reason is only informative.
    with contextlib.suppress(AttributeError):
        exc.retry_gave_up = reason  # type: ignore[attr-defined]
