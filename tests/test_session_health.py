"""Session health: a dropped connection is re-established once; reads are resent, writes are not."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from agent.errors import AmbiguousWrite
from agent.mcp.connection import Connection
from agent.mcp.servers import ServerSpec

# A stdio server that dies in the middle of its second tool call (as a crashed server would): the
# client sees the connection close with the request unanswered. Each process counts its own calls.
DYING_SERVER = textwrap.dedent('''
    import json, os, sys
    import anyio
    import mcp.types as types
    from mcp.server import Server
    from mcp.server.stdio import stdio_server

    calls = 0
    log = sys.argv[1]

    async def list_tools(ctx, params):
        return types.ListToolsResult(tools=[
            types.Tool(name=n, description=n, input_schema={"type": "object", "properties": {}})
            for n in ("get_thing", "create_thing")])

    async def call_tool(ctx, params):
        global calls
        calls += 1
        with open(log, "a") as out:
            out.write(json.dumps({"pid": os.getpid(), "tool": params.name, "n": calls}) + "\\n")
        if calls == 2:
            os._exit(1)
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps({"n": calls}))])

    async def main():
        server = Server("dying", on_list_tools=list_tools, on_call_tool=call_tool)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
''')


def _spec(tmp_path: Path) -> tuple[ServerSpec, Path]:
    script, log = tmp_path / "dying.py", tmp_path / "calls.jsonl"
    script.write_text(DYING_SERVER)
    return ServerSpec(name="dying", transport="stdio", command=sys.executable, args=[str(script), str(log)]), log


async def test_dropped_connection_is_reopened_and_a_read_resent(tmp_path: Path) -> None:
    spec, log = _spec(tmp_path)
    async with Connection(spec, tool_timeout=20) as conn:
        assert (await conn.call("get_thing", {})).data == {"n": 1}
        again = await conn.call("get_thing", {})  # the server dies on this one; a new process answers it
        assert again.data == {"n": 1}
    pids = [line.split('"pid": ')[1].split(",")[0] for line in log.read_text().splitlines()]
    assert len(set(pids)) == 2 and len(pids) == 3


async def test_a_write_on_a_dropped_connection_is_not_resent(tmp_path: Path) -> None:
    spec, log = _spec(tmp_path)
    async with Connection(spec, tool_timeout=20) as conn:
        await conn.call("get_thing", {})
        with pytest.raises(AmbiguousWrite):
            await conn.call("create_thing", {}, is_write=True)
        assert (await conn.call("get_thing", {})).data == {"n": 1}  # reconnected for what follows
    writes = [line for line in log.read_text().splitlines() if "create_thing" in line]
    assert len(writes) == 1
