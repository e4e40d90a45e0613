"""One live MCP connection: open it over its transport, list every tool page, call tools, map errors.

Transports: Streamable HTTP (``mode="legacy"``: Truto and Vapi are handshake-era servers), legacy
HTTP+SSE, stdio, and in-process (an ``mcp`` ``Server`` object, used for the embedded sandbox).
The HTTP client is built by the caller (``agent.runtime``) so that rate-limit capture, retries and
the governor sit *below* the MCP session, per HTTP request (never around ``call_tool`` as a whole).

One owner per session. An ``mcp`` client (its transport, task groups and anyio cancel scopes) must
be entered and exited by one task, so each session generation (``_Session``) lives in a task of its
own; callers in any task (qa-grade's workers, the agent loop's parallel tool calls) only send
requests through it. A caller that finds the session gone asks for a new one under a lock: the
first caller that saw generation g opens g + 1, callers that saw g too find g + 1 there and simply
send again, and the old generation's task closes it once no request is in flight on it.

When a session is gone:
- HTTP 404 to a request carrying the session id (the server ended the session, MCP spec): the
  request was not processed, so it is sent again on the new session, a write too;
- a request that could not be written (the session's streams were already closed): sent again;
- a connection that dropped with the request in flight (a stdio server that died, a cut stream): a
  read is sent again on a new session (a stdio server is restarted once); a write may have been
  applied, so it is reported as ``AmbiguousWrite`` (the facade reconciles) and not sent again.

A message that does not parse on a stream that carries every answer (a legacy SSE ``message`` event,
a stdio line that claims to be JSON-RPC) means a broken server: the session is closed and the
requests in flight on it fail at once with one line naming what came back (exit 3; a write may
have been applied). Other stdio lines (a server printing logs on stdout) are ignored, as other MCP
clients do, but named if a request then times out. Streamable HTTP answers are checked below the
SDK (``agent.ratelimit.transport``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any, TextIO, TypeVar

from agent.errors import AgentError, AmbiguousWrite, CircuitOpen, RateLimited, ToolError, UpstreamError
from agent.mcp.decode import ToolOutput, decode_result, error_from_status
from agent.mcp.limits import DEFAULT_MAX_MESSAGE_BYTES
from agent.mcp.servers import ServerSpec
from agent.redact import redact

log = logging.getLogger(__name__)

T = TypeVar("T")

# JSON-RPC codes (mcp_types.jsonrpc, and ours from agent.ratelimit.policy for HTTP failures) treated specially.
HTTP_TIMEOUT = -32051
HTTP_NETWORK = -32052
HTTP_CIRCUIT_OPEN = -32053
HTTP_SESSION_ENDED = -32054
HTTP_INTERNAL = -32055
HTTP_MALFORMED = -32056
PARSE_ERROR = -32700
CONNECTION_CLOSED = -32000
REQUEST_TIMEOUT = -32001
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601

HttpClientFactory = Callable[[ServerSpec], Any]  # returns an httpx2.AsyncClient
# Runs one read attempt under the run's retry policy, e.g. ``lambda fn: policy.run(fn, is_write=False)``.
RetryReads = Callable[[Callable[[], Awaitable[ToolOutput]]], Awaitable[ToolOutput]]

# How many new sessions in a row may end before serving anything, for one request, before it fails
# (each time, nothing was processed). A session that served requests ended by the server's rule and
# the run goes on; only sessions that die unused mean a server that keeps refusing. A dropped
# connection moves a read once.
MAX_SESSION_RENEWALS = 3


class _UpstreamToolFailure(Exception):
    """A read's tool result reporting an upstream 5xx/408, raised for the retry policy to judge."""

    def __init__(self, output: ToolOutput, status: int) -> None:
        super().__init__(f"upstream answered HTTP {status}")
        self.output = output
        self.status_code = status  # what agent.ratelimit.policy.classify reads


def upstream_failure_status(output: ToolOutput) -> int | None:
    """The status of a tool result that reports an upstream server failure (5xx or 408), else None."""
    error = output.error
    if error is None or isinstance(error, RateLimited):
        return None
    status = error.details.get("status")
    if isinstance(status, int) and not isinstance(status, bool) and (status >= 500 or status == 408):
        return status
    return None


def _is_control(exc: BaseException) -> bool:
    """Cancellation, Ctrl-C and exits must propagate untouched (a deadline cancels the whole run)."""
    return any(isinstance(leaf, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)) for leaf in _leaves(exc))


def _leaves(exc: BaseException) -> list[BaseException]:
    """Flatten nested exception groups (errors entering ``mcp.Client`` arrive wrapped)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def one_line(text: str, limit: int = 300) -> str:
    """The first line of a (possibly multi-line, e.g. pydantic) message, shortened."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _hint_unreachable(spec: ServerSpec) -> str:
    if spec.source == "VAPI_API_KEY":
        return "Vapi's hosted MCP server is used because VAPI_API_KEY is set: check the network, or pick a server " \
               "with --mcp-url"
    if spec.source:
        return f"check {spec.source} and that the server runs"
    return "check the URL and that the server runs"


def map_exception(exc: BaseException, *, spec: ServerSpec, tool: str | None, is_write: bool) -> AgentError:
    """Turn any failure of an MCP request into the error tree: one line, no secrets."""
    for leaf in _leaves(exc):
        if isinstance(leaf, AgentError):
            return leaf
    leaf = _leaves(exc)[0]
    where = f"{spec.display}" + (f" tool {tool}" if tool else "")
    code = getattr(leaf, "code", None)
    data = getattr(leaf, "data", None)
    message = one_line(redact(str(getattr(leaf, "message", None) or leaf) or type(leaf).__name__))
    if code == HTTP_CIRCUIT_OPEN:
        return CircuitOpen(f"{where}: {message}", hint="the server kept failing; try again in a minute")
    if code == HTTP_MALFORMED:
        if is_write:
            return AmbiguousWrite(f"{where} {message}; the write may have been applied")
        return UpstreamError(f"{where} {message}", hint="the server is misbehaving; try again later or report it")
    if code == PARSE_ERROR:
        return UpstreamError(f"{where} sent a message that is not valid JSON-RPC: {message}",
                             hint="the server is misbehaving; rerun with --debug for details")
    if code == HTTP_SESSION_ENDED:
        return UpstreamError(f"{where}: the server kept ending the session (HTTP 404 on every new one)",
                             hint="try again later")
    if code in (HTTP_TIMEOUT, HTTP_NETWORK) and isinstance(data, dict):
        sent = data.get("sent", True) if code == HTTP_NETWORK else True
        if is_write and sent:
            return AmbiguousWrite(f"{where}: {message}; the write may have been applied")
        if data.get("kind") == "unreachable":
            return UpstreamError(f"cannot reach {spec.display}: {data.get('cause') or message}",
                                 hint=_hint_unreachable(spec))
        return UpstreamError(f"cannot reach {spec.display}: {message}",
                             hint="check the URL and that the server runs; try again later")
    if isinstance(data, dict) and isinstance(data.get("status"), int):
        status = int(data["status"])
        if is_write and (status >= 500 or status == 408):
            return AmbiguousWrite(f"{where}: write answered HTTP {status}; it may have been applied", status=status)
        headers = data.get("headers") or {}
        retry = data.get("retry") or {}
        err = error_from_status(status, message, tool=tool, retry_after=retry.get("retry_after"))
        if isinstance(err, RateLimited):
            err.details["headers"] = headers
        return err
    if code == REQUEST_TIMEOUT:
        if is_write:
            return AmbiguousWrite(f"{where}: write timed out; it may have been applied")
        return UpstreamError(f"{where}: timed out", hint="the server is slow or unreachable; try again later")
    if code in (INVALID_PARAMS, METHOD_NOT_FOUND):
        return ToolError(f"{where}: {message}")
    if code == CONNECTION_CLOSED or type(leaf).__name__ in ("ConnectError", "ConnectTimeout", "ReadError"):
        if is_write:
            return AmbiguousWrite(f"{where}: connection dropped during a write; it may have been applied")
        return UpstreamError(f"cannot reach {spec.display}: {message}", hint="check the URL and that the server runs")
    if type(leaf).__name__ == "ValidationError":  # pydantic, from the SDK: an answer off the MCP schema
        return UpstreamError(f"{where} answered something the MCP schema rejects: {message}",
                             hint="the server is misbehaving; rerun with --debug for details")
    return UpstreamError(f"{where}: {message}")


def unparsed_input(exc: BaseException) -> str | None:
    """The text of a message the SDK could not parse (a pydantic error of its JSON-RPC adapter), else None."""
    errors = getattr(exc, "errors", None)
    if type(exc).__name__ != "ValidationError" or not callable(errors):
        return None
    found = errors()
    if not found:
        return None
    value = found[0].get("input")
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _timed_out(exc: BaseException) -> bool:
    return any(getattr(leaf, "code", None) == REQUEST_TIMEOUT for leaf in _leaves(exc))


def internal_fault(exc: BaseException) -> BaseException | None:
    """The exception of our own code behind an ``HTTP_INTERNAL`` answer (see agent.ratelimit.transport)."""
    from agent.ratelimit.transport import take_fault

    for leaf in _leaves(exc):
        data = getattr(leaf, "data", None)
        if getattr(leaf, "code", None) == HTTP_INTERNAL and isinstance(data, dict):
            fault = take_fault(data.get("fault"))
            return fault if fault is not None else RuntimeError(f"internal error below the MCP session: {leaf}")
    return None


def session_loss(exc: BaseException) -> str | None:
    """How a request failed because its session is gone, if it did.

    ``"ended"``: the server ended the session (404 to a request carrying its id): not processed.
    ``"unsent"``: the session's streams were closed before the request could be written.
    ``"dropped"``: the connection closed with the request in flight: it may have been processed.
    """
    for leaf in _leaves(exc):
        code = getattr(leaf, "code", None)
        data = getattr(leaf, "data", None)
        if code == HTTP_SESSION_ENDED:
            return "ended"
        if isinstance(data, dict) and data.get("status") == 404 and data.get("session"):
            return "ended"
        # Without our transport below it (in-process), the SDK's own spellings of the same 404.
        if code == INVALID_REQUEST and str(getattr(leaf, "message", "")) in ("Session terminated", "Session not found"):
            return "ended"
        if code == CONNECTION_CLOSED:
            # The SDK raises "Connection closed" from the failed write itself (the streams were gone).
            context = leaf.__context__
            if context is not None and type(context).__name__ in ("BrokenResourceError", "ClosedResourceError"):
                return "unsent"
            return "dropped"
        if type(leaf).__name__ in ("BrokenResourceError", "ClosedResourceError"):
            return "unsent"
    return None


class _Session:
    """One generation of the ``mcp`` client, entered and exited by its own task (``Connection._own``)."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.client: Any = None
        self.task: asyncio.Task[None] | None = None
        self.gone = False  # ended, dropped or retired: nothing new is sent on it
        self.in_flight = 0
        self.served = 0  # requests answered on it (a session that serves nothing is a wasted renewal)
        self.broken: str | None = None  # what a broken server sent (see the module docstring)
        self.stray: str | None = None  # the last stdio line that was not JSON-RPC
        self._close = asyncio.Event()

    @contextmanager
    def use(self) -> Iterator[Any]:
        """Count one request in flight on this session (it is closed only once none is)."""
        self.in_flight += 1
        try:
            yield self.client
        finally:
            self.in_flight -= 1
            if self.gone and self.in_flight == 0:
                self._close.set()

    def retire(self, *, now: bool = False) -> None:
        """Send nothing new on it; close it when the requests in flight have their answers (or ``now``)."""
        self.gone = True
        if now or self.in_flight == 0:
            self._close.set()

    async def closed(self) -> None:
        """Wait until the session should close."""
        await self._close.wait()


class Connection:
    """An open session to one server. Use ``async with Connection(spec, ...)``; see the module docstring."""

    def __init__(
        self,
        spec: ServerSpec,
        *,
        http_client_factory: HttpClientFactory | None = None,
        server_object: Any = None,
        tool_timeout: float = 120.0,
        connect_timeout: float = 20.0,
        elicitation_callback: Any = None,
        retry_reads: RetryReads | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.spec = spec
        self.max_message_bytes = max_message_bytes
        self._retry_reads = retry_reads
        self._http_factory = http_client_factory
        self._server_object = server_object
        self.tool_timeout = tool_timeout
        self.connect_timeout = connect_timeout
        # None (the product's choice): elicitation is not declared, so servers never ask a headless
        # agent for input; a callback (an ``mcp`` ``ElicitationFnT``) declares it and answers.
        self._elicitation_callback = elicitation_callback
        self._session: _Session | None = None
        self._sessions: set[_Session] = set()  # every generation whose task has not finished
        self._lock = asyncio.Lock()
        self._failed_renewal: tuple[_Session, BaseException] | None = None
        self._context: contextvars.Context | None = None
        self._tools: list[Any] | None = None
        self.server_name: str | None = None
        self.protocol_version: str | None = None
        self.catalogue_stale = False

    async def __aenter__(self) -> Connection:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def generation(self) -> int:
        """How many sessions this connection has opened (1 until a session is renewed)."""
        return self._session.generation if self._session is not None else 0

    def _transport_target(self, stack: AsyncExitStack) -> Any:
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        spec = self.spec
        if spec.transport in ("sandbox", "memory"):
            if self._server_object is None:
                raise UpstreamError(f"{spec.name}: no in-process server object was provided")
            return self._server_object
        if spec.transport == "stdio":
            assert spec.command is not None
            params = StdioServerParameters(command=spec.command, args=spec.args, env=spec.env or None, cwd=spec.cwd)
            return stdio_client(params, errlog=_server_stderr())
        assert spec.url is not None
        if spec.transport == "sse":
            from mcp.client.sse import sse_client

            factory = self._http_factory
            kwargs: dict[str, Any] = {"headers": spec.headers, "timeout": self.connect_timeout,
                                      "sse_read_timeout": max(self.tool_timeout, 300.0)}
            if factory is not None:

                def sse_http_client(headers: Any = None, timeout: Any = None, auth: Any = None) -> Any:
                    client = factory(spec)
                    if timeout is not None:
                        # The event stream idles between messages: it needs sse_read_timeout, not the
                        # per-request read timeout (else an idle session drops after tool_timeout seconds).
                        client.timeout = timeout
                    return client

                kwargs["httpx_client_factory"] = sse_http_client
            return sse_client(spec.url, **kwargs)
        from mcp.client.streamable_http import streamable_http_client

        http = self._http_factory(spec) if self._http_factory else None
        if http is not None:
            stack.push_async_callback(http.aclose)
        # The SDK's own per-event SSE limit (1 MiB by default) would cut big answers short of ours;
        # agent.mcp.limits caps every message (JSON or SSE) below it, this is the backstop.
        return streamable_http_client(spec.url, http_client=http, max_sse_event_size=self.max_message_bytes)

    # ------------------------------------------------------------ session lifecycle
    async def open(self) -> None:
        """Connect and handshake; failures become one clear ``UpstreamError`` (our own bugs propagate)."""
        # Session tasks run in the context of the opening, not of whichever call renews a session
        # (a write's ``write_intent`` must not leak into the handshake of the next session).
        self._context = contextvars.copy_context()
        self._session = await self._start(1)
        info = self._session.client.server_info
        self.server_name = getattr(info, "name", None)
        self.protocol_version = self._session.client.protocol_version
        log.info("connected to %s (%s, protocol %s)", self.spec.display, self.server_name, self.protocol_version)

    async def _start(self, generation: int) -> _Session:
        """Open one session generation in a task of its own; returns once it is ready to send."""
        session = _Session(generation)
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        session.task = asyncio.create_task(self._own(session, ready), context=self._context,
                                           name=f"mcp session {generation} with {self.spec.name}")
        self._sessions.add(session)
        session.task.add_done_callback(lambda _task: self._sessions.discard(session))
        try:
            await asyncio.shield(ready)
        except BaseException as exc:
            session.retire(now=True)
            if _is_control(exc):
                raise
            fault = internal_fault(exc)
            if fault is not None:
                raise fault from None
            raise map_exception(exc, spec=self.spec, tool=None, is_write=False) from None
        return session

    async def _own(self, session: _Session, ready: asyncio.Future[None]) -> None:
        """The task that owns one session: enters the ``mcp`` client, waits, exits it (same task)."""
        from mcp import Client

        try:
            async with AsyncExitStack() as stack:
                target = self._transport_target(stack)
                # The handshake era everywhere: Truto and Vapi speak it, and it carries
                # tools/list_changed unsolicited (2026-07-28 sessions would need a subscription first).
                client = Client(target, mode="legacy", cache=None, read_timeout_seconds=self.tool_timeout,
                                message_handler=functools.partial(self._on_message, session=session),
                                elicitation_callback=self._elicitation_callback)
                session.client = await stack.enter_async_context(client)
                ready.set_result(None)
                await session.closed()
        except BaseException as exc:  # reported to the opener, or only logged: this task ends quietly
            session.gone = True
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            elif not _is_control(exc):
                log.debug("session %d with %s ended: %s", session.generation, self.spec.display, redact(repr(exc)))
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            session.gone = True

    async def close(self) -> None:
        """Close every session (errors while closing are logged, not raised)."""
        self._session = None
        sessions = list(self._sessions)
        for session in sessions:
            session.retire(now=True)
        tasks = [s.task for s in sessions if s.task is not None]
        if tasks:
            # gather: a cancelled close cancels the session tasks too (nothing outlives the run).
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _renew(self, lost: _Session) -> _Session:
        """A live session instead of ``lost``: opened once for every caller that saw ``lost`` go."""
        async with self._lock:
            current = self._session
            if current is None:
                raise UpstreamError(f"{self.spec.display}: not connected")
            if current is not lost and not current.gone:
                return current  # another caller renewed it already
            if self._failed_renewal is not None and self._failed_renewal[0] is current:
                raise self._failed_renewal[1]
            current.retire()
            log.info("session with %s is gone; opening a new one", self.spec.display)
            try:
                fresh = await self._start(current.generation + 1)
            except Exception as exc:
                self._failed_renewal = (current, exc)
                raise
            await self._prime(fresh)
            self._session = fresh
            return fresh

    async def _prime(self, session: _Session) -> None:
        """List the tools once on a new session, before any call is sent on it.

        The SDK lists tools before the first call of each tool name on a session (to validate
        structured results): primed here, a renewed session costs one listing, not one per caller.
        A failure is left to the calls themselves (they renew or report it).
        """
        cursor: str | None = None
        try:
            for _ in range(100):  # a server repeating cursors must not hold the renewal forever
                page = await session.client.list_tools(cursor=cursor, cache_mode="refresh")
                cursor = page.next_cursor
                if cursor is None:
                    return
        except Exception as exc:
            log.debug("listing tools on the new session with %s failed: %s", self.spec.display, redact(repr(exc)))

    async def _live(self) -> _Session:
        session = self._session
        if session is None:
            raise UpstreamError(f"{self.spec.display}: not connected")
        return await self._renew(session) if session.gone else session

    async def _send(self, request: Callable[[Any], Awaitable[T]], *, tool: str | None, is_write: bool) -> T:
        """Send one request on the live session, moving it to a new session as the module docstring says."""
        from agent.ratelimit.transport import write_intent

        session = await self._live()
        wasted = dropped = 0
        while True:
            try:
                with session.use() as client, write_intent(is_write):
                    # The capture/retry transports below read the intent to never resend an ambiguous write.
                    result = await request(client)
                session.served += 1
                return result
            except BaseException as exc:
                if _is_control(exc):
                    raise
                fault = internal_fault(exc)
                if fault is not None:
                    raise fault from None
                if session.broken is not None or (session.stray is not None and _timed_out(exc)):
                    raise self._malformed(session, tool=tool, is_write=is_write) from None
                loss = session_loss(exc)
                wasted = wasted + 1 if loss == "ended" and session.served == 0 else wasted
                dropped = dropped + 1 if loss == "dropped" else dropped
                if loss is None or wasted > MAX_SESSION_RENEWALS or dropped > 1:
                    raise map_exception(exc, spec=self.spec, tool=tool, is_write=is_write) from None
                if loss == "dropped":
                    log.warning("connection to %s dropped; reconnecting", self.spec.display)
                session.gone = True
                session = await self._renew(session)
                if loss == "dropped" and is_write:
                    raise map_exception(exc, spec=self.spec, tool=tool, is_write=True) from None

    # ------------------------------------------------------------ requests
    async def _on_message(self, message: Any, *, session: _Session | None = None) -> None:
        """Server notifications (``tools/list_changed`` marks the cached catalogue stale) and messages
        that did not parse (the SDK hands those over as exceptions; see the module docstring)."""
        if isinstance(message, Exception):
            if session is not None and self.spec.transport in ("sse", "stdio"):
                self._unparsed(session, message)
            return
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            log.info("%s says its tool list changed; it will be listed again", self.spec.display)
            self.catalogue_stale = True

    def _unparsed(self, session: _Session, exc: Exception) -> None:
        from agent.ratelimit.transport import describe_body

        raw = unparsed_input(exc)
        if raw is None:
            return  # not a message that failed to parse (the transport's own failure): left to the requests
        sample = describe_body("an event" if self.spec.transport == "sse" else "a line", raw.encode())
        if self.spec.transport == "stdio" and "jsonrpc" not in raw:
            log.debug("%s wrote a line that is not JSON-RPC (ignored): %s", self.spec.display, sample)
            session.stray = sample
            return
        log.debug("%s sent a message that does not parse: %s", self.spec.display, sample)
        session.broken = sample
        session.retire(now=True)  # the requests in flight fail now (CONNECTION_CLOSED), see _send

    def _malformed(self, session: _Session, *, tool: str | None, is_write: bool) -> AgentError:
        where = f"{self.spec.display}" + (f" tool {tool}" if tool else "")
        if session.broken is None:
            return UpstreamError(f"{where}: no answer within its timeout; the server wrote something that is "
                                 f"not JSON-RPC ({session.stray})", hint="the server is misbehaving; report it")
        message = f"{where} answered something that is not JSON-RPC ({session.broken})"
        if is_write:
            return AmbiguousWrite(f"{message}; the write may have been applied")
        return UpstreamError(message, hint="the server is misbehaving; try again later or report it")

    async def list_tools(self, *, refresh: bool = False) -> list[Any]:
        """Every page of ``tools/list`` (cached for the run; ``refresh`` after ``list_changed``)."""
        if self._tools is not None and not refresh:
            return self._tools
        tools: list[Any] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:

            async def page_at(client: Any, at: str | None = cursor) -> Any:
                return await client.list_tools(cursor=at, cache_mode="refresh")

            page = await self._send(page_at, tool=None, is_write=False)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None or cursor in seen:  # a server repeating a cursor would loop forever
                break
            seen.add(cursor)
        self._tools = tools
        self.catalogue_stale = False
        return tools

    async def call(self, name: str, arguments: dict[str, Any] | None, *, is_write: bool = False,
                   timeout: float | None = None) -> ToolOutput:
        """Call one tool; returns a decoded ``ToolOutput`` (``output.error`` set for tool-level failures).

        Transport failures raise: ``AmbiguousWrite`` for a write that may have happened, else an
        ``UpstreamError``; a session that ended or dropped is handled as the module docstring says.
        A failure of our own code below the SDK is re-raised as it is (an internal error, exit 1).

        A tool *result* reporting an upstream 5xx or 408 (Truto forwards Vapi's failures as ``isError``
        envelopes, where no HTTP-level retry can see them): a write's error becomes ``AmbiguousWrite``
        (it may have been applied; the facade reconciles), and a read is called again through
        ``retry_reads`` (the run's retry policy); if it never succeeds, the last answer is returned.
        """
        if is_write or self._retry_reads is None:
            output = await self._call_once(name, arguments, is_write=is_write, timeout=timeout)
            status = upstream_failure_status(output)
            if is_write and status is not None:
                output.error = AmbiguousWrite(
                    f"{self.spec.display} tool {name}: write answered HTTP {status}; it may have been applied",
                    status=status)
            return output

        async def attempt() -> ToolOutput:
            output = await self._call_once(name, arguments, is_write=False, timeout=timeout)
            status = upstream_failure_status(output)
            if status is not None:
                raise _UpstreamToolFailure(output, status)
            return output

        try:
            return await self._retry_reads(attempt)
        except _UpstreamToolFailure as exc:  # still failing when the policy gave up: report the last answer
            return exc.output

    async def _call_once(self, name: str, arguments: dict[str, Any] | None, *, is_write: bool,
                         timeout: float | None) -> ToolOutput:
        """One ``tools/call`` through ``_send``; the result decoded."""
        result = await self._send(
            lambda client: client.call_tool(name, arguments or {}, read_timeout_seconds=timeout),
            tool=name, is_write=is_write)
        return decode_result(name, result)


def _server_stderr() -> TextIO:
    """Where a stdio server's stderr goes: this process's stderr as it is now. The mcp SDK's default is
    ``sys.stderr`` as it was when the SDK was first imported, which may be a stream closed since (a
    test's capture): every later server then fails to start with "I/O operation on closed file". A
    stream without a file descriptor (an in-memory capture) cannot be a child's stderr: fd 2 then."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__ or sys.stderr
    return sys.stderr
