"""A circuit breaker per upstream: stop calling a server that keeps failing, probe it after a cool-down.

States::

    closed ──(failure_threshold consecutive failures)──▶ open ──(cool_down elapsed)──▶ half_open
      ▲                                                   ▲                              │
      └────────────────(the trial call succeeds)──────────┴───(the trial call fails)─────┘

While open, ``admit()`` raises ``CircuitOpen`` (exit 3) at once. Half-open lets exactly one trial
call through; concurrent callers keep failing fast until the trial has its answer.

Only health failures count (5xx, timeouts, dropped or refused connections, ambiguous writes). A 429
or a 4xx proves the server is alive: a 4xx closes the count like a success, a 429 is neutral.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from agent.errors import AmbiguousWrite, CircuitOpen, RateLimited
from agent.ratelimit.governor import Clock, display_name, upstream_key
from agent.ratelimit.policy import classify

_HEALTH_KINDS = {"server_error", "timeout", "network", "not_sent"}


def is_health_failure(exc: BaseException) -> bool:
    """True when ``exc`` says the upstream is unhealthy (not merely refusing or rejecting a request)."""
    if isinstance(exc, AmbiguousWrite):
        return True
    return classify(exc, is_write=False).kind in _HEALTH_KINDS


class CircuitBreaker:
    """Counts consecutive health failures of one upstream; see the module docstring."""

    def __init__(
        self,
        name: str = "upstream",
        *,
        failure_threshold: int = 5,
        cool_down: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cool_down = cool_down
        self.clock = clock
        self.failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"`` (open with the cool-down over)."""
        if self._opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self._opened_at >= self.cool_down else "open"

    def admit(self) -> bool:
        """Let a call through or raise ``CircuitOpen``; returns True when the call is the half-open trial."""
        state = self.state
        if state == "closed":
            return False
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        wait = 0.0 if self._opened_at is None else max(0.0, self._opened_at + self.cool_down - self.clock())
        raise CircuitOpen(
            f"{self.name} failed {self.failures} times in a row; not calling it for {wait:.0f} s",
            hint="check the server's status page or network, then run again",
            upstream=self.name, retry_after=round(wait, 3))

    def record_success(self, trial: bool = False) -> None:
        """The call got a healthy answer: the count restarts and the circuit closes."""
        self.failures = 0
        self._opened_at = None
        if trial:
            self._trial_in_flight = False

    def record_failure(self, trial: bool = False) -> None:
        """The call failed for health reasons: count it; open (again) at the threshold or on a failed trial."""
        self.failures += 1
        if trial:
            self._trial_in_flight = False
        if trial or self.failures >= self.failure_threshold:
            self._opened_at = self.clock()

    def record_neutral(self, trial: bool = False) -> None:
        """The call proved nothing (a 429, a cancellation): the next call may be the trial."""
        if trial:
            self._trial_in_flight = False

    def record(self, exc: BaseException | None, trial: bool = False) -> None:
        """Record the outcome ``exc`` (``None``: success) with the default health rules."""
        if exc is None:
            self.record_success(trial)
        elif isinstance(exc, (RateLimited, CircuitOpen)) or _is_refusal(exc):
            self.record_neutral(trial)
        elif is_health_failure(exc):
            self.record_failure(trial)
        else:
            self.record_success(trial)  # a 4xx, a tool error: the server answered

    @asynccontextmanager
    async def guard(self, is_failure: Callable[[BaseException], bool] | None = None) -> AsyncIterator[None]:
        """``async with breaker.guard(): ...``: admit, then record how the block ended."""
        trial = self.admit()
        try:
            yield
        except BaseException as exc:
            if not isinstance(exc, Exception):  # cancelled / interrupted: proves nothing
                self.record_neutral(trial)
            elif is_failure is not None:
                (self.record_failure if is_failure(exc) else self.record_neutral)(trial)
            else:
                self.record(exc, trial)
            raise
        self.record_success(trial)


def _is_refusal(exc: BaseException) -> bool:
    return classify(exc, is_write=False).kind == "rate_limited"


class BreakerRegistry:
    """One ``CircuitBreaker`` per upstream key (named by its display name), created on first use."""

    def __init__(self, **breaker_options: Any) -> None:
        self._options = breaker_options
        self._breakers: dict[str, CircuitBreaker] = {}

    def for_url(self, url: Any) -> CircuitBreaker:
        """The breaker of the upstream ``url`` belongs to."""
        key = upstream_key(url)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = CircuitBreaker(display_name(key), **self._options)
        return breaker
