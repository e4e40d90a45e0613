"""Every MCP transport the agent speaks, the full catalogue, allow/deny globs and the CLI conventions.

Each test connects through the product's own layer (``agent.runtime.open_runtime`` or
``agent.mcp.connection.Connection``) to a real server: the sandbox over Streamable HTTP on loopback,
an ``mcp`` SDK server over legacy SSE, ``python -m sandbox stdio`` as a child process, the sandbox
in-process, an in-memory server that pages ``tools/list``, and an ``mcpServers`` file with two
servers. What reached a server is read from that server's own request log.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import mcp.types as types
import pytest

from agent.config import Settings
from agent.errors import ConfigError
from agent.mcp.connection import Connection
from agent.mcp.servers import ServerSpec
from agent.runtime import SANDBOX_NOTICE, open_runtime
from sandbox.app import Sandbox
from tests.openai_fake.server import serve_app

ROOT = Path(__file__).resolve().parents[1]
VAPI_AGENT = str(Path(sys.executable).with_name("vapi-agent"))


# ---------------------------------------------------------------- helpers
def listed_names(sandbox: Sandbox) -> list[str]:
    """The tool names the sandbox's MCP server lists, in its order."""
    return [tool.name for tool in sandbox.mcp.listed_tools()]


def tool_calls(sandbox: Sandbox, tool: str | None = None) -> list[Any]:
    """``tools/call`` requests the sandbox received (optionally of one tool), oldest first."""
    return [e for e in sandbox.log.entries("mcp")
            if e.rpc_method == "tools/call" and (tool is None or e.tool == tool)]


def busiest_assistant(sandbox: Sandbox) -> tuple[str, list[str]]:
    """The assistant with the most calls, and its call ids newest first (straight from the workspace)."""
    best: tuple[str, list[str]] = ("", [])
    for assistant in sandbox.workspace.list_objects("assistants"):
        ids = [c["id"] for c in sandbox.workspace.list_calls(assistant_id=assistant["id"], limit=None)]
        if len(ids) > len(best[1]):
            best = (assistant["id"], ids)
    return best


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run the installed ``vapi-agent`` console script (stdin closed: no terminal, as in cron)."""
    return subprocess.run([VAPI_AGENT, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=ROOT)


@pytest.fixture
def sse_server() -> Iterator[str]:
    """A legacy HTTP+SSE MCP server (the ``mcp`` SDK's ``sse_app``) on loopback; yields its ``/sse`` URL."""
    from tests.mcp_support import quiet_mcp_server

    server = quiet_mcp_server("sse-demo")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    with serve_app(server.sse_app()) as origin:
        yield f"{origin}/sse"


# ---------------------------------------------------------------- Streamable HTTP + paging
async def test_streamable_http_to_a_served_sandbox_pages_past_the_cap(
    serve_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = serve_sandbox(calls=60, page_cap=7)
    assistant_id, expected = busiest_assistant(sandbox)
    assert len(expected) > 2 * 7, "the dataset must need several pages for this test to mean anything"
    notices: list[str] = []
    async with open_runtime(Settings(mcp_url=sandbox.mcp_url), notice=notices.append, store=None,
                            prompt=None) as rt:
        (conn,) = rt.hub.connections
        assert (conn.spec.transport, conn.spec.kind) == ("http", "generic")
        assert conn.server_name == "truto-vapi-sandbox"
        assert [t.name for t in rt.hub.catalogue] == listed_names(sandbox)
        sandbox.log.clear()
        got = [call["id"] async for call in rt.vapi.iter_calls(assistant_id=assistant_id)]
    assert notices == []  # a configured server: no sandbox notice
    assert got == expected  # every call, newest first, none twice
    pages = tool_calls(sandbox, "list_all_vapi_calls")
    assert len(pages) == math.ceil(len(expected) / 7)
    assert "next_cursor" not in (pages[0].arguments or {})
    assert all((p.arguments or {}).get("next_cursor") for p in pages[1:])
    assert all((p.arguments or {}).get("assistantId") == assistant_id for p in pages)
    assert all(e.path == "/mcp/***" for e in sandbox.log.entries("mcp"))


# ---------------------------------------------------------------- legacy SSE
async def test_legacy_sse_server_by_url_suffix(sse_server: str) -> None:
    settings = Settings(mcp_url=sse_server, yes=True)  # "add"/"echo" have unknown verbs: writes
    async with open_runtime(settings, notice=lambda _m: None, store=None, prompt=None, tool_timeout=2.0) as rt:
        (conn,) = rt.hub.connections
        assert conn.spec.transport == "sse"
        assert conn.server_name == "sse-demo"
        assert sorted(t.name for t in rt.hub.catalogue) == ["add", "echo"]
        assert (await rt.hub.call("echo", {"text": "über SSE"})).text == "über SSE"
        # the event stream idles longer than the per-request timeout and must survive it
        await asyncio.sleep(2.5)
        assert (await rt.hub.call("add", {"a": 2, "b": 40})).data == {"result": 42}
        assert [(r.name, r.ok, r.approved_by) for r in rt.hub.records] == [("echo", True, "yes"), ("add", True, "yes")]


# ---------------------------------------------------------------- stdio
def _write_config(path: Path, servers: dict[str, Any]) -> str:
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return str(path)


async def test_stdio_sandbox_from_an_mcp_servers_file(tmp_path: Path, make_sandbox: Callable[..., Sandbox]) -> None:
    reference = make_sandbox(calls=50)  # same seed and size as the child: same workspace
    config = _write_config(tmp_path / "mcp.json", {
        "local": {"command": sys.executable, "args": ["-m", "sandbox", "stdio", "--calls", "50"], "cwd": str(ROOT)},
    })
    async with open_runtime(Settings(mcp_config=config), notice=lambda _m: None, store=None, prompt=None) as rt:
        (conn,) = rt.hub.connections
        assert (conn.spec.transport, conn.server_name) == ("stdio", "truto-vapi-sandbox")
        assert [t.name for t in rt.hub.catalogue] == listed_names(reference)
        support = await rt.vapi.resolve_assistant("Support")
        expected = [a["id"] for a in reference.workspace.list_objects("assistants") if a["name"] == "Support"]
        assert [support["id"]] == expected
        calls = [c["id"] async for c in rt.vapi.iter_calls(assistant_id=support["id"])]
    assert calls == [c["id"] for c in reference.workspace.list_calls(assistant_id=support["id"], limit=None)]


# ---------------------------------------------------------------- in-process and in-memory
async def test_embedded_sandbox_when_nothing_is_configured() -> None:
    notices: list[str] = []
    settings = Settings(sandbox_options={"calls": 40})
    async with open_runtime(settings, notice=notices.append, store=None, prompt=None) as rt:
        (conn,) = rt.hub.connections
        assert rt.sandbox is not None and conn.spec.kind == "sandbox"
        assert conn.spec.url == rt.sandbox.mcp_url
        assert rt.sandbox.mcp_url.startswith("http://sandbox.localhost/mcp/")
        names = {a["name"] for a in await rt.vapi.list_assistants()}
        assert {"Support", "Renewal Outreach", "Front Desk Router"} <= names
        assert [e.tool for e in tool_calls(rt.sandbox)] == ["list_all_vapi_assistants"]
    assert notices == [SANDBOX_NOTICE]  # exactly one line
    # --sandbox forces it even when a URL is configured, and says nothing (the user asked for it)
    notices.clear()
    forced = Settings(sandbox=True, mcp_url="http://127.0.0.1:9/mcp/never-used", sandbox_options={"calls": 40})
    async with open_runtime(forced, notice=notices.append, store=None, prompt=None) as rt:
        assert rt.hub.connections[0].spec.kind == "sandbox" and len(rt.hub.catalogue) > 40
    assert notices == []


def _paging_server(n_tools: int, per_page: int, seen_cursors: list[str | None]) -> Any:
    """A low-level MCP server whose ``tools/list`` answers ``per_page`` tools at a time."""
    from mcp.server import Server

    tools = [types.Tool(name=f"get_item_{i:02d}", description=f"item {i}", input_schema={"type": "object"})
             for i in range(n_tools)]

    async def on_list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        cursor = params.cursor if params else None
        seen_cursors.append(cursor)
        start = int(cursor.removeprefix("page-")) if cursor else 0
        end = start + per_page
        return types.ListToolsResult(tools=tools[start:end], next_cursor=f"page-{end}" if end < n_tools else None)

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(text=json.dumps({"name": params.name}))])

    return Server("pager", on_list_tools=on_list_tools, on_call_tool=on_call_tool)


async def test_in_memory_server_every_tools_list_page() -> None:
    cursors: list[str | None] = []
    spec = ServerSpec(name="pager", transport="memory")
    async with Connection(spec, server_object=_paging_server(8, 3, cursors)) as conn:
        tools = await conn.list_tools()
        assert [t.name for t in tools] == [f"get_item_{i:02d}" for i in range(8)]
        assert cursors == [None, "page-3", "page-6"]
        assert await conn.list_tools() is tools and len(cursors) == 3  # cached for the run
        await conn.list_tools(refresh=True)  # list_changed: everything again
        assert len(cursors) == 6
        assert (await conn.call("get_item_07", {})).data == {"name": "get_item_07"}


# ---------------------------------------------------------------- several servers, globs, routing
def _matches(name: str, allow: tuple[str, ...], deny: tuple[str, ...]) -> bool:
    ok = not allow or any(fnmatch.fnmatchcase(name, p) for p in allow)
    return ok and not any(fnmatch.fnmatchcase(name, p) for p in deny)


async def test_mcp_servers_file_prefixes_on_collision_and_routes_by_server(
    tmp_path: Path, serve_sandbox: Callable[..., Sandbox],
) -> None:
    alpha, beta = serve_sandbox(calls=30), serve_sandbox(calls=30)
    alpha_globs = (("list_all_*", "get_single_*"), ())
    beta_globs = ((), ("delete_*",))
    config = _write_config(tmp_path / "mcp.json", {
        "alpha": {"url": alpha.mcp_url, "tools": list(alpha_globs[0])},
        "beta": {"url": beta.mcp_url, "excludeTools": ",".join(beta_globs[1])},
    })
    cli_deny = ("*squad*",)
    expect_alpha = [n for n in listed_names(alpha) if _matches(n, alpha_globs[0], cli_deny)]
    expect_beta = [n for n in listed_names(beta) if _matches(n, (), beta_globs[1] + cli_deny)]
    both = set(expect_alpha) & set(expect_beta)
    assert both and set(expect_beta) - both, "the globs must leave shared and beta-only tools"

    settings = Settings(mcp_config=config, exclude_tools=cli_deny)
    async with open_runtime(settings, notice=lambda _m: None, store=None, prompt=None) as rt:
        catalogue = {t.name: t for t in rt.hub.catalogue}
        expected = [f"alpha__{n}" if n in both else n for n in expect_alpha]
        expected += [f"beta__{n}" if n in both else n for n in expect_beta]
        assert sorted(catalogue) == sorted(expected)
        assert catalogue["alpha__list_all_vapi_calls"].mcp_name == "list_all_vapi_calls"
        assert catalogue["create_a_vapi_assistant"].server == "beta"  # beta only: no prefix
        assert not any("squad" in n or n.startswith(("delete_", "beta__delete_")) for n in catalogue)
        # a facade operation goes to the first server (config order) that has the tool
        alpha.log.clear()
        beta.log.clear()
        await rt.vapi.list_assistants()
        assert [e.tool for e in tool_calls(alpha)] == ["list_all_vapi_assistants"] and tool_calls(beta) == []

    async with open_runtime(Settings(mcp_config=config, server="beta"), notice=lambda _m: None, store=None,
                            prompt=None) as rt:
        alpha.log.clear()
        beta.log.clear()
        await rt.vapi.list_assistants()
        assert tool_calls(alpha) == [] and [e.tool for e in tool_calls(beta)] == ["list_all_vapi_assistants"]

    with pytest.raises(ConfigError, match="unknown --server 'gamma'"):
        async with open_runtime(Settings(mcp_config=config, server="gamma"), store=None, prompt=None):
            pass


# ---------------------------------------------------------------- CLI: both placements, globs
def test_cli_both_placements_give_the_same_envelope(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=30)
    url = sandbox.mcp_url
    before = ["--json", "--mcp-url", url, "--tools", "list_all_*,get_single_*", "--exclude-tools", "*squad*",
              "tools", "list"]
    after = ["tools", "list", "--exclude-tools=*squad*", "--tools", "list_all_*", "--json",
             "--tools", "get_single_*", "--mcp-url", url]
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda argv: run_cli(*argv), (before, after))
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    envelope = json.loads(first.stdout)  # stdout is exactly one JSON document
    assert envelope == json.loads(second.stdout)
    assert envelope["workflow"] == "tools.list" and envelope["status"] == "ok" and envelope["errors"] == []
    names = [t["name"] for t in envelope["result"]["tools"]]
    assert names == [n for n in listed_names(sandbox) if _matches(n, ("list_all_*", "get_single_*"), ("*squad*",))]
    assert {t["access"] for t in envelope["result"]["tools"]} == {"read"}
    assert sandbox.config.token not in first.stdout + first.stderr + second.stdout + second.stderr

