"""Real catalogues through the whole loop: MCP server -> catalogue -> conversion -> selection -> SDK.

``test_tools_conversion.py`` already sends each converted catalogue (the sandbox's, Vapi's
``@vapi-ai/mcp-server``, the 150-tool hostile one) straight through the SDK. What it cannot show is
the loop's own use of them: here an in-memory MCP server serves the recorded catalogue, ``run_agent``
lists it through a real ``Connection`` and ``Hub``, and ``OpenAIChatModel`` (the real ``openai`` SDK)
talks to the scripted server, which refuses anything OpenAI would. Over 128 tools, every request
offers at most 128 (the search tool included); a tool found by search is offered on the next request
and its call reaches the server under its original (unconverted) name.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest
from mcp.server import Server, ServerRequestContext

from agent.config import load_settings
from agent.loop import run_agent
from agent.mcp.connection import Connection
from agent.mcp.hub import Hub
from agent.mcp.servers import ServerSpec
from agent.model import OpenAIChatModel
from agent.policy import Access, WriteGate
from agent.runtime import Runtime
from agent.toolconv.convert import to_openai_tools
from agent.toolconv.search import select_tools
from agent.usage import Usage
from agent.vapi import VapiFacade
from tests.ask_support import Endpoint, offered_names
from tests.openai_fake import ScriptedOpenAI, ToolCall, Turn

FIXTURES = Path(__file__).parent / "fixtures"
VAPI = json.loads((FIXTURES / "vapi_mcp_tools.json").read_text())
HOSTILE = json.loads((FIXTURES / "hostile_catalogue.json").read_text(encoding="utf-8"))
PAGE = 60  # tools per tools/list page: the hostile catalogue needs three
# MCP requires an object root for inputSchema and the mcp client refuses a whole tools/list page
# holding any other root (pydantic validation of the result), so those hostile tools cannot come
# through a real connection; ``test_tools_conversion.py`` converts them directly.
HOSTILE_LISTABLE = [t for t in HOSTILE["tools"] if t["inputSchema"].get("type") == "object"]


class CatalogueServer:
    """An MCP server offering recorded tools as they are (paged) and recording every call it gets."""

    def __init__(self, tools: list[dict[str, Any]]) -> None:
        self.tools = [types.Tool.model_validate(t) for t in tools]
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.server: Server[Any] = Server("recorded-catalogue", version="1.0.0", on_list_tools=self._list,
                                          on_call_tool=self._call)

    async def _list(self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                    ) -> types.ListToolsResult:
        start = int(params.cursor) if params is not None and params.cursor else 0
        following = str(start + PAGE) if start + PAGE < len(self.tools) else None
        return types.ListToolsResult(tools=self.tools[start:start + PAGE], next_cursor=following)

    async def _call(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        self.calls.append((params.name, dict(params.arguments or {})))
        text = json.dumps({"tool": params.name, "result": [{"id": "rec_1", "status": "ended"}]})
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


@asynccontextmanager
async def open_loop_runtime(servers: dict[str, CatalogueServer], endpoint: Endpoint) -> AsyncIterator[Runtime]:
    """A ``Runtime`` over in-memory MCP servers and the real OpenAI model pointed at ``endpoint``."""
    settings = load_settings({}, env={"OPENAI_BASE_URL": endpoint.base_url, "OPENAI_API_KEY": "sk-test"})
    async with AsyncExitStack() as stack:
        connections = [
            await stack.enter_async_context(Connection(ServerSpec(name=name, transport="memory", kind="generic"),
                                                       server_object=server.server))
            for name, server in servers.items()
        ]
        hub = Hub(connections, gate=WriteGate(prompt=None))
        await hub.load_catalogue()
        model = OpenAIChatModel(settings)
        stack.push_async_callback(model.aclose)
        yield Runtime(settings=settings, hub=hub, vapi=VapiFacade(hub), model=model, media_http=None, usage=Usage())


@pytest.fixture
async def crowded_runtime(endpoint: Endpoint) -> AsyncIterator[tuple[Runtime, dict[str, CatalogueServer]]]:
    """Two servers, over 128 tools together: the hostile catalogue's listable tools and Vapi's."""
    servers = {"hostile": CatalogueServer(HOSTILE_LISTABLE), "vapi": CatalogueServer(VAPI["tools"])}
    async with open_loop_runtime(servers, endpoint) as rt:
        yield rt, servers


@pytest.fixture
async def vapi_runtime(endpoint: Endpoint) -> AsyncIterator[tuple[Runtime, CatalogueServer]]:
    """``@vapi-ai/mcp-server``'s recorded catalogue behind the loop."""
    catalogue = CatalogueServer(VAPI["tools"])
    async with open_loop_runtime({"vapi": catalogue}, endpoint) as rt:
        yield rt, catalogue


PROMPT = "list my recent calls"


async def test_over_128_tools_search_then_call(crowded_runtime: tuple[Runtime, dict[str, CatalogueServer]],
                                               fake: ScriptedOpenAI) -> None:
    rt, servers = crowded_runtime
    assert len(rt.hub.catalogue) == len(HOSTILE_LISTABLE) + len(VAPI["tools"]) > 128
    server_of = {t.name: t.server for t in rt.hub.catalogue}
    # Script the model from what the selection under test will offer: a read tool of the second
    # server that the first request hides (found by search, then called) and the 90-character "list calls"
    # tool the first request offers under a cut name. What requests really carried is checked below.
    params, tool_map = to_openai_tools([{"name": t.name, "description": t.description, "inputSchema": t.input_schema}
                                        for t in rt.hub.catalogue], strict=True)
    offered, search = select_tools(params, PROMPT)
    assert search is not None
    shown = [p["function"]["name"] for p in offered]
    hidden = [p["function"]["name"] for p in params if p["function"]["name"] not in shown]
    target = next(name for name in hidden if server_of[tool_map.resolve(name)[1]] == "vapi"
                  and rt.hub.access(tool_map.resolve(name)[1]) is Access.READ)
    cut = next(name for name in shown if tool_map.resolve(name)[1].endswith("_list_calls") and len(name) == 64)
    long_name = tool_map.resolve(cut)[1]
    # Its verb ("enterprise") is unknown, so it counts as a write: approve it by its full name.
    rt.hub.gate.allow = (long_name,)
    search_name = search["function"]["name"]
    fake.add(Turn.calls(ToolCall(search_name, {"query": target.replace("_", " "), "limit": 5})),
             Turn.calls(ToolCall(target, {}), ToolCall(cut, {})),
             Turn.text("Found it and ran both."))

    result = await run_agent(rt, PROMPT)

    assert result.answer == "Found it and ran both." and result.stopped_by is None
    first, second, third = fake.bodies()
    for body in (first, second, third):
        assert len(body["tools"]) <= 128 and search_name in offered_names(body)
    assert target not in offered_names(first) and cut in offered_names(first)
    found = json.loads(next(m["content"] for m in second["messages"] if m["role"] == "tool"))
    assert target in [t["name"] for t in found["tools"]]
    assert target in offered_names(second)  # offered on the very next request
    assert target in offered_names(third)  # and kept once used
    # Each call reached its own server under the tool's own name (the cut one restored in full).
    assert servers["vapi"].calls == [(target, {})]
    assert len(long_name) > 64 and servers["hostile"].calls == [(long_name, {})]
    assert [(c["name"], c["approved_by"]) for c in result.tool_calls] == [(target, "read"), (long_name, "allow")]


async def test_vapi_catalogue_through_the_loop(vapi_runtime: tuple[Runtime, CatalogueServer],
                                               fake: ScriptedOpenAI) -> None:
    rt, catalogue = vapi_runtime
    names = [t["name"] for t in VAPI["tools"]]
    assert "list_calls" in names
    fake.add(Turn.calls(ToolCall("list_calls", {}), ToolCall("list_assistants", {})), Turn.text("Two lists."))

    result = await run_agent(rt, PROMPT)

    assert result.answer == "Two lists."
    for body in fake.bodies():
        assert sorted(offered_names(body)) == sorted(names)  # 13 tools: all offered, no search tool
    assert sorted(name for name, _ in catalogue.calls) == ["list_assistants", "list_calls"]
