"""One live MCP connection: open it over its transport, list every tool page, call tools, map errors.

Transports: Streamable HTTP (``mode="legacy"``: Truto and Vapi are handshake-era servers), legacy
HTTP+SSE, stdio, and in-process (an ``mcp`` ``Server`` object, used for the embedded sandbox).
The HTTP client is built by the caller (``agent.runtime``) so that rate-limit capture, retries and
the governor sit *below* the MCP session, per HTTP request (never around ``call_tool`` as a whole).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from agent.errors import AgentError, AmbiguousWrite, CircuitOpen, RateLimited, ToolError, UpstreamError
from agent.mcp.decode import ToolOutput, decode_result, error_from_status
from agent.mcp.limits import DEFAULT_MAX_MESSAGE_BYTES
from agent.mcp.servers import ServerSpec
from agent.redact import redact

log = logging.getLogger(__name__)

# JSON-RPC codes (mcp_types.jsonrpc, and ours from agent.ratelimit for HTTP failures) treated specially.
HTTP_TIMEOUT = -32051
HTTP_NETWORK = -32052
HTTP_CIRCUIT_OPEN = -32053
CONNECTION_CLOSED = -32000
REQUEST_TIMEOUT = -32001
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601

HttpClientFactory = Callable[[ServerSpec], Any]  # returns an httpx2.AsyncClient
# Runs one read attempt under the run's retry policy, e.g. ``lambda fn: policy.run(fn, is_write=False)``.
RetryReads = Callable[[Callable[[], Awaitable[ToolOutput]]], Awaitable[ToolOutput]]


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


def map_exception(exc: BaseException, *, spec: ServerSpec, tool: str | None, is_write: bool) -> AgentError:
    """Turn any failure of an MCP request into the error tree (no secrets in the message)."""
    for leaf in _leaves(exc):
        if isinstance(leaf, AgentError):
            return leaf
    leaf = _leaves(exc)[0]
    where = f"{spec.display}" + (f" tool {tool}" if tool else "")
    code = getattr(leaf, "code", None)
    data = getattr(leaf, "data", None)
    message = redact(str(getattr(leaf, "message", None) or leaf) or type(leaf).__name__)
    if code == HTTP_CIRCUIT_OPEN:
        return CircuitOpen(f"{where}: {message}", hint="the server kept failing; try again in a minute")
    if code in (HTTP_TIMEOUT, HTTP_NETWORK) and isinstance(data, dict):
        sent = data.get("sent", True) if code == HTTP_NETWORK else True
        if is_write and sent:
            return AmbiguousWrite(f"{where}: {message}; the write may have been applied")
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
    return UpstreamError(f"{where}: {message}")


class Connection:
    """An open session to one server. Use ``async with Connection(spec, ...)``."""

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
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._tools: list[Any] | None = None
        self.server_name: str | None = None
        self.protocol_version: str | None = None
        self._had_session = False
        self.catalogue_stale = False

    async def __aenter__(self) -> Connection:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _transport_target(self, stack: AsyncExitStack) -> Any:
        from mcp import StdioServerParameters

        spec = self.spec
        if spec.transport in ("sandbox", "memory"):
            if self._server_object is None:
                raise UpstreamError(f"{spec.name}: no in-process server object was provided")
            return self._server_object
        if spec.transport == "stdio":
            assert spec.command is not None
            return StdioServerParameters(command=spec.command, args=spec.args, env=spec.env or None, cwd=spec.cwd)
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

    async def open(self) -> None:
        """Connect and handshake; failures become one clear ``UpstreamError``."""
        from mcp import Client

        stack = AsyncExitStack()
        try:
            target = self._transport_target(stack)
            # The handshake era everywhere: Truto and Vapi speak it, and it carries tools/list_changed
            # unsolicited (2026-07-28 sessions would need a subscription first).
            mode = "legacy"
            client = Client(target, mode=mode, cache=None, read_timeout_seconds=self.tool_timeout,
                            message_handler=self._on_message,
                            elicitation_callback=self._elicitation_callback)
            self._client = await stack.enter_async_context(client)
        except BaseException as exc:
            await stack.aclose()
            if _is_control(exc):
                raise
            raise map_exception(exc, spec=self.spec, tool=None, is_write=False) from None
        self._stack = stack
        info = self._client.server_info
        self.server_name = getattr(info, "name", None)
        self._had_session = self.spec.transport in ("http",)
        self.protocol_version = self._client.protocol_version
        log.info("connected to %s (%s, protocol %s)", self.spec.display, self.server_name, self.protocol_version)

    async def close(self) -> None:
        """Close the session (errors while closing are logged, not raised)."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            try:
                await stack.aclose()
            except BaseException as exc:  # a failing close must not mask the outcome
                if isinstance(exc, KeyboardInterrupt):
                    raise
                log.debug("closing %s: %s", self.spec.display, redact(repr(exc)))

    async def _on_message(self, message: Any) -> None:
        """Server notifications: ``tools/list_changed`` marks the cached catalogue stale."""
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            log.info("%s says its tool list changed; it will be listed again", self.spec.display)
            self.catalogue_stale = True

    async def reconnect(self) -> None:
        """Re-initialise an expired session or a dropped connection (the catalogue is kept)."""
        await self.close()
        await self.open()

    async def list_tools(self, *, refresh: bool = False) -> list[Any]:
        """Every page of ``tools/list`` (cached for the run; ``refresh`` after ``list_changed``)."""
        if self._tools is not None and not refresh:
            return self._tools
        tools: list[Any] = []
        cursor: str | None = None
        seen: set[str] = set()
        try:
            while True:
                page = await self._client.list_tools(cursor=cursor, cache_mode="refresh")
                tools.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None or cursor in seen:  # a server repeating a cursor would loop forever
                    break
                seen.add(cursor)
        except BaseException as exc:
            if _is_control(exc):
                raise
            raise map_exception(exc, spec=self.spec, tool=None, is_write=False) from None
        self._tools = tools
        self.catalogue_stale = False
        return tools

    async def call(self, name: str, arguments: dict[str, Any] | None, *, is_write: bool = False,
                   timeout: float | None = None) -> ToolOutput:
        """Call one tool; returns a decoded ``ToolOutput`` (``output.error`` set for tool-level failures).

        Transport failures raise: ``AmbiguousWrite`` for a write that may have happened, else an
        ``UpstreamError``. An expired session (404) is re-initialised once and the call resent: a 404
        means the request was not processed.

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
        """One ``tools/call`` (re-initialising an expired session once); see ``call``."""
        if self._client is None:
            raise UpstreamError(f"{self.spec.display}: not connected")
        for attempt in (1, 2):
            try:
                from agent.ratelimit.transport import write_intent

                # The capture/retry transports below read this to never resend an ambiguous write.
                with write_intent(is_write):
                    result = await self._client.call_tool(name, arguments or {}, read_timeout_seconds=timeout)
                return decode_result(name, result)
            except BaseException as exc:
                if _is_control(exc):
                    raise
                leaf = _leaves(exc)[0]
                data = getattr(leaf, "data", None)
                expired = (getattr(leaf, "code", None) == INVALID_REQUEST and "terminated" in str(leaf).lower()) or (
                    isinstance(data, dict) and data.get("status") == 404 and self._had_session)
                if expired and attempt == 1:
                    log.info("session with %s expired; re-initialising", self.spec.display)
                    await self.reconnect()
                    continue
                # A dropped connection (a stdio server that died, a closed stream): reconnect once. Only a
                # read is resent; a write may have been applied, so it is reported as ambiguous instead.
                if getattr(leaf, "code", None) == CONNECTION_CLOSED and attempt == 1:
                    log.warning("connection to %s dropped; reconnecting", self.spec.display)
                    await self.reconnect()
                    if not is_write:
                        continue
                raise map_exception(exc, spec=self.spec, tool=name, is_write=is_write) from None
        raise UpstreamError(f"{self.spec.display}: session could not be re-established")
