"""The per-upstream governor: one shared gate in front of every request to one upstream.

All concurrent callers (asyncio tasks) of one upstream share one ``Governor``. Before a request
leaves it takes a slot (``async with governor.slot(): ...``); when the answer's headers arrive it
reports them (``governor.observe(status, headers, received_at)``). The governor then:

* caps concurrency (at most ``max_concurrency`` requests in flight);
* after a 429, or ``remaining: 0``, lets no new request leave before the window end (requests
  already in flight excepted), so eight callers hitting a limit wait together once instead of
  collecting eight 429s;
* paces from ``remaining``: a request leaves only while ``remaining - in_flight > 0``, so a window
  rarely sees a 429 at all; when a window ends, ``remaining`` restarts at the announced ``limit``;
* when the window that ends was used up (the limit binds), one *opener* request goes alone first and
  the others follow its answer: the new window's end is timed from that first answer, which a burst
  sent alongside would delay;
* when the estimate runs out with no reset announced (servers that send headers only on a 429), the
  window that began when the last one ended is taken to last the announced length (``w=``);
* when it knows nothing (a 429 with no limit announced, or an estimate run out with no known window
  end) it lets exactly one probe request through, and the probe's answer decides.

Time and sleep are injected (``clock``: monotonic seconds, ``wall``: epoch seconds for HTTP-dates,
``sleep``), so tests run in virtual time. The upstream *key* (origin plus path, which for Truto holds a
secret token) is internal; only ``display_name`` (``"api.truto.one"``) is ever shown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from agent.ratelimit.headers import RateLimitInfo, parse_rate_limit

log = logging.getLogger(__name__)

# Reset headers carry whole seconds, rounded up: the true end of a window announced as
# "receipt + reset" lies in [receipt + reset - 1, receipt + reset].
ROUNDING = 1.0
_DEFAULT_PORTS = {"http": 80, "https": 443}

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]


# ---------------------------------------------------------------- names
def upstream_key(url: Any) -> str:
    """The internal governor key of a URL: scheme, host, port and path (no query, no fragment).

    The path stays because Truto's MCP URL carries the account token there (``/mcp/<token>``):
    two tokens are two accounts, two separate rate limits. Never log the key; use ``display_name``.
    """
    parts = urlsplit(str(url))
    host = (parts.hostname or "").lower()
    port = _port(parts)
    netloc = host if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()) else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path or '/'}"


def display_name(url_or_key: Any) -> str:
    """The safe name of an upstream, host and non-default port only: ``"api.truto.one"``."""
    parts = urlsplit(str(url_or_key))
    host = (parts.hostname or "upstream").lower()
    port = _port(parts)
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


def _shared_key(key: str, display: str) -> str:
    from agent.ratelimit.shared import shared_key

    return shared_key(key, display)


def _port(parts: Any) -> int | None:
    try:
        port: int | None = parts.port
    except ValueError:  # "host:notaport": keep the host, forget the port
        return None
    return port


# ---------------------------------------------------------------- waits: events and counting
@dataclass(frozen=True)
class WaitEvent:
    """One wait a caller is about to do; ``message()`` is the line the CLI prints on stderr.

    ``reason`` is ``"rate_limited"`` (a 429 is being retried), ``"window"`` (the governor holds new
    requests until a rate-limit window ends), ``"server_error"``, ``"timeout"`` or ``"network"``
    (a read is being retried after that failure).
    """

    upstream: str
    seconds: float
    reason: str
    attempt: int | None = None
    status: int | None = None

    def message(self) -> str:
        """A one-line human rendering, e.g. ``rate limited by api.truto.one, retrying in 2.4 s``."""
        s = f"{self.seconds:.1f} s"
        if self.reason == "rate_limited":
            return f"rate limited by {self.upstream}, retrying in {s}"
        if self.reason == "window":
            return f"rate limited by {self.upstream}, holding new requests for {s} until the window resets"
        if self.reason == "server_error":
            return f"{self.upstream} answered HTTP {self.status or '5xx'}, retrying in {s}"
        if self.reason == "timeout":
            return f"{self.upstream} timed out, retrying in {s}"
        return f"{self.upstream} connection failed, retrying in {s}"


class WaitRecorder(Protocol):
    """Anything that counts waits, e.g. ``agent.usage.Usage`` (``rate_limit_waits``, ``wait_seconds``)."""

    def record_wait(self, seconds: float) -> None:
        """Count one wait of ``seconds``."""


class WaitReporter:
    """Fans a ``WaitEvent`` out to an optional callback and an optional counter; never raises."""

    def __init__(self, on_wait: Callable[[WaitEvent], None] | None = None, usage: WaitRecorder | None = None) -> None:
        self.on_wait = on_wait
        self.usage = usage

    def report(self, event: WaitEvent) -> None:
        """Count the wait and hand the event to the callback (a failing callback is logged, not raised)."""
        try:
            if self.usage is not None:
                self.usage.record_wait(event.seconds)
            if self.on_wait is not None:
                self.on_wait(event)
        except Exception:  # a display problem must never turn into a request failure
            log.debug("wait callback failed", exc_info=True)


# ---------------------------------------------------------------- the governor
@dataclass(frozen=True)
class GovernorState:
    """A snapshot of a governor, for tests and ``--debug`` output."""

    in_flight: int
    remaining: int | None
    limit: int | None
    window_end: float | None
    probing: bool
    refusals: int


class Governor:
    """The shared gate of one upstream (see the module docstring)."""

    def __init__(
        self,
        key: str,
        *,
        max_concurrency: int = 8,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        fallback_pause: float = 1.0,
        reporter: WaitReporter | None = None,
        shared: Any = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.key = key
        self.display_name = display_name(key)
        self.max_concurrency = max_concurrency
        self.clock = clock
        self.wall = wall
        self.sleep = sleep
        self.fallback_pause = fallback_pause
        self.reporter = reporter or WaitReporter()
        # ``agent.ratelimit.shared.SharedWindows``: the window as every process on this machine spends it
        self.shared = shared
        self.shared_key = None if shared is None else _shared_key(key, self.display_name)
        self.refusals = 0
        self._in_flight = 0
        self._remaining: int | None = None
        self._limit: int | None = None
        self._window_end: float | None = None
        self._window_start: float | None = None  # when the current window began, if a known one ended
        self._window_len: float | None = None  # the announced window length (``w=``), if any
        self._probing = False
        self._reported_until: float | None = None
        self._changed = asyncio.Event()

    def __repr__(self) -> str:  # the key holds a secret path token: show the display name only
        return f"Governor({self.display_name!r})"

    # -------------------------------------------------------- gate
    @asynccontextmanager
    async def slot(self, max_wait: float | None = None) -> AsyncIterator[None]:
        """Hold one request slot: waits for the gate, releases on exit (even on error or cancel)."""
        await self.acquire(max_wait)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, max_wait: float | None = None) -> None:
        """Wait until a new request may leave, then count it as in flight (pair with ``release``).

        ``max_wait``: what is left of the caller's wait budget. When the window ends later than that,
        raise ``RateLimited`` (exit 4) at once rather than sit out a wait that cannot succeed.
        """
        started = self.clock()
        while True:
            now = self.clock()
            self._roll(now)
            go, wake_at = self._gate(now)
            if go and self.shared is not None:
                # the machine-wide window (other processes spend it too): take one request of it, or wait
                until = self.shared.reserve(self.shared_key, self.wall())
                if until is not None:
                    go, wake_at = False, now + max(0.0, until - self.wall())
            if go:
                self._in_flight += 1
                return
            if wake_at is not None and max_wait is not None and wake_at - started > max_wait:
                raise self._beyond_budget(wake_at - now, max(0.0, max_wait - (now - started)))
            if wake_at is not None and (self._remaining == 0 or self.shared is not None) and wake_at - now > 0.2 and (
                self._reported_until is None or self._reported_until <= now
            ):
                # One event per wave: the first held caller reports it, the others wait silently.
                self._reported_until = wake_at
                self.reporter.report(WaitEvent(self.display_name, wake_at - now, "window"))
            await self._wait(None if wake_at is None else wake_at - now)

    def _beyond_budget(self, wait: float, left: float) -> Exception:
        from agent.errors import RateLimited

        return RateLimited(
            f"rate limited by {self.display_name}: the window resets in {wait:.0f} s, beyond the {left:.0f} s "
            "left of the wait budget", retry_after=round(wait, 3), status=429, upstream=self.display_name,
            attempts=0, reason="reset_beyond_budget",
            hint="try again after the reset, or raise max_wait_per_request / max_wait_per_run")

    def release(self) -> None:
        """The request has its answer (or failed): it is no longer in flight."""
        self._in_flight = max(0, self._in_flight - 1)
        self._notify()

    def _gate(self, now: float) -> tuple[bool, float | None]:
        """(may a request leave now, when to look again: ``None`` means "when something changes")."""
        if self._in_flight >= self.max_concurrency:
            return False, None
        if self._remaining is not None and self._remaining - self._in_flight <= 0:
            # In-flight requests will use up what is left: hold until the window ends or they answer.
            return False, self._window_end
        if self._probing and self._in_flight > 0:
            return False, None
        return True, None

    def _roll(self, now: float) -> None:
        """Start a new window once the known one has ended."""
        if self._window_end is not None and now >= self._window_end:
            self._window_start, self._window_end = self._window_end, None
            if self._remaining is not None and self._limit is not None:
                # Leaving a used-up window means the limit binds, and the next window's end will be
                # timed from its first answer (receipt + reset). One opener goes alone first, so that
                # answer is not slowed by a burst sent with it: under a burst of eight the first answer
                # came ~50 ms later, and each window was lost that much (the benchmark's ratio).
                self._probing = self._remaining - self._in_flight <= 0
                self._remaining = self._limit
            elif self._remaining is not None:
                # No limit known: after an exhausted window, one probe first, not a thundering herd.
                self._probing = self._remaining <= 0
                self._remaining = None
        if self._remaining is not None and self._remaining <= 0 and self._window_end is None:
            predicted = None if self._window_start is None or self._window_len is None \
                else self._window_start + self._window_len
            if predicted is not None and predicted > now:
                # Used up with no reset announced (some servers send headers only on a 429): the
                # window that started when the last one ended lasts the announced length (w=).
                self._window_end = predicted
            else:
                # Exhausted with no known end: probe instead of waiting forever.
                self._remaining = None
                self._probing = True

    # -------------------------------------------------------- observations
    def observe(self, status: int, headers: Any, received_at: float | None = None) -> RateLimitInfo:
        """Learn from one answer (any status, 2xx included); ``received_at`` is on ``clock``.

        Returns what the headers said, for the caller's retry decision.
        """
        now = self.clock()
        received_at = now if received_at is None else received_at
        info = parse_rate_limit(headers, now=self.wall() - (now - received_at))
        if self.shared is not None:
            self.shared.observe(self.shared_key, status=status, received=self.wall() - (now - received_at),
                                limit=info.limit, remaining=info.remaining, reset_after=info.reset_after,
                                window=info.window)
        self._roll(now)
        refused = status == 429
        end = None if info.reset_after is None else received_at + info.reset_after
        if info.limit is not None:
            self._limit = info.limit
        if info.window is not None and info.window > 0:
            self._window_len = info.window
        if refused:
            self.refusals += 1
            self._merge_end(received_at + self.fallback_pause if end is None else end, received_at, refused=True)
            self._remaining = 0
            self._probing = False
        else:
            same_window = self._merge_end(end, received_at, refused=False) if end is not None else True
            if info.remaining is not None:
                if same_window and self._remaining is not None:
                    self._remaining = min(self._remaining, info.remaining)  # within a window it only shrinks
                else:
                    self._remaining = info.remaining
            elif self._remaining is not None:
                self._remaining = max(0, self._remaining - 1)  # the server counted this request too
            self._probing = False
        self._roll(now)
        self._notify()
        return info

    def _merge_end(self, end: float, received_at: float, *, refused: bool) -> bool:
        """Fold an announced window end into the current one; True when both describe the same window.

        Every announcement is an upper bound: the true end lies in [end - 1, end] (reset rounded up
        to whole seconds), so within one window the earliest announced end is the tightest bound that
        is still safe, and we keep the minimum. An announcement is *inconsistent* with the current
        estimate, and replaces it, when the current end had already passed at receipt (a new window),
        or when a refusal announces an end more than the rounding later (the server refused at
        ``received_at`` and says wait longer: our estimate was not the limit that blocks).
        A late answer from an old window can push the end up to one second too late; that errs safe.
        """
        current = self._window_end
        if current is None or current <= received_at or (refused and end > current + ROUNDING):
            self._window_end = end
            return False
        self._window_end = min(current, end)
        return abs(end - current) <= ROUNDING

    # -------------------------------------------------------- waiting
    def _notify(self) -> None:
        # Waiters hold the old event; setting it wakes them all, and new waiters get a fresh one.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _wait(self, delay: float | None) -> None:
        """Sleep ``delay`` (``None``: forever) or until the state changes, whichever comes first."""
        event = self._changed
        if delay is None:
            await event.wait()
            return
        if delay <= 0:
            await asyncio.sleep(0)
            return
        sleeper = asyncio.ensure_future(self.sleep(delay))
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waiter):
                if not task.done():
                    task.cancel()

    # -------------------------------------------------------- inspection
    def state(self) -> GovernorState:
        """The current counters and window (read-only snapshot)."""
        return GovernorState(self._in_flight, self._remaining, self._limit, self._window_end, self._probing,
                             self.refusals)

    def blocked_for(self, now: float | None = None) -> float:
        """Seconds until a new request could leave because of the window (0 when not blocked)."""
        now = self.clock() if now is None else now
        if self._remaining == 0 and self._window_end is not None:
            return max(0.0, self._window_end - now)
        return 0.0


class GovernorRegistry:
    """One ``Governor`` per upstream key, created on first use with shared settings."""

    def __init__(self, *, shared: Any = None, private_origins: tuple[str, ...] = (), **governor_options: Any) -> None:
        # ``shared``: the machine-wide window store, used for every upstream but those under
        # ``private_origins`` (an in-process sandbox: each process has its own, sharing its name only)
        self._shared = shared
        self._private_origins = tuple(origin.rstrip("/") + "/" for origin in private_origins)
        self._options = governor_options
        self._governors: dict[str, Governor] = {}

    def for_url(self, url: Any) -> Governor:
        """The governor of the upstream ``url`` belongs to."""
        key = upstream_key(url)
        governor = self._governors.get(key)
        if governor is None:
            shared = None if key.startswith(self._private_origins) else self._shared
            governor = self._governors[key] = Governor(key, shared=shared, **self._options)
        return governor

    def governors(self) -> list[Governor]:
        """All governors created so far."""
        return list(self._governors.values())
