"""A client of Truto's admin API: list the Vapi accounts, mint and delete per-job MCP servers.

Facts relied on: docs/truto-admin-api.md. Every request carries ``Authorization: Bearer
<TRUTO_API_TOKEN>``; lists are ``{results, next_cursor}`` pages; the minted server's ``token`` and
``url`` come back once, from the create call, and stay in memory (``MintedServer``'s ``repr`` hides
them). A 429 is waited out as announced (``Retry-After`` / ``ratelimit-reset``) a few times; other
failures are ``UpstreamError`` (401/403: the token is refused).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.errors import ConfigError, UpstreamError
from agent.fleet.accounts import Account
from agent.redact import redact, register_secret

DEFAULT_TRUTO_API = "https://api.truto.one"
NAME_PREFIX = "vapi-agent "  # every server we mint is named "vapi-agent <run> <workflow> <account>"
MIN_LIFETIME = 60.0  # Truto refuses expires_at less than 60 s ahead
_429_ATTEMPTS = 5


@dataclass(frozen=True)
class MintedServer:
    """A minted MCP server: ``url`` holds the secret token (never stored, never printed)."""

    id: str
    account_id: str
    name: str
    url: str = field(repr=False)
    expires_at: str | None = None


@dataclass(frozen=True)
class ServerInfo:
    """A listed server (no token): enough to recognise ours and delete it."""

    id: str
    account_id: str
    name: str
    expires_at: str | None
    created_at: str | None


def server_name(run_id: str, workflow: str, account: str) -> str:
    """The name that marks a server as ours (``fleet cleanup`` deletes by it)."""
    return f"{NAME_PREFIX}{run_id} {workflow} {account}"[:200]


class TrutoAdminClient:
    """The admin API at ``base_url`` with ``token``; ``transport`` replaces the network (the embedded sandbox)."""

    def __init__(self, base_url: str, token: str | None, *, transport: Any = None, timeout: float = 30.0) -> None:
        if not token:
            raise ConfigError("no Truto API token", hint="set TRUTO_API_TOKEN (Truto app > Settings > API tokens)")
        register_secret(token)
        import httpx2

        self.base_url = base_url.rstrip("/")
        from agent.tls import shared_ssl_context

        self._http = httpx2.AsyncClient(base_url=self.base_url, transport=transport, follow_redirects=False,
                                        verify=shared_ssl_context(),
                                        headers={"Authorization": f"Bearer {token}"},
                                        timeout=httpx2.Timeout(timeout))

    async def __aenter__(self) -> TrutoAdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    # ------------------------------------------------------------ requests
    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx2

        from agent.ratelimit.headers import parse_rate_limit

        for attempt in range(1, _429_ATTEMPTS + 1):
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx2.HTTPError as exc:
                raise UpstreamError(f"Truto admin API unreachable at {redact(self.base_url)}: {type(exc).__name__}",
                                    hint="check --truto-api and the network") from None
            if response.status_code == 429 and attempt < _429_ATTEMPTS:
                info = parse_rate_limit(response.headers, now=time.time())
                await asyncio.sleep(min(30.0, info.reset_after if info.reset_after is not None else 2.0 * attempt))
                continue
            return self._payload(method, path, response)
        raise AssertionError("unreachable")

    def _payload(self, method: str, path: str, response: Any) -> Any:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code < 400:
            return payload
        message = payload.get("message") if isinstance(payload, dict) else None
        detail = redact(str(message or response.text[:200] or "no details"))
        status = response.status_code
        if status in (401, 403):
            raise UpstreamError(f"Truto refused the API token ({status}): {detail}", status=status,
                                hint="check TRUTO_API_TOKEN")
        raise UpstreamError(f"Truto admin API {method} {path.split('?')[0]} failed ({status}): {detail}",
                            status=status)

    async def _pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            query = {**params, **({"next_cursor": cursor} if cursor else {})}
            page = await self._request("GET", path, params=query)
            items = None
            if isinstance(page, dict):
                items = page.get("results") if "results" in page else page.get("result")
            if not isinstance(items, list):
                raise UpstreamError(f"Truto admin API GET {path} answered something that is not a list page")
            for item in items:
                if isinstance(item, dict):
                    yield item
            cursor = page.get("next_cursor") or None
            if cursor is None:
                return

    # ------------------------------------------------------------ accounts
    async def list_accounts(self, *, status: str | None = None, tenant: str | None = None) -> list[Account]:
        """The Vapi accounts (``integration.name=vapi``), every page, optionally filtered."""
        params: dict[str, Any] = {"integration.name": "vapi"}
        if status:
            params["status"] = status
        if tenant:
            params["tenant_id"] = tenant
        raw = [item async for item in self._pages("/integrated-account", params)]
        tenants = [str(item.get("tenant_id") or "") for item in raw]
        accounts = []
        for item, tenant_id in zip(raw, tenants, strict=True):
            account_id = str(item.get("id") or "")
            if not account_id:
                continue
            # the tenant names the account; a tenant with several Vapi accounts gets the id's start added
            unique = bool(tenant_id) and tenants.count(tenant_id) == 1
            name = tenant_id if unique else f"{tenant_id or 'account'}-{account_id[:8]}"
            accounts.append(Account(name=name, source="truto", tenant=tenant_id or None, truto_account_id=account_id,
                                    status=str(item.get("status") or "active"),
                                    is_sandbox=bool(item.get("is_sandbox"))))
        return accounts

    # ------------------------------------------------------------ servers
    async def mint(self, account_id: str, name: str, *, methods: list[str], expires_at: datetime,
                   tags: list[str] | None = None, second_factor: bool = True) -> MintedServer:
        """Create a server for one account (least privilege: these methods, this expiry, the second factor)."""
        body: dict[str, Any] = {
            "name": name,
            "config": {"methods": methods, "require_api_token_auth": second_factor,
                       **({"tags": tags} if tags else {})},
            "expires_at": expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        data = await self._request("POST", f"/integrated-account/{account_id}/mcp", json=body)
        if not isinstance(data, dict) or not data.get("url") or not data.get("id"):
            raise UpstreamError("Truto admin API: the created MCP server has no id or url")
        url = str(data["url"])
        register_secret(str(data.get("token") or "") or None)
        register_secret(url.rstrip("/").rsplit("/", 1)[-1])
        return MintedServer(id=str(data["id"]), account_id=account_id, name=name, url=url,
                            expires_at=data.get("expires_at"))

    async def delete_server(self, account_id: str, server_id: str) -> bool:
        """Delete one server; False when it was already gone (404), so deleting is idempotent."""
        try:
            await self._request("DELETE", f"/integrated-account/{account_id}/mcp/{server_id}")
        except UpstreamError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def list_servers(self, account_id: str) -> list[ServerInfo]:
        """The account's servers (no tokens)."""
        return [ServerInfo(id=str(item.get("id")), account_id=account_id, name=str(item.get("name") or ""),
                           expires_at=item.get("expires_at"), created_at=item.get("created_at"))
                async for item in self._pages(f"/integrated-account/{account_id}/mcp", {})]
