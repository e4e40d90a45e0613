"""``notifications/tools/list_changed``: the catalogue is listed again and the model sees the new tool."""

from __future__ import annotations

import json
from typing import Any

import mcp.types as types
from mcp.server import Server, ServerRequestContext

from agent.mcp.connection import Connection
from agent.mcp.hub import Hub
from agent.mcp.servers import ServerSpec
from agent.model import ModelTurn, ToolCall
from agent.model.scripted import ScriptedModel
from agent.policy import WriteGate


def _tool(name: str) -> types.Tool:
    return types.Tool(name=name, description=f"{name} tool",
                      input_schema={"type": "object", "properties": {}})


def changing_server() -> Server[Any]:
    """Lists ``list_widgets``; after ``unlock_gadgets`` runs it also lists ``list_gadgets`` and says so."""
    tools = [_tool("list_widgets"), _tool("unlock_gadgets")]

    async def list_tools(ctx: ServerRequestContext, _params: types.PaginatedRequestParams | None
                         ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=list(tools))

    async def call_tool(ctx: ServerRequestContext, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name == "unlock_gadgets" and all(t.name != "list_gadgets" for t in tools):
            tools.append(_tool("list_gadgets"))
            await ctx.session.send_tool_list_changed()
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps({"ran": params.name}))])

    return Server("changing", on_list_tools=list_tools, on_call_tool=call_tool)


async def test_list_changed_reloads_the_catalogue() -> None:
    spec = ServerSpec(name="changing", transport="memory")
    async with Connection(spec, server_object=changing_server()) as conn:
        hub = Hub([conn], gate=WriteGate(yes=True))
        await hub.load_catalogue()
        assert [t.name for t in hub.catalogue] == ["list_widgets", "unlock_gadgets"]
        await hub.call("unlock_gadgets", {})
        assert conn.catalogue_stale
        assert await hub.refresh_if_changed()
        assert [t.name for t in hub.catalogue] == ["list_widgets", "unlock_gadgets", "list_gadgets"]
        assert not await hub.refresh_if_changed()


async def test_the_model_is_offered_the_new_tool(make_sandbox: Any) -> None:
    from agent.config import Settings
    from agent.loop import run_agent
    from agent.runtime import Runtime
    from agent.usage import Usage
    from agent.vapi import VapiFacade

    spec = ServerSpec(name="changing", transport="memory")
    model = ScriptedModel([
        ModelTurn(tool_calls=[ToolCall("c1", "unlock_gadgets", "{}")]),
        ModelTurn(tool_calls=[ToolCall("c2", "list_gadgets", "{}")]),
        ModelTurn(content="done"),
    ])
    async with Connection(spec, server_object=changing_server()) as conn:
        hub = Hub([conn], gate=WriteGate(yes=True))
        await hub.load_catalogue()
        rt = Runtime(settings=Settings(), hub=hub, vapi=VapiFacade(hub), model=model, media_http=None,
                     usage=Usage())
        result = await run_agent(rt, "unlock the gadgets and list them")
    offered = [[t["function"]["name"] for t in r["tools"]] for r in model.requests]
    assert "list_gadgets" not in offered[0] and "list_gadgets" in offered[1]
    assert result.answer == "done" and [c["name"] for c in result.tool_calls] == ["unlock_gadgets", "list_gadgets"]
    assert all(c["ok"] for c in result.tool_calls)
    model.assert_all_used()
