"""Interop with ``@modelcontextprotocol/server-everything`` (the reference TypeScript SDK's test server).

Every content type the pinned server can produce (text, image, ``resource_link``, embedded text and
blob resources, ``structuredContent``) and every error shape it has (``isError`` results carrying
``MCP error -32602`` for an unknown tool or bad arguments, ``isError`` tool failures, a real JSON-RPC
error, an HTTP 404) go through our ``Connection`` and ``decode``, over stdio (from an
``mcpServers`` file), Streamable HTTP and legacy SSE, each opened the way the product opens it
(``open_runtime``). The pinned server produces no audio content (no tool of it returns any); audio
decoding is covered by ``tests/test_mcp_decode.py``.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings
from agent.errors import AgentError, ToolError, UpstreamError
from agent.mcp.connection import Connection
from agent.mcp.decode import ToolOutput
from agent.mcp.servers import ServerSpec
from agent.runtime import open_runtime
from tests.interop.conftest import Peers, free_port

pytestmark = pytest.mark.node

TRANSPORTS = ("stdio", "streamableHttp", "sse")
EXPECTED_TOOLS = {"echo", "get-sum", "get-tiny-image", "get-resource-links", "get-resource-reference",
                  "get-structured-content", "get-annotated-message", "gzip-file-as-resource"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(params=TRANSPORTS)
def everything(request: pytest.FixtureRequest, peers: Peers, start_server: Any, tmp_path: Path) -> Settings:
    """Settings that reach a running server-everything over the parametrized transport."""
    mode = request.param
    server = peers.bin("mcp-server-everything")
    if mode == "stdio":
        config = tmp_path / "mcp.json"
        config.write_text(json.dumps({"mcpServers": {"everything": {
            "command": str(peers.node), "args": [str(server), "stdio"], "cwd": str(tmp_path)}}}))
        return Settings(mcp_config=str(config))
    port = free_port()
    start_server([str(peers.node), str(server), mode], env={"PORT": str(port)}, port=port)
    path = "/mcp" if mode == "streamableHttp" else "/sse"  # a URL ending in /sse selects legacy SSE
    return Settings(mcp_url=f"http://127.0.0.1:{port}{path}")


@asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[Connection]:
    """The product's connection to the server (runtime transports, catalogue loaded)."""
    async with open_runtime(settings, store=None, prompt=None, notice=lambda message: None,
                            tool_timeout=30.0, connect_timeout=15.0) as rt:
        names = {tool.name for tool in rt.hub.catalogue}
        assert names >= EXPECTED_TOOLS, f"missing tools: {EXPECTED_TOOLS - names}"
        yield rt.hub.connections[0]


async def ok(conn: Connection, tool: str, arguments: dict[str, Any]) -> ToolOutput:
    """Call a tool that must succeed."""
    output = await conn.call(tool, arguments)
    assert output.ok, f"{tool} failed: {output.error and output.error.line()}"
    return output


async def failed(conn: Connection, tool: str, arguments: dict[str, Any]) -> AgentError:
    """Call a tool whose result must be a failure; returns the mapped error."""
    output = await conn.call(tool, arguments)
    assert output.error is not None, f"{tool} unexpectedly succeeded: {output.text[:200]}"
    with pytest.raises(AgentError) as raised:
        output.raise_for_error()
    assert raised.value is output.error
    return output.error


async def test_every_content_type_decodes(everything: Settings) -> None:
    """Text, image, resource links, embedded text/blob resources and structuredContent, decoded."""
    async with connected(everything) as conn:
        echo = await ok(conn, "echo", {"message": "héllo ✓"})
        assert (echo.text, echo.media, echo.data) == ("Echo: héllo ✓", [], None)
        assert (await ok(conn, "get-sum", {"a": 2, "b": 40})).text == "The sum of 2 and 40 is 42."

        image = await ok(conn, "get-tiny-image", {})
        (png,) = image.media
        assert (png.kind, png.mime_type) == ("image", "image/png")
        assert png.data is not None and png.data.startswith(PNG_MAGIC) and png.data[12:16] == b"IHDR"
        # The bytes are decoded for the app; the base64 never leaks into the text a model would see.
        assert base64.b64encode(png.data).decode()[:32] not in image.text + png.placeholder()
        assert "image image/png" in png.placeholder()

        links = await ok(conn, "get-resource-links", {"count": 4})
        assert [m.kind for m in links.media] == ["resource_link"] * 4
        uris = [m.uri for m in links.media]
        assert {u.rsplit("/", 1)[0] for u in uris if u} == {"demo://resource/dynamic/text",
                                                            "demo://resource/dynamic/blob"}
        assert all(m.name and m.data is None for m in links.media)

        text_ref = await ok(conn, "get-resource-reference", {"resourceType": "Text", "resourceId": 3})
        (text_res,) = text_ref.media
        assert (text_res.kind, text_res.uri, text_res.data) == ("resource", "demo://resource/dynamic/text/3", None)
        assert text_res.text is not None and text_res.text.startswith("Resource 3: This is a plaintext resource")

        blob_ref = await ok(conn, "get-resource-reference", {"resourceType": "Blob", "resourceId": 2})
        (blob_res,) = blob_ref.media
        assert (blob_res.kind, blob_res.uri, blob_res.text) == ("resource", "demo://resource/dynamic/blob/2", None)
        assert blob_res.data is not None and blob_res.data.startswith(b"Resource 2: This is a base64 blob")

        # A binary embedded blob (gzip of bytes we chose), and the same file as a resource_link.
        payload = bytes(range(256)) * 8
        data_url = "data:application/octet-stream;base64," + base64.b64encode(payload).decode()
        gz = await ok(conn, "gzip-file-as-resource", {"name": "p.gz", "data": data_url, "outputType": "resource"})
        (gz_res,) = gz.media
        assert (gz_res.kind, gz_res.mime_type) == ("resource", "application/gzip")
        assert gz_res.data is not None and gzip.decompress(gz_res.data) == payload
        gz_link = await ok(conn, "gzip-file-as-resource", {"name": "q.gz", "data": data_url,
                                                           "outputType": "resourceLink"})
        (link,) = gz_link.media
        assert (link.kind, link.mime_type, link.uri) == ("resource_link", "application/gzip",
                                                        "demo://resource/session/q.gz")

        weather = await ok(conn, "get-structured-content", {"location": "Los Angeles"})
        assert weather.data == {"temperature": 73, "conditions": "Sunny / Clear", "humidity": 48}

        # Text that merely starts with "Error:" is not Vapi's "Error: Status code: N" failure shape.
        annotated = await ok(conn, "get-annotated-message", {"messageType": "error", "includeImage": True})
        assert annotated.text == "Error: Operation failed" and [m.kind for m in annotated.media] == ["image"]


async def test_every_error_shape_maps(everything: Settings) -> None:
    """isError results (unknown tool, bad arguments, a failing tool) become ToolErrors with the cause."""
    async with connected(everything) as conn:
        unknown = await failed(conn, "no-such-tool", {})
        assert isinstance(unknown, ToolError) and "Tool no-such-tool not found" in unknown.message
        assert "MCP error -32602" in unknown.message

        bad = await failed(conn, "get-sum", {"a": "two"})
        assert isinstance(bad, ToolError) and "Input validation error" in bad.message
        assert "-32602" in bad.message

        tool_failure = await failed(conn, "gzip-file-as-resource", {"name": "x", "data": "ftp://127.0.0.1/x"})
        assert isinstance(tool_failure, ToolError) and "Unsupported URL protocol" in tool_failure.message
        assert tool_failure.exit_code == 3

        # The session survives failures: the next call on the same connection works.
        assert (await ok(conn, "echo", {"message": "still here"})).text == "Echo: still here"


async def decline(context: Any, params: Any) -> Any:
    """An elicitation callback that declines (declaring the capability unlocks the URL tool)."""
    import mcp.types as types

    return types.ElicitResult(action="decline")


async def test_json_rpc_error_is_raised_and_mapped(peers: Peers, tmp_path: Path) -> None:
    """A real JSON-RPC error on tools/call (-32042, URL elicitation required) raises UpstreamError."""
    spec = ServerSpec(name="everything", transport="stdio", command=str(peers.node),
                      args=[str(peers.bin("mcp-server-everything")), "stdio"], cwd=str(tmp_path))
    async with Connection(spec, elicitation_callback=decline, tool_timeout=30.0) as conn:
        assert "trigger-url-elicitation" in {tool.name for tool in await conn.list_tools()}
        with pytest.raises(UpstreamError) as raised:
            await conn.call("trigger-url-elicitation", {"url": "https://example.com/consent", "message": "m",
                                                        "errorPath": True})
        error = raised.value
        assert "-32042" in error.message and "requires browser-based authorization" in error.message
        assert error.exit_code == 3 and "Traceback" not in error.line()
        # The request path of the same tool sends elicitation/create; our callback's answer arrives.
        answer = await conn.call("trigger-url-elicitation", {"url": "https://example.com/consent", "message": "m"})
        assert answer.ok and "declined" in answer.text


async def test_http_404_is_an_upstream_error(peers: Peers, start_server: Any) -> None:
    """An HTTP error status on the MCP endpoint (a wrong path) maps to one clear error, no traceback."""
    port = free_port()
    start_server([str(peers.node), str(peers.bin("mcp-server-everything")), "streamableHttp"],
                 env={"PORT": str(port)}, port=port)
    settings = Settings(mcp_url=f"http://127.0.0.1:{port}/not-mcp")
    with pytest.raises(AgentError) as raised:
        async with open_runtime(settings, store=None, prompt=None, notice=lambda message: None,
                                connect_timeout=10.0):
            pass
    assert "HTTP 404" in raised.value.line() and raised.value.exit_code == 3
