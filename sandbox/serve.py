"""Serving a sandbox over real HTTP: a background ``ServerThread`` (tests) and the foreground ``serve``.

Both run uvicorn on the combined app (REST + ``/mcp/<token>``). uvicorn's access log is redacted
(``AccessLogRedactor``): the MCP token in ``/mcp/<token>`` becomes ``***`` and query strings of
``/_storage/...`` URLs (presigned signatures) are dropped. ``serve`` prints the MCP URL once,
because the user needs it; nothing else ever shows the token.

``ServeOptions`` maps the command-line flags of ``vapi-agent sandbox serve`` / ``python -m sandbox``
to a ``SandboxConfig`` (``to_config()``), so the typer CLI and argparse share one mapping.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import math
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import uvicorn

from sandbox.app import Sandbox
from sandbox.fleet import FleetConfig, SandboxFleet
from sandbox.world.config import DEFAULT_API_KEY, RateLimit, SandboxConfig
from sandbox.world.ids import parse_iso

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
_STOP_TIMEOUT = 10.0


# ---------------------------------------------------------------- access-log redaction
def redact_path(path: str, token: str) -> str:
    """``/mcp/<token>...`` → ``/mcp/***...``; ``/_storage/...?sig`` → without the query; token anywhere → ***."""
    if path.startswith("/_storage/"):
        path = path.split("?", 1)[0]
    if path.startswith("/mcp/"):
        rest = path[len("/mcp/") :]
        segment, sep, tail = rest.partition("/")
        segment, qsep, query = segment.partition("?")
        path = "/mcp/***" + (qsep + query if qsep else "") + sep + tail
    if token and token in path:
        path = path.replace(token, "***")
    return path


class AccessLogRedactor(logging.Filter):
    """A filter for ``uvicorn.access`` records: rewrites the path argument before formatting."""

    def __init__(self, token: str) -> None:
        super().__init__("uvicorn.access")
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place; never drops a record."""
        args = record.args
        # uvicorn's access record: (client_addr, method, full_path, http_version, status_code)
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2], self.token), *args[3:])
        elif isinstance(record.msg, str) and self.token in record.msg:
            record.msg = record.msg.replace(self.token, "***")
        return True


def install_redactor(token: str) -> AccessLogRedactor:
    """Attach a redactor to the ``uvicorn.access`` logger (returned so callers can remove it)."""
    redactor = AccessLogRedactor(token)
    logging.getLogger("uvicorn.access").addFilter(redactor)
    return redactor


# ---------------------------------------------------------------- background server (tests)
def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _origin(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}"


class ServerThread:
    """uvicorn serving ``sandbox.app`` on a background thread with its own event loop.

    ``start()`` binds (``port=0`` picks a free port), sets ``sandbox.public_url`` and returns once
    uvicorn is accepting; ``stop()`` shuts down gracefully (lifespan shutdown included).
    """

    def __init__(self, sandbox: Sandbox | SandboxFleet, host: str = DEFAULT_HOST, port: int = 0, *,
                 access_log: bool = False) -> None:
        self.sandbox = sandbox
        self.host = host
        self.port = port
        self.access_log = access_log
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._socket: socket.socket | None = None
        self._redactor: AccessLogRedactor | None = None

    @property
    def url(self) -> str:
        """The served origin, e.g. ``http://127.0.0.1:54321``."""
        return _origin(self.host, self.port)

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Bind, start serving, wait until accepting; raises if uvicorn fails to start."""
        self._socket = _bind(self.host, self.port)
        self.port = self._socket.getsockname()[1]
        self.sandbox.public_url = self.url
        config = uvicorn.Config(
            self.sandbox.app,
            log_level="warning",
            access_log=self.access_log,
            lifespan="auto",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        if self.access_log:
            self._redactor = install_redactor(self.sandbox.config.token)
        self._thread = threading.Thread(target=self._run, name=f"sandbox-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"sandbox server failed to start: {self._error!r}")
            if time.monotonic() >= deadline:
                self.stop()
                raise TimeoutError(f"sandbox server did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # reported to start()/stop(); a thread cannot raise to its owner
            self._error = exc

    def stop(self) -> None:
        """Graceful shutdown; idempotent."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(_STOP_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._redactor is not None:
            logging.getLogger("uvicorn.access").removeFilter(self._redactor)
            self._redactor = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- options → config
def _split(text: str | Sequence[str] | None) -> tuple[str, ...]:
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    return tuple(item.strip() for item in items if item.strip())


@dataclass
class ServeOptions:
    """Every ``sandbox serve`` / ``stdio`` flag; ``None`` means "the SandboxConfig default"."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    calls: int | None = None
    seed: int | None = None
    anchor: str | None = None
    api_key: str | None = None
    token: str | None = None
    page_cap: int | None = None
    rate_limit: str | None = None
    api_rate_limit: str | None = None
    methods: str | Sequence[str] | None = None
    tags: str | Sequence[str] | None = None
    tool_exposure: str | None = None
    expires_in: float | None = None
    session_requests: int | None = None
    require_api_token: str | None = None
    recording_shape: str | None = None
    latency: float | None = None
    error_rate: float | None = None
    write_fault: str | None = None
    write_fault_count: int | None = None
    expire_first: bool = False
    drop_sse: bool = False
    hostile: bool = False
    time_scale: float | None = None
    link_ttl: float | None = None
    accounts: int | None = None
    api_token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_config(self) -> SandboxConfig:
        """The ``SandboxConfig`` these options describe; ``ValueError`` with a readable message if invalid."""
        values: dict[str, Any] = dict(self.extra)
        direct = ("calls", "seed", "api_key", "token", "page_cap", "expires_in", "session_requests",
                  "require_api_token", "latency", "error_rate", "write_fault_count", "time_scale", "link_ttl")
        for name in direct:
            if (value := getattr(self, name)) is not None:
                values[name] = value
        if self.anchor is not None:
            values["anchor"] = parse_iso(self.anchor)
        for name in ("rate_limit", "api_rate_limit"):
            if (text := getattr(self, name)) is not None:
                values[name] = RateLimit.parse(text)
        if self.methods is not None:
            values["methods"] = _split(self.methods)
        if self.tags is not None:
            values["tags"] = _split(self.tags)
        if self.tool_exposure is not None:
            values["tool_exposure"] = _choice("tool exposure", self.tool_exposure, ("all", "discovery"))
        if self.recording_shape is not None:
            shapes = ("json", "resource_link", "embedded")
            values["recording_shape"] = _choice("recording shape", self.recording_shape, shapes)
        if self.write_fault is not None:
            values["write_fault"] = _choice("write fault", self.write_fault, ("502", "timeout"))
        if self.expire_first:
            values["expire_first"] = True
        if self.drop_sse:
            values["drop_sse"] = True
        if self.hostile:
            values["hostile"] = True
        _in_range("--port", self.port, ge=0, le=65535)
        for name, bounds in _RANGES.items():
            if name in values:
                _in_range("--" + name.replace("_", "-"), values[name], **bounds)
        return SandboxConfig(**values)

    def to_fleet_config(self) -> FleetConfig | None:
        """With ``--accounts N``: the fleet of N accounts, each configured by ``to_config()``; else None."""
        if self.accounts is None:
            return None
        if self.accounts < 1:
            raise ValueError("--accounts must be at least 1")
        fleet = FleetConfig(accounts=self.accounts, base=self.to_config())
        return replace(fleet, api_token=self.api_token) if self.api_token else fleet


# What each numeric flag accepts (nan and inf never): a negative latency or a zero time scale would
# only break the simulation later, and a huge dataset would exhaust memory while it is generated.
_RANGES: dict[str, dict[str, float]] = {
    "calls": {"ge": 0, "le": 1_000_000},
    "page_cap": {"ge": 1, "le": 10_000},
    "session_requests": {"ge": 1},
    "expires_in": {"gt": 0},
    "latency": {"ge": 0, "le": 600},
    "error_rate": {"ge": 0, "le": 1},
    "write_fault_count": {"ge": 0},
    "time_scale": {"gt": 0, "le": 1_000_000},
    "link_ttl": {"gt": 0},
}


def _in_range(flag: str, value: Any, *, ge: float | None = None, gt: float | None = None,
              le: float | None = None) -> None:
    """``ValueError`` naming ``flag`` unless ``value`` is a finite number within the bounds."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{flag} {value!r} is not a finite number")
    if ge is not None and value < ge:
        raise ValueError(f"{flag} {value!r} must be at least {ge:g}")
    if gt is not None and value <= gt:
        raise ValueError(f"{flag} {value!r} must be above {gt:g}")
    if le is not None and value > le:
        raise ValueError(f"{flag} {value!r} must be at most {le:g}")


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")
    return value


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The dataset / Truto / fault flags shared by ``serve`` and ``stdio`` (argparse)."""
    add = parser.add_argument
    add("--calls", type=int, help="number of generated calls (default 2000)")
    add("--seed", type=int, help="dataset seed (default 7)")
    add("--anchor", help="ISO timestamp the newest call is just before (default: now)")
    add("--api-key", help=f"REST Bearer key (default {DEFAULT_API_KEY!r})")
    add("--token", help="MCP URL token (default: random)")
    add("--page-cap", type=int, help="max items per list page (default 100)")
    add("--rate-limit", help="MCP rate limit N/SECONDS, e.g. 10/2")
    add("--api-rate-limit", help="REST rate limit N/SECONDS")
    add("--methods", help="comma list: read, write, custom or exact method names")
    add("--tags", help="comma list of tool tags to keep")
    add("--tool-exposure", choices=("all", "discovery"))
    add("--expires-in", type=float, help="seconds until the MCP token stops working")
    add("--session-requests", type=int, metavar="N",
        help="issue MCP sessions and end each after N requests (404, as the MCP spec says)")
    add("--require-api-token", metavar="T", help="MCP requests must carry Authorization: Bearer T")
    add("--recording-shape", choices=("json", "resource_link", "embedded"))
    add("--latency", type=float, help="seconds added to every REST request")
    add("--error-rate", type=float, help="share of REST requests answered 5xx (0..1)")
    add("--write-fault", choices=("502", "timeout"))
    add("--write-fault-count", type=int, help="how many writes get the fault (0 = all)")
    add("--expire-first", action="store_true", help="the first recording link is born expired")
    add("--drop-sse", action="store_true", help="SSE chat streams stop early")
    add("--hostile", action="store_true", help="plant hostile data: a ../ call id, control codes in a name")
    add("--time-scale", type=float, help="campaign clock speed-up")
    add("--link-ttl", type=float, help="seconds a recording link lives")
    add("--accounts", type=int, help="serve a Truto environment with N Vapi accounts and the admin API")
    add("--api-token", help="the Truto API token of --accounts (default: random, printed)")


def options_from_namespace(ns: argparse.Namespace) -> ServeOptions:
    """``ServeOptions`` from parsed argparse flags (absent flags keep the defaults)."""
    known = {f.name for f in fields(ServeOptions)} - {"extra"}
    return ServeOptions(**{k: v for k, v in vars(ns).items() if k in known and v is not None})


# ---------------------------------------------------------------- foreground server
def banner(sandbox: Sandbox, *, custom_key: bool) -> list[str]:
    """What ``serve`` prints: the MCP URL (the one place the token is shown) and the REST base URL."""
    key_note = (
        "the key you passed with --api-key"
        if custom_key
        else f"{DEFAULT_API_KEY!r} (not a secret: it only opens this local simulator)"
    )
    lines = [
        f"Vapi sandbox: {sandbox.config.calls} calls, seed {sandbox.config.seed}",
        f"  MCP (Truto-style, Streamable HTTP): {sandbox.mcp_url}",
        "    keep this URL private: the token in it is the credential",
        f"  REST API (Vapi paths):               {sandbox.public_url}",
        f"    Authorization: Bearer {key_note}",
    ]
    if sandbox.config.require_api_token:
        lines.append("  MCP requests also need Authorization: Bearer <the --require-api-token value>")
    if sandbox.config.session_requests:
        lines.append(f"  MCP sessions end after {sandbox.config.session_requests} requests each (then 404)")
    lines.append("Press Ctrl-C to stop.")
    return lines


def fleet_banner(fleet: SandboxFleet) -> list[str]:
    """What ``serve --accounts N`` prints: the Truto API base URL and its token (the one place it is shown)."""
    reauth = sum(a.status == "needs_reauth" for a in fleet.accounts)
    sandboxed = sum(a.is_sandbox for a in fleet.accounts)
    return [
        f"Truto sandbox: {len(fleet.accounts)} Vapi accounts ({reauth} needs_reauth, {sandboxed} in sandbox mode), "
        f"{fleet.config.base.calls} calls each",
        f"  Truto API (admin):  {fleet.api_url}",
        f"  TRUTO_API_TOKEN={fleet.config.api_token}",
        "    keep it private: it lists the accounts and mints their MCP servers",
        f"  try: TRUTO_API_TOKEN=... vapi-agent fleet accounts --truto-api {fleet.api_url}",
        "Press Ctrl-C to stop.",
    ]


def _stderr_log_config() -> dict[str, Any]:
    """uvicorn's logging config with the access log on stderr too: stdout carries only the banner."""
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return log_config


def serve(
    config: SandboxConfig | FleetConfig,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    out: Callable[[str], None] | None = None,
    access_log: bool = True,
) -> int:
    """Serve in the foreground until Ctrl-C / SIGTERM; returns the exit code (0 on a clean stop).

    ``config``: one sandbox, or a fleet of accounts behind Truto's admin API. The banner goes to
    ``out`` (default: stdout); uvicorn's logs, the redacted access log included, go to stderr.
    """
    emit = out or (lambda line: print(line, flush=True))
    try:
        sock = _bind(host, port)
    except (OSError, OverflowError) as exc:  # in use, not ours, an unknown host name
        reason = getattr(exc, "strerror", None) or str(exc)
        print(f"error: cannot listen on {host}:{port}: {reason} (pick another --port, or 0 for a free one)",
              file=sys.stderr, flush=True)
        return 2
    sandbox: Sandbox | SandboxFleet = SandboxFleet(config) if isinstance(config, FleetConfig) else Sandbox(config)
    sandbox.public_url = _origin(host, sock.getsockname()[1])
    uv_config = uvicorn.Config(
        sandbox.app,
        log_level="info",
        access_log=access_log,
        log_config=_stderr_log_config(),
        lifespan="auto",
        timeout_graceful_shutdown=3,
    )
    # after uvicorn.Config: it (re)configures its loggers when created
    redactor = install_redactor(config.token)
    server = uvicorn.Server(uv_config)
    if isinstance(sandbox, SandboxFleet):
        lines = fleet_banner(sandbox)
    else:
        lines = banner(sandbox, custom_key=sandbox.config.api_key != DEFAULT_API_KEY)
    for line in lines:
        emit(line)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    except KeyboardInterrupt:
        # uvicorn re-raises the captured SIGINT after its graceful shutdown: that is a clean stop
        pass
    finally:
        logging.getLogger("uvicorn.access").removeFilter(redactor)
        sock.close()
    emit("Sandbox stopped.")
    return 0
