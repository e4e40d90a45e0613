"""The scripted OpenAI-compatible server, exercised through the real ``openai`` SDK over loopback HTTP.

Every row of ``tests/openai_fake/rules.py`` has a case here showing it rejects a request OpenAI
rejects, with the exact error text, ``param``, ``code`` and body shape.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import openai
import pytest

from tests.openai_fake import RULES, ErrorReply, ScriptedOpenAI, ToolCall, Turn, validate_request

USER = {"role": "user", "content": "Hello"}


def fn(name: str = "get_call", parameters: Any = None, *, strict: bool = False, **extra: Any) -> dict[str, Any]:
    """A chat-completions function tool param."""
    params = {"type": "object", "properties": {}} if parameters is None else parameters
    return {"type": "function", "function": {"name": name, "parameters": params, "strict": strict, **extra}}


def closed(properties: dict[str, Any]) -> dict[str, Any]:
    """A strict-valid object schema over ``properties``."""
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def assistant_calls(*ids: str) -> dict[str, Any]:
    """An assistant history message that called tools with the given ids."""
    calls = [{"id": i, "type": "function", "function": {"name": "get_call", "arguments": "{}"}} for i in ids]
    return {"role": "assistant", "content": None, "tool_calls": calls}


def tool_result(call_id: str) -> dict[str, Any]:
    """A tool message answering ``call_id``."""
    return {"role": "tool", "tool_call_id": call_id, "content": "{}"}


S = "Invalid schema for function 'get_call': "
FP = ("tools[0].function.parameters", "invalid_function_parameters")
# rule id -> (request fields beyond model, expected message, param, code)
CASES: dict[str, tuple[dict[str, Any], str, str | None, str | None]] = {
    "messages_empty": (
        {"messages": []},
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        "messages", "empty_array"),
    "tools_too_many": (
        {"tools": [fn(f"tool_{i}") for i in range(150)]},
        "Invalid 'tools': array too long. Expected an array with maximum length 128, but got an array with length "
        "150 instead.", "tools", "array_above_max_length"),
    "tool_name_pattern": (
        {"tools": [fn("vapi.calls.list")]},
        "Invalid 'tools[0].function.name': string does not match pattern. Expected a string that matches the pattern "
        "'^[a-zA-Z0-9_-]+$'.", "tools[0].function.name", "invalid_value"),
    "tool_name_length": (
        {"tools": [fn("x" * 70)]},
        "Invalid 'tools[0].function.name': string too long. Expected a string with maximum length 64, but got a "
        "string with length 70 instead.", "tools[0].function.name", "string_above_max_length"),
    "tool_description_length": (
        {"tools": [fn(description="d" * 2000)]},
        "Invalid 'tools[0].function.description': string too long. Expected a string with maximum length 1024, but "
        "got a string with length 2000 instead.", "tools[0].function.description", "string_above_max_length"),
    "schema_root_type": (
        {"tools": [fn(parameters={"oneOf": [{"type": "object", "properties": {}}]})]},
        S + "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"None\"'.", *FP),
    "schema_root_combinators": (
        {"tools": [fn(parameters={"type": "object", "properties": {}, "anyOf": [{"required": ["a"]}]})]},
        S + "schema must have type 'object' and not have 'oneOf'/'anyOf'/'allOf'/'enum'/'not' at the top level.", *FP),
    "schema_root_properties": (
        {"tools": [fn(parameters={"type": "object"})]},
        S + "In context=(), object schema missing properties.", *FP),
    "schema_array_items": (
        {"tools": [fn(parameters={"type": "object", "properties": {"tags": {"type": "array"}}})]},
        S + "In context=('properties', 'tags'), array schema missing items.", *FP),
    "schema_ref_unresolvable": (
        {"tools": [fn(parameters={"type": "object", "properties": {"f": {"$ref": "#/$defs/Filter"}}})]},
        S + "In context=('properties', 'f'), reference to component '#/$defs/Filter' which was not found in the "
        "schema.", *FP),
    "schema_ref_top_level": (
        {"tools": [fn(strict=True, parameters=closed({"a": {"type": "string"}, "b": {"$ref": "#/properties/a"}}))]},
        S + "In context=('properties', 'b'), reference can only point to definitions defined at the top level of "
        "the schema.", *FP),
    "schema_ref_siblings": (
        {"tools": [fn(strict=True, parameters={**closed({"a": {"$ref": "#/$defs/A", "description": "x"}}),
                                               "$defs": {"A": {"type": "string"}}})]},
        S + "In context=('properties', 'a'), $ref cannot have keywords {'description'}.", *FP),
    "schema_type_key": (
        {"tools": [fn(strict=True, parameters=closed({"v": {"const": "fact"}}))]},
        S + "In context=('properties', 'v'), schema must have a 'type' key.", *FP),
    "schema_not_permitted": (
        {"tools": [fn(strict=True, parameters=closed({"n": {"type": "integer", "default": 3}}))]},
        S + "In context=('properties', 'n'), 'default' is not permitted.", *FP),
    "schema_format": (
        {"tools": [fn(strict=True, parameters=closed({"url": {"type": "string", "format": "uri"}}))]},
        S + "In context=('properties', 'url'), 'uri' is not a valid format.", *FP),
    "schema_nested_properties": (
        {"tools": [fn(strict=True, parameters=closed({"m": {"type": "object", "additionalProperties": False}}))]},
        S + "In context=('properties', 'm'), object schema missing properties.", *FP),
    "schema_additional_properties": (
        {"tools": [fn(strict=True, parameters={"type": "object", "properties": {}})]},
        S + "In context=(), 'additionalProperties' is required to be supplied and to be false.", *FP),
    "schema_required_all": (
        {"tools": [fn(strict=True, parameters={**closed({"a": {"type": "string"}, "b": {"type": "string"}}),
                                               "required": ["a"]})]},
        S + "In context=(), 'required' is required to be supplied and to be an array including every key in "
        "properties. Missing 'b'.", *FP),
    "schema_metaschema": (
        {"tools": [fn(parameters={"type": "object", "properties": {}, "required": None})]},
        S + "None is not of type 'array'", *FP),
    "tool_message_orphan": (
        {"messages": [USER, tool_result("call_1")]},
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
        "messages.[1].role", None),
    "tool_message_unknown_id": (
        {"messages": [USER, assistant_calls("call_1"), tool_result("call_1"), tool_result("call_9")]},
        "Invalid parameter: 'tool_call_id' of 'call_9' not found in 'tool_calls' of previous message.",
        "messages.[3].tool_call_id", None),
    "tool_calls_unanswered": (
        {"messages": [USER, assistant_calls("call_1", "call_2"), tool_result("call_1"), USER]},
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. "
        "The following tool_call_ids did not have response messages: call_2", "messages.[1].role", None),
    "history_call_fields": (
        {"messages": [USER, assistant_calls("call_" + "x" * 45), tool_result("call_" + "x" * 45)]},
        "Invalid 'messages[1].tool_calls[0].id': string too long. Expected a string with maximum length 40, but got "
        "a string with length 50 instead.", "messages[1].tool_calls[0].id", "string_above_max_length"),
}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ScriptedOpenAI, str]]:
    """One scripted server on loopback for the module (starting uvicorn per test is the slow part)."""
    shared = ScriptedOpenAI()
    with shared.serve() as base_url:
        yield shared, base_url


@pytest.fixture
def fake(served: tuple[ScriptedOpenAI, str]) -> ScriptedOpenAI:
    """The served scripted server, emptied for this test."""
    served[0].reset()
    return served[0]


@pytest.fixture
async def client(served: tuple[ScriptedOpenAI, str]) -> AsyncIterator[openai.AsyncOpenAI]:
    """The real SDK pointed at the fake over loopback, retries off."""
    async with openai.AsyncOpenAI(base_url=served[1], api_key="sk-test", max_retries=0) as sdk:
        yield sdk


def test_every_rule_has_a_case() -> None:
    assert set(CASES) == {rule.id for rule in RULES}
    assert len({rule.id for rule in RULES}) == len(RULES)
    for rule in RULES:
        assert rule.note and rule.template, rule.id


@pytest.mark.parametrize("rule_id", list(CASES))
async def test_rule_rejects_with_openai_error(rule_id: str, fake: ScriptedOpenAI, client: openai.AsyncOpenAI) -> None:
    fields, message, param, code = CASES[rule_id]
    request = {"model": "gpt-4o-mini", "messages": [USER], **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(**request)
    error = caught.value
    assert error.status_code == 400
    assert error.response.json() == {"error": {"message": message, "type": "invalid_request_error",
                                               "param": param, "code": code}}
    assert (error.message, error.param, error.code, error.type) == (
        f"Error code: 400 - {message}", param, code, "invalid_request_error")
    assert [v.rule for v in fake.rejections] == [rule_id]
    fake.assert_all_used()  # a refused request consumes no turn


def test_strict_only_rules_do_not_apply_without_strict() -> None:
    for rule in RULES:
        if not rule.strict_only:
            continue
        fields = CASES[rule.id][0]
        relaxed = [{**t, "function": {**t["function"], "strict": False}} for t in fields["tools"]]
        assert validate_request({"model": "m", "messages": [USER], "tools": relaxed}) is None, rule.id


def test_response_format_strict_schema_is_checked() -> None:
    body = {"model": "m", "messages": [USER], "response_format": {"type": "json_schema", "json_schema": {
        "name": "verdict", "strict": True, "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}}}
    violation = validate_request(body)
    assert violation is not None
    assert violation.message == ("Invalid schema for response_format 'verdict': In context=(), 'additionalProperties' "
                                 "is required to be supplied and to be false.")
    assert (violation.param, violation.code) == ("response_format", None)
    fixed = json.loads(json.dumps(body))
    fixed["response_format"]["json_schema"]["schema"] = closed({"ok": {"type": "boolean"}})
    assert validate_request(fixed) is None


def test_valid_tool_conversation_passes() -> None:
    tools = [fn("get_call", closed({"id": {"type": "string"}}), strict=True), fn("list_calls")]
    messages = [USER, assistant_calls("call_1", "call_2"), tool_result("call_2"), tool_result("call_1"),
                {"role": "assistant", "content": "Done."}, USER]
    assert validate_request({"model": "m", "messages": messages, "tools": tools}) is None


async def test_json_completion_with_tool_calls(fake: ScriptedOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.add(Turn.calls(ToolCall("get_call", {"id": "c1"}), ToolCall("list_calls"), prompt_tokens=120,
                        completion_tokens=17))
    result = await client.chat.completions.create(model="gpt-4o-mini", messages=[USER], tools=[fn(), fn("list_calls")])
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_call", {"id": "c1"}), ("list_calls", {})]
    assert all(c.id.startswith("call_") and len(c.id) == 29 for c in calls)
    assert result.usage is not None and (result.usage.prompt_tokens, result.usage.total_tokens) == (120, 137)
    assert fake.bodies()[0]["tools"][0]["function"]["name"] == "get_call"
    assert fake.requests[0].headers["authorization"] == "<redacted>"
    fake.assert_all_used()


async def test_stream_tool_call_deltas_and_usage(fake: ScriptedOpenAI, client: openai.AsyncOpenAI) -> None:
    args = {"assistantId": "a-1", "customer": {"number": "+15551234567"}}
    fake.add(Turn.calls(ToolCall("create_call", args), ToolCall("get_call", '{"id": "c9"}'), content="Calling.",
                        prompt_tokens=50, completion_tokens=30))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[USER], tools=[fn("create_call"), fn()], stream=True,
        stream_options={"include_usage": True})
    parts: dict[int, dict[str, str]] = {}
    text, finish, usage, fragments = "", None, None, 0
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                fragments += 1
                slot = parts.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += delta.id or ""
                if delta.function:
                    slot["name"] += delta.function.name or ""
                    slot["arguments"] += delta.function.arguments or ""
    assert text == "Calling."
    assert finish == "tool_calls"
    assert [(parts[i]["name"], json.loads(parts[i]["arguments"])) for i in sorted(parts)] == [
        ("create_call", args), ("get_call", {"id": "c9"})]
    assert fragments > 4  # arguments really arrive in pieces
    assert usage is not None and usage.total_tokens == 80
    fake.assert_all_used()


async def test_stream_without_usage_option_has_no_usage(fake: ScriptedOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.add(Turn.text("It is sunny in Oslo today."))
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=[USER], stream=True)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "It is sunny in Oslo today."
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_scripted_429_carries_retry_headers(fake: ScriptedOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.add(Turn.fail(ErrorReply.rate_limited(retry_after_ms=1500, retry_after=2)), Turn.text("ok"))
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after-ms"] == "1500"
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "rate_limit_exceeded"
    again = await client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    assert again.choices[0].message.content == "ok"
    fake.assert_all_used()


async def test_request_after_script_ends_fails_loudly(fake: ScriptedOpenAI, client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    assert "no scripted turn is left" in caught.value.message
    assert fake.exhausted
    with pytest.raises(AssertionError, match="after the script ran out"):
        fake.assert_all_used()


def test_unused_turns_fail_teardown() -> None:
    fake = ScriptedOpenAI([Turn.text("never asked")])
    with pytest.raises(AssertionError, match="1 scripted turn"):
        fake.assert_all_used()


async def test_models_endpoint(client: openai.AsyncOpenAI) -> None:
    models = [m.id async for m in client.models.list()]
    assert models == ["gpt-4o-mini"]


async def test_validation_can_be_switched_off() -> None:
    fake = ScriptedOpenAI([Turn.text("accepted")], validate=False)
    with fake.serve() as base_url:
        async with httpx2.AsyncClient() as http:
            reply = await http.post(f"{base_url}/chat/completions",
                                    json={"model": "m", "messages": [], "tools": [fn("bad.name")]})
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == "accepted"
    fake.assert_all_used()


async def test_stream_tool_calls_only_start_in_the_role_chunk(fake: ScriptedOpenAI,
                                                              client: openai.AsyncOpenAI) -> None:
    fake.add(Turn.calls(ToolCall("list_calls")))
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=[USER], tools=[fn("list_calls")],
                                                  stream=True)
    chunks = [chunk async for chunk in stream]
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content is None
    assert first.tool_calls and first.tool_calls[0].id and first.tool_calls[0].function
    assert first.tool_calls[0].function.name == "list_calls"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
