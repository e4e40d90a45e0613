"""Decoding every content type and mapping every error shape."""

from __future__ import annotations

import base64
import json

from agent.errors import RateLimited, ToolError, UpstreamError
from agent.mcp.catalogue import merge_catalogue, tool_allowed
from agent.mcp.decode import decode_result


def _text(text: str, **extra: object) -> dict:
    return {"content": [{"type": "text", "text": text}], **extra}


def test_json_text_and_structured_content() -> None:
    out = decode_result("t", _text('{"result": [1, 2], "next_cursor": null}'))
    assert out.ok and out.data == {"result": [1, 2], "next_cursor": None}
    out = decode_result("t", {**_text("3"), "structuredContent": {"result": 3}})
    assert out.data == {"result": 3} and out.text == "3"
    assert decode_result("t", _text("plain words")).data is None


def test_media_items_are_decoded_never_raw() -> None:
    wav = b"RIFF....WAVEfmt "
    out = decode_result("t", {"content": [
        {"type": "image", "data": base64.b64encode(b"\x89PNG").decode(), "mimeType": "image/png"},
        {"type": "audio", "data": base64.b64encode(wav).decode(), "mimeType": "audio/wav"},
        {"type": "resource_link", "uri": "https://x/y.wav", "name": "y", "mimeType": "audio/wav"},
        {"type": "resource", "resource": {"uri": "file:///a", "mimeType": "audio/wav",
                                          "blob": base64.b64encode(wav).decode()}},
        {"type": "resource", "resource": {"uri": "file:///b", "mimeType": "text/plain", "text": "hello"}},
    ]})
    kinds = [m.kind for m in out.media]
    assert kinds == ["image", "audio", "resource_link", "resource", "resource"]
    assert out.media[1].data == wav and out.media[3].data == wav and out.media[4].text == "hello"
    assert "bytes" in out.media[1].placeholder() and base64.b64encode(wav).decode() not in out.media[1].placeholder()


def test_error_shapes() -> None:
    truto = decode_result("t", _text(json.dumps({"statusCode": 404, "error": "Not Found", "message": "no call",
                                                  "truto_is_remote_error": True}), isError=True))
    assert isinstance(truto.error, ToolError) and truto.error.status == 404
    vapi = decode_result("get_call", _text('Error: Status code: 401\nBody: {"message": "Invalid Key"}'))
    assert isinstance(vapi.error, UpstreamError) and vapi.error.status == 401 and "Invalid Key" in vapi.error.line()
    limited = decode_result("t", _text(json.dumps({"statusCode": 429, "message": "slow down"}), isError=True))
    assert isinstance(limited.error, RateLimited)
    ts = decode_result("t", _text("MCP error -32602: Tool x not found", isError=True))
    assert isinstance(ts.error, ToolError) and "-32602" in ts.error.line()
    bad = decode_result("t", _text(json.dumps({"statusCode": 400, "message": ["property x should not exist"]}),
                                   isError=True))
    assert "property x should not exist" in bad.error.line()


def test_globs_and_collisions() -> None:
    assert tool_allowed("list_all_vapi_calls", ["list_*"], [])
    assert not tool_allowed("create_a_vapi_squad", ["list_*"], [])
    assert not tool_allowed("delete_a_vapi_call_by_id", [], ["delete_*"])
    tools = [{"name": "list_calls", "inputSchema": {"type": "object"}}, {"name": "get_call"}]
    merged = merge_catalogue([("a", tools, (), ()), ("b", [{"name": "list_calls"}, {"name": "x"}], (), ("x",))])
    assert [t.name for t in merged] == ["a__list_calls", "get_call", "b__list_calls"]
    assert merged[0].mcp_name == "list_calls" and merged[2].server == "b"
