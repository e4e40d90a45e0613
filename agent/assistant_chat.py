"""Text conversations with one of the account's Vapi assistants (``vapi-agent assistant chat``).

Two routes to Vapi's OpenAI Responses-compatible ``POST /chat/responses``:

- ``rest``: the REST API itself, streamed as server-sent events (``response.output_text.delta`` ...
  ``response.output_text.done`` ... ``response.completed``), each delta shown as it arrives. Used when
  a REST origin and key are known: ``VAPI_API_KEY`` (``https://api.vapi.ai``), or the sandbox's own
  origin and api key when the runtime runs one.
- ``mcp``: the MCP chat-response tool (``create_a_vapi_chat_response``, ``VapiFacade.chat_response``).
  An MCP result is not a stream, so the reply arrives whole; a server that passes the upstream body
  through may hand back the SSE text itself, which is parsed with the same parser.

SSE is parsed with httpx2's ``EventSource`` (derived from httpx-sse), never by hand. A stream that
ends without ``response.completed`` is an ``UpstreamError`` (exit 3): the partial text is not an
answer, and the chat id it would continue from is unknown.

Approval: creating a chat is a write by name (it creates a chat and costs money). The user asked for
it explicitly by running the command, so the command itself is the approval (the tool is added to
the gate's ``--allow`` list for this run); ``--read-only`` still refuses it, on both routes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ApprovalRequired, ConfigError, UpstreamError
from agent.mcp.decode import error_from_status
from agent.redact import redact, register_secret
from agent.runtime import Runtime

VAPI_REST_ORIGIN = "https://api.vapi.ai"
CHAT_TOOL_OPERATION = "chat.respond"
ROUTES = ("auto", "rest", "mcp")
DELTA = "response.output_text.delta"
DONE = "response.output_text.done"
COMPLETED = "response.completed"


@dataclass(frozen=True)
class RestTarget:
    """Where ``POST /chat/responses`` goes: an origin and its Bearer key (never printed)."""

    origin: str
    api_key: str = field(repr=False)

    @property
    def url(self) -> str:
        """The full endpoint URL."""
        return self.origin.rstrip("/") + "/chat/responses"


@dataclass
class ChatEvent:
    """One event of a reply: its ``type``, its JSON payload, and when it arrived (seconds since send)."""

    type: str
    data: dict[str, Any]
    at: float

    def summary(self) -> dict[str, Any]:
        """A compact form for the ``--json`` result (the completed event keeps only the response id)."""
        out: dict[str, Any] = {"type": self.type, "at": round(self.at, 4)}
        if "delta" in self.data:
            out["delta"] = self.data["delta"]
        if self.type == DONE:
            out["text"] = self.data.get("text")
        if self.type == COMPLETED:
            out["response_id"] = (self.data.get("response") or {}).get("id")
        return out


@dataclass
class ChatReply:
    """The assistant's answer to one message: its text, the chat id to continue from, every event."""

    text: str
    chat_id: str
    previous_chat_id: str | None
    route: str
    events: list[ChatEvent]

    def to_dict(self) -> dict[str, Any]:
        """One turn for the ``--json`` result."""
        return {"reply": self.text, "chat_id": self.chat_id, "previous_chat_id": self.previous_chat_id,
                "route": self.route, "events": [e.summary() for e in self.events]}


OnEvent = Callable[[ChatEvent], None]


def rest_target(rt: Runtime) -> RestTarget | None:
    """The REST origin and key for chats, if one is known (see the module docstring)."""
    if rt.settings.vapi_api_key:
        return RestTarget(VAPI_REST_ORIGIN, rt.settings.vapi_api_key)
    if rt.sandbox is not None:
        # The sandbox serves Vapi's REST API on the same origin as its MCP URL; in-process, the
        # runtime's media client routes that origin to the sandbox's ASGI app.
        return RestTarget(rt.sandbox.public_url, rt.sandbox.config.api_key)
    return None


def parse_sse_text(text: str) -> list[dict[str, Any]]:
    """The JSON events of an SSE body held as text (a tool result that carried the upstream stream)."""
    import httpx2

    request = httpx2.Request("POST", "http://tool-result.invalid/chat/responses")
    response = httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=text.encode(),
                               request=request)
    events = []
    for sse in httpx2.EventSource(response):
        payload = _event_payload(sse.event, sse.data)
        if payload is not None:
            events.append(payload)
    return events


def looks_like_sse(text: str) -> bool:
    """True when ``text`` is an SSE body (lines starting with ``data:`` or ``event:``)."""
    return any(line.startswith(("data:", "event:")) for line in text.lstrip().splitlines()[:3])


def _event_payload(name: str, data: str) -> dict[str, Any] | None:
    """One SSE event's JSON (its ``type`` defaulted from the ``event:`` line); None for keep-alives."""
    if not data.strip() or data.strip() == "[DONE]":
        return None
    try:
        payload = json.loads(data)
    except ValueError:
        raise UpstreamError(f"the chat stream sent an event that is not JSON: {redact(data[:120])!r}") from None
    if not isinstance(payload, dict):
        raise UpstreamError("the chat stream sent an event that is not a JSON object")
    if "type" not in payload and name and name != "message":
        payload["type"] = name
    return payload


def response_text(response: dict[str, Any]) -> str:
    """The assistant text of a ``ResponseObject`` (every ``output_text`` part of every message)."""
    parts = []
    for item in response.get("output") or []:
        if isinstance(item, dict) and item.get("type", "message") == "message":
            for content in item.get("content") or []:
                if isinstance(content, dict) and content.get("type") == "output_text":
                    parts.append(str(content.get("text") or ""))
    return "".join(parts)


class ReplyBuilder:
    """Folds stream events into a reply; ``finish`` fails when ``response.completed`` never came."""

    def __init__(self, source: str, route: str, previous: str | None, on_event: OnEvent | None) -> None:
        self.source, self.route, self.previous = source, route, previous
        self.on_event = on_event
        self.started = time.monotonic()
        self.events: list[ChatEvent] = []
        self.deltas: list[str] = []
        self.done_text: str | None = None
        self.response: dict[str, Any] | None = None

    def feed(self, payload: dict[str, Any]) -> None:
        """Take one event (in arrival order)."""
        kind = str(payload.get("type") or "")
        event = ChatEvent(kind, payload, time.monotonic() - self.started)
        self.events.append(event)
        if kind == DELTA:
            self.deltas.append(str(payload.get("delta") or ""))
        elif kind == DONE:
            self.done_text = str(payload.get("text") or "")
        elif kind == COMPLETED and isinstance(payload.get("response"), dict):
            self.response = payload["response"]
        elif kind in ("error", "response.failed"):
            detail = payload.get("message") or (payload.get("response") or {}).get("error") or kind
            raise UpstreamError(f"the assistant's reply failed: {redact(str(detail))}",
                                code_detail=payload.get("code"))
        if self.on_event is not None:
            self.on_event(event)

    def finish(self) -> ChatReply:
        """The reply; a stream without ``response.completed`` is reported as dropped."""
        if self.response is None:
            received = "".join(self.deltas)
            raise UpstreamError(
                f"the chat stream from {self.source} ended before response.completed "
                f"({len(self.deltas)} deltas, {len(received)} characters received); the partial reply was discarded",
                hint="try again",
            )
        if self.response.get("status") not in (None, "completed"):
            raise UpstreamError(f"the assistant's reply ended with status {self.response.get('status')!r}: "
                                f"{redact(str(self.response.get('error') or 'no detail'))}")
        chat_id = self.response.get("id")
        if not isinstance(chat_id, str) or not chat_id:
            raise UpstreamError("the chat response has no id, so the conversation cannot continue")
        text = response_text(self.response) or self.done_text or "".join(self.deltas)
        return ChatReply(text=text, chat_id=chat_id, previous_chat_id=self.previous, route=self.route,
                         events=self.events)


class AssistantChat:
    """A conversation with one assistant: each ``send`` continues from the last reply's chat id."""

    def __init__(self, rt: Runtime, assistant: dict[str, Any], *, route: str = "auto",
                 previous_chat_id: str | None = None, timeout: float = 120.0) -> None:
        if route not in ROUTES:
            raise ConfigError(f"--via {route!r} is not one of {', '.join(ROUTES)}")
        self.rt = rt
        self.assistant = assistant
        self.chat_id = previous_chat_id
        self.timeout = timeout
        self.target = rest_target(rt) if route in ("auto", "rest") else None
        if route == "rest" and self.target is None:
            raise ConfigError("--via rest needs the Vapi REST API", hint="set VAPI_API_KEY (or use the sandbox)")
        if self.target is not None:
            register_secret(self.target.api_key)
        self.route = "rest" if self.target is not None else "mcp"
        if self.route == "mcp":
            rt.vapi.require_workflow("assistant-chat")
        self._approve()

    def _approve(self) -> None:
        """The command is the approval for its chat tool; read-only refuses it (see the module docstring)."""
        gate = self.rt.hub.gate
        found = self.rt.vapi.binding(CHAT_TOOL_OPERATION)
        if gate.read_only:
            what = found[1].name if found else "POST /chat/responses"
            raise ApprovalRequired(f"refused write {what}: read-only mode (a chat is created and billed)",
                                   hint="run without --read-only", tool=what)
        if found is not None and found[1].name not in gate.allow:
            gate.allow = (*gate.allow, found[1].name)

    def body(self, message: str) -> dict[str, Any]:
        """The request body for one message (continuing the chat when there is one)."""
        body: dict[str, Any] = {"assistantId": self.assistant["id"], "input": message}
        if self.chat_id:
            body["previousChatId"] = self.chat_id
        return body

    async def send(self, message: str, on_event: OnEvent | None = None) -> ChatReply:
        """Send one message and return the reply; on success the chat continues from it."""
        if not message.strip():
            raise ConfigError("the message is empty")
        try:
            if self.route == "rest":
                reply = await self._send_rest(message, on_event)
            else:
                reply = await self._send_mcp(message, on_event)
        except UpstreamError as exc:
            # Vapi: 400 "Couldn't Get Chat. `previousChatId` X Does Not Exist." An unknown id the user
            # gave is bad input (exit 2), as everywhere an id is taken, not a server failure.
            if self.chat_id and exc.status in (400, 404) and "previouschatid" in exc.message.lower():
                raise ConfigError(f"--previous-chat-id {self.chat_id!r}: no such chat",
                                  hint="pass the whole chat id that `assistant chat` printed") from None
            raise
        self.chat_id = reply.chat_id
        return reply

    async def _send_rest(self, message: str, on_event: OnEvent | None) -> ChatReply:
        import httpx2

        assert self.target is not None
        builder = ReplyBuilder(self.target.origin, "rest", self.chat_id, on_event)
        body = {**self.body(message), "stream": True}
        # The key goes on this one request only: the media client carries no credentials of its own.
        headers = {"Authorization": f"Bearer {self.target.api_key}", "Accept": "text/event-stream"}
        try:
            async with self.rt.media_http.stream("POST", self.target.url, json=body, headers=headers,
                                                 timeout=httpx2.Timeout(self.timeout, connect=20.0)) as response:
                if response.status_code >= 400:
                    raise _http_error(response.status_code, await response.aread(), self.target.origin)
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind != "text/event-stream":  # a server that answered the whole object at once
                    for whole in _payloads_of(_json_or_text(await response.aread())):
                        builder.feed(whole)
                    return builder.finish()
                async for sse in httpx2.EventSource(response):
                    event = _event_payload(sse.event, sse.data)
                    if event is not None:
                        builder.feed(event)
        except httpx2.TransportError as exc:
            if builder.events:  # the connection broke mid-stream: same report as a clean early close
                return builder.finish()
            raise UpstreamError(f"cannot reach {self.target.origin}: {redact(str(exc)) or type(exc).__name__}",
                                hint="check the network and VAPI_API_KEY") from None
        return builder.finish()

    async def _send_mcp(self, message: str, on_event: OnEvent | None) -> ChatReply:
        found = self.rt.vapi.binding(CHAT_TOOL_OPERATION)
        tool = found[1] if found else None
        body = self.body(message)
        properties = (tool.input_schema or {}).get("properties", {}) if tool is not None else {}
        if "stream" in properties:
            body["stream"] = False  # an MCP result cannot stream: ask for the whole object
        data = await self.rt.vapi.chat_response(body)
        return reply_from_tool_result(data, previous=self.chat_id, source=tool.server if tool else "the MCP server",
                                      on_event=on_event)


def reply_from_tool_result(data: Any, *, previous: str | None, source: str = "the MCP server",
                           on_event: OnEvent | None = None) -> ChatReply:
    """The reply in a chat tool's result: a ResponseObject (possibly wrapped), or the SSE body as text."""
    builder = ReplyBuilder(source, "mcp", previous, on_event)
    for payload in _payloads_of(data):
        builder.feed(payload)
    return builder.finish()


def _payloads_of(data: Any) -> list[dict[str, Any]]:
    """Events from a chat tool's result: a ResponseObject (possibly wrapped) or an SSE body as text."""
    if isinstance(data, str):
        if looks_like_sse(data):
            return parse_sse_text(data)
        raise UpstreamError(f"the chat tool answered text that is neither JSON nor SSE: {redact(data[:120])!r}")
    if isinstance(data, dict):
        if isinstance(data.get("output"), list) or data.get("object") == "response":
            return [{"type": COMPLETED, "response": data}]
        for key in ("result", "data", "response"):
            if isinstance(data.get(key), (dict, str)):
                return _payloads_of(data[key])
    raise UpstreamError(f"the chat tool answered an unexpected shape: {redact(str(data)[:120])}")


def _json_or_text(raw: bytes) -> Any:
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _http_error(status: int, raw: bytes, origin: str) -> Exception:
    """A REST error answer as the error tree (NestJS bodies carry a message string or list)."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    message: Any = data.get("message") if isinstance(data, dict) else raw.decode("utf-8", "replace")[:200]
    if isinstance(message, list):
        message = "; ".join(str(m) for m in message)
    error = error_from_status(status, redact(str(message or "")) or f"HTTP {status}", body=data)
    if status in (401, 403):
        error.hint = "check VAPI_API_KEY" if origin == VAPI_REST_ORIGIN else "check the API key"
    error.message = f"{origin} /chat/responses: {error.message}"
    return error
