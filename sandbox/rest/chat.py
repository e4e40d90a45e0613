"""``POST /chat`` and ``POST /chat/responses``: text chats with a workspace assistant.

The "brain" is deliberately simple and deterministic: it answers in the assistant's voice (its
``firstMessage`` opens a new conversation, ``{{variables}}`` from ``assistantOverrides`` are filled
in) and reacts to a few topics in the user's last message. Chats are stored in the workspace
(kind ``chats``), so ``previousChatId`` continues a conversation and ``GET /chat`` lists them.

Wire shapes (vapi-api.md §11):
- ``/chat``: ``stream`` defaults to **false** → a ``Chat``; ``stream: true`` → SSE lines
  ``data: {"id", "path": "chat.output[0].content", "delta"}``.
- ``/chat/responses``: ``stream`` defaults to **true** → SSE ``response.output_text.delta``* →
  ``response.output_text.done`` → ``response.completed`` (the full ``ResponseObject``), then the
  connection closes (no ``[DONE]``); ``stream: false`` → the ``ResponseObject`` as JSON. The
  ResponseObject ``id`` is the stored chat's id, so it can be passed back as ``previousChatId``.
- ``config.drop_sse``: the stream ends cleanly after two deltas, without a completion event
  (the client sees the connection close; it must not treat the partial text as an answer).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.responses import Response, StreamingResponse

from sandbox.rest.endpoints import Ctx, Reply
from sandbox.rest.observe import ServedResponse, notify
from sandbox.rest.schemas import CHAT_BODY
from sandbox.rest.validation import bad_request
from sandbox.world.ids import parse_iso

if TYPE_CHECKING:
    from sandbox.world.workspace import Workspace

DROP_AFTER_DELTAS = 2
_ECHOED = ("name", "sessionId", "previousChatId", "assistantOverrides")
_TOPICS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("thanks", ("thank",), "You're welcome! Is there anything else I can help you with today?"),
    ("human", ("human", "agent", "representative", "real person", "manager"),
     "I can connect you with a member of our team. Before I do, may I have your name?"),
    ("cancel", ("cancel", "unsubscribe", "stop my", "close my account"),
     "I'm sorry to hear you'd like to cancel. May I ask what prompted that, so I can see if there's a fix?"),
    ("billing", ("bill", "invoice", "charge", "payment", "refund", "price", "cost", "renew"),
     "I can help with billing. Could you share the invoice number or the email address on the account?"),
    ("schedule", ("appointment", "book", "schedule", "reschedule", "available", "tomorrow", "calendar"),
     "Happy to help with scheduling. Which day and time would work best for you?"),
    ("technical", ("error", "broken", "not working", "doesn't work", "crash", "login", "log in", "password"),
     "Let's get that fixed. What exactly happens when you try, and when did it start?"),
    ("greeting", ("hello", "hi", "hey", "good morning", "good afternoon"), "How can I help you today?"),
)


def _topic_reply(text: str) -> str:
    lowered = text.lower()
    words = set(re.findall(r"[a-z']+", lowered))
    for _name, keys, reply in _TOPICS:
        # multi-word keys match as phrases, short ones as whole words, others as word prefixes
        if any(key in lowered if " " in key else (key in words if len(key) <= 3 else
               any(w.startswith(key) for w in words)) for key in keys):
            return reply
    snippet = " ".join(text.split())[:80]
    return f'Thanks for explaining. Just to make sure I understand: "{snippet}". What would you like me to do next?'


def _fill(text: str, variables: dict[str, Any]) -> str:
    """Fill Liquid ``{{name}}`` placeholders; unknown ones become "there" (names) or vanish."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in variables:
            return str(variables[key])
        return "there" if key.lower().endswith("name") else ""

    filled = re.sub(r"\{\{\s*([\w.]+)\s*\}\}", value, text)
    return re.sub(r"\s+([,.!?])", r"\1", re.sub(r" {2,}", " ", filled)).strip()


def compose_reply(assistant: dict[str, Any], history: list[dict[str, Any]], text: str,
                  variables: dict[str, Any] | None = None) -> str:
    """The assistant's deterministic answer to ``text`` given the earlier conversation."""
    spoke_before = any(m.get("role") == "assistant" for m in history)
    opener = "" if spoke_before else str(assistant.get("firstMessage") or "").strip()
    reply = _topic_reply(text)
    answer = f"{opener} {reply}".strip() if opener and not opener.endswith(reply) else (opener or reply)
    return _fill(answer, variables or {})


def _input_messages(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [dict(m) for m in value]


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content", message.get("message", ""))
            if isinstance(content, list):  # content parts: keep the text ones
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content)
    return ""


def _assistant_for(ws: Workspace, body: dict[str, Any], previous: dict[str, Any] | None) -> tuple[
        dict[str, Any], dict[str, Any]]:
    """The answering assistant and the chat keys naming it (inherited from ``previous`` if absent)."""
    from sandbox.world.workspace import NotFound

    source = body
    if not any(body.get(k) is not None for k in ("assistantId", "assistant", "squadId", "squad")):
        if previous is None:
            raise bad_request(["Couldn't Get Assistant. Need assistantId, assistant, squadId or squad."])
        source = previous
    keys = {k: source[k] for k in ("assistantId", "assistant", "squadId", "squad") if source.get(k) is not None}
    try:
        if source.get("assistantId") is not None:
            return ws.get_object("assistants", source["assistantId"]), keys
        if isinstance(source.get("assistant"), dict):
            return source["assistant"], keys
        squad = ws.get_object("squads", source["squadId"]) if source.get("squadId") is not None else source["squad"]
    except NotFound as exc:
        where = "assistantId" if exc.kind == "assistants" else "squadId"
        label = "Assistant" if exc.kind == "assistants" else "Squad"
        raise bad_request([f"Couldn't Get {label}. `{where}` {exc.id} Does Not Exist."]) from None
    first = (squad.get("members") or [{}])[0]  # the first member starts the conversation
    if first.get("assistantId") is not None:
        try:
            return ws.get_object("assistants", first["assistantId"]), keys
        except NotFound:
            pass
    return dict(first.get("assistant") or {}), keys


def _previous(ws: Workspace, body: dict[str, Any]) -> dict[str, Any] | None:
    from sandbox.world.workspace import NotFound

    if body.get("previousChatId") is not None:
        try:
            return ws.get_object("chats", body["previousChatId"])
        except NotFound:
            message = f"Couldn't Get Chat. `previousChatId` {body['previousChatId']} Does Not Exist."
            raise bad_request([message]) from None
    if body.get("sessionId") is not None:
        earlier = ws.list_objects("chats", session_id=body["sessionId"], limit=1)
        return earlier[0] if earlier else None
    return None


def create_chat(ws: Workspace, body: dict[str, Any]) -> dict[str, Any]:
    """Answer ``body`` (a validated CreateChatDTO) and store the chat; returns the stored Chat."""
    if body.get("sessionId") is not None and body.get("previousChatId") is not None:
        raise bad_request(["sessionId and previousChatId are mutually exclusive"])
    previous = _previous(ws, body)
    assistant, keys = _assistant_for(ws, body, previous)
    history = (previous.get("messages") or []) + (previous.get("output") or []) if previous else []
    incoming = _input_messages(body["input"])
    variables = ((body.get("assistantOverrides") or {}).get("variableValues")) or {}
    reply = compose_reply(assistant, history, _last_user_text(incoming), variables)
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in history + incoming) * 4 // 3 + 20
    completion_tokens = len(reply.split()) * 4 // 3 + 1
    llm_cost = round(prompt_tokens * 2.5e-6 + completion_tokens * 1.0e-5, 6)
    chat: dict[str, Any] = {
        **keys,
        **{k: body[k] for k in _ECHOED if body.get(k) is not None},
        "input": body["input"],
        "messages": history + incoming,
        "output": [{"role": "assistant", "content": reply}],
        "costs": [
            {"type": "model", "model": (assistant.get("model") or {"provider": "openai", "model": "gpt-4o"}),
             "promptTokens": prompt_tokens, "completionTokens": completion_tokens, "cost": llm_cost},
            {"type": "chat", "cost": 0.01},
        ],
        "cost": round(llm_cost + 0.01, 6),
    }
    if chat.get("sessionId") is None and previous is not None and previous.get("sessionId"):
        chat["sessionId"] = previous["sessionId"]
    return ws.create_object("chats", chat)


def _chunks(text: str) -> list[str]:
    """Word-sized deltas whose concatenation is exactly ``text``."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def response_object(chat: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-Responses-style ``ResponseObject`` for a stored chat (snake_case, as Vapi sends it)."""
    text = chat["output"][0]["content"]
    return {
        "id": chat["id"],
        "object": "response",
        "created_at": int(parse_iso(chat["createdAt"]).timestamp()),
        "status": "completed",
        "error": None,
        "output": [
            {
                "id": _message_id(chat["id"]),
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
    }


def _message_id(chat_id: str) -> str:
    return "msg_" + hashlib.sha256(chat_id.encode()).hexdigest()[:24]


def _sse(route: str, events: list[dict[str, Any]], *, drop: bool, named: bool) -> Response:
    async def stream() -> AsyncIterator[bytes]:
        deltas = 0
        for event in events:
            is_delta = event.get("type") == "response.output_text.delta" or "delta" in event
            if drop and deltas >= DROP_AFTER_DELTAS:
                return  # drop_sse: the connection just closes, no completion
            notify(ServedResponse("POST", route, 200, event, sse=True))
            head = f"event: {event['type']}\n" if named else ""
            yield f"{head}data: {json.dumps(event, separators=(',', ':'))}\n\n".encode()
            deltas += int(is_delta)
            await asyncio.sleep(0)  # let the client see events as they come

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


async def post_chat(ctx: Ctx) -> Reply | Response:
    """``POST /chat``: a Chat (201), or the ``{id, path, delta}`` SSE stream when ``stream`` is true."""
    body = await ctx.body(CHAT_BODY)
    chat = create_chat(ctx.sandbox.workspace, body)
    if not body.get("stream", False):
        return Reply(chat, 201)
    events: list[dict[str, Any]] = []
    for delta in _chunks(chat["output"][0]["content"]):
        event: dict[str, Any] = {"id": chat["id"], "path": "chat.output[0].content", "delta": delta}
        if chat.get("sessionId"):
            event["sessionId"] = chat["sessionId"]
        events.append(event)
    return _sse(ctx.route, events, drop=ctx.sandbox.config.drop_sse, named=False)


async def post_chat_responses(ctx: Ctx) -> Reply | Response:
    """``POST /chat/responses``: SSE by default; ``stream: false`` gives the ResponseObject JSON."""
    body = await ctx.body(CHAT_BODY)
    chat = create_chat(ctx.sandbox.workspace, body)
    response = response_object(chat)
    if body.get("stream", True) is False:
        return Reply(response, 201)
    item_id = response["output"][0]["id"]
    text = response["output"][0]["content"][0]["text"]
    place = {"item_id": item_id, "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.output_text.delta", **place, "delta": d} for d in _chunks(text)
    ]
    events.append({"type": "response.output_text.done", **place, "text": text})
    events.append({"type": "response.completed", "response": response})
    return _sse(ctx.route, events, drop=ctx.sandbox.config.drop_sse, named=True)
