"""The Truto-style MCP server: catalogue, CRUD pass-through, paging, errors, filters, discovery, recordings.

CRUD round trips are generated from ``tools/list`` (in-memory ``mcp.Client(server)``); paging and
recordings also run over real loopback HTTP (``serve_sandbox``), as a client would see them.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import mcp
import mcp.types as types
import pytest
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from sandbox.app import Sandbox
from sandbox.truto.catalogue import RESOURCES, build_catalogue
from sandbox.truto.proxy import ToolFailure, decode_cursor, encode_cursor

FEW = 40  # calls in the seeded workspace when a test needs only a few (faster to build and validate)
NAME_PATTERNS = {
    "list": re.compile(r"^list_all_vapi_[a-z_]+$"),
    "get": re.compile(r"^get_single_vapi_[a-z_]+_by_id$"),
    "create": re.compile(r"^create_a_vapi_[a-z_]+$"),
    "update": re.compile(r"^update_a_vapi_[a-z_]+_by_id$"),
    "delete": re.compile(r"^delete_a_vapi_[a-z_]+_by_id$"),
    "custom": re.compile(r"^[a-z_]+$"),
}


# ---------------------------------------------------------------- helpers
@asynccontextmanager
async def http_client(sandbox: Sandbox, **headers: str) -> AsyncIterator[mcp.Client]:
    """An mcp client over real loopback HTTP to a served sandbox."""
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30))
    async with http, mcp.Client(streamable_http_client(sandbox.mcp_url, http_client=http)) as client:
        yield client


def payload(result: types.CallToolResult) -> Any:
    """The JSON inside a one-text-item result."""
    assert len(result.content) == 1 and result.content[0].type == "text", result.content
    return json.loads(result.content[0].text)


async def ok(client: mcp.Client, tool: str, args: dict[str, Any]) -> Any:
    """Call a tool that must succeed; its JSON payload."""
    result = await client.call_tool(tool, args)
    assert not result.is_error, f"{tool}({args}) failed: {result.content}"
    return payload(result)


async def failed(client: mcp.Client, tool: str, args: dict[str, Any], status: int) -> dict[str, Any]:
    """Call a tool that must fail with a Truto envelope of ``status``; the envelope."""
    result = await client.call_tool(tool, args)
    assert result.is_error, f"{tool}({args}) unexpectedly succeeded"
    body = payload(result)
    assert body["statusCode"] == status, body
    assert {"statusCode", "error", "message"} <= set(body)
    return body


async def all_pages(client: mcp.Client, tool: str, args: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Every page of a list tool, following next_cursor unchanged."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        page = await ok(client, tool, {**args, **({"next_cursor": cursor} if cursor else {})})
        pages.append(page["result"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 500, "paging does not end"


def tool_meta(tool: types.Tool) -> dict[str, Any]:
    """The Truto metadata the server puts under ``_meta``."""
    assert tool.meta is not None
    return tool.meta["truto"]


# ---------------------------------------------------------------- catalogue (no sandbox needed)
def test_catalogue_follows_truto_conventions() -> None:
    specs = build_catalogue()
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
    for spec in specs:
        tool = spec.to_tool()
        assert NAME_PATTERNS[spec.method].match(spec.name), spec.name
        assert len(spec.name) <= 64 and re.fullmatch(r"[a-z0-9_]+", spec.name)
        schema = tool.input_schema
        assert schema["type"] == "object" and isinstance(schema["properties"], dict)
        assert "Returns:" in tool.description
        assert set(schema.get("required", [])) <= set(schema["properties"])
        if spec.method in ("get", "update", "delete"):
            assert "id" in schema["required"] and tool.description.endswith("Required: id.")
        if spec.action == "list":
            assert {"limit", "next_cursor"} <= set(schema["properties"])
            assert "unchanged" in schema["properties"]["next_cursor"]["description"]
        for prop in schema["properties"].values():
            assert "type" in prop and "description" in prop
            if prop["type"] == "array":
                assert "items" in prop  # OpenAI rejects arrays without items
        annotations = tool.annotations
        assert annotations is not None
        assert annotations.read_only_hint is (spec.method in ("list", "get") or spec.resource == "analytics")
        assert annotations.destructive_hint is (spec.method == "delete")
        assert tool_meta(tool)["method"] == spec.method and spec.method in tool_meta(tool)["tags"]
    # the documented examples exist
    for name in ("list_all_vapi_calls", "get_single_vapi_assistant_by_id", "create_a_vapi_squad",
                 "update_a_vapi_squad_by_id", "delete_a_vapi_assistant_by_id", "create_a_vapi_analytics",
                 "create_a_vapi_chat_response", "list_all_vapi_mono_recordings"):
        assert name in names


def test_cursor_is_opaque_and_bound_to_its_tool() -> None:
    specs = {s.name: s for s in build_catalogue()}
    cursor = encode_cursor({"tool": "list_all_vapi_calls", "f": {}, "s": 5, "b": "x", "x": []})
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    assert decode_cursor(cursor, specs["list_all_vapi_calls"])["s"] == 5
    for bad in ("garbage!!", cursor[:-3], base64.urlsafe_b64encode(b"[1]").decode()):
        with pytest.raises(ToolFailure, match="next_cursor"):
            decode_cursor(bad, specs["list_all_vapi_calls"])
    with pytest.raises(ToolFailure, match="another list"):
        decode_cursor(cursor, specs["list_all_vapi_assistants"])
    tampered = encode_cursor({"tool": "list_all_vapi_calls", "f": {}, "s": "7", "b": "x", "x": []})
    with pytest.raises(ToolFailure, match="next_cursor"):
        decode_cursor(tampered, specs["list_all_vapi_calls"])


# ---------------------------------------------------------------- CRUD round trip per resource
async def _refs(client: mcp.Client) -> dict[str, str]:
    """Ids of existing records the minimal create bodies point at."""
    assistants = (await ok(client, "list_all_vapi_assistants", {"limit": 5}))["result"]
    phones = (await ok(client, "list_all_vapi_phone_numbers", {"limit": 5}))["result"]
    outputs = (await ok(client, "list_all_vapi_structured_outputs", {"limit": 100}))["result"]
    boolean = [o for o in outputs if (o.get("schema") or {}).get("type") in ("boolean", "number", "integer")]
    assert assistants and phones and boolean, "the seeded workspace lacks assistants/phone numbers/outputs"
    return {"assistant": assistants[0]["id"], "phone": phones[0]["id"], "output": boolean[0]["id"],
            "output_type": boolean[0]["schema"]["type"]}


def _condition(kind: str) -> dict[str, Any]:
    value: Any = True if kind == "boolean" else 5
    return {"type": "comparator", "comparator": "=" if kind == "boolean" else ">=", "value": value, "points": 100}


# A minimal valid create body per resource, derived from existing records. A resource that gains
# CRUD tools without an entry here fails test_every_crud_resource_has_a_round_trip.
MINIMAL_BODIES: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
    "calls": lambda r: {"name": "mcp round trip", "assistantId": r["assistant"], "phoneNumberId": r["phone"],
                        "customer": {"number": "+14155550123", "name": "Round Trip"}},
    "assistants": lambda r: {"name": "MCP round trip", "firstMessage": "Hello from the test."},
    "squads": lambda r: {"name": "mcp squad", "members": [{"assistantId": r["assistant"]}]},
    "phone_numbers": lambda r: {"provider": "vapi", "name": "mcp line"},
    "campaigns": lambda r: {"name": "mcp campaign", "assistantId": r["assistant"], "phoneNumberId": r["phone"],
                            "customers": [{"number": "+14155550124"}]},
    "observability_scorecards": lambda r: {
        "name": "mcp scorecard",
        "metrics": [{"structuredOutputId": r["output"], "conditions": [_condition(r["output_type"])]}],
    },
    "structured_outputs": lambda r: {"name": "mcp output", "schema": {"type": "boolean"}},
    # an apiRequest tool: one of the few tool types with a top-level name (the update renames it)
    "tools": lambda r: {"type": "apiRequest", "name": "lookup_order", "method": "GET",
                        "url": "https://example.com/orders"},
    "chats": lambda r: {"input": "Hello there", "assistantId": r["assistant"]},
}
CRUD_RESOURCES = [res.name for res in RESOURCES if res.create is not None]


def res_paging(name: str) -> str:
    """``time`` or ``page`` for a resource of the table."""
    return next(res.paging for res in RESOURCES if res.name == name)


async def test_every_crud_resource_has_a_round_trip(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(calls=FEW)
    async with mcp.Client(sandbox.mcp.server) as client:
        tools = (await client.list_tools()).tools
    listed = {tool_meta(t)["resource"] for t in tools if tool_meta(t)["method"] == "create"}
    assert listed == set(MINIMAL_BODIES) == set(CRUD_RESOURCES)


@pytest.mark.parametrize("resource", CRUD_RESOURCES)
async def test_crud_round_trip(make_sandbox: Callable[..., Sandbox], resource: str) -> None:
    sandbox = make_sandbox(calls=FEW)
    async with mcp.Client(sandbox.mcp.server) as client:
        tools = {tool_meta(t)["method"]: t for t in (await client.list_tools()).tools
                 if tool_meta(t)["resource"] == resource}
        created = await ok(client, tools["create"].name, MINIMAL_BODIES[resource](await _refs(client)))
        record_id = created["id"]
        assert (await ok(client, tools["get"].name, {"id": record_id}))["id"] == record_id
        if "update" in tools:
            assert "name" in tools["update"].input_schema["properties"]
            await ok(client, tools["update"].name, {"id": record_id, "name": "renamed by mcp"})
            assert (await ok(client, tools["get"].name, {"id": record_id}))["name"] == "renamed by mcp"
        # bare-array lists are narrowed to records created since this one (400 seeded calls are slow
        # to validate); paginated lists are small and walked whole
        since = {"createdAtGe": created["createdAt"]} if "createdAtGe" in tools["list"].input_schema["properties"] \
            and res_paging(resource) == "time" else {}
        listed = [item["id"] for page in await all_pages(client, tools["list"].name, {"limit": 100, **since})
                  for item in page]
        assert record_id in listed
        assert (await ok(client, tools["delete"].name, {"id": record_id}))["id"] == record_id
        body = await failed(client, tools["get"].name, {"id": record_id}, 404)
        assert body["truto_is_remote_error"] is True and body["raw_response"]["statusCode"] == 404


# ---------------------------------------------------------------- paging (real loopback)
async def test_paging_honours_the_page_cap(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(page_cap=7, calls=60)
    async with sandbox.rest_client() as rest:
        everything = (await rest.get("/call", params={"limit": 1000})).json()
    async with http_client(sandbox) as client:
        pages = await all_pages(client, "list_all_vapi_calls", {"limit": 50})
        ids = [item["id"] for page in pages for item in page]
        assert all(len(page) == 7 for page in pages[:-1]) and 1 <= len(pages[-1]) <= 7
        assert len(ids) == len(set(ids)) == len(everything)
        assert ids == [c["id"] for c in everything]  # newest first, same order as Vapi
        # a paginated ({results, metadata}) resource: create enough records to need several pages
        for i in range(9):
            await ok(client, "create_a_vapi_structured_output", {"name": f"paging {i}", "schema": {"type": "number"}})
        total = (await rest_total(sandbox, "/structured-output"))
        pages = await all_pages(client, "list_all_vapi_structured_outputs", {"limit": 50})
        ids = [item["id"] for page in pages for item in page]
        assert all(len(page) == 7 for page in pages[:-1]) and len(ids) == len(set(ids)) == total


async def rest_total(sandbox: Sandbox, path: str) -> int:
    """``metadata.totalItems`` of a paginated REST list."""
    async with sandbox.rest_client() as rest:
        return int((await rest.get(path, params={"limit": 1})).json()["metadata"]["totalItems"])


async def test_filters_travel_with_the_cursor(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(page_cap=5, calls=120)
    async with mcp.Client(sandbox.mcp.server) as client:
        calls = (await ok(client, "list_all_vapi_calls", {"limit": 1}))["result"]
        assistant = calls[0]["assistantId"]
        pages = await all_pages(client, "list_all_vapi_calls", {"assistantId": assistant, "limit": 5})
        items = [c for page in pages for c in page]
        assert items and all(c["assistantId"] == assistant for c in items)
        first = await ok(client, "list_all_vapi_calls", {"assistantId": assistant, "limit": 5})
        assert first["next_cursor"], "expected more than one page for one assistant"
        body = await failed(client, "list_all_vapi_calls",
                            {"assistantId": "someone-else", "next_cursor": first["next_cursor"]}, 400)
        assert "filters" in body["message"]
        await failed(client, "list_all_vapi_assistants", {"next_cursor": first["next_cursor"]}, 400)
        await failed(client, "list_all_vapi_calls", {"next_cursor": "not-a-cursor"}, 400)


# ---------------------------------------------------------------- errors
async def test_bad_arguments_are_refused_before_anything_is_written(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(calls=FEW)
    async with mcp.Client(sandbox.mcp.server) as client:
        before = len([a for page in await all_pages(client, "list_all_vapi_assistants", {}) for a in page])
        sandbox.log.clear()
        body = await failed(client, "create_a_vapi_assistant", {"name": "x", "colour": "blue"}, 400)
        assert "colour" in body["message"] and "truto_is_remote_error" not in body
        body = await failed(client, "create_a_vapi_assistant", {"name": 42}, 400)
        assert "name" in body["message"]
        await failed(client, "create_a_vapi_squad", {"name": "no members"}, 400)
        await failed(client, "update_a_vapi_assistant_by_id", {"name": "no id"}, 400)
        await failed(client, "list_all_vapi_calls", {"limit": 0}, 400)
        assert sandbox.log.entries("rest") == [], "a refused call reached the REST API"
        after = len([a for page in await all_pages(client, "list_all_vapi_assistants", {}) for a in page])
        assert after == before
        # "50" for an integer is accepted (Truto forwards query values as strings)
        assert len((await ok(client, "list_all_vapi_calls", {"limit": "3"}))["result"]) == 3
        with pytest.raises(MCPError) as excinfo:
            await client.call_tool("list_all_vapi_widgets", {})
        assert excinfo.value.code == types.INVALID_PARAMS


async def test_vapi_errors_come_back_in_trutos_envelope(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(calls=FEW)
    async with mcp.Client(sandbox.mcp.server) as client:
        body = await failed(client, "get_single_vapi_call_by_id", {"id": "00000000-0000-4000-8000-000000000000"}, 404)
        assert body["error"] == "Not Found" and body["truto_is_remote_error"] is True
        assert body["raw_response"]["error"] == "Not Found"
        # Vapi-side validation (schema-valid arguments, invalid for Vapi): 400 with its message array
        body = await failed(client, "create_a_vapi_campaign", {"name": "no assistant"}, 400)
        assert body["truto_is_remote_error"] is True and isinstance(body["raw_response"]["message"], list)
        # an id cannot escape its route
        await failed(client, "get_single_vapi_assistant_by_id", {"id": "../call"}, 404)


# ---------------------------------------------------------------- Truto options
async def _names(sandbox: Sandbox) -> set[str]:
    async with mcp.Client(sandbox.mcp.server) as client:
        return {t.name for t in (await client.list_tools()).tools}


async def test_method_and_tag_filters(make_sandbox: Callable[..., Sandbox]) -> None:
    read = await _names(make_sandbox(calls=FEW, methods=("read",)))
    assert read and not any(n.startswith(("create_", "update_", "delete_")) for n in read)
    assert "list_all_vapi_calls" in read and "list_all_vapi_mono_recordings" in read
    write = await _names(make_sandbox(calls=FEW, methods=("write",)))
    assert write and all(n.startswith(("create_a_", "update_a_", "delete_a_")) for n in write)
    assert "create_a_vapi_analytics" not in write
    custom = await _names(make_sandbox(calls=FEW, methods=("custom",)))
    assert custom == {"create_a_vapi_analytics", "create_a_vapi_chat_response"}
    assert await _names(make_sandbox(calls=FEW, methods=("get",))) == {n for n in read if n.startswith("get_single_")}
    calls_read = await _names(make_sandbox(calls=FEW, methods=("read",), tags=("calls",)))
    assert "list_all_vapi_calls" in calls_read and "list_all_vapi_assistants" not in calls_read
    assert "list_all_vapi_stereo_recordings" in calls_read
    sandbox = make_sandbox(calls=FEW, methods=("read",))
    async with mcp.Client(sandbox.mcp.server) as client:
        with pytest.raises(MCPError):
            await client.call_tool("create_a_vapi_assistant", {"name": "refused"})
    assert sandbox.log.entries("rest") == []


async def test_discovery_exposure(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(calls=FEW, tool_exposure="discovery", methods=("read",))
    async with mcp.Client(sandbox.mcp.server) as client:
        tools = (await client.list_tools()).tools
        assert {t.name for t in tools} == {"search_tools", "get_tool_schema", "call_tool"}
        found = (await ok(client, "search_tools", {"query": "list calls", "limit": 3}))["tools"]
        assert found[0]["name"] == "list_all_vapi_calls" and len(found) <= 3
        found = (await ok(client, "search_tools", {"query": "create assistant"}))["tools"]
        assert "create_a_vapi_assistant" not in [t["name"] for t in found]  # filtered by methods
        schemas = (await ok(client, "get_tool_schema", {"tool_names": ["list_all_vapi_calls"]}))["tools"]
        assert "next_cursor" in schemas[0]["inputSchema"]["properties"]
        await failed(client, "get_tool_schema", {"tool_names": [f"t{i}" for i in range(6)]}, 400)
        page = await ok(client, "call_tool", {"tool_name": "list_all_vapi_calls", "arguments": {"limit": 2}})
        assert len(page["result"]) == 2
        await failed(client, "call_tool", {"tool_name": "list_all_vapi_calls", "arguments": {"bogus": 1}}, 400)
        await failed(client, "call_tool", {"tool_name": "create_a_vapi_assistant", "arguments": {}}, 404)
        with pytest.raises(MCPError) as excinfo:
            await client.call_tool("list_all_vapi_calls", {"limit": 2})
        assert "call_tool" in excinfo.value.message


async def test_discovery_log_names_the_inner_tool(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=FEW, tool_exposure="discovery")
    async with http_client(sandbox) as client:
        await ok(client, "call_tool", {"tool_name": "list_all_vapi_assistants", "arguments": {"limit": 1}})
    calls = [e for e in sandbox.log.entries("mcp") if e.rpc_method == "tools/call"]
    assert calls[-1].tool == "list_all_vapi_assistants" and calls[-1].arguments == {"limit": 1}
    assert all(e.path == "/mcp/***" for e in sandbox.log.entries("mcp"))


# ---------------------------------------------------------------- recordings (real loopback)
async def _call_with_recording(client: mcp.Client) -> str:
    for call in (await ok(client, "list_all_vapi_calls", {"limit": 100}))["result"]:
        recording = (call.get("artifact") or {}).get("recording") or {}
        if (recording.get("mono") or {}).get("combinedUrl"):
            return str(call["id"])
    raise AssertionError("no call with a mono recording in the newest 100")


async def _download(url: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        first = await http.get(url)
        assert first.status_code == 302 and "/_storage/" in first.headers["location"]
        return await http.get(url, follow_redirects=True)


@pytest.mark.parametrize("shape", ["json", "resource_link", "embedded"])
async def test_recording_shapes(serve_sandbox: Callable[..., Sandbox], shape: str) -> None:
    sandbox = serve_sandbox(calls=FEW, recording_shape=shape)
    async with http_client(sandbox) as client:
        call_id = await _call_with_recording(client)
        result = await client.call_tool("list_all_vapi_mono_recordings", {"call_id": call_id})
        assert not result.is_error and len(result.content) == 1
        item = result.content[0]
        if shape == "json":
            link = payload(result)
            assert link["content_type"] == "audio/wav" and link["expires_at"].endswith("Z")
            response = await _download(link["url"])
            assert response.status_code == 200 and response.content[:4] == b"RIFF"
        elif shape == "resource_link":
            assert isinstance(item, types.ResourceLink) and item.mime_type == "audio/wav"
            response = await _download(str(item.uri))
            assert response.content[:4] == b"RIFF"
        else:
            assert isinstance(item, types.EmbeddedResource)
            assert isinstance(item.resource, types.BlobResourceContents)
            assert base64.b64decode(item.resource.blob)[8:12] == b"WAVE"
        # `id` is an accepted alias of call_id
        again = await client.call_tool("list_all_vapi_mono_recordings", {"id": call_id})
        assert not again.is_error
        if shape == "json":
            # a call without that recording (no video in this dataset), and no such call at all
            body = await failed(client, "list_all_vapi_video_recordings", {"call_id": call_id}, 404)
            assert body["truto_is_remote_error"] is True and body["raw_response"]["statusCode"] == 404
            await failed(client, "list_all_vapi_mono_recordings", {"call_id": "00000000-0000-4000-8000-00000000dead"},
                         404)


async def test_expire_first_makes_the_first_link_dead(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=FEW, expire_first=True)
    async with http_client(sandbox) as client, httpx2.AsyncClient(timeout=30) as http:
        call_id = await _call_with_recording(client)
        first = await ok(client, "list_all_vapi_mono_recordings", {"call_id": call_id})
        assert (await http.get(first["url"])).status_code == 403
        second = await ok(client, "list_all_vapi_mono_recordings", {"call_id": call_id})
        assert second["url"] != first["url"]
        response = await http.get(second["url"], follow_redirects=True)
        assert response.status_code == 200 and response.content[:4] == b"RIFF"
