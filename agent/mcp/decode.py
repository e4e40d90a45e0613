"""Decode MCP tool results and map every error shape into the one error tree.

Shapes handled (see docs/architecture.md, "Error shapes"):
- ``isError: true`` with a Truto envelope ``{"statusCode", "error", "message", ...}`` as text;
- Vapi's npm server: a *non-error* text result starting with ``Error: Status code: N\\nBody: {...}``;
- ``isError: true`` with plain text (``MCP error -32602: ...`` from TypeScript servers);
- JSON-RPC errors (``MCPError``) and HTTP statuses captured below the SDK (mapped in ``connection``).
Content: text, JSON text, ``structuredContent``, images, audio, ``resource_link`` and embedded
resources (text or base64 blob). Base64 is decoded to bytes here and never passed on raw.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from agent import jsontext
from agent.errors import AgentError, RateLimited, ToolError, UpstreamError

_VAPI_ERROR = re.compile(r"^Error:\s*Status code:\s*(\d{3})[ \t]*(?:\r?\n\s*Body:\s*(.*))?", re.DOTALL)
_MCP_ERROR_TEXT = re.compile(r"^MCP error (-?\d+):\s*(.*)", re.DOTALL)


@dataclass
class Media:
    """A non-text content item: image, audio, a resource link, or an embedded resource."""

    kind: str  # "image" | "audio" | "resource_link" | "resource"
    mime_type: str | None = None
    uri: str | None = None
    name: str | None = None
    data: bytes | None = None  # decoded blob (image/audio/embedded blob)
    text: str | None = None  # embedded text resource

    def placeholder(self) -> str:
        """A short stand-in for the model (never the bytes)."""
        size = f", {len(self.data)} bytes" if self.data is not None else ""
        where = f" {self.uri}" if self.uri else ""
        return f"[{self.kind} {self.mime_type or 'unknown type'}{size}{where}]"


@dataclass
class ToolOutput:
    """A decoded tool result: text, parsed JSON (``data``), media, and an error when it failed."""

    tool: str
    text: str = ""
    data: Any = None
    media: list[Media] = field(default_factory=list)
    error: AgentError | None = None

    @property
    def ok(self) -> bool:
        """True when the tool succeeded."""
        return self.error is None

    def raise_for_error(self) -> ToolOutput:
        """Raise the mapped error if the tool failed; returns self otherwise (for chaining)."""
        if self.error is not None:
            raise self.error
        return self


def _parse_json(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        return jsontext.loads(stripped)
    except ValueError:
        return None


def _b64(data: str | bytes | None) -> bytes | None:
    if data is None:
        return None
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None


def _get(item: Any, name: str, default: Any = None) -> Any:
    """Attribute or key access: content items may be pydantic models or plain dicts."""
    if isinstance(item, dict):
        camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
        return item.get(name, item.get(camel, default))
    return getattr(item, name, default)


def decode_content(items: list[Any]) -> tuple[str, list[Media]]:
    """Split content items into joined text and media (blobs decoded from base64)."""
    texts: list[str] = []
    media: list[Media] = []
    for item in items or []:
        kind = _get(item, "type")
        if kind == "text":
            texts.append(_get(item, "text") or "")
        elif kind in ("image", "audio"):
            media.append(Media(kind=kind, mime_type=_get(item, "mime_type"), data=_b64(_get(item, "data"))))
        elif kind == "resource_link":
            media.append(
                Media(kind="resource_link", mime_type=_get(item, "mime_type"), uri=str(_get(item, "uri")),
                      name=_get(item, "name"))
            )
        elif kind == "resource":
            res = _get(item, "resource")
            media.append(
                Media(kind="resource", mime_type=_get(res, "mime_type"), uri=str(_get(res, "uri")),
                      data=_b64(_get(res, "blob")), text=_get(res, "text"))
            )
    return "\n".join(texts), media


def error_from_status(status: int, message: str, *, tool: str | None = None, retry_after: float | None = None,
                      body: Any = None) -> AgentError:
    """Map an HTTP-like status (from any shape) to the error tree."""
    where = f"tool {tool}: " if tool else ""
    if status == 429:
        return RateLimited(f"{where}rate limited (HTTP 429): {message}", retry_after=retry_after, status=status)
    if status in (401, 403):
        return UpstreamError(
            f"{where}authorization refused (HTTP {status}): {message}",
            hint="check the MCP URL token and API keys", status=status,
        )
    if status >= 500:
        return UpstreamError(f"{where}upstream failure (HTTP {status}): {message}", status=status)
    return ToolError(f"{where}{message} (HTTP {status})", status=status)


def _envelope_message(body: dict[str, Any]) -> str:
    message = body.get("message")
    if isinstance(message, list):
        return "; ".join(str(m) for m in message)
    raw = body.get("raw_response")
    if message is None and isinstance(raw, dict):
        return _envelope_message(raw)
    return str(message if message is not None else body.get("error", "error"))


def _error_from_payload(tool: str, text: str, data: Any) -> AgentError:
    if isinstance(data, dict) and isinstance(data.get("statusCode"), int):  # Truto / NestJS envelope
        return error_from_status(data["statusCode"], _envelope_message(data), tool=tool, body=data)
    match = _VAPI_ERROR.match(text.strip())
    if match:
        body = _parse_json(match.group(2) or "")
        message = _envelope_message(body) if isinstance(body, dict) else (match.group(2) or "").strip()
        return error_from_status(int(match.group(1)), message or "error", tool=tool, body=body)
    match = _MCP_ERROR_TEXT.match(text.strip())
    if match:
        return ToolError(f"tool {tool}: {match.group(2).strip()} (MCP error {match.group(1)})")
    return ToolError(f"tool {tool} failed: {text.strip()[:500] or 'no detail given'}")


def decode_result(tool: str, result: Any) -> ToolOutput:
    """Decode a ``CallToolResult`` (model or dict) into ``ToolOutput``, mapping failure shapes to errors."""
    text, media = decode_content(_get(result, "content") or [])
    structured = _get(result, "structured_content")
    data = structured if structured is not None else _parse_json(text)
    output = ToolOutput(tool=tool, text=text, data=data, media=media)
    if _get(result, "is_error"):
        output.error = _error_from_payload(tool, text, data)
    elif _VAPI_ERROR.match(text.strip()):
        # Vapi's npm server reports upstream failures as *successful* results whose text starts with "Error:".
        output.error = _error_from_payload(tool, text, data)
    return output
