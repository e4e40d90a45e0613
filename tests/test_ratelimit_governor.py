"""The per-upstream governor in virtual time: one wave of waiting, pacing, concurrency cap, names."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from agent.ratelimit.governor import (
    Governor,
    GovernorRegistry,
    WaitEvent,
    WaitReporter,
    display_name,
    upstream_key,
)
from agent.usage import Usage

TOKEN = "tok_SENTINEL_secret_123456"
TRUTO = f"https://api.truto.one/mcp/{TOKEN}"


class FakeClock:
    """Virtual time for one event loop.

    ``sleep`` parks the caller on a virtual timer. A driver task advances the clock to the earliest
    timer only once the loop is idle (no other callback ready), so every task runs at the current
    instant first, whatever order asyncio happens to schedule them in. Nothing waits in real time.
    """

    WALL_OFFSET = 1_767_225_600.0

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        """Epoch seconds matching ``now`` (for HTTP-dates and epoch resets)."""
        return self.WALL_OFFSET + self.now

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time."""
        self.sleeps.append(seconds)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, seconds), next(self._seq), future))
        if self._driver is None or self._driver.done():
            self._driver = loop.create_task(self._drive())
        await future

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        while self._timers:
            idle = 0
            while idle < 3:  # three consecutive looks at an empty ready queue: everyone is parked
                await asyncio.sleep(0)
                ready = getattr(loop, "_ready", ())  # CPython's BaseEventLoop queue of runnable callbacks
                idle = idle + 1 if not ready else 0
            target, _, future = heapq.heappop(self._timers)
            if future.done():  # cancelled sleeper
                continue
            self.now = max(self.now, target)
            future.set_result(None)


def make_governor(clock: FakeClock, events: list[WaitEvent] | None = None, usage: Usage | None = None,
                  **options: Any) -> Governor:
    """A governor of the Truto URL on the fake clock, recording its wait events."""
    reporter = WaitReporter(events.append if events is not None else None, usage)
    return Governor(upstream_key(TRUTO), clock=clock, wall=clock.wall, sleep=clock.sleep, reporter=reporter,
                    **options)


async def send_through(governor: Governor, upstream: Callable[[], Awaitable[tuple[int, dict[str, str]]]]) -> int:
    """One request: take a slot, 'send', report the answer. Returns the status."""
    async with governor.slot():
        status, headers = await upstream()
        governor.observe(status, headers)
    return status


# ---------------------------------------------------------------- names
def test_key_keeps_the_path_and_display_name_hides_it() -> None:
    assert upstream_key(TRUTO + "?x=1#f") == f"https://api.truto.one/mcp/{TOKEN}"
    assert upstream_key("HTTPS://API.Truto.One:443/mcp/a") == "https://api.truto.one/mcp/a"
    assert upstream_key("http://127.0.0.1:8123/mcp") == "http://127.0.0.1:8123/mcp"
    assert display_name(TRUTO) == "api.truto.one"
    assert display_name("http://127.0.0.1:8123/mcp") == "127.0.0.1:8123"
    assert display_name("http://host:notaport/x") == "host"
    governor = Governor(upstream_key(TRUTO))
    assert TOKEN not in repr(governor) and TOKEN not in governor.display_name


def test_registry_gives_one_governor_per_upstream() -> None:
    registry = GovernorRegistry(max_concurrency=3)
    a = registry.for_url(TRUTO + "?page=2")
    assert registry.for_url(TRUTO) is a and a.max_concurrency == 3
    assert registry.for_url("https://api.truto.one/mcp/other_token") is not a
    assert len(registry.governors()) == 2


def test_bad_concurrency_is_refused() -> None:
    with pytest.raises(ValueError):
        Governor("https://x/", max_concurrency=0)


# ---------------------------------------------------------------- one caller
async def test_one_caller_waits_for_the_announced_window_after_a_429() -> None:
    clock, events, usage = FakeClock(), list[WaitEvent](), Usage()
    governor = make_governor(clock, events, usage)
    governor.observe(429, {"ratelimit-reset": "5", "ratelimit-limit": "10;w=10", "ratelimit-remaining": "0"})
    assert governor.blocked_for() == 5.0

    await governor.acquire()
    assert clock.now >= 105.0  # held until the window end
    governor.release()
    assert [e.reason for e in events] == ["window"] and events[0].seconds == pytest.approx(5.0)
    assert "api.truto.one" in events[0].message() and TOKEN not in events[0].message()
    assert (usage.rate_limit_waits, usage.wait_seconds) == (1, pytest.approx(5.0))
    # after the window the announced limit applies again
    assert governor.state().remaining == 10 and governor.state().window_end is None


async def test_a_hold_beyond_the_callers_budget_fails_at_once() -> None:
    from agent.errors import RateLimited

    clock = FakeClock()
    governor = make_governor(clock)
    governor.observe(429, {"ratelimit-reset": "600"})
    with pytest.raises(RateLimited) as caught:
        await governor.acquire(max_wait=120.0)
    assert clock.sleeps == [] and governor.state().in_flight == 0
    assert caught.value.exit_code == 4 and caught.value.retry_after == 600.0
    assert "api.truto.one" in caught.value.message and TOKEN not in caught.value.message
    await governor.acquire(max_wait=600.0)  # a budget that covers the window just waits
    assert clock.now == pytest.approx(700.0)


async def test_no_announced_reset_pauses_briefly_then_probes() -> None:
    clock = FakeClock()
    governor = make_governor(clock, fallback_pause=2.0)
    governor.observe(429, {})
    assert governor.blocked_for() == 2.0
    await governor.acquire()
    assert clock.now == pytest.approx(102.0)
    state = governor.state()
    assert state.probing and state.in_flight == 1 and state.remaining is None
    governor.release()


async def test_retry_after_http_date_uses_wall_clock_at_receipt() -> None:
    from email.utils import formatdate

    clock = FakeClock()
    governor = make_governor(clock)
    governor.observe(429, {"Retry-After": formatdate(clock.wall() + 8, usegmt=True)})
    assert governor.blocked_for() == pytest.approx(8.0, abs=1.0)  # HTTP-dates have 1 s resolution


# ---------------------------------------------------------------- eight callers
async def test_eight_concurrent_callers_wait_as_one_wave_not_eight_429s() -> None:
    clock, events, usage = FakeClock(), list[WaitEvent](), Usage()
    governor = make_governor(clock, events, usage)
    window_end = 107.0
    statuses: list[tuple[float, int]] = []

    async def upstream() -> tuple[int, dict[str, str]]:
        await clock.sleep(0.01)  # latency: requests overlap
        status = 429 if clock.now < window_end else 200
        statuses.append((clock.now, status))
        reset = str(max(0, int(window_end - clock.now + 0.999)))
        return status, {"ratelimit-reset": reset, "ratelimit-remaining": "0" if status == 429 else "50",
                        "ratelimit-limit": "60;w=60"}

    assert await send_through(governor, upstream) == 429  # the first caller meets the limit

    results = await asyncio.gather(*(send_through(governor, upstream) for _ in range(8)))
    assert results == [200] * 8
    assert [s for _, s in statuses].count(429) == 1  # only the first: nobody else was refused
    assert all(t >= window_end for t, s in statuses if s == 200)
    assert len(events) == 1 and events[0].reason == "window"
    assert usage.rate_limit_waits == 1


async def test_in_flight_requests_are_not_held_back() -> None:
    clock = FakeClock()
    governor = make_governor(clock)
    await governor.acquire()  # in flight before the 429 arrives
    governor.observe(429, {"retry-after": "30"})
    assert governor.state().in_flight == 1  # it was already sent; only new requests wait
    governor.release()
    assert governor.blocked_for() == 30.0


# ---------------------------------------------------------------- pacing
async def test_pacing_from_remaining_minus_in_flight_avoids_the_429() -> None:
    clock = FakeClock()
    governor = make_governor(clock)
    governor.observe(200, {"ratelimit-remaining": "2", "ratelimit-reset": "10", "ratelimit-limit": "3"})
    window_end = clock.now + 10
    sent: list[float] = []
    remaining = {"n": 2}

    async def upstream() -> tuple[int, dict[str, str]]:
        await clock.sleep(0.5)
        sent.append(clock.now)
        if clock.now >= window_end:
            return 200, {"ratelimit-remaining": "2", "ratelimit-reset": "10"}
        if remaining["n"] == 0:
            return 429, {"ratelimit-reset": str(int(window_end - clock.now + 0.999))}
        remaining["n"] -= 1
        reset = str(int(window_end - clock.now + 1))
        return 200, {"ratelimit-remaining": str(remaining["n"]), "ratelimit-reset": reset}

    results = await asyncio.gather(*(send_through(governor, upstream) for _ in range(4)))
    assert results == [200] * 4  # no 429: two went at once, two waited for the window end
    assert sum(1 for t in sent if t < window_end) == 2
    assert sum(1 for t in sent if t >= window_end) == 2


async def test_remaining_counts_down_without_headers_and_probes_at_zero() -> None:
    clock = FakeClock()
    governor = make_governor(clock)
    governor.observe(200, {"ratelimit-remaining": "2"})  # no reset announced
    governor.observe(200, {})
    assert governor.state().remaining == 1
    governor.observe(200, {})
    # out of requests with no known window end: do not wait forever, probe one at a time
    state = governor.state()
    assert state.remaining is None and state.probing
    await governor.acquire()
    second = asyncio.ensure_future(governor.acquire())
    await asyncio.sleep(0)
    assert not second.done()  # the probe is alone
    governor.observe(200, {})
    governor.release()
    await asyncio.wait_for(second, 1)
    governor.release()


async def test_after_a_window_without_limit_one_probe_goes_first() -> None:
    clock = FakeClock()
    governor = make_governor(clock)
    governor.observe(429, {"retry-after": "3"})
    first = asyncio.ensure_future(governor.acquire())
    second = asyncio.ensure_future(governor.acquire())
    await asyncio.wait_for(first, 1)
    for _ in range(10):
        await asyncio.sleep(0)
    assert not second.done() and governor.state().probing
    governor.observe(200, {"ratelimit-remaining": "5"})
    governor.release()
    await asyncio.wait_for(second, 1)
    governor.release()
    assert governor.state().remaining == 5


async def test_headers_only_on_refusals_use_the_announced_window_length() -> None:
    clock = FakeClock()
    governor = make_governor(clock)
    governor.observe(429, {"ratelimit-limit": "3;w=10", "ratelimit-remaining": "0", "ratelimit-reset": "4"})
    for _ in range(3):  # the next window allows the announced 3; answers carry no headers
        await governor.acquire()
        governor.observe(200, {})
        governor.release()
    assert clock.now == pytest.approx(104.0)
    assert governor.blocked_for() == pytest.approx(10.0)  # used up: the window began at 104 and lasts 10 s
    await governor.acquire()
    assert clock.now == pytest.approx(114.0)
    governor.release()


# ---------------------------------------------------------------- window ends
def test_window_end_keeps_the_earliest_consistent_announcement() -> None:
    clock = FakeClock()
    governor = make_governor(clock)
    governor.observe(200, {"ratelimit-reset": "10", "ratelimit-remaining": "5"})  # end 110
    clock.now = 100.6
    governor.observe(200, {"ratelimit-reset": "10", "ratelimit-remaining": "4"})  # end 110.6: same window
    assert governor.state().window_end == 110.0
    clock.now = 100.8
    # an answer that travelled slowly says more remain: within one window remaining only shrinks
    governor.observe(200, {"ratelimit-reset": "10", "ratelimit-remaining": "7"})
    assert governor.state().remaining == 4
    clock.now = 111.0  # the window passed: a refusal now belongs to a new window
    governor.observe(429, {"ratelimit-reset": "5"})
    assert governor.state().window_end == 116.0
    # a refusal announcing a much later end replaces the estimate (another limit blocks)
    clock.now = 112.0
    governor.observe(429, {"retry-after": "60"})
    assert governor.state().window_end == 172.0
    # a success announcing an earlier end within the window tightens the bound
    governor.observe(200, {"ratelimit-reset": "20", "ratelimit-remaining": "0"})
    assert governor.state().window_end == 132.0


def test_received_at_is_used_not_processing_time() -> None:
    clock = FakeClock()
    governor = make_governor(clock)
    clock.now = 105.0
    governor.observe(429, {"ratelimit-reset": "10"}, received_at=101.0)
    assert governor.state().window_end == 111.0


# ---------------------------------------------------------------- concurrency
async def test_concurrency_cap_is_respected() -> None:
    clock = FakeClock()
    governor = make_governor(clock, max_concurrency=2)
    peak = {"now": 0, "max": 0}

    async def upstream() -> tuple[int, dict[str, str]]:
        peak["now"] += 1
        peak["max"] = max(peak["max"], peak["now"])
        await clock.sleep(0.1)
        peak["now"] -= 1
        return 200, {}

    await asyncio.gather(*(send_through(governor, upstream) for _ in range(7)))
    assert peak["max"] == 2
    assert governor.state().in_flight == 0


async def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    clock = FakeClock()
    governor = make_governor(clock, max_concurrency=1)
    await governor.acquire()
    waiter = asyncio.ensure_future(governor.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    governor.release()
    assert governor.state().in_flight == 0
    await asyncio.wait_for(governor.acquire(), 1)
    governor.release()


async def test_exception_inside_slot_releases_it() -> None:
    governor = make_governor(FakeClock(), max_concurrency=1)
    with pytest.raises(RuntimeError):
        async with governor.slot():
            raise RuntimeError("network down")
    assert governor.state().in_flight == 0


def test_failing_wait_callback_is_swallowed() -> None:
    def explode(event: WaitEvent) -> None:
        raise RuntimeError("display broke")

    WaitReporter(explode, Usage()).report(WaitEvent("api.truto.one", 1.0, "window"))


@pytest.mark.parametrize(("event", "text"), [
    (WaitEvent("api.truto.one", 2.44, "rate_limited"), "rate limited by api.truto.one, retrying in 2.4 s"),
    (WaitEvent("api.truto.one", 5, "window"), "rate limited by api.truto.one, holding new requests for 5.0 s"),
    (WaitEvent("h", 1, "server_error", status=503), "h answered HTTP 503, retrying in 1.0 s"),
    (WaitEvent("h", 1, "timeout"), "h timed out, retrying in 1.0 s"),
    (WaitEvent("h", 1, "network"), "h connection failed, retrying in 1.0 s"),
])
def test_wait_event_messages(event: WaitEvent, text: str) -> None:
    assert event.message().startswith(text)


# ---------------------------------------------------------------- the window opener
async def test_after_a_used_up_window_one_opener_times_the_next_window() -> None:
    """The next window's end is timed from its first answer, so that answer must not queue behind a burst:
    after a used-up window one request goes alone, the others follow its answer."""
    clock = FakeClock()
    governor = make_governor(clock)
    governor.observe(200, {"ratelimit-limit": "10;w=2", "ratelimit-remaining": "0", "ratelimit-reset": "2"})
    first = asyncio.ensure_future(governor.acquire())
    others = [asyncio.ensure_future(governor.acquire()) for _ in range(3)]
    await asyncio.wait_for(first, 1)
    assert clock.now == pytest.approx(102.0)
    done, _ = await asyncio.wait(others, timeout=0.2)  # (real time: lets the fake clock wake them all)
    assert not done and governor.state().in_flight == 1
    clock.now = 102.01
    governor.observe(200, {"ratelimit-limit": "10;w=2", "ratelimit-remaining": "9", "ratelimit-reset": "2"})
    governor.release()
    await asyncio.wait_for(asyncio.gather(*others), 1)
    assert governor.state().in_flight == 3 and governor.state().window_end == pytest.approx(104.01)


async def test_a_window_with_room_left_rolls_without_an_opener() -> None:
    clock = FakeClock()
    governor = make_governor(clock)
    governor.observe(200, {"ratelimit-limit": "10;w=2", "ratelimit-remaining": "6", "ratelimit-reset": "2"})
    clock.now = 102.5  # the window passed with room to spare: the limit did not bind
    tasks = [asyncio.ensure_future(governor.acquire()) for _ in range(4)]
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert governor.state().in_flight == 4 and not governor.state().probing
