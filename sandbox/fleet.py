"""Composition of a sandbox fleet: a Truto environment with N connected Vapi accounts on one origin.

Each account is a whole ``sandbox.app.Sandbox`` (its own seeded workspace: seed + index, so the
assistants are named alike in every account but their ids and calls differ) with its own rate limit,
built on first use. In front of them, ``sandbox.truto.admin.TrutoAdmin`` serves Truto's admin API and
mints the per-account MCP servers. Routes of ``SandboxFleet.app``:

- ``/integrated-account...``     the admin API (Bearer Truto API token)
- ``/mcp/<token>``                a minted MCP server (404 when unknown, deleted or expired)
- ``/a/<account id>/...``         that account's own origin: its Vapi REST API, recording links, storage
- ``/_sandbox/log``               every request of the fleet, tagged with its account (Bearer API token)

Account 1 is in sandbox mode (``is_sandbox``: no writes); every account whose index is 3 modulo 20
``needs_reauth``; the rest are ``active``. Tenants are named after made-up customers.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sandbox.app import Sandbox
from sandbox.core import IN_PROCESS_ORIGIN
from sandbox.core.requestlog import LogEntry, RequestLog
from sandbox.truto.admin import IntegratedAccount, TrutoAdmin
from sandbox.truto.gate import REDACTED_MCP_PATH, FixedWindowLimiter, envelope, send_json
from sandbox.world.clock import SandboxClock
from sandbox.world.config import SandboxConfig
from sandbox.world.ids import iso_ms, stable_uuid

TENANTS = ("acme-dental", "globex-clinics", "initech-insurance", "umbrella-health", "hooli-support",
           "stark-realty", "wayne-logistics", "wonka-foods", "tyrell-energy", "cyberdyne-telecom")
SANDBOX_MODE_INDEX = 1
ACCOUNT_PREFIX = "/a/"


def needs_reauth(index: int) -> bool:
    """The accounts whose credentials went stale: every index that is 3 modulo 20."""
    return index % 20 == 3


def tenant_of(index: int) -> str:
    """The made-up customer of account ``index`` (numbered once the names run out)."""
    name = TENANTS[index % len(TENANTS)]
    return name if index < len(TENANTS) else f"{name}-{index // len(TENANTS) + 1}"


@dataclass(frozen=True)
class FleetConfig:
    """How many accounts, what each one's sandbox looks like (``base``: seed, calls, rate limit...),
    and the Truto API token that opens the admin API (random unless given)."""

    accounts: int = 5
    base: SandboxConfig = field(default_factory=SandboxConfig)
    api_token: str = field(default_factory=lambda: "truto-" + secrets.token_urlsafe(18))
    anchor: datetime | None = None

    @property
    def token(self) -> str:
        """The secret to redact from access logs (the admin API token)."""
        return self.api_token


class SandboxFleet:
    """N simulated Vapi accounts behind a simulated Truto (see the module docstring)."""

    def __init__(self, config: FleetConfig | None = None, *, clock: SandboxClock | None = None) -> None:
        self.config = config or FleetConfig()
        if self.config.accounts < 1:
            raise ValueError("a sandbox fleet needs at least one account")
        base = self.config.base
        self.anchor = self.config.anchor or base.anchor or datetime.now(tz=UTC)
        self.clock = clock or SandboxClock(base.time_scale)
        self.log = RequestLog()
        self._public_url = IN_PROCESS_ORIGIN
        created = iso_ms(self.anchor.timestamp() - 90 * 86_400)
        self.accounts = [
            IntegratedAccount(
                id=stable_uuid(base.seed, "integrated-account", i), tenant_id=tenant_of(i),
                status="needs_reauth" if needs_reauth(i) else "active", is_sandbox=i == SANDBOX_MODE_INDEX,
                created_at=created, environment_integration_id=stable_uuid(base.seed, "environment-integration", 0),
                context={"account_name": f"{tenant_of(i)} (Vapi)"},
                last_error="Invalid Key" if needs_reauth(i) else None,
            )
            for i in range(self.config.accounts)
        ]
        self._index = {a.id: i for i, a in enumerate(self.accounts)}
        self._sandboxes: dict[str, Sandbox] = {}
        self._limiters: dict[str, FixedWindowLimiter] = {}
        self._lock = threading.Lock()
        self.admin = TrutoAdmin(self.accounts, api_token=self.config.api_token, core_for=self.sandbox_of,
                                limiter_for=self.limiter_of, public_url=lambda: self.public_url, log=self.log)
        self.app = FleetApp(self)

    # ------------------------------------------------------------ origins
    @property
    def public_url(self) -> str:
        """The origin clients use (``IN_PROCESS_ORIGIN`` until served)."""
        return self._public_url

    @public_url.setter
    def public_url(self, value: str) -> None:
        self._public_url = value.rstrip("/")
        with self._lock:
            for account_id, sandbox in self._sandboxes.items():
                sandbox.public_url = self.account_url(account_id)

    @property
    def api_url(self) -> str:
        """The Truto API base URL (admin API) of this fleet."""
        return self.public_url

    def account_url(self, account_id: str) -> str:
        """The origin of one account's Vapi REST API (and its recording links)."""
        return f"{self._public_url}{ACCOUNT_PREFIX}{account_id}"

    # ------------------------------------------------------------ accounts
    def account_config(self, index: int) -> SandboxConfig:
        """The sandbox configuration of account ``index`` (its own seed: alike names, different data)."""
        base = self.config.base
        return replace(base, seed=base.seed + index, anchor=self.anchor, rate_limit=None)

    def sandbox_of(self, account_id: str) -> Sandbox:
        """The account's sandbox, built on first use (a fleet of 200 builds only what is used)."""
        with self._lock:
            sandbox = self._sandboxes.get(account_id)
            if sandbox is None:
                index = self._index[account_id]
                sandbox = Sandbox(self.account_config(index), clock=self.clock)
                sandbox.public_url = self.account_url(account_id)
                # The account's REST API answers under its prefix, for the fleet's router and for the
                # Truto proxy alike (which calls it on the account's public origin).
                sandbox.rest_app = _Prefixed(sandbox.rest_app, ACCOUNT_PREFIX + account_id)
                self._sandboxes[account_id] = sandbox
            return sandbox

    def limiter_of(self, account_id: str) -> FixedWindowLimiter | None:
        """The account's MCP rate limiter, shared by every server minted for it (None: unlimited)."""
        rate = self.config.base.rate_limit
        if rate is None:
            return None
        with self._lock:
            return self._limiters.setdefault(account_id, FixedWindowLimiter(rate))

    def account(self, ref: str) -> IntegratedAccount:
        """An account by id or tenant id."""
        for account in self.accounts:
            if ref in (account.id, account.tenant_id):
                return account
        raise KeyError(ref)

    # ------------------------------------------------------------ log
    def log_entries(self) -> list[dict[str, Any]]:
        """Every request of the fleet (admin, MCP, REST per account), oldest first, tagged with ``account``."""
        entries = [{**e.to_dict(), "account": e.extra.get("account")} for e in self.log.entries()]
        with self._lock:
            built = list(self._sandboxes.items())
        for account_id, sandbox in built:
            entries.extend({**e.to_dict(), "account": account_id} for e in sandbox.log.entries())
        return sorted(entries, key=lambda e: (e["t_start"], e["t_end"]))


class FleetApp:
    """The fleet's single origin (routes in the module docstring)."""

    def __init__(self, fleet: SandboxFleet) -> None:
        self.fleet = fleet

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Route one ASGI event."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope.get("path", "")
        if path == "/integrated-account" or path.startswith("/integrated-account/"):
            await self.fleet.admin(scope, receive, send)
        elif path.startswith("/mcp/"):
            await self._mcp(scope, receive, send, path[len("/mcp/"):].strip("/"))
        elif path.startswith(ACCOUNT_PREFIX):
            await self._account(scope, receive, send, path)
        elif path.rstrip("/") == "/_sandbox/log" and scope["method"] == "GET":
            await self._log(scope, send)
        else:
            await send_json(send, 404, envelope(404, f"Cannot {scope['method']} {path}"))

    async def _mcp(self, scope: Any, receive: Any, send: Any, token: str) -> None:
        app = self.fleet.admin.server_app(token) if token else None
        if app is None:
            started = time.time()
            await send_json(send, 404, envelope(404, "MCP server not found or expired."))
            self.fleet.log.add(LogEntry(started, time.time(), "mcp", scope["method"], REDACTED_MCP_PATH, 404))
            return
        await app(scope, receive, send)

    async def _account(self, scope: Any, receive: Any, send: Any, path: str) -> None:
        account_id = path[len(ACCOUNT_PREFIX):].partition("/")[0]
        if account_id not in self.fleet._index:
            await send_json(send, 404, envelope(404, "No such account."))
            return
        await self.fleet.sandbox_of(account_id).rest_app(scope, receive, send)

    async def _log(self, scope: Any, send: Any) -> None:
        supplied = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = supplied.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                                 self.fleet.config.api_token.encode()):
            await send_json(send, 401, envelope(401, "Unauthorized: send Authorization: Bearer <Truto API token>."))
            return
        body = json.dumps(self.fleet.log_entries()).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _Prefixed:
    """An ASGI app mounted under ``prefix``: the prefix leaves the path before the app sees it."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Strip the prefix (when present) and call the app."""
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (path == self.prefix or path.startswith(self.prefix + "/")):
            rest = path[len(self.prefix):] or "/"
            scope = {**scope, "path": rest, "raw_path": rest.encode(),
                     "root_path": scope.get("root_path", "") + self.prefix}
        await self.app(scope, receive, send)


async def _lifespan(receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
