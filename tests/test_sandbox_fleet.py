"""The sandbox fleet: N Vapi accounts behind a simulated Truto, its admin API and the servers it mints.

Everything goes through HTTP as a client would see it (in-process ASGI, and loopback for ``serve``):
listing accounts (paged, filtered), minting (validation, the token shown once), what a minted
server's ``tools/list`` shows, the second factor, expiry, deletion, per-account rate limits, the
account states (``needs_reauth``, sandbox mode) and the tagged request log.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import mcp
import pytest
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from sandbox.fleet import FleetConfig, SandboxFleet
from sandbox.world.config import RateLimit, SandboxConfig

TOKEN = "truto-sentinel-api-token-f1eet"


def build(accounts: int = 5, **base: Any) -> SandboxFleet:
    """A small in-process fleet (few calls per account)."""
    return SandboxFleet(FleetConfig(accounts=accounts, base=SandboxConfig(calls=60, **base), api_token=TOKEN))


@asynccontextmanager
async def admin(fleet: SandboxFleet, token: str = TOKEN) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client to the fleet's origin with the Truto API token."""
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fleet.app), base_url=fleet.public_url,
                                  headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def later(seconds: float) -> str:
    """An ISO ``expires_at`` this many seconds from now."""
    return (datetime.now(tz=UTC) + timedelta(seconds=seconds)).isoformat()


async def mint(client: httpx2.AsyncClient, account_id: str, **body: Any) -> dict[str, Any]:
    """POST a server and return the 201 body."""
    payload = {"name": "vapi-agent test", "config": {"methods": ["read"], "require_api_token_auth": True},
               "expires_at": later(600), **body}
    response = await client.post(f"/integrated-account/{account_id}/mcp", json=payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


@asynccontextmanager
async def mcp_session(fleet: SandboxFleet, url: str, token: str | None = TOKEN) -> AsyncIterator[mcp.Client]:
    """An mcp client to a minted server (in-process), with the second factor unless ``token`` is None."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fleet.app), headers=headers)
    async with http, mcp.Client(streamable_http_client(url, http_client=http)) as client:
        yield client


async def accounts_of(client: httpx2.AsyncClient, **query: Any) -> tuple[list[dict[str, Any]], int]:
    """Every account the list returns for ``query``, following ``next_cursor``; and the page count."""
    items: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        params = {**query, **({"next_cursor": cursor} if cursor else {})}
        response = await client.get("/integrated-account", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"results", "next_cursor"}
        items += body["results"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


# ---------------------------------------------------------------- accounts
async def test_accounts_list_pages_and_filters() -> None:
    fleet = build(accounts=23)
    async with admin(fleet) as client:
        everything, pages = await accounts_of(client, **{"integration.name": "vapi"})
        assert len(everything) == 23 and pages == 3  # ten a page by default
        assert len({a["id"] for a in everything}) == 23
        assert {a["integration"]["name"] for a in everything} == {"vapi"}
        stale = [a for a in everything if a["status"] == "needs_reauth"]
        assert [a["tenant_id"] for a in stale] == [everything[3]["tenant_id"]]  # one in twenty
        assert [a["is_sandbox"] for a in everything].count(True) == 1
        active, _ = await accounts_of(client, status="active", limit=100)
        assert len(active) == 22 and all(a["status"] == "active" for a in active)
        tenant = everything[5]["tenant_id"]
        assert [a["id"] for a in (await accounts_of(client, tenant_id=tenant))[0]] == [everything[5]["id"]]
        assert len((await accounts_of(client, is_sandbox="true"))[0]) == 1
        assert (await accounts_of(client, **{"integration.name": "hubspot"}))[0] == []
        bad = await client.get("/integrated-account", params={"status": "sleepy"})
        assert bad.status_code == 400 and bad.json()["statusCode"] == 400
        one = await client.get(f"/integrated-account/{everything[0]['id']}")
        assert one.status_code == 200 and one.json() == everything[0]
    async with admin(fleet, token="wrong") as client:
        refused = await client.get("/integrated-account")
        assert refused.status_code == 401
        assert set(refused.json()) == {"statusCode", "error", "message"}


async def test_accounts_are_separate_workspaces_with_assistants_named_alike() -> None:
    fleet = build(accounts=3)
    names, ids = [], []
    for account in fleet.accounts:
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fleet.app),
                                      headers={"Authorization": "Bearer sandbox-key"}) as http:
            response = await http.get(f"{fleet.account_url(account.id)}/assistant")
            assert response.status_code == 200
            names.append(sorted(a["name"] for a in response.json()))
            ids.append({a["id"] for a in response.json()})
    assert names[0] == names[1] == names[2] and "Support" in names[0]
    assert not ids[0] & ids[1] and not ids[1] & ids[2]


# ---------------------------------------------------------------- minting
async def test_mint_validates_like_truto() -> None:
    fleet = build(accounts=2)
    account = fleet.accounts[0].id
    async with admin(fleet) as client:
        cases = [
            ({"config": {"methods": ["read"]}}, 400, "name is required"),
            ({"name": "x", "config": {"methods": ["read"]}, "expires_at": later(30)}, 400, "at least 60 seconds"),
            ({"name": "x", "config": {"methods": ["read"]}, "expires_at": "soon"}, 400, "ISO 8601"),
            ({"name": "x", "config": {"methods": ["teleport"]}}, 400, "unknown method"),
            ({"name": "x", "config": {"methods": ["read"], "tags": ["no-such-tag"]}}, 400, "AI-ready"),
            ({"name": "x", "config": {"methods": "read"}}, 400, "list of strings"),
        ]
        for body, status, words in cases:
            response = await client.post(f"/integrated-account/{account}/mcp", json=body)
            assert response.status_code == status, body
            assert words in response.json()["message"], response.json()
        missing = await client.post("/integrated-account/nope/mcp", json={"name": "x", "config": {}})
        assert missing.status_code == 404
        created = await mint(client, account)
        fields = {"id", "name", "config", "integrated_account_id", "expires_at", "created_at", "token", "url"}
        assert fields <= set(created)
        assert created["url"] == f"{fleet.public_url}/mcp/{created['token']}"
        assert created["config"] == {"methods": ["read"], "tags": [], "tool_exposure": "all",
                                     "require_api_token_auth": True}
        listed = (await client.get(f"/integrated-account/{account}/mcp")).json()
        assert [s["id"] for s in listed["results"]] == [created["id"]] and listed["next_cursor"] is None
        assert "token" not in listed["results"][0] and "url" not in listed["results"][0]
        one = await client.get(f"/integrated-account/{account}/mcp/{created['id']}")
        assert one.status_code == 200 and "token" not in one.json()


async def test_minted_read_server_lists_no_write_and_refuses_one() -> None:
    fleet = build(accounts=2)
    account = fleet.accounts[0].id
    async with admin(fleet) as client:
        server = await mint(client, account)
        full = await mint(client, account, config={"methods": ["read", "write"]})
    async with mcp_session(fleet, server["url"]) as session:
        names = {t.name for t in (await session.list_tools()).tools}
        assert "list_all_vapi_calls" in names and "get_single_vapi_call_by_id" in names
        assert not {n for n in names if n.startswith(("create_", "update_", "delete_"))}
        with pytest.raises(MCPError, match="not found"):
            await session.call_tool("create_a_vapi_assistant", {"name": "Intruder"})
    async with mcp_session(fleet, full["url"]) as session:
        assert "create_a_vapi_assistant" in {t.name for t in (await session.list_tools()).tools}
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fleet.app),
                                  headers={"Authorization": "Bearer sandbox-key"}) as http:
        assistants = (await http.get(f"{fleet.account_url(account)}/assistant")).json()
    assert "Intruder" not in {a["name"] for a in assistants}


async def test_tags_narrow_the_minted_catalogue() -> None:
    fleet = build(accounts=1)
    async with admin(fleet) as client:
        server = await mint(client, fleet.accounts[0].id, config={"methods": ["read"], "tags": ["calls"]})
    async with mcp_session(fleet, server["url"]) as session:
        names = {t.name for t in (await session.list_tools()).tools}
    assert "list_all_vapi_calls" in names and "list_all_vapi_assistants" not in names


async def test_second_factor_expiry_and_deletion() -> None:
    fleet = build(accounts=1)
    account = fleet.accounts[0].id
    async with admin(fleet) as client:
        server = await mint(client, account)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fleet.app)) as bare:
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            headers = {"Accept": "application/json, text/event-stream"}
            refused = await bare.post(server["url"], json=body, headers=headers)
            assert refused.status_code == 401 and refused.json()["statusCode"] == 401
            wrong = await bare.post(server["url"], json=body, headers={**headers, "Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            allowed = await bare.post(server["url"], json=body, headers={**headers, "Authorization": f"Bearer {TOKEN}"})
            assert allowed.status_code == 200 and allowed.json()["result"]["tools"]
            # expiry: the server is gone once expires_at has passed (the admin's clock moved on)
            fleet.admin.now = lambda: time.time() + 601
            expired = await bare.post(server["url"], json=body, headers={**headers, "Authorization": f"Bearer {TOKEN}"})
            assert expired.status_code == 404
            assert (await client.get(f"/integrated-account/{account}/mcp")).json()["results"] == []
            fleet.admin.now = time.time
            second = await mint(client, account)
            deleted = await client.delete(f"/integrated-account/{account}/mcp/{second['id']}")
            assert deleted.status_code == 200 and deleted.json()["id"] == second["id"]
            gone = await bare.post(second["url"], json=body, headers={**headers, "Authorization": f"Bearer {TOKEN}"})
            assert gone.status_code == 404
            again = await client.delete(f"/integrated-account/{account}/mcp/{second['id']}")
            assert again.status_code == 404
    log = fleet.log_entries()
    admin_log = [e for e in log if e["transport"] == "admin"]
    assert any(e["method"] == "DELETE" and e["status"] == 200 and e["extra"]["mcp_server"] == second["id"]
               for e in admin_log)
    assert TOKEN not in json.dumps(log) and server["token"] not in json.dumps(log)


async def test_needs_reauth_and_sandbox_mode_accounts() -> None:
    fleet = build(accounts=4)
    stale, sandboxed = fleet.accounts[3], fleet.accounts[1]
    assert stale.status == "needs_reauth" and sandboxed.is_sandbox
    async with admin(fleet) as client:
        stale_server = await mint(client, stale.id)
        writer = await mint(client, sandboxed.id, config={"methods": ["read", "write"]})
    async with mcp_session(fleet, stale_server["url"]) as session:
        result = await session.call_tool("list_all_vapi_assistants", {})
        assert result.is_error and json.loads(result.content[0].text)["statusCode"] == 401
    async with mcp_session(fleet, writer["url"]) as session:
        result = await session.call_tool("create_a_vapi_assistant", {"name": "Nope"})
        assert result.is_error and json.loads(result.content[0].text)["statusCode"] == 403
        listed = await session.call_tool("list_all_vapi_assistants", {})
        assert not listed.is_error


async def test_rate_limit_is_per_account_across_its_servers() -> None:
    fleet = build(accounts=2, rate_limit=RateLimit(3, 30))
    first = fleet.accounts[0].id
    async with admin(fleet) as client:
        a1, a2 = await mint(client, first), await mint(client, first)
        b = await mint(client, fleet.accounts[1].id)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fleet.app), headers=headers) as http:
        statuses = [(await http.post(url, json=body)).status_code for url in
                    (a1["url"], a2["url"], a1["url"], a2["url"], b["url"])]
    assert statuses == [200, 200, 200, 429, 200]


def test_served_fleet_routes_accounts_and_log() -> None:
    from sandbox.serve import ServerThread

    fleet = build(accounts=3)
    with ServerThread(fleet, host="127.0.0.1", port=0):
        auth = {"Authorization": f"Bearer {TOKEN}"}
        listed = httpx2.get(f"{fleet.api_url}/integrated-account", headers=auth).json()["results"]
        account = listed[0]["id"]
        calls = httpx2.get(f"{fleet.account_url(account)}/call", params={"limit": 2},
                           headers={"Authorization": "Bearer sandbox-key"})
        assert calls.status_code == 200 and len(calls.json()) == 2
        log = httpx2.get(f"{fleet.api_url}/_sandbox/log", headers=auth).json()
        assert {e["account"] for e in log if e["transport"] == "rest"} == {account}
        assert httpx2.get(f"{fleet.api_url}/_sandbox/log").status_code == 401
