"""A scripted OpenAI-compatible server on 127.0.0.1 for tests (real HTTP, real openai SDK).

``ScriptedOpenAI`` answers ``POST /v1/chat/completions`` from a queue of ``Turn``s (text, tool
calls, usage, or an error such as a 429 with ``retry-after-ms``), JSON or ``stream: true`` SSE with
tool-call deltas keyed by index and the usage chunk when ``stream_options.include_usage`` is set,
as the real API sends them. ``GET /v1/models`` lists models. Every request body is recorded.
Requests OpenAI would refuse get its 400 (see ``rules.py``) without consuming a turn. A request
that arrives when no turn is left gets a loud HTTP 500 and sets ``exhausted``;
``assert_all_used()`` (teardown) fails on that and on turns left unused.

Independent of ``agent/`` by design: it must not share code with what it tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.openai_fake.rules import Violation, validate_request


@dataclass(frozen=True)
class ToolCall:
    """One function call the scripted model makes; ``arguments`` is a JSON string or a dict."""

    name: str
    arguments: str | Mapping[str, Any] = "{}"
    id: str | None = None

    def arguments_json(self) -> str:
        """The arguments as the JSON string the API sends."""
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True)
class Usage:
    """Token counts reported for a turn."""

    prompt_tokens: int = 10
    completion_tokens: int = 5
    cached_tokens: int = 0

    def body(self) -> dict[str, Any]:
        """The ``usage`` object of a completion."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error the scripted server answers with instead of a completion."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def rate_limited(cls, *, retry_after_ms: int | None = 1200, retry_after: int | None = None) -> ErrorReply:
        """A 429 shaped like OpenAI's request-rate limit, with the retry headers it sends."""
        headers = {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0",
                   "x-ratelimit-reset-requests": "1.2s"}
        if retry_after_ms is not None:
            headers["retry-after-ms"] = str(retry_after_ms)
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        return cls(429, "Rate limit reached for gpt-4o-mini in organization org-fake on requests per min (RPM): "
                        "Limit 500, Used 500, Requested 1. Please try again in 1.2s.",
                   "requests", "rate_limit_exceeded", None, headers)

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class RawReply:
    """Bytes answered as they are, whatever was asked (a proxy's HTML page, broken JSON, garbage SSE)."""

    body: bytes
    content_type: str
    status: int = 200


@dataclass(frozen=True)
class Turn:
    """One scripted answer: content and/or tool calls with usage, an ``error``, or ``raw`` bytes."""

    content: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    usage: Usage = Usage()
    error: ErrorReply | None = None
    raw: RawReply | None = None
    finish_reason: str | None = None  # default: "tool_calls" when there are calls, else "stop"

    @classmethod
    def text(cls, content: str, **usage: int) -> Turn:
        """A plain text answer."""
        return cls(content=content, usage=Usage(**usage))

    @classmethod
    def calls(cls, *calls: ToolCall, content: str | None = None, **usage: int) -> Turn:
        """An answer that calls tools (in parallel when several are given)."""
        return cls(content=content, tool_calls=calls, usage=Usage(**usage))

    @classmethod
    def fail(cls, error: ErrorReply) -> Turn:
        """An error answer."""
        return cls(error=error)

    @classmethod
    def malformed(cls, body: str | bytes, content_type: str = "text/html", status: int = 200) -> Turn:
        """An answer that is not a chat completion at all (sent as is, streamed or not)."""
        data = body.encode() if isinstance(body, str) else body
        return cls(raw=RawReply(data, content_type, status))


@dataclass
class RecordedRequest:
    """A request the server received (``authorization`` redacted)."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    violation: Violation | None = None


class ScriptedOpenAI:
    """The scripted OpenAI-compatible app and its state (thread-safe: uvicorn runs in another thread)."""

    def __init__(self, turns: Sequence[Turn] = (), *, validate: bool = True, models: Sequence[str] = ("gpt-4o-mini",),
                 chunk_size: int = 7, chunk_delay: float = 0.0) -> None:
        self._turns: list[Turn] = list(turns)
        self._lock = threading.Lock()
        self.validate = validate
        self.models = list(models)
        self.chunk_size = chunk_size
        self.chunk_delay = chunk_delay  # seconds between streamed chunks (a slow model, for Ctrl-C tests)
        self.requests: list[RecordedRequest] = []
        self.exhausted = False
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
        ])

    # ------------------------------------------------------------ script
    def reset(self, turns: Sequence[Turn] = ()) -> None:
        """Forget all requests and turns (lets one served instance back many tests)."""
        with self._lock:
            self._turns = list(turns)
            self.requests = []
            self.exhausted = False

    def add(self, *turns: Turn) -> None:
        """Queue more turns."""
        with self._lock:
            self._turns.extend(turns)

    @property
    def remaining(self) -> int:
        """Turns not yet used."""
        with self._lock:
            return len(self._turns)

    @property
    def rejections(self) -> list[Violation]:
        """The 400s answered so far (requests OpenAI would have refused)."""
        return [r.violation for r in self.requests if r.violation is not None]

    def bodies(self) -> list[dict[str, Any]]:
        """Recorded request bodies, in arrival order."""
        return [r.body for r in self.requests]

    def assert_all_used(self) -> None:
        """Fail when a request found no turn left, or when scripted turns were never requested."""
        problems = []
        if self.exhausted:
            problems.append("a request arrived after the script ran out (see the HTTP 500 it got)")
        if self.remaining:
            problems.append(f"{self.remaining} scripted turn(s) never requested")
        assert not problems, "scripted OpenAI: " + "; ".join(problems)

    # ------------------------------------------------------------ HTTP
    async def _models(self, request: Request) -> Response:
        data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "openai"} for m in self.models]
        return JSONResponse({"object": "list", "data": data})

    async def _chat(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": {"message": "We could not parse the JSON body of your request.",
                                           "type": "invalid_request_error", "param": None, "code": None}}, 400)
        headers = {k: ("<redacted>" if k == "authorization" else v) for k, v in request.headers.items()}
        record = RecordedRequest(request.url.path, body, headers)
        violation = validate_request(body) if self.validate else None
        with self._lock:
            self.requests.append(record)
            if violation is not None:
                record.violation = violation
                return JSONResponse(violation.body(), 400, headers=self._request_id())
            if not self._turns:
                self.exhausted = True
                n = len(self.requests)
                return JSONResponse({"error": {
                    "message": f"scripted OpenAI fake: request #{n} arrived but no scripted turn is left",
                    "type": "server_error", "param": None, "code": "fake_script_exhausted"}}, 500)
            turn = self._turns.pop(0)
        if turn.raw is not None:
            return Response(turn.raw.body, turn.raw.status, headers={"content-type": turn.raw.content_type,
                                                                     **self._request_id()})
        if turn.error is not None:
            return JSONResponse(turn.error.body(), turn.error.status, headers={**turn.error.headers,
                                                                                **self._request_id()})
        completion_id = f"chatcmpl-fake{next(self._ids):06d}"
        calls = [(c.id or self._call_id(completion_id, i), c) for i, c in enumerate(turn.tool_calls)]
        finish = turn.finish_reason or ("tool_calls" if calls else "stop")
        model = str(body.get("model", "gpt-4o-mini"))
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = self._chunks(completion_id, model, turn, calls, finish, include_usage)
            return StreamingResponse(_sse(chunks, self.chunk_delay), media_type="text/event-stream",
                                     headers=self._request_id())
        message: dict[str, Any] = {"role": "assistant", "content": turn.content, "refusal": None, "annotations": []}
        if calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json()}}
                for cid, c in calls
            ]
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": turn.usage.body(), "service_tier": "default", "system_fingerprint": "fp_fake",
        }, headers=self._request_id())

    def _request_id(self) -> dict[str, str]:
        return {"x-request-id": f"req_fake{next(self._ids):06d}"}

    @staticmethod
    def _call_id(completion_id: str, index: int) -> str:
        # Real ids are "call_" + 24 characters; derived from the completion so replays are stable.
        return "call_" + hashlib.sha256(f"{completion_id}:{index}".encode()).hexdigest()[:24]

    def _chunks(self, cid: str, model: str, turn: Turn, calls: list[tuple[str, ToolCall]], finish: str,
                include_usage: bool) -> Iterator[dict[str, Any]]:
        created = int(time.time())

        def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                   "system_fingerprint": "fp_fake",
                                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]}
            if include_usage:
                out["usage"] = None  # every chunk carries "usage": null until the last one
            return out

        size = self.chunk_size
        first: dict[str, Any] = {"role": "assistant", "content": "" if turn.content is not None else None,
                                 "refusal": None}
        text = turn.content or ""
        if text:
            yield chunk(first)
        for start in range(0, len(text), size):
            yield chunk({"content": text[start:start + size]})
        for index, (call_id, call) in enumerate(calls):
            # The first delta of a call carries id, type and name; argument text follows in pieces.
            # Without text, the API puts the first call's header into the role chunk itself.
            header = {"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                      "function": {"name": call.name, "arguments": ""}}]}
            yield chunk({**first, **header} if index == 0 and not text else header)
            args = call.arguments_json()
            for start in range(0, len(args), size):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": args[start:start + size]}}]})
        if not text and not calls:
            yield chunk(first)
        yield chunk({}, finish)
        if include_usage:
            yield {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "system_fingerprint": "fp_fake", "choices": [], "usage": turn.usage.body()}

    # ------------------------------------------------------------ serving
    @contextmanager
    def serve(self) -> Iterator[str]:
        """Run on 127.0.0.1 (random port) in a thread; yields the base URL ending in ``/v1``."""
        with serve_app(self.app) as origin:
            yield f"{origin}/v1"


async def _sse(chunks: Iterator[dict[str, Any]], delay: float = 0.0) -> AsyncIterator[bytes]:
    for item in chunks:
        yield f"data: {json.dumps(item)}\n\n".encode()
        if delay:
            await asyncio.sleep(delay)
    yield b"data: [DONE]\n\n"


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a daemon thread on a free loopback port; yields the origin."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"openai-fake:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("scripted OpenAI server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
