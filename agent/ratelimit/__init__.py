"""Rate limits, retries and upstream health, below the MCP session (and the OpenAI client).

Public API (names are importable from ``agent.ratelimit``; submodules load on first use, so
``import agent.ratelimit`` stays cheap for the CLI's startup; ``httpx2`` and ``tenacity`` load only
with the transport and the first retry):

``headers``
    ``parse_rate_limit(headers, now) -> RateLimitInfo(reset_after, limit, remaining, window, source)``
    for ``Retry-After`` (seconds or HTTP-date), ``retry-after-ms``, ``ratelimit-*``, ``RateLimit``,
    ``RateLimit-Policy``, ``X-RateLimit-*`` (epoch, ms-epoch or delta) and OpenAI's
    ``x-ratelimit-*-requests/-tokens``; garbage is ignored, never raised.
``governor``
    ``Governor(key, max_concurrency, clock, wall, sleep, reporter)``: one per upstream, shared by all
    callers; ``async with governor.slot(): ...`` then ``governor.observe(status, headers,
    received_at)``. Holds new requests until a refused or exhausted window ends, paces on
    ``remaining - in_flight``, caps concurrency. ``GovernorRegistry().for_url(url)``;
    ``upstream_key(url)`` (internal, holds the URL token) and ``display_name(url)`` (safe to show).
    ``acquire(max_wait)`` raises ``RateLimited`` at once when the window outlasts the caller's budget.
    ``WaitEvent`` (``.message()``: "rate limited by api.truto.one, retrying in 2.4 s") and
    ``WaitReporter(on_wait, usage)`` report every wait; ``usage`` is any ``record_wait(seconds)``
    counter such as ``agent.usage.Usage``. Counted: each retry sleep of a request, and each hold
    wave of a governor once (reported by the first caller held; the others wait silently).
``policy``
    ``RetryPolicy(RetryConfig(max_attempts=8, max_wait_per_request=120, max_wait_per_run=900),
    clock, wall, sleep, rng, budget=RunBudget(...), reporter)``; ``await policy.run(fn,
    is_write=..., upstream=...)`` retries 429 always, 5xx/408/timeouts for reads only, waits the
    announced reset plus jitter (never less) or full-jitter backoff, and raises ``RateLimited``
    (exit 4) when the budget runs out or the reset lies beyond it (attempts bound only failures
    that announce no reset); ``allowance(spent)`` is the wait
    still allowed to a request. ``classify(exc, is_write)``,
    ``status_of``, ``headers_of`` read any exception that carries a response (httpx2, openai,
    ``MCPError.data``); an unreachable upstream (``agent.errors.unreachable_cause``: refused, no such
    host, TLS) is not retried until it has answered once in the run. JSON-RPC codes: ``HTTP_RATE_LIMITED = -32029``,
    ``HTTP_AUTH = -32030``, ``HTTP_NOT_FOUND = -32031``, ``HTTP_CLIENT_ERROR = -32032``,
    ``HTTP_SERVER_ERROR = -32050``, ``HTTP_TIMEOUT = -32051``, ``HTTP_NETWORK = -32052``,
    ``HTTP_CIRCUIT_OPEN = -32053``, ``HTTP_SESSION_ENDED = -32054``, ``HTTP_INTERNAL = -32055``,
    ``HTTP_MALFORMED = -32056``, ``HTTP_TOO_LARGE = -32057`` (agent.mcp.limits).
``breaker``
    ``CircuitBreaker(name, failure_threshold=5, cool_down=30, clock)``: ``admit()`` (raises
    ``CircuitOpen``), ``record_success/failure/neutral``, ``record(exc)``, ``async with guard()``;
    ``BreakerRegistry().for_url(url)``.
``transport`` (httpx2)
    ``RetryingTransport(inner, policy, governors, breakers=None, on_response=None)`` re-sends refused
    requests itself; ``RateLimitAwareTransport(inner, on_response=...)`` records every answer and
    turns failures of JSON-RPC POSTs into JSON-RPC errors carrying ``{status, kind, headers, ...}``
    (our own bugs as ``HTTP_INTERNAL``: ``take_fault(id)`` returns the exception; malformed 2xx
    answers as ``HTTP_MALFORMED``, described by ``describe_body``);
    ``write_intent(flag)`` marks the requests of a block as writes or reads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "headers": ("RateLimitInfo", "parse_rate_limit", "normalize_headers", "parse_retry_after",
                "parse_retry_after_ms", "parse_reset", "parse_go_duration"),
    "governor": ("Governor", "GovernorRegistry", "GovernorState", "WaitEvent", "WaitReporter", "WaitRecorder",
                 "upstream_key", "display_name"),
    "policy": ("RetryPolicy", "RetryConfig", "RunBudget", "Failure", "classify", "status_of", "headers_of",
               "gave_up_reason", "HTTP_RATE_LIMITED", "HTTP_AUTH", "HTTP_NOT_FOUND",
               "HTTP_CLIENT_ERROR", "HTTP_SERVER_ERROR", "HTTP_TIMEOUT", "HTTP_NETWORK", "HTTP_CIRCUIT_OPEN",
               "HTTP_SESSION_ENDED", "HTTP_INTERNAL", "HTTP_MALFORMED"),
    "breaker": ("CircuitBreaker", "BreakerRegistry", "is_health_failure"),
    "transport": ("RetryingTransport", "RateLimitAwareTransport", "UpstreamHTTPStatus", "write_intent",
                  "request_is_write", "take_fault", "describe_body", "WRITE_INTENT", "RETRY_EXTENSION"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [
    "HTTP_AUTH",
    "HTTP_CIRCUIT_OPEN",
    "HTTP_CLIENT_ERROR",
    "HTTP_INTERNAL",
    "HTTP_MALFORMED",
    "HTTP_NETWORK",
    "HTTP_NOT_FOUND",
    "HTTP_RATE_LIMITED",
    "HTTP_SERVER_ERROR",
    "HTTP_SESSION_ENDED",
    "HTTP_TIMEOUT",
    "RETRY_EXTENSION",
    "WRITE_INTENT",
    "BreakerRegistry",
    "CircuitBreaker",
    "Failure",
    "Governor",
    "GovernorRegistry",
    "GovernorState",
    "RateLimitAwareTransport",
    "RateLimitInfo",
    "RetryConfig",
    "RetryPolicy",
    "RetryingTransport",
    "RunBudget",
    "UpstreamHTTPStatus",
    "WaitEvent",
    "WaitRecorder",
    "WaitReporter",
    "classify",
    "describe_body",
    "display_name",
    "gave_up_reason",
    "headers_of",
    "is_health_failure",
    "normalize_headers",
    "parse_go_duration",
    "parse_rate_limit",
    "parse_reset",
    "parse_retry_after",
    "parse_retry_after_ms",
    "request_is_write",
    "status_of",
    "take_fault",
    "upstream_key",
    "write_intent",
]

if TYPE_CHECKING:
    from agent.ratelimit.breaker import BreakerRegistry, CircuitBreaker, is_health_failure
    from agent.ratelimit.governor import (
        Governor,
        GovernorRegistry,
        GovernorState,
        WaitEvent,
        WaitRecorder,
        WaitReporter,
        display_name,
        upstream_key,
    )
    from agent.ratelimit.headers import (
        RateLimitInfo,
        normalize_headers,
        parse_go_duration,
        parse_rate_limit,
        parse_reset,
        parse_retry_after,
        parse_retry_after_ms,
    )
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
        Failure,
        RetryConfig,
        RetryPolicy,
        RunBudget,
        classify,
        gave_up_reason,
        headers_of,
        status_of,
    )
    from agent.ratelimit.transport import (
        RETRY_EXTENSION,
        WRITE_INTENT,
        RateLimitAwareTransport,
        RetryingTransport,
        UpstreamHTTPStatus,
        describe_body,
        request_is_write,
        take_fault,
        write_intent,
    )


def __getattr__(name: str) -> Any:
    """Load the submodule that defines ``name`` on first access (PEP 562)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'agent.ratelimit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"agent.ratelimit.{module}"), name)
    globals()[name] = value
    return value
