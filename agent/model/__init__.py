"""The model seam: a small ``ChatModel`` protocol, the OpenAI-compatible implementation, and prices.

Any OpenAI-compatible endpoint works (``OPENAI_BASE_URL``). The SDK's own retries are off
(``max_retries=0``): a 429 goes through our rate-limit policy, which reads ``retry-after-ms`` /
``retry-after`` / ``x-ratelimit-reset-*`` like it reads Truto's headers.

Every answer is checked before it is used: a reply that is not a chat completion (an HTML page from
a proxy, broken JSON, JSON of another shape, an event stream of something else) is a ``ModelError``
(exit 3) naming the endpoint and what came back (content type and first bytes, redacted), never an
empty answer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.config import Settings
from agent.errors import ConfigError, ModelError, unreachable_cause

# USD per 1M tokens (input, output). Overridable with --price IN,OUT; unknown models have no price.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "o4-mini": (1.10, 4.40),
}


@dataclass
class ToolCall:
    """One tool call requested by the model (``arguments`` is the raw JSON text)."""

    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; invalid JSON raises ``ModelError`` (fed back to the model)."""
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError as exc:
            raise ModelError(f"tool {self.name}: arguments are not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ModelError(f"tool {self.name}: arguments must be a JSON object")
        return value


@dataclass
class ModelTurn:
    """One assistant turn: text and/or tool calls, token usage and the finish reason."""

    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None

    def as_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


TokenCallback = Callable[[str], None]


class ChatModel(Protocol):
    """What the loop needs from a model."""

    name: str

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        on_token: TokenCallback | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ModelTurn:
        """One chat completion (streamed when ``on_token`` is given)."""
        ...


def price_for(model: str, override: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """USD per 1M (input, output) tokens: the override, the table (longest prefix), or None."""
    if override is not None:
        return override
    for name in sorted(PRICES, key=len, reverse=True):
        if model == name or model.startswith(name + "-"):
            return PRICES[name]
    return None


def require_model(settings: Settings) -> None:
    """Exit 2 with how to configure a model when none is configured."""
    if not settings.has_model:
        raise ConfigError(
            "this command needs a model and none is configured",
            hint="set OPENAI_API_KEY (and optionally OPENAI_BASE_URL for any OpenAI-compatible endpoint)",
        )


Retry = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]
MALFORMED_SHOWN = 80  # first characters of a malformed answer shown in the error
DEFAULT_BASE_URL = "https://api.openai.com/v1"  # the openai SDK's, when OPENAI_BASE_URL is not set


def _host_of(url: str) -> str:
    """Host and port of an endpoint URL, never its path or credentials (safe to print)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "the model endpoint"
    return f"{host}:{port}" if port else host


class OpenAIChatModel:
    """Chat Completions with tools and streaming, through the openai SDK (retries off; ours on)."""

    def __init__(self, settings: Settings, *, retry: Retry | None = None, http_client: Any = None) -> None:
        import openai

        self.name = settings.effective_model
        self._retry = retry
        self._base_url_set = bool(settings.openai_base_url)
        self.endpoint = _host_of(settings.openai_base_url or DEFAULT_BASE_URL)
        self._client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key or "not-needed",
            base_url=settings.openai_base_url,
            max_retries=0,
            http_client=http_client,
        )

    async def aclose(self) -> None:
        """Close the HTTP client (an unclosed client breaks the next event loop's GC)."""
        await self._client.close()

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        on_token: TokenCallback | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ModelTurn:
        """One completion; streaming when ``on_token`` is given. Errors become ``ModelError``."""
        kwargs: dict[str, Any] = {"model": self.name, "messages": messages}
        if tools:
            kwargs["tools"] = tools
            kwargs["parallel_tool_calls"] = True
        if response_format is not None:
            kwargs["response_format"] = response_format

        async def once() -> ModelTurn:
            if on_token is None:
                raw = await self._client.chat.completions.with_raw_response.create(**kwargs)
                return self._from_response(self._validated(raw.http_response))
            return await self._stream(kwargs, on_token)

        try:
            return await (self._retry(once) if self._retry else once())
        except Exception as exc:
            raise self._map_error(exc) from None

    @staticmethod
    def _from_response(response: Any) -> ModelTurn:
        choice = response.choices[0]
        message = choice.message
        calls = [ToolCall(c.id, c.function.name, c.function.arguments or "") for c in message.tool_calls or []]
        usage = response.usage
        return ModelTurn(
            content=message.content, tool_calls=calls, finish_reason=choice.finish_reason,
            input_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            output_tokens=getattr(usage, "completion_tokens", 0) or 0,
        )

    def _validated(self, response: Any) -> Any:
        """The ``ChatCompletion`` in an HTTP answer, or a ``ModelError`` saying what came back instead."""
        from openai.types.chat import ChatCompletion
        from pydantic import ValidationError

        body = response.content
        try:
            data = json.loads(body)
        except ValueError:
            raise self._malformed(response, body, "not JSON") from None
        try:
            completion = ChatCompletion.model_validate(data)
        except ValidationError:
            raise self._malformed(response, body, "not a chat completion") from None
        if not completion.choices:
            raise self._malformed(response, body, "a chat completion without choices")
        return completion

    def _malformed(self, response: Any, body: bytes, what: str) -> ModelError:
        """One line: the endpoint, what was wrong, the content type and the first bytes (redacted)."""
        from agent.redact import redact

        content_type = response.headers.get("content-type") or "no content type"
        head = " ".join(body[:MALFORMED_SHOWN].decode("utf-8", "replace").split())
        return ModelError(
            f"the model endpoint {redact(str(self._client.base_url))} answered {what} "
            f"({content_type}, HTTP {response.status_code}): {redact(head)!r}",
            hint="check OPENAI_BASE_URL: it must be an OpenAI-compatible /v1 endpoint",
        )

    async def _stream(self, kwargs: dict[str, Any], on_token: TokenCallback) -> ModelTurn:
        raw = await self._client.chat.completions.with_raw_response.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
        response = raw.http_response
        if "text/event-stream" not in response.headers.get("content-type", ""):
            body = await response.aread()
            # A JSON completion where a stream was asked for is still not what was asked for.
            raise self._malformed(response, body, "no event stream")
        stream = raw.parse()
        try:
            return await self._read_stream(stream, on_token)
        except (ValueError, AttributeError, TypeError, KeyError) as exc:
            # A stream event that is not JSON, or JSON that is not a chunk (the SDK builds chunks unvalidated).
            raise self._malformed(response, str(exc).encode(), "an event stream of something else") from None

    async def _read_stream(self, stream: Any, on_token: TokenCallback) -> ModelTurn:
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        turn = ModelTurn()
        chunks = 0
        async for chunk in stream:
            if not isinstance(getattr(chunk, "choices", None), list):
                raise ValueError(f"a stream event without choices: {str(chunk)[:MALFORMED_SHOWN]}")
            chunks += 1
            if chunk.usage is not None:
                turn.input_tokens = chunk.usage.prompt_tokens or 0
                turn.output_tokens = chunk.usage.completion_tokens or 0
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            delta = choice.delta
            if delta.content:
                text.append(delta.content)
                on_token(delta.content)
            # Tool-call fragments arrive keyed by index; the first carries id and name.
            for fragment in delta.tool_calls or []:
                slot = calls.setdefault(fragment.index, {"id": "", "name": "", "arguments": ""})
                if fragment.id:
                    slot["id"] = fragment.id
                if fragment.function is not None:
                    slot["name"] += fragment.function.name or ""
                    slot["arguments"] += fragment.function.arguments or ""
            if choice.finish_reason:
                turn.finish_reason = choice.finish_reason
        if not chunks:
            raise ValueError("the stream ended without a single chunk")
        turn.content = "".join(text) or None
        turn.tool_calls = [ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())]
        return turn

    def _map_error(self, exc: Exception) -> Exception:
        import openai

        from agent.errors import AgentError

        if isinstance(exc, AgentError):
            return exc
        if isinstance(exc, openai.AuthenticationError):
            return ModelError("the model endpoint refused the API key (HTTP 401)", hint="check OPENAI_API_KEY",
                              status=401)
        if isinstance(exc, openai.APIStatusError):
            detail = getattr(exc, "message", str(exc))
            return ModelError(f"the model endpoint answered HTTP {exc.status_code}: {detail}", status=exc.status_code)
        if isinstance(exc, openai.APIConnectionError):
            if self._base_url_set:
                hint = "check OPENAI_BASE_URL and that the server runs"
            else:
                hint = "OPENAI_BASE_URL is not set, so the default OpenAI endpoint is used: check the network"
            if isinstance(exc, openai.APITimeoutError):
                return ModelError(f"the model endpoint {self.endpoint} did not answer in time", hint=hint)
            cause = unreachable_cause(exc) or "the connection failed"
            return ModelError(f"cannot reach the model endpoint {self.endpoint}: {cause}", hint=hint)
        return ModelError(f"model call failed: {type(exc).__name__}: {exc}")
