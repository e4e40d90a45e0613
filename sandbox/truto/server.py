"""The Truto-style MCP server in front of the sandbox REST API, and the combined ASGI app.

``TrutoMCP(sandbox)`` owns:

- ``.server``: an mcp lowlevel ``Server`` whose tools proxy live to the REST app (``TrutoProxy``);
  usable in-memory with ``mcp.Client(server)`` and over stdio (``sandbox.stdio``);
- ``.asgi_app()``: Streamable HTTP, stateless, answering ``application/json`` (``json_response``):
  big list pages would exceed the mcp client's 1 MiB SSE event limit, and Truto's own clients POST
  one message and read one JSON body (reference/mcp-servers.md §2.1);
- ``.combined_app(rest_app)``: ``/mcp/<token>`` (trailing slash tolerated) → the MCP app behind
  ``TrutoGate``; anything else under ``/mcp`` → 404 Truto envelope; everything else → the REST app.

Truto options from ``SandboxConfig`` applied here: ``methods``/``tags`` filters and
``tool_exposure`` (``discovery`` lists only search_tools/get_tool_schema/call_tool). The HTTP-only
ones (rate limit, expiry, second factor) live in ``sandbox.truto.gate``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import mcp.types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.core.requestlog import LogEntry
from sandbox.truto.catalogue import (
    DISCOVERY_NAMES,
    DISCOVERY_TOOLS,
    ToolSpec,
    build_catalogue,
    search,
    select_tools,
)
from sandbox.truto.gate import REDACTED_MCP_PATH, TrutoGate, envelope, send_json
from sandbox.truto.proxy import ToolFailure, TrutoProxy, text_result

if TYPE_CHECKING:
    from sandbox.core import SandboxCore

log = logging.getLogger(__name__)

SERVER_NAME = "truto-vapi-sandbox"
SERVER_VERSION = "1.0.0"
MAX_SCHEMA_NAMES = 5
# DNS-rebinding protection: only loopback names (and the in-process origin) may address the server
_LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*", "sandbox.localhost", "sandbox.localhost:*"]
_LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", "http://sandbox.localhost"]


class TrutoMCP:
    """A Truto-generated Vapi MCP server for one sandbox (one token = one integrated account)."""

    def __init__(self, sandbox: SandboxCore) -> None:
        self.sandbox = sandbox
        config = sandbox.config
        self.catalogue: list[ToolSpec] = build_catalogue()
        self.tools: dict[str, ToolSpec] = {
            spec.name: spec for spec in select_tools(self.catalogue, config.methods, config.tags)
        }
        if not self.tools:
            # Truto refuses to create such a server ("AI-ready" check); the sandbox still starts.
            log.warning("methods=%s tags=%s leave no tools", config.methods, config.tags)
        self.discovery = config.tool_exposure == "discovery"
        if config.tool_exposure not in ("all", "discovery"):
            raise ValueError(f"tool_exposure must be 'all' or 'discovery', not {config.tool_exposure!r}")
        self.proxy = TrutoProxy(sandbox)
        self.started_at = sandbox.clock.real()
        self.server: Server[Any] = Server(
            SERVER_NAME,
            version=SERVER_VERSION,
            instructions="Vapi tools generated Truto-style. List tools return {result, next_cursor}: "
            "pass next_cursor back unchanged to get the next page.",
            on_list_tools=self._on_list_tools,
            on_call_tool=self._on_call_tool,
        )
        self._managers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopManager] = (
            weakref.WeakKeyDictionary()
        )

    # ------------------------------------------------------------ MCP handlers
    def listed_tools(self) -> list[types.Tool]:
        """What ``tools/list`` shows under the configured exposure."""
        if self.discovery:
            return list(DISCOVERY_TOOLS)
        return [spec.to_tool() for spec in self.tools.values()]

    async def _on_list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        # Truto regenerates the list per request and sends it in one page.
        return types.ListToolsResult(tools=self.listed_tools())

    async def _on_call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return await self.call(params.name, params.arguments)

    async def call(self, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        """Dispatch one ``tools/call``; unknown (or not exposed) tool names are JSON-RPC -32602."""
        if self.discovery:
            if name in DISCOVERY_NAMES:
                return await self._discovery_call(name, arguments or {})
            if name in self.tools:
                raise MCPError(
                    types.INVALID_PARAMS,
                    f"Tool {name} is not exposed directly on this server (tool_exposure=discovery): "
                    "find it with search_tools and run it with call_tool.",
                )
        elif name in self.tools:
            return await self.proxy.call(self.tools[name], arguments)
        raise MCPError(types.INVALID_PARAMS, f"Tool {name} not found")

    async def _discovery_call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        try:
            if name == "search_tools":
                return self._search_tools(arguments)
            if name == "get_tool_schema":
                return self._get_tool_schema(arguments)
            tool_name = arguments.get("tool_name")
            inner = arguments.get("arguments", {})
            if not isinstance(tool_name, str) or not isinstance(inner, dict):
                raise ToolFailure.bad_request("call_tool needs tool_name (string) and arguments (object).")
            spec = self.tools.get(tool_name)
            if spec is None:
                raise ToolFailure(envelope(404, f"Tool {tool_name} not found; use search_tools."))
            return await self.proxy.call(spec, inner)
        except ToolFailure as failure:
            return text_result(failure.body, is_error=True)

    def _search_tools(self, arguments: dict[str, Any]) -> types.CallToolResult:
        query = arguments.get("query")
        limit = arguments.get("limit", 10)
        if not isinstance(query, str) or not query.strip():
            raise ToolFailure.bad_request("search_tools needs a non-empty query.")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ToolFailure.bad_request("limit must be a positive integer.")
        hits = search(list(self.tools.values()), query, limit)
        return text_result(
            {"tools": [{"name": s.name, "description": s.description, "method": s.method,
                        "tags": list(s.tags)} for s in hits]}
        )

    def _get_tool_schema(self, arguments: dict[str, Any]) -> types.CallToolResult:
        names = arguments.get("tool_names")
        if (
            not isinstance(names, list)
            or not 1 <= len(names) <= MAX_SCHEMA_NAMES
            or not all(isinstance(n, str) for n in names)
        ):
            raise ToolFailure.bad_request(f"tool_names must be a list of 1 to {MAX_SCHEMA_NAMES} tool names.")
        unknown = [n for n in names if n not in self.tools]
        if unknown:
            raise ToolFailure(envelope(404, f"Unknown tool(s): {', '.join(unknown)}; use search_tools."))
        return text_result(
            {"tools": [{"name": n, "description": self.tools[n].description,
                        "inputSchema": self.tools[n].input_schema} for n in names]}
        )

    # ------------------------------------------------------------ HTTP
    def security_settings(self) -> TransportSecuritySettings:
        """DNS-rebinding protection: loopback names plus the origin the sandbox is served on."""
        hosts, origins = list(_LOOPBACK_HOSTS), list(_LOOPBACK_ORIGINS)
        public = urlsplit(self.sandbox.public_url)
        if public.netloc and public.netloc not in hosts:
            hosts.append(public.netloc)
            origins.append(f"{public.scheme}://{public.netloc}")
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
        )

    def asgi_app(self) -> ASGIApp:
        """Streamable HTTP (stateless, JSON responses) for whatever path it is mounted on.

        The session manager needs a running task group. Under uvicorn the combined app's lifespan
        stops it; with ``httpx2.ASGITransport`` no lifespan runs at all, so it is started lazily on
        the first request, one per event loop (a sandbox can be served on a thread and called
        in-process from the test's loop at the same time).
        """

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            manager = await self._manager_for_current_loop()
            await manager.handle_request(scope, receive, send)

        return app

    async def _manager_for_current_loop(self) -> StreamableHTTPSessionManager:
        loop = asyncio.get_running_loop()
        runner = self._managers.get(loop)
        if runner is None:
            runner = self._managers[loop] = _LoopManager(self.server, self.security_settings())
        return await runner.started()

    async def aclose(self) -> None:
        """Stop the session manager running on the current event loop (lifespan shutdown)."""
        runner = self._managers.pop(asyncio.get_running_loop(), None)
        if runner is not None:
            await runner.stop()

    def combined_app(self, rest_app: ASGIApp) -> ASGIApp:
        """One ASGI app: ``/mcp/<token>`` → gate → MCP; other ``/mcp/...`` → 404; the rest → REST."""
        gated = TrutoGate(self.asgi_app(), self.sandbox, started_at=self.started_at)
        return CombinedApp(self, gated, rest_app)


class CombinedApp:
    """The sandbox's single origin: MCP under ``/mcp/<token>``, the REST app everywhere else."""

    def __init__(self, mcp: TrutoMCP, gated_mcp: ASGIApp, rest_app: ASGIApp) -> None:
        self.mcp = mcp
        self.gated_mcp = gated_mcp
        self.rest_app = rest_app

    def _token_matches(self, path: str) -> bool:
        token = path[len("/mcp/") :].removesuffix("/")
        return hmac.compare_digest(token.encode(), self.mcp.sandbox.config.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one ASGI event."""
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/mcp" or path.startswith("/mcp/")):
            await self.rest_app(scope, receive, send)
            return
        if path.startswith("/mcp/") and self._token_matches(path):
            await self.gated_mcp(scope, receive, send)
            return
        await self._unknown_token(scope, send)

    async def _unknown_token(self, scope: Scope, send: Send) -> None:
        sandbox = self.mcp.sandbox
        t_start = sandbox.clock.real()
        await send_json(send, 404, envelope(404, "No MCP server matches this URL."))
        sandbox.log.add(
            LogEntry(t_start, sandbox.clock.real(), "mcp", scope["method"], REDACTED_MCP_PATH, 404)
        )

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Delegate the lifespan to the REST app; stop the MCP session manager on shutdown."""

        async def send_wrapper(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.mcp.aclose()
            await send(message)

        await self.rest_app(scope, receive, send_wrapper)


class _LoopManager:
    """A ``StreamableHTTPSessionManager`` kept running by a background task on one event loop."""

    def __init__(self, server: Server[Any], security: TransportSecuritySettings) -> None:
        self.manager = StreamableHTTPSessionManager(
            app=server, json_response=True, stateless=True, security_settings=security
        )
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with self.manager.run():
            self._ready.set()
            await self._stop.wait()

    async def started(self) -> StreamableHTTPSessionManager:
        """Start on first use (no await between the check and the start: no double start)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="truto-mcp-session-manager")
        if not self._ready.is_set():
            ready = asyncio.ensure_future(self._ready.wait())
            await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
            if not self._ready.is_set():
                ready.cancel()
                self._task.result()  # re-raises why the manager could not start
                raise RuntimeError("MCP session manager stopped before it started")
        return self.manager

    async def stop(self) -> None:
        """Let ``run()`` exit and wait for it."""
        self._stop.set()
        if self._task is not None:
            await self._task
