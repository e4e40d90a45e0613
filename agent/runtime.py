"""The composition root: the ONLY place that decides live vs sandbox and wires the seams together.

``open_runtime(settings)`` connects to the configured MCP servers (or the embedded sandbox), lists
the catalogue once, and yields a ``Runtime``: the hub (with the write gate), the typed Vapi facade,
the model (or None), an HTTP client for media (no credentials), usage counters and the run store.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from agent.config import Settings
from agent.mcp.hub import Hub
from agent.model import ChatModel
from agent.tls import shared_ssl_context
from agent.usage import Usage
from agent.vapi import VapiFacade

IN_PROCESS_ORIGIN = "http://sandbox.localhost"  # = sandbox.app.IN_PROCESS_ORIGIN (not imported: see layers)
SANDBOX_NOTICE = ("no MCP server configured: using the embedded sandbox (a simulated Vapi workspace that keeps"
                  " your changes; `vapi-agent sandbox reset` starts over)")


@dataclass
class Runtime:
    """Everything a workflow or the agent loop needs, already connected."""

    settings: Settings
    hub: Hub
    vapi: VapiFacade
    model: ChatModel | None
    media_http: Any
    usage: Usage
    store: Any = None
    sandbox: Any = None
    notice: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr))
    clock: Callable[[], float] = time.time
    price: tuple[float, float] | None = None

    @property
    def concurrency(self) -> int:
        """How many per-item steps run at once (the governor paces them further)."""
        return max(1, self.settings.concurrency)

    @property
    def show_progress(self) -> bool:
        """Progress bars only for a person at a terminal (never in --json or cron runs)."""
        return not self.settings.json and sys.stderr.isatty()


def _tty_prompt() -> Any:
    """An interactive approval prompt when a person is at the terminal, else None (headless)."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    from agent.approval import ask_on_terminal

    return ask_on_terminal


class _RoutingTransport:
    """Media requests to the in-process sandbox's hosts go to its ASGI app; the rest to the network.

    The sandbox serves signed storage under another host name (``storage.sandbox.localhost``) so
    that, as with Vapi's real storage host, a redirect to it crosses hosts.
    """

    def __init__(self, origin: str, app: Any, network: Any) -> None:
        from urllib.parse import urlsplit

        import httpx2

        self._host = urlsplit(origin).hostname or ""
        self._local = httpx2.ASGITransport(app=app)
        self._network = network

    def _is_local(self, host: str) -> bool:
        return host == self._host or host.endswith("." + self._host)

    async def handle_async_request(self, request: Any) -> Any:
        target = self._local if self._is_local(request.url.host) else self._network
        return await target.handle_async_request(request)

    async def aclose(self) -> None:
        await self._network.aclose()


def embedded_sandbox_dir() -> Path:
    """Where the embedded sandbox keeps its workspaces (one journal per dataset, see ``sandbox.world.state``)."""
    from agent.paths import data_dir

    return data_dir() / "sandbox"


def _call_error(record: Any) -> str | None:
    """A tool call's error for the run log; a write cut in flight says what became of it."""
    if record.write is not None:
        return f"{record.error}; {record.write.line()}" if record.error else record.write.line()
    return record.error


def _build_sandbox(settings: Settings) -> Any:
    """The embedded sandbox: one persisted workspace that every command (every process) shares."""
    from agent.errors import ConfigError
    from sandbox.app import Sandbox, StateError
    from sandbox.world.config import SandboxConfig

    options = dict(settings.sandbox_options)
    # A pinned anchor (tests) asks for that dataset as it stood then; otherwise the workspace lives on
    # from the anchor its state remembers: calls keep arriving, ended ones never change.
    options.setdefault("living", "anchor" not in options)
    try:
        return Sandbox.persistent(SandboxConfig(**options), embedded_sandbox_dir())
    except StateError as exc:
        raise ConfigError(f"the embedded sandbox's saved state cannot be used: {exc}",
                          hint="`vapi-agent sandbox reset` starts it over") from None


def reset_embedded_sandbox() -> list[str]:
    """Forget every change made to the embedded sandbox; returns the workspaces reset (their keys)."""
    from sandbox.app import reset_workspaces

    return reset_workspaces(embedded_sandbox_dir())


EMBEDDED_FLEET_ACCOUNTS = 5
FLEET_SANDBOX_NOTICE = ("no TRUTO_API_TOKEN and no --accounts file: using the embedded sandbox fleet "
                        "({n} simulated Vapi accounts behind a simulated Truto)")


def build_sandbox_fleet(settings: Settings, accounts: int | None = None) -> Any:
    """An in-process sandbox fleet: ``accounts`` simulated Vapi accounts behind Truto's admin API."""
    from sandbox.fleet import FleetConfig, SandboxFleet
    from sandbox.world.config import SandboxConfig

    count = accounts or EMBEDDED_FLEET_ACCOUNTS
    return SandboxFleet(FleetConfig(accounts=count, base=SandboxConfig(**settings.sandbox_options)))


def fleet_source(settings: Settings, *, accounts_file: str | None = None, truto_api: str | None = None,
                 sandbox_accounts: int | None = None, sandbox: Any = None,
                 notice: Callable[[str], None] | None = None) -> Any:
    """Where the fleet's accounts come from: an accounts file, Truto's admin API, or the embedded sandbox fleet.

    The sandbox fleet is used with ``--sandbox``, with ``sandbox`` (an already built one, tests), or
    when neither a file nor ``TRUTO_API_TOKEN`` is given (with a notice).
    """
    from pathlib import Path

    from agent.fleet.source import FleetSource
    from agent.fleet.truto import DEFAULT_TRUTO_API

    api = truto_api or settings.truto_api or DEFAULT_TRUTO_API
    if accounts_file:
        return FleetSource("file", api, accounts_file=str(Path(accounts_file).expanduser().absolute()),
                           token=settings.truto_api_token)
    if settings.sandbox or sandbox is not None or not (settings.truto_api_token or truto_api):
        fleet = sandbox if sandbox is not None else build_sandbox_fleet(settings, sandbox_accounts)
        if sandbox is None and not settings.sandbox and notice is not None:
            notice(FLEET_SANDBOX_NOTICE.format(n=len(fleet.accounts)))
        from agent.redact import register_secret

        register_secret(fleet.config.api_token)
        return FleetSource("sandbox", fleet.api_url, sandbox_accounts=len(fleet.accounts),
                           token=fleet.config.api_token, sandbox=fleet)
    return FleetSource("truto", api, token=settings.truto_api_token)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    usage: Usage | None = None,
    notice: Callable[[str], None] | None = None,
    model: ChatModel | None = None,
    sandbox: Any = None,
    prompt: Any = "tty",
    store: Any = "default",
    tool_timeout: float = 120.0,
    connect_timeout: float = 20.0,
) -> AsyncIterator[Runtime]:
    """Connect everything for one command (see the module docstring); closes it all on exit.

    ``sandbox``: an already built ``sandbox.app.Sandbox`` to use instead of building one (tests).
    ``model``: a ``ChatModel`` to use instead of the configured OpenAI one (tests, scripted runs).
    """
    import httpx2

    from agent.mcp.connection import Connection
    from agent.mcp.limits import MessageSizeCap
    from agent.mcp.servers import resolve_servers
    from agent.media import AddressGuard, DownloadRules
    from agent.model import OpenAIChatModel, price_for
    from agent.policy import WriteGate
    from agent.ratelimit.breaker import BreakerRegistry
    from agent.ratelimit.governor import GovernorRegistry, WaitReporter
    from agent.ratelimit.policy import RetryConfig, RetryPolicy
    from agent.ratelimit.transport import RateLimitAwareTransport, RetryingTransport
    from agent.redact import register_secret
    from agent.store import runlog

    usage = usage or Usage()
    say = notice or (lambda message: print(message, file=sys.stderr))
    def on_wait(event: Any) -> None:
        say(event.message())
        runlog.record("add_wait", event.upstream, event.seconds)

    reporter = WaitReporter(on_wait=on_wait, usage=usage)
    policy = RetryPolicy(RetryConfig.from_settings(settings), reporter=reporter)
    from agent.ratelimit.shared import SharedWindows

    # the windows are shared with every vapi-agent process on this machine (agent/ratelimit/shared.py)
    governors = GovernorRegistry(max_concurrency=max(1, settings.concurrency), reporter=reporter,
                                 shared=SharedWindows.default(), private_origins=(IN_PROCESS_ORIGIN,))
    breakers = BreakerRegistry()
    specs = resolve_servers(settings)

    sandbox_obj = sandbox
    if any(spec.transport == "sandbox" for spec in specs):
        if sandbox_obj is None:
            sandbox_obj = _build_sandbox(settings)
            if not settings.sandbox:
                say(SANDBOX_NOTICE)
        register_secret(sandbox_obj.config.token)
        for spec in specs:
            if spec.transport == "sandbox":
                # The sandbox speaks Streamable HTTP in-process (ASGI), through the same transports as live.
                spec.transport, spec.url = "http", sandbox_obj.mcp_url

    def in_process(url: str | None) -> bool:
        """True for URLs of a sandbox that is not listening on a socket (served through its ASGI app)."""
        return bool(sandbox_obj is not None and url and sandbox_obj.public_url == IN_PROCESS_ORIGIN
                    and url.startswith(IN_PROCESS_ORIGIN + "/"))

    def inner_transport(spec: Any) -> Any:
        network = (httpx2.ASGITransport(app=sandbox_obj.app) if in_process(spec.url)
                   else httpx2.AsyncHTTPTransport(verify=shared_ssl_context()))
        return MessageSizeCap(network, settings.max_message_bytes)

    def http_client(spec: Any) -> Any:
        stack = RateLimitAwareTransport(RetryingTransport(inner_transport(spec), policy, governors, breakers=breakers))
        return httpx2.AsyncClient(
            headers=spec.headers, transport=stack, follow_redirects=False,
            timeout=httpx2.Timeout(tool_timeout, connect=connect_timeout),
        )

    async with AsyncExitStack() as stack:
        connections = []
        for spec in specs:
            # Reads whose tool result reports an upstream 5xx are retried under the same policy and budget.
            connection = Connection(spec, http_client_factory=http_client, tool_timeout=tool_timeout,
                                    connect_timeout=connect_timeout, max_message_bytes=settings.max_message_bytes,
                                    retry_reads=partial(policy.run, is_write=False, upstream=spec.display))
            await stack.enter_async_context(connection)
            connections.append(connection)
        gate = WriteGate(read_only=settings.read_only, yes=settings.yes, allow=settings.allow,
                         prompt=_tty_prompt() if prompt == "tty" else prompt)
        hub = Hub(connections, gate=gate, usage=usage, preferred_server=settings.server,
                  on_call=lambda r: runlog.record("add_tool_call", r.name, r.arguments, r.ok, r.approved_by,
                                                  r.access, _call_error(r), outcome=r.outcome))
        await hub.load_catalogue()

        # Media (recording links, their redirects) reach only public https hosts, or the sandbox: the
        # in-process one (its hosts go to its ASGI app) or a server the user configured on loopback.
        embedded = sandbox_obj is not None and sandbox_obj.public_url == IN_PROCESS_ORIGIN
        served = [spec.url for spec in specs if not in_process(spec.url)]
        if sandbox_obj is not None and not embedded:
            served.append(sandbox_obj.public_url)
        rules = DownloadRules.for_origins(served, max_bytes=settings.max_download_bytes)
        media_transport: Any = AddressGuard(httpx2.AsyncHTTPTransport(verify=shared_ssl_context()), rules)
        if embedded:
            media_transport = _RoutingTransport(IN_PROCESS_ORIGIN, sandbox_obj.app, network=media_transport)
        # No default headers, no cookies: recording links and storage never see our credentials.
        media_http = httpx2.AsyncClient(transport=media_transport, follow_redirects=False,
                                        timeout=httpx2.Timeout(120.0, connect=connect_timeout))
        stack.push_async_callback(media_http.aclose)

        chat_model = model
        if chat_model is None and settings.has_model:
            openai_model = OpenAIChatModel(settings, retry=lambda fn: policy.run(fn, is_write=False,
                                                                                 upstream="model API"))
            stack.push_async_callback(openai_model.aclose)
            chat_model = openai_model

        run_store = None
        if store == "default":
            from agent.store.writer import BackgroundStore

            background = BackgroundStore()  # checkpoints and chat runs: written off the event loop
            stack.push_async_callback(asyncio.to_thread, background.close)
            run_store = background
        elif store is not None:
            run_store = store
        vapi = VapiFacade(hub)
        hub.lookup_interrupted = vapi.lookup_interrupted  # a create cut in flight is looked up before the run ends
        yield Runtime(
            settings=settings, hub=hub, vapi=vapi, model=chat_model, media_http=media_http,
            usage=usage, store=run_store, sandbox=sandbox_obj, notice=say,
            price=price_for(chat_model.name) if chat_model is not None else None,
        )
