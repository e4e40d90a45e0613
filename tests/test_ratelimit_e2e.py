"""Rate limits and read retries end to end: the product's whole stack against the sandbox.

The rate-limit tests run over a real loopback socket (``serve_sandbox``) against the sandbox's
Truto-style limit on the MCP path (``rate_limit=3/1``: every POST counts, 429 with ``ratelimit-*``
headers when over). Their verdict comes from the sandbox's own request log, not from the client:

* the sandbox opens a window with the first POST at or after the previous window's end and refuses
  every POST beyond the limit inside it; ``windows()`` replays that rule over the log, and each test
  first checks the replay against the statuses the sandbox actually answered;
* a 429 announces ``ratelimit-reset`` in whole seconds rounded up, so each announcement is an upper
  bound of the window's end, and the replayed end is the exact value those bounds describe (a
  client that waits out the earliest bound it saw, as the governor does, never sends early);
* a *violation* is one of our requests arriving before the end of a window in which one of our
  requests was refused, though it left the client after the sandbox had sent that 429 (it could
  only be refused again). Requests that had left before the 429 was sent were already in flight and
  are excepted; send times are recorded at the client's innermost HTTP transport, on the clock of
  the sandbox's log (same process, ``time.time()``).

A neighbour (another client of the same account, in a thread) takes whole windows the moment they
open, so our client meets refusals it could not foresee from the headers it had seen.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from starlette.types import Receive, Scope, Send

from agent.config import load_settings
from agent.errors import UpstreamError
from agent.runtime import open_runtime
from agent.usage import Usage
from cli.runner import CommandContext, Outcome, run_command
from sandbox.app import Sandbox
from sandbox.core.requestlog import LogEntry
from sandbox.rest.faults import Faults
from sandbox.rest.validation import VapiHttpError
from sandbox.truto.gate import parse_rpc
from sandbox.world.clock import SandboxClock
from sandbox.world.config import RateLimit, SandboxConfig

LIMIT = RateLimit(3, 1.0)
TOOL = "get_single_vapi_call_by_id"
NEIGHBOUR = "ping"  # the neighbour's JSON-RPC method: how the log tells its requests from ours
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


# ---------------------------------------------------------------- reading the sandbox's log
def posts(sandbox: Sandbox) -> list[LogEntry]:
    """Every POST on the MCP path (each one counts against the limit), by arrival."""
    return sorted((e for e in sandbox.log.entries("mcp") if e.method == "POST"), key=lambda e: e.t_start)


def windows(entries: list[LogEntry], length: float) -> list[tuple[float, list[LogEntry]]]:
    """Replay the sandbox's limiter: (window end, its POSTs); a window opens with the first POST at or
    after the previous one's end and lasts ``length`` seconds."""
    out: list[tuple[float, list[LogEntry]]] = []
    for entry in sorted(entries, key=lambda e: e.t_start):
        if not out or entry.t_start >= out[-1][0]:
            out.append((entry.t_start + length, []))
        out[-1][1].append(entry)
    return out


def check_replay(entries: list[LogEntry], rate: RateLimit) -> None:
    """The replayed windows must explain every status the sandbox gave: exactly the POSTs beyond the
    limit in each window were refused (so the window ends used below are the sandbox's own)."""
    for end, members in windows(entries, rate.window):
        refused = sum(1 for e in members if e.status == 429)
        assert refused == max(0, len(members) - rate.limit), (
            f"window ending {end:.3f}: {len(members)} POSTs, {refused} refused; the replay is wrong")


def request_key(method: str | None, tool: str | None, arguments: dict[str, Any] | None) -> tuple[Any, ...]:
    """What identifies one logical request: its JSON-RPC method, tool and call id (attempts share it)."""
    return method, tool, (arguments or {}).get("id")


class SendTimes:
    """When each POST left the client (the sandbox sees arrivals only), recorded on ``time.time()``,
    the clock of the sandbox's log, at the innermost httpx2 transport (every attempt is a send)."""

    def __init__(self) -> None:
        self.sends: dict[tuple[Any, ...], list[float]] = {}
        self._lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Wrap ``httpx2.AsyncHTTPTransport.handle_async_request`` (observation only)."""
        original = httpx2.AsyncHTTPTransport.handle_async_request
        recorder = self

        async def recording(transport: httpx2.AsyncHTTPTransport, request: httpx2.Request) -> httpx2.Response:
            if request.method == "POST":
                await request.aread()
                info = parse_rpc(request.content)
                with recorder._lock:
                    recorder.sends.setdefault(request_key(info.method, info.tool, info.arguments), []).append(
                        time.time())
            return await original(transport, request)

        monkeypatch.setattr(httpx2.AsyncHTTPTransport, "handle_async_request", recording)

    def sent_at(self, entries: list[LogEntry]) -> dict[int, float]:
        """Send time per log entry (by ``id()``): the k-th arrival of a request is its k-th send, since
        the attempts of one request are sequential. Every logged POST must have been sent exactly once."""
        arrivals: dict[tuple[Any, ...], list[LogEntry]] = {}
        for entry in sorted(entries, key=lambda e: e.t_start):
            arrivals.setdefault(request_key(entry.rpc_method, entry.tool, entry.arguments), []).append(entry)
        assert {k: len(v) for k, v in arrivals.items()} == {k: len(v) for k, v in self.sends.items()}
        return {id(entry): sent for key, logged in arrivals.items()
                for entry, sent in zip(logged, sorted(self.sends[key]), strict=True)}


def violations(entries: list[LogEntry], rate: RateLimit, ours: Callable[[LogEntry], bool],
               sent_at: dict[int, float]) -> list[str]:
    """Our requests that arrived after one of our 429s, before its window ended, though they were sent
    after the 429 was (requests already in flight when the sandbox sent the 429 are excepted)."""
    found = []
    for end, members in windows(entries, rate.window):
        for refusal in (e for e in members if e.status == 429 and ours(e)):
            for entry in entries:
                if ours(entry) and sent_at[id(entry)] > refusal.t_end and refusal.t_end < entry.t_start < end:
                    found.append(f"{entry.rpc_method} sent {sent_at[id(entry)] - refusal.t_end:.3f} s after a 429, "
                                 f"arrived {end - entry.t_start:.3f} s before the window reset")
    return found


def is_ours(entry: LogEntry) -> bool:
    """Everything but the neighbour's requests."""
    return entry.rpc_method != NEIGHBOUR


# ---------------------------------------------------------------- the neighbour
class Neighbour(threading.Thread):
    """Another client of the same MCP URL: at the moment a window opens it takes all of it.

    It waits until our fan-out has started, then, at the replayed end of the current window, sends
    ``limit`` pings at once, so the next window is used up before our client's next requests arrive.
    It repeats at following windows until one of our requests was refused (at most ``tries`` times).
    """

    def __init__(self, sandbox: Sandbox, rate: RateLimit, *, tries: int = 4) -> None:
        super().__init__(name="rate-limit-neighbour", daemon=True)
        self.sandbox, self.rate, self.tries = sandbox, rate, tries
        self.stop = threading.Event()
        self.bursts = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by the test: a thread cannot raise to its owner
            self.error = exc

    async def _run(self) -> None:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            if not self._wait(lambda: any(e.tool == TOOL for e in posts(self.sandbox))):
                return
            for _ in range(self.tries):
                end = windows(posts(self.sandbox), self.rate.window)[-1][0]
                await asyncio.sleep(max(0.0, end - time.time()) + 0.002)
                self.bursts += 1
                await asyncio.gather(*(self._ping(http, n) for n in range(self.rate.limit)))
                # Judge the burst once our client had time to collide with it and the next window opened.
                next_open = end + self.rate.window
                if not self._wait(lambda at=next_open: any(e.t_start >= at for e in posts(self.sandbox))):
                    return
                if any(e.status == 429 and e.tool == TOOL for e in posts(self.sandbox)):
                    return

    async def _ping(self, http: httpx2.AsyncClient, n: int) -> None:
        body = {"jsonrpc": "2.0", "id": f"neighbour-{self.bursts}-{n}", "method": NEIGHBOUR}
        await http.post(self.sandbox.mcp_url, json=body, headers=MCP_HEADERS)

    def _wait(self, condition: Callable[[], bool], timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.stop.is_set() and time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.002)
        return False


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``run_command`` installs a stderr log handler on the root logger, bound to the stream of the
    moment (here pytest's capture, closed after the test): remove it so later tests do not log into it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def neighbours() -> Iterator[list[Neighbour]]:
    """Neighbours started by a test; stopped and joined after it."""
    started: list[Neighbour] = []
    yield started
    for neighbour in started:
        neighbour.stop.set()
        neighbour.join(10)


def warm_up(sandbox: Sandbox, path: str) -> None:
    """GET ``path`` over REST (never rate limited) before a timed part: the suite's SDK validation of
    served objects builds its model for a route on first use, which takes seconds and would stall the
    server thread in the middle of a rate-limit window or past a short tool timeout."""
    response = httpx2.get(f"{sandbox.public_url}{path}",
                          headers={"Authorization": f"Bearer {sandbox.config.api_key}"}, timeout=120)
    assert response.status_code == 200


# ---------------------------------------------------------------- the tests
@pytest.mark.usefixtures("restore_logging")
def test_concurrent_reads_never_send_into_a_refused_window(serve_sandbox: Any, neighbours: list[Neighbour],
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """12 reads, 6 at a time, through ``run_command`` against 3 requests per second shared with a
    neighbour: the command succeeds, no request is sent into a refused window, every wait is on
    stderr and in the envelope's usage."""
    sandbox = serve_sandbox(rate_limit=LIMIT)
    sends = SendTimes()
    sends.install(monkeypatch)
    ids = [c["id"] for c in sandbox.workspace.list_calls(limit=12)]
    warm_up(sandbox, f"/call/{ids[0]}")
    settings = load_settings({"mcp_url": sandbox.mcp_url, "mcp_kind": "sandbox", "concurrency": 6, "json": True},
                             env={})
    neighbour = Neighbour(sandbox, LIMIT)
    neighbours.append(neighbour)

    async def body(ctx: CommandContext) -> Outcome:
        async with open_runtime(settings, usage=ctx.usage, notice=ctx.notice, store=None, prompt=None) as rt:
            neighbour.start()
            calls = await asyncio.gather(*(rt.vapi.get_call(call_id) for call_id in ids))
        return Outcome(result={"ids": [c["id"] for c in calls]})

    stdout = io.StringIO()
    code = run_command("ratelimit-e2e", settings, body, stdout=stdout)
    err = capsys.readouterr().err
    neighbour.stop.set()
    neighbour.join(10)
    assert neighbour.error is None, neighbour.error

    envelope = json.loads(stdout.getvalue())
    assert code == 0, err
    assert envelope["status"] == "ok" and envelope["result"]["ids"] == ids

    entries = posts(sandbox)
    check_replay(entries, LIMIT)
    refused = [e for e in entries if e.status == 429 and is_ours(e)]
    assert refused, "the neighbour never made our client meet a 429: the test proved nothing"
    assert violations(entries, LIMIT, is_ours, sends.sent_at(entries)) == []
    # Every call reached the server once successfully; refused attempts were sent again, nothing else.
    answered = [e.arguments["id"] for e in entries if e.tool == TOOL and e.status == 200 and e.arguments]
    assert sorted(answered) == sorted(ids)

    waits = [line for line in err.splitlines() if line.startswith("rate limited by ")]
    host = re.escape(sandbox.public_url.removeprefix("http://"))
    assert any(re.fullmatch(rf"rate limited by {host}, retrying in \d+\.\d s", line) for line in waits), err
    usage = envelope["usage"]
    assert usage["rate_limit_waits"] == len(waits)  # every wait is both reported and counted
    assert usage["wait_seconds"] >= 1.0  # at least one refused window (1 s) was waited out
    assert usage["tool_calls"] == len(ids)
    assert sandbox.config.token not in err + stdout.getvalue()


def test_the_check_catches_a_client_that_ignores_the_reset(serve_sandbox: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The same verdict applied to a naive client (fixed 0.1 s retry, headers ignored) finds violations:
    the check above can fail."""
    sandbox = serve_sandbox(rate_limit=LIMIT)
    sends = SendTimes()
    sends.install(monkeypatch)
    ids = [c["id"] for c in sandbox.workspace.list_calls(limit=6)]

    async def naive(http: httpx2.AsyncClient, n: int, call_id: str) -> None:
        params = {"name": TOOL, "arguments": {"id": call_id}}
        body = {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": params}
        for _ in range(30):
            if (await http.post(sandbox.mcp_url, json=body, headers=MCP_HEADERS)).status_code != 429:
                return
            await asyncio.sleep(0.1)

    async def run() -> None:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            await asyncio.gather(*(naive(http, n, call_id) for n, call_id in enumerate(ids)))

    asyncio.run(run())
    entries = posts(sandbox)
    check_replay(entries, LIMIT)
    assert len(violations(entries, LIMIT, is_ours, sends.sent_at(entries))) >= 3


def seed_whose_faults_start(pattern: str, rate: float) -> int:
    """A sandbox seed whose seeded 5xx stream (``error_rate``) begins with ``pattern``: ``x`` for a
    request answered 5xx before anything is done, ``.`` for one that passes. Found with the sandbox's
    own ``Faults``, so the test does not guess how it draws."""
    for seed in range(1, 1000):
        faults = Faults(SandboxConfig(seed=seed, error_rate=rate, calls=1), SandboxClock())
        drawn = ""
        for _ in pattern:
            try:
                faults.random_error()
                drawn += "."
            except VapiHttpError:
                drawn += "x"
        if drawn == pattern:
            return seed
    raise AssertionError(f"no seed starts its fault stream with {pattern!r}")


async def test_a_read_answered_5xx_by_the_api_is_retried_and_succeeds(make_sandbox: Any) -> None:
    """Vapi's 5xx reaches the client as a Truto ``isError`` envelope (HTTP 200): the read is retried
    under the retry policy (reported, counted) and succeeds; the sandbox saw exactly the retries."""
    sandbox = make_sandbox(error_rate=0.5, seed=seed_whose_faults_start("xx.", 0.5))
    call_id = sandbox.workspace.list_calls(limit=1)[0]["id"]
    notices: list[str] = []
    usage = Usage()
    settings = load_settings({"sandbox": True}, env={})
    async with open_runtime(settings, sandbox=sandbox, usage=usage, notice=notices.append, store=None,
                            prompt=None) as rt:
        call = await rt.vapi.get_call(call_id)
    assert call["id"] == call_id
    statuses = [e.status for e in sandbox.log.entries("rest") if e.path == f"/call/{call_id}"]
    assert len(statuses) == 3 and all(s >= 500 for s in statuses[:2]) and statuses[2] == 200
    pattern = r"sandbox\.localhost answered HTTP 50[023], retrying in \d+\.\d s"
    retried = [n for n in notices if re.fullmatch(pattern, n)]
    assert len(retried) == 2 and usage.rate_limit_waits == 2


class FailFirstCalls:
    """ASGI wrapper: the first ``count`` MCP ``tools/call`` POSTs are answered HTTP ``status`` by the
    gateway itself (never reaching the sandbox), like a Truto-side hiccup on the MCP POST."""

    def __init__(self, app: Any, status: int, count: int = 1) -> None:
        self.app, self.status, self.left = app, status, count
        self.failed = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/mcp/") and self.left:
            message = await receive()
            body = message.get("body", b"")
            if b'"tools/call"' in body:
                self.left -= 1
                self.failed += 1
                await send({"type": "http.response.start", "status": self.status,
                            "headers": [(b"content-type", b"application/json")]})
                payload = json.dumps({"statusCode": self.status, "message": "try again later"}).encode()
                await send({"type": "http.response.body", "body": payload})
                return
            replayed = False

            async def replay() -> Any:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return message

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


async def test_a_read_answered_5xx_on_the_mcp_post_is_retried_below_the_session(make_sandbox: Any) -> None:
    """An HTTP 503 on the MCP POST of a read is re-sent by the transport (the MCP session never sees
    it): the read succeeds, the wait is reported and counted, and the sandbox got the call once."""
    sandbox = make_sandbox()
    gateway = FailFirstCalls(sandbox.app, 503, count=2)
    sandbox.app = gateway
    call_id = sandbox.workspace.list_calls(limit=1)[0]["id"]
    notices: list[str] = []
    usage = Usage()
    async with open_runtime(load_settings({"sandbox": True}, env={}), sandbox=sandbox, usage=usage,
                            notice=notices.append, store=None, prompt=None) as rt:
        call = await rt.vapi.get_call(call_id)
    assert call["id"] == call_id and gateway.failed == 2
    assert [e.tool for e in sandbox.log.entries("mcp") if e.rpc_method == "tools/call"] == [TOOL]
    assert len([n for n in notices if "answered HTTP 503, retrying in" in n]) == 2 == usage.rate_limit_waits


async def test_a_read_that_keeps_failing_is_reported_after_the_attempt_cap(make_sandbox: Any) -> None:
    """With every API request failing, a read gives up after ``max_attempts`` and says why (exit 3)."""
    sandbox = make_sandbox(error_rate=1.0)
    call_id = sandbox.workspace.list_calls(limit=1)[0]["id"]
    settings = load_settings({"sandbox": True, "max_attempts": 3}, env={})
    async with open_runtime(settings, sandbox=sandbox, notice=lambda _: None, store=None, prompt=None) as rt:
        with pytest.raises(UpstreamError) as caught:
            await rt.vapi.get_call(call_id)
    assert caught.value.exit_code == 3 and "HTTP 50" in caught.value.message
    assert len([e for e in sandbox.log.entries("rest") if e.path == f"/call/{call_id}"]) == 3


def test_windows_replay_rule() -> None:
    """The replay helper itself: windows open at the first POST at or after the previous end."""

    def entry(t: float, status: int = 200) -> LogEntry:
        return LogEntry(t_start=t, t_end=t + 0.01, transport="mcp", method="POST", path="/mcp/***", status=status)

    log = [entry(0.0), entry(0.5), entry(0.6, 429), entry(1.0), entry(1.2), entry(2.5)]
    assert [(end, len(members)) for end, members in windows(log, 1.0)] == [(1.0, 3), (2.0, 2), (3.5, 1)]
    check_replay(log, RateLimit(2, 1.0))  # consistent: only the third POST of the first window was refused
    with pytest.raises(AssertionError):
        check_replay(log, RateLimit(3, 1.0))  # a limit of 3 would not have refused it
    sent = {id(e): e.t_start - 0.001 for e in log}
    assert violations(log, RateLimit(2, 1.0), is_ours, sent) == []  # the next POST came at the reset, not before
    early = [*log[:3], entry(0.8, 429)]  # sent 0.19 s after the 429 was answered, into the same window
    sent = {id(e): e.t_start - 0.001 for e in early}
    assert len(violations(early, RateLimit(2, 1.0), is_ours, sent)) == 1
    sent[id(early[3])] = 0.605  # already on its way when the 429 left (at 0.61): in flight, excepted
    assert violations(early, RateLimit(2, 1.0), is_ours, sent) == []


# ---------------------------------------------------------------- two processes, one limit
def test_two_processes_sharing_a_limit_of_2_per_second_both_finish(serve_sandbox: Any, tmp_path: Any) -> None:
    """Two qa-grade runs (4 concurrent requests each) on one sandbox allowing 2 MCP POSTs per second:
    each is refused again and again (the other took the window), and each waits as long as the
    announced resets say, within its time budget. The attempt cap is set to 1 (no retry at all for a
    failure that announces nothing), so a single refusal would end a run if attempts bound 429s.
    The processes do not share their windows (as on two machines): on one machine they would, and
    would rarely be refused (tests/test_ratelimit_shared.py)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    sandbox = serve_sandbox(rate_limit=RateLimit(2, 1.0))
    command = [str(Path(sys.executable).with_name("vapi-agent")), "qa-grade", "--assistant", "Support",
               "--last", "4", "--recordings", "all", "--json", "--mcp-url", sandbox.mcp_url]
    env = {**os.environ, "VAPI_AGENT_CONCURRENCY": "4", "VAPI_AGENT_MAX_ATTEMPTS": "1",
           "VAPI_AGENT_SHARED_RATE_LIMITS": "0"}
    runs = [subprocess.Popen([*command, "--recordings-dir", str(tmp_path / f"rec-{n}")], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            for n in range(2)]
    outputs = [run.communicate(timeout=240) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    for out, err in outputs:
        envelope = json.loads(out)
        assert len(envelope["result"]["calls"]) == 4 and envelope["status"] in ("ok", "partial")
        assert "rate limited by 127.0.0.1" in err  # the waits are said on stderr
    refused = [e for e in posts(sandbox) if e.status == 429]
    assert refused  # they really competed
