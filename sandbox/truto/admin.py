"""Truto's admin API for a sandbox fleet: integrated accounts and the MCP servers minted for them.

Paths, envelopes and rules follow Truto's admin API (docs/truto-admin-api.md in this project):

- ``GET /integrated-account`` lists the accounts, ``{results, next_cursor}``, filtered by
  ``integration.name``, ``status``, ``tenant_id``, ``is_sandbox``; ``limit`` and ``next_cursor`` page;
  ``GET /integrated-account/{id}`` is one account;
- ``POST /integrated-account/{id}/mcp`` mints a server: ``name`` (required), ``config.methods``
  (``read``/``write``/``custom`` or exact method names), ``config.tags``, ``config.tool_exposure``,
  ``config.require_api_token_auth``, ``expires_at`` (ISO, at least 60 s ahead, or null). Methods and
  tags that leave no tool are refused (400, Truto's "AI-ready" check). The answer (201) is the only
  one that carries ``token`` and ``url``;
- ``GET /integrated-account/{id}/mcp`` (``{results, next_cursor}``), ``GET`` and ``DELETE
  .../mcp/{mcp_id}``.

Every admin request needs ``Authorization: Bearer <Truto API token>`` (401 otherwise). A minted
server lives at ``/mcp/<token>``: its ``tools/list`` shows only what its methods and tags allow, it
needs the API token as a second factor when ``require_api_token_auth`` is on, and it is gone (404)
once ``expires_at`` has passed. Through any server of a ``needs_reauth`` account every tool call fails
as the provider refuses the stale credentials (a remote 401); a sandbox-mode account (``is_sandbox``)
refuses every write (403). Every server minted for one account counts against that account's rate
limit. Admin requests are logged (transport ``admin``) with the account and server ids; MCP
requests carry the server id in the log entry's ``extra``.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import mcp.types as types

from sandbox.core.requestlog import LogEntry, RequestLog
from sandbox.truto.catalogue import METHOD_GROUPS, TRUTO_METHODS, ToolSpec, build_catalogue, select_tools
from sandbox.truto.gate import FixedWindowLimiter, TrutoGate, envelope, send_json
from sandbox.truto.proxy import text_result
from sandbox.truto.server import TrutoMCP
from sandbox.world.ids import iso_ms, parse_iso

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from sandbox.core import SandboxCore

MIN_LIFETIME = 60.0  # Truto: expires_at must lie at least 60 s in the future
DEFAULT_PAGE = 10
MAX_PAGE = 100
ACCOUNT_STATUSES = ("active", "connecting", "post_install_error", "validation_error", "needs_reauth")
_WRITE_METHODS = METHOD_GROUPS["write"]


@dataclass
class IntegratedAccount:
    """One customer's connected Vapi account, as Truto's admin API describes it."""

    id: str
    tenant_id: str
    status: str = "active"
    is_sandbox: bool = False
    created_at: str = ""
    region: str = "wnam"
    environment_integration_id: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON item of ``GET /integrated-account``."""
        return {
            "id": self.id, "tenant_id": self.tenant_id, "environment_integration_id": self.environment_integration_id,
            "integration": {"name": "vapi"}, "context": dict(self.context), "status": self.status,
            "last_error": self.last_error, "is_sandbox": self.is_sandbox, "region": self.region,
            "authentication_method": "api_key", "created_at": self.created_at, "updated_at": self.created_at,
        }


@dataclass
class MintedServer:
    """One MCP server minted for an account (``token`` is the secret; it is shown once, at creation)."""

    id: str
    name: str
    account_id: str
    methods: tuple[str, ...]
    tags: tuple[str, ...]
    tool_exposure: str
    require_api_token_auth: bool
    expires_at: float | None
    created_at: float
    token: str
    app: ASGIApp | None = None
    face: TrutoMCP | None = None

    def to_dict(self, *, with_secret: bool = False, public_url: str = "") -> dict[str, Any]:
        """The JSON of one server (``token``/``url`` only in the answer to the create call)."""
        config: dict[str, Any] = {"methods": list(self.methods), "tags": list(self.tags),
                                  "tool_exposure": self.tool_exposure,
                                  "require_api_token_auth": self.require_api_token_auth}
        data: dict[str, Any] = {
            "id": self.id, "name": self.name, "config": config, "integrated_account_id": self.account_id,
            "created_by": "api_token", "expires_at": None if self.expires_at is None else iso_ms(self.expires_at),
            "created_at": iso_ms(self.created_at), "updated_at": iso_ms(self.created_at),
        }
        if with_secret:
            data["token"] = self.token
            data["url"] = f"{public_url}/mcp/{self.token}"
        return data


class AdminError(Exception):
    """An admin request refused with Truto's error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _MintedView:
    """What a minted server's MCP face sees of its account: the account's sandbox with this server's config."""

    def __init__(self, core: SandboxCore, server: MintedServer, api_token: str) -> None:
        self._core = core
        self.base_sandbox = core  # recording links are the account's (sandbox.rest.recordings.vault_for)
        self.config = replace(
            core.config, token=server.token, methods=server.methods, tags=server.tags,
            tool_exposure=server.tool_exposure, expires_in=None,
            require_api_token=api_token if server.require_api_token_auth else None,
        )
        self.anchor = core.anchor
        self.clock = core.clock
        self.log = core.log
        self.workspace = core.workspace
        self.rest_app = core.rest_app

    @property
    def public_url(self) -> str:
        """The account's origin (links built by the REST app point there)."""
        return self._core.public_url

    @public_url.setter
    def public_url(self, value: str) -> None:
        self._core.public_url = value


class _AccountGuard:
    """The account's state in front of the proxy: stale credentials fail, sandbox-mode accounts refuse writes."""

    def __init__(self, proxy: Any, account: IntegratedAccount) -> None:
        self._proxy = proxy
        self._account = account

    async def call(self, spec: ToolSpec, arguments: dict[str, Any] | None) -> types.CallToolResult:
        """Refuse, or run the tool call as the account's proxy would."""
        if self._account.status == "needs_reauth":
            body = envelope(401, "Unauthorized: the account's credentials are no longer valid; reconnect it.",
                            remote=True, raw={"statusCode": 401, "message": "Invalid Key. Hot tip, you may be "
                                              "using the private key instead of the public key, or vice versa."})
            return text_result(body, is_error=True)
        if self._account.is_sandbox and spec.method in _WRITE_METHODS:
            message = "Sandbox integrated accounts do not allow write operations."
            return text_result(envelope(403, message), is_error=True)
        result: types.CallToolResult = await self._proxy.call(spec, arguments)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._proxy, name)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded))["o"]
    except (ValueError, KeyError, TypeError):
        raise AdminError(400, "next_cursor is not a cursor this API returned.") from None
    if not isinstance(offset, int) or offset < 0:
        raise AdminError(400, "next_cursor is not a cursor this API returned.")
    return offset


class TrutoAdmin:
    """The admin API (an ASGI app) and the registry of minted servers (see the module docstring).

    ``core_for(account_id)`` builds or returns the account's sandbox; ``limiter_for(account_id)``
    the account's rate limiter (None: unlimited); ``public_url()`` the origin clients use; ``now``
    is real epoch seconds (tests move it to prove expiry).
    """

    def __init__(self, accounts: Sequence[IntegratedAccount], *, api_token: str,
                 core_for: Callable[[str], SandboxCore], limiter_for: Callable[[str], FixedWindowLimiter | None],
                 public_url: Callable[[], str], log: RequestLog, now: Callable[[], float] = time.time) -> None:
        self.accounts = {a.id: a for a in accounts}
        self._order = [a.id for a in accounts]
        self.api_token = api_token
        self._core_for = core_for
        self._limiter_for = limiter_for
        self._public_url = public_url
        self.log = log
        self.now = now
        self._servers: dict[str, MintedServer] = {}  # by token
        self.history: list[MintedServer] = []  # every server ever minted (tests check how)
        self._lock = threading.Lock()
        self._catalogue = build_catalogue()
        self._known_methods = set(TRUTO_METHODS) | set(METHOD_GROUPS) | {s.method for s in self._catalogue}

    # ------------------------------------------------------------ minted servers
    def server_app(self, token: str) -> ASGIApp | None:
        """The gated MCP app behind ``/mcp/<token>``; None when unknown, deleted or expired."""
        with self._lock:
            self._purge_expired()
            for known, server in self._servers.items():
                if hmac.compare_digest(known.encode(), token.encode()):
                    return server.app
        return None

    def servers(self, account_id: str | None = None) -> list[MintedServer]:
        """The live servers (of one account), oldest first."""
        with self._lock:
            self._purge_expired()
            found = [s for s in self._servers.values() if account_id is None or s.account_id == account_id]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    def _purge_expired(self) -> None:
        now = self.now()
        for token in [t for t, s in self._servers.items() if s.expires_at is not None and s.expires_at <= now]:
            del self._servers[token]  # Truto deletes expired servers

    def mint(self, account_id: str, body: Any) -> MintedServer:
        """Validate a create request and mint the server (``AdminError`` 400/404 otherwise)."""
        account = self._account(account_id)
        if not isinstance(body, dict):
            raise AdminError(400, "The request body must be a JSON object.")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise AdminError(400, "name is required.")
        config = body.get("config", {})
        if not isinstance(config, dict):
            raise AdminError(400, "config must be an object.")
        methods = _strings(config.get("methods", ["read", "write", "custom"]), "config.methods")
        unknown = [m for m in methods if m not in self._known_methods]
        if unknown:
            raise AdminError(400, f"config.methods has unknown method(s): {', '.join(unknown)}.")
        tags = _strings(config.get("tags", []), "config.tags")
        exposure = config.get("tool_exposure", "all")
        if exposure not in ("all", "discovery"):
            raise AdminError(400, "config.tool_exposure must be 'all' or 'discovery'.")
        second_factor = config.get("require_api_token_auth", False)
        if not isinstance(second_factor, bool):
            raise AdminError(400, "config.require_api_token_auth must be a boolean.")
        if not select_tools(self._catalogue, methods, tags):
            raise AdminError(400, "No tools match config.methods and config.tags: the MCP server would not be "
                                  "AI-ready.")
        now = self.now()
        expires_at = _expiry(body.get("expires_at"), now)
        server = MintedServer(
            id=str(uuid.uuid4()), name=name, account_id=account.id, methods=tuple(methods), tags=tuple(tags),
            tool_exposure=exposure, require_api_token_auth=second_factor, expires_at=expires_at, created_at=now,
            token=secrets.token_urlsafe(24),
        )
        core = self._core_for(account.id)
        view = _MintedView(core, server, self.api_token)
        face = TrutoMCP(view)
        face.proxy = _AccountGuard(face.proxy, account)  # type: ignore[assignment]
        server.face = face
        server.app = TrutoGate(face.asgi_app(), view, started_at=now, limiter=self._limiter_for(account.id),
                               log_extra={"account": account.id, "mcp_server": server.id})
        with self._lock:
            self._servers[server.token] = server
            self.history.append(server)
        return server

    def delete(self, account_id: str, server_id: str) -> MintedServer:
        """Delete one server of the account (404 when it does not exist, or no longer)."""
        self._account(account_id)
        with self._lock:
            self._purge_expired()
            for token, server in self._servers.items():
                if server.id == server_id and server.account_id == account_id:
                    del self._servers[token]
                    return server
        raise AdminError(404, f"MCP server {server_id} not found.")

    def _account(self, account_id: str) -> IntegratedAccount:
        account = self.accounts.get(account_id)
        if account is None:
            raise AdminError(404, f"Integrated account {account_id} not found.")
        return account

    # ------------------------------------------------------------ listing
    def list_accounts(self, query: dict[str, str]) -> dict[str, Any]:
        """``GET /integrated-account``: filtered, paged by ``limit`` and ``next_cursor``."""
        items = [self.accounts[i] for i in self._order]
        if (integration := query.get("integration.name")) is not None:
            items = items if integration == "vapi" else []
        if (status := query.get("status")) is not None:
            if status not in ACCOUNT_STATUSES:
                raise AdminError(400, f"status must be one of {', '.join(ACCOUNT_STATUSES)}.")
            items = [a for a in items if a.status == status]
        if (tenant := query.get("tenant_id")) is not None:
            items = [a for a in items if a.tenant_id == tenant]
        if (sandbox := query.get("is_sandbox")) is not None:
            if sandbox not in ("true", "false"):
                raise AdminError(400, "is_sandbox must be true or false.")
            items = [a for a in items if a.is_sandbox == (sandbox == "true")]
        return _page([a.to_dict() for a in items], query)

    # ------------------------------------------------------------ HTTP
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one admin request (``/integrated-account...``), logging it."""
        started = time.time()
        status = 500
        extra: dict[str, Any] = {}
        try:
            status, payload = await self._dispatch(scope, receive, extra)
        except AdminError as exc:
            status, payload = exc.status, envelope(exc.status, exc.message)
        await send_json(send, status, payload)
        self.log.add(LogEntry(started, time.time(), "admin", scope["method"], scope.get("path", ""), status,
                              extra=extra))

    def _authorised(self, scope: Scope) -> bool:
        supplied = ""
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                supplied = value.decode("latin-1")
        scheme, _, token = supplied.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_token.encode())

    async def _dispatch(self, scope: Scope, receive: Receive, extra: dict[str, Any]) -> tuple[int, Any]:
        if not self._authorised(scope):
            raise AdminError(401, "Unauthorized: send Authorization: Bearer <your Truto API token>.")
        method = scope["method"]
        parts = [p for p in scope.get("path", "").split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        if parts == ["integrated-account"] and method == "GET":
            return 200, self.list_accounts(query)
        if len(parts) >= 2 and parts[0] == "integrated-account":
            account_id = parts[1]
            extra["account"] = account_id
            if len(parts) == 2 and method == "GET":
                return 200, self._account(account_id).to_dict()
            if len(parts) == 3 and parts[2] == "mcp":
                if method == "POST":
                    body = await _json_body(receive)
                    server = self.mint(account_id, body)
                    extra["mcp_server"] = server.id
                    return 201, server.to_dict(with_secret=True, public_url=self._public_url())
                if method == "GET":
                    self._account(account_id)
                    return 200, _page([s.to_dict() for s in self.servers(account_id)], query)
            if len(parts) == 4 and parts[2] == "mcp":
                extra["mcp_server"] = parts[3]
                if method == "DELETE":
                    deleted = self.delete(account_id, parts[3])
                    if deleted.face is not None:
                        await deleted.face.aclose()  # its session manager on this event loop
                    return 200, deleted.to_dict()
                if method == "GET":
                    for server in self.servers(account_id):
                        if server.id == parts[3]:
                            return 200, server.to_dict()
                    raise AdminError(404, f"MCP server {parts[3]} not found.")
        raise AdminError(404, f"Cannot {method} {scope.get('path', '')}")


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise AdminError(400, f"{where} must be a list of strings.")
    return list(value)


def _expiry(value: Any, now: float) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise AdminError(400, "expires_at must be an ISO 8601 date-time or null.")
    try:
        when = parse_iso(value)
    except ValueError:
        raise AdminError(400, "expires_at must be an ISO 8601 date-time or null.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when < datetime.fromtimestamp(now, tz=UTC) + timedelta(seconds=MIN_LIFETIME):
        raise AdminError(400, "expires_at must be at least 60 seconds in the future.")
    return when.timestamp()


def _page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    try:
        limit = int(query.get("limit", DEFAULT_PAGE))
    except ValueError:
        raise AdminError(400, "limit must be an integer.") from None
    if not 1 <= limit <= MAX_PAGE:
        raise AdminError(400, f"limit must be between 1 and {MAX_PAGE}.")
    offset = _decode_cursor(query["next_cursor"]) if query.get("next_cursor") else 0
    page = items[offset: offset + limit]
    more = offset + limit < len(items)
    return {"results": page, "next_cursor": _encode_cursor(offset + limit) if more else None}


async def _json_body(receive: Receive) -> Any:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    try:
        return json.loads(b"".join(chunks) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise AdminError(400, "The request body is not valid JSON.") from None
