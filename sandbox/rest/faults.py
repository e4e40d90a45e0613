"""Fault injection for the simulated REST API, driven entirely by ``SandboxConfig``.

- ``latency``: every API request sleeps this long before it is answered.
- ``error_rate``: that share of API requests is answered 500/502/503 *before doing anything*; the
  draw comes from a ``random.Random`` seeded with the dataset seed, so a run is reproducible.
- ``write_fault``: a write (create/update/delete) is *applied*, then answered ``502`` or held for
  ``write_fault_delay`` seconds ("timeout"), for the first ``write_fault_count`` applied writes
  (0 = all). This is the ambiguous-write case a client must reconcile instead of blindly retrying.
- ``api_rate_limit``: fixed windows per API key; over the limit → 429 with the headers Vapi's SDK
  reads (``Retry-After``, ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` in epoch seconds) plus
  the IETF-style ``ratelimit-*`` trio Truto forwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import threading
from dataclasses import dataclass

from sandbox.rest.validation import VapiHttpError
from sandbox.world.clock import SandboxClock
from sandbox.world.config import RateLimit, SandboxConfig

_ERROR_MESSAGES = {
    500: "Internal server error",
    502: "Bad gateway: upstream provider did not respond",
    503: "Service temporarily unavailable, please retry",
}


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one rate-limit check, with the header values to send either way."""

    allowed: bool
    limit: int
    remaining: int
    reset_epoch: float  # real epoch seconds when the current window ends
    retry_after: int  # whole seconds until then, at least 1

    def headers(self) -> dict[str, str]:
        """Vapi-SDK-readable headers (plus Truto's ``ratelimit-*``); ``Retry-After`` only when refused."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_epoch)),
            "ratelimit-limit": str(self.limit),
            "ratelimit-remaining": str(self.remaining),
            "ratelimit-reset": str(self.retry_after),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class FixedWindowLimiter:
    """``limit`` requests per ``window`` seconds per key; windows start at a key's first request."""

    def __init__(self, rule: RateLimit, clock: SandboxClock) -> None:
        self.rule = rule
        self.clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # key digest -> (window start, count)
        self._lock = threading.Lock()

    def check(self, key: str) -> RateDecision:
        """Count one request for ``key`` (a refused one counts too: hammering does not help)."""
        # keys are API keys: keep only a digest in memory so a dump never shows them
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        now = self.clock.real()
        with self._lock:
            start, count = self._windows.get(digest, (now, 0))
            if now - start >= self.rule.window:
                # jump to the window containing `now`, keeping the grid anchored at the first request
                start += math.floor((now - start) / self.rule.window) * self.rule.window
                count = 0
            count += 1
            self._windows[digest] = (start, count)
        reset = start + self.rule.window
        allowed = count <= self.rule.limit
        return RateDecision(
            allowed=allowed,
            limit=self.rule.limit,
            remaining=max(0, self.rule.limit - count),
            reset_epoch=reset,
            retry_after=max(1, math.ceil(reset - now)),
        )


class Faults:
    """Per-sandbox fault state: the seeded error stream, the write counter, the REST rate limiter."""

    def __init__(self, config: SandboxConfig, clock: SandboxClock) -> None:
        self.config = config
        self.clock = clock
        self._random = random.Random(f"faults:{config.seed}")
        self._lock = threading.Lock()
        self._writes = 0
        self.limiter = FixedWindowLimiter(config.api_rate_limit, clock) if config.api_rate_limit else None
        if config.write_fault not in (None, "502", "timeout"):
            raise ValueError(f"write_fault must be '502' or 'timeout', not {config.write_fault!r}")

    async def delay(self) -> None:
        """The configured per-request latency."""
        if self.config.latency > 0:
            await asyncio.sleep(self.config.latency)

    def rate_limit(self, api_key: str) -> RateDecision | None:
        """None when no REST limit is configured; otherwise the decision (raise when refused)."""
        if self.limiter is None:
            return None
        decision = self.limiter.check(api_key)
        if not decision.allowed:
            raise VapiHttpError(
                429,
                f"Too many requests: limit is {decision.limit} per {self.limiter.rule.window:g}s. "
                f"Retry after {decision.retry_after}s.",
                headers=decision.headers(),
            )
        return decision

    def random_error(self) -> None:
        """Raise a 5xx for ``error_rate`` of requests (deterministic sequence per seed)."""
        if self.config.error_rate <= 0:
            return
        with self._lock:
            hit = self._random.random() < self.config.error_rate
            status = self._random.choice((500, 502, 503)) if hit else 0
        if hit:
            raise VapiHttpError(status, _ERROR_MESSAGES[status])

    def claim_write_fault(self) -> str | None:
        """Count one applied write; the fault kind to inflict on its answer, or None."""
        if self.config.write_fault is None:
            return None
        with self._lock:
            self._writes += 1
            n = self._writes
        if self.config.write_fault_count == 0 or n <= self.config.write_fault_count:
            return self.config.write_fault
        return None

    async def inflict_write_fault(self, kind: str) -> None:
        """After the write was applied: answer 502, or hold the answer ``write_fault_delay`` seconds."""
        if kind == "502":
            raise VapiHttpError(502, _ERROR_MESSAGES[502])
        await asyncio.sleep(self.config.write_fault_delay)
