"""MCP tool -> OpenAI function conversion (agent.tools, agent.toolconv) and tool selection (agent.toolsearch).

Pure functions are table-tested; then whole catalogues (Vapi's official MCP server, a 150-tool
hostile one, the sandbox's own) are converted and sent through the real ``openai`` SDK to the
independent scripted server, which must accept them, while the raw catalogues are refused.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import mcp.types
import openai
import pytest

from agent.toolconv.convert import MAX_DESCRIPTION, ToolMap, to_openai_tools
from agent.toolconv.names import fit_name
from agent.toolconv.sanitize import ANY_ITEM, sanitize_schema
from agent.toolconv.search import BM25Index, ToolSelector, estimate_tokens, select_tools, tool_text
from agent.toolconv.strict import NotStrictable, strictify
from tests.fixtures import make_hostile_catalogue
from tests.openai_fake import ScriptedOpenAI, ToolCall, Turn, validate_request

FIXTURES = Path(__file__).parent / "fixtures"
VAPI = json.loads((FIXTURES / "vapi_mcp_tools.json").read_text())
HOSTILE = json.loads((FIXTURES / "hostile_catalogue.json").read_text(encoding="utf-8"))
OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
USER = {"role": "user", "content": "List my most recent calls"}


def keys_anywhere(node: Any) -> set[str]:
    """Every dict key at any depth."""
    if isinstance(node, dict):
        return set(node) | set().union(*(keys_anywhere(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(keys_anywhere(v) for v in node)) if node else set()
    return set()


def depth(node: Any) -> int:
    """Nesting depth of dicts/lists."""
    if isinstance(node, dict):
        return 1 + max((depth(v) for v in node.values()), default=0)
    if isinstance(node, list):
        return 1 + max((depth(v) for v in node), default=0)
    return 0


# ---------------------------------------------------------------- names
LONG_A = "enterprise_workspace_administration_api_v2_with_extended_configuration_list_calls"
LONG_B = "enterprise_workspace_administration_api_v2_with_extended_configuration_list_squads"


@pytest.mark.parametrize(
    ("name", "taken", "expected"),
    [
        ("list_calls", set(), "list_calls"),
        ("get-call_2", set(), "get-call_2"),
        ("vapi.calls.list", set(), r"vapi_calls_list_[0-9a-f]{8}"),
        ("vapi/squads/list.", set(), r"vapi_squads_list_[0-9a-f]{8}"),
        ("list calls – café ✓", set(), r"list_calls_caf_[0-9a-f]{8}"),
        ("", set(), r"tool_[0-9a-f]{8}"),
        ("list_calls", {"list_calls"}, r"list_calls_[0-9a-f]{8}"),
        (LONG_A, set(), r"enterprise_workspace_administration_api_v2_with_extende_[0-9a-f]{8}"),
    ],
)
def test_fit_name(name: str, taken: set[str], expected: str) -> None:
    fitted = fit_name(name, taken)
    assert OPENAI_NAME.match(fitted)
    assert re.fullmatch(expected, fitted), fitted
    assert fitted not in taken
    assert fit_name(name, taken) == fitted  # stable across calls


def test_fit_name_keeps_near_names_apart() -> None:
    assert fit_name(LONG_A) != fit_name(LONG_B)
    assert fit_name("a.b") != fit_name("a/b")
    first = fit_name("x.y")
    assert fit_name("x.y", {first}) not in {first}


# ---------------------------------------------------------------- sanitize_schema (non-strict)
OBJ: dict[str, Any] = {"type": "object", "properties": {}}
SANITIZE_CASES: list[tuple[str, Any, dict[str, Any]]] = [
    ("empty", {}, OBJ),
    ("not a dict", None, OBJ),
    ("root without properties", {"type": "object"}, OBJ),
    ("$schema and $id dropped", {"$schema": "http://json-schema.org/draft-07/schema#", "$id": "x", **OBJ}, OBJ),
    ("array without items", {"type": "object", "properties": {"t": {"type": "array"}}},
     {"type": "object", "properties": {"t": {"type": "array", "items": ANY_ITEM}}}),
    ("items {}", {"type": "object", "properties": {"t": {"type": "array", "items": {}}}},
     {"type": "object", "properties": {"t": {"type": "array", "items": ANY_ITEM}}}),
    ("$defs inlined, sibling wins", {"type": "object", "properties": {"f": {"$ref": "#/$defs/F", "description": "d"}},
                                     "$defs": {"F": {"type": "string", "description": "orig"}}},
     {"type": "object", "properties": {"f": {"type": "string", "description": "d"}}}),
    ("definitions chain", {"type": "object", "properties": {"m": {"$ref": "#/definitions/M"}},
                           "definitions": {"M": {"$ref": "#/definitions/C"}, "C": {"enum": ["USD", "EUR"]}}},
     {"type": "object", "properties": {"m": {"enum": ["USD", "EUR"]}}}),
    ("zod #/properties pointer", {"type": "object", "properties": {"a": {"type": "string", "enum": ["x"]},
                                                                   "b": {"$ref": "#/properties/a"}}},
     {"type": "object", "properties": {"a": {"type": "string", "enum": ["x"]},
                                       "b": {"type": "string", "enum": ["x"]}}}),
    ("unresolvable ref", {"type": "object", "properties": {"r": {"$ref": "https://example.com/s.json"}}},
     {"type": "object", "properties": {"r": {"description": "Schema reference could not be resolved; any value "
                                                            "accepted."}}}),
    ("top-level oneOf of objects", {"oneOf": [
        {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
        {"type": "object", "properties": {"phone": {"type": "string"}}, "required": ["phone"]}]},
     {"type": "object", "properties": {"id": {"type": "string"}, "phone": {"type": "string"}},
      "description": "Accepts one of these argument shapes: {id} | {phone}."}),
    ("top-level anyOf of required-only branches", {"type": "object", "properties": {"a": {}, "b": {}},
                                                   "anyOf": [{"required": ["a"]}, {"required": ["b"]}]},
     {"type": "object", "properties": {"a": {}, "b": {}}, "description": "Accepts one of these argument shapes: "
                                                                         "{a} | {b}."}),
    ("top-level allOf", {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                                   {"type": "object", "properties": {"b": {"type": "boolean"}}, "required": ["b"]}]},
     {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "boolean"}}, "required": ["a", "b"]}),
    ("top-level enum wrapped", {"type": "string", "enum": ["daily", "weekly"]},
     {"type": "object", "properties": {"value": {"type": "string", "enum": ["daily", "weekly"]}},
      "required": ["value"]}),
    ("top-level array wrapped", {"type": "array", "items": {"type": "string"}, "description": "ids"},
     {"type": "object", "properties": {"value": {"type": "array", "items": {"type": "string"}}},
      "required": ["value"], "description": "ids"}),
    ("top-level not dropped", {"properties": {"a": {"type": "string"}}, "not": {"required": ["x"]}},
     {"properties": {"a": {"type": "string"}}, "type": "object"}),
    ("OpenAPI nullable", {"type": "object", "properties": {"n": {"type": "string", "nullable": True}}},
     {"type": "object", "properties": {"n": {"type": ["string", "null"]}}}),
    ("boolean sub-schemas", {"type": "object", "properties": {"any": True, "never": False}},
     {"type": "object", "properties": {"any": {}}}),
    ("required names an undescribed key", {"type": "object", "properties": {}, "required": ["ws", "ws", 3]},
     {"type": "object", "properties": {"ws": {}}, "required": ["ws"]}),
    ("nested anyOf flattened", {"type": "object", "properties": {"llm": {"anyOf": [
        {"anyOf": [{"type": "integer"}, {"type": "boolean"}]}, {"type": "string"}]}}},
     {"type": "object", "properties": {"llm": {"anyOf": [{"type": "integer"}, {"type": "boolean"},
                                                         {"type": "string"}]}}}),
    ("type aliases and garbage", {"type": "object", "properties": {"n": {"type": "int"}, "a": {"type": "any"},
                                                                   "l": {"type": ["str", "None"]}}},
     {"type": "object", "properties": {"n": {"type": "integer"}, "a": {}, "l": {"type": ["string", "null"]}}}),
    ("draft-03 required lifted", {"type": "object", "properties": {"id": {"type": "string", "required": True}}},
     {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}),
    ("malformed keyword values dropped", {"type": "object", "properties": {"e": {"type": "string", "enum": "a",
                                                                                 "description": 5, "anyOf": []}}},
     {"type": "object", "properties": {"e": {"type": "string"}}}),
    ("duplicate enum values", {"type": "object", "properties": {"p": {"type": "string", "enum": ["a", "b", "a"]}}},
     {"type": "object", "properties": {"p": {"type": "string", "enum": ["a", "b"]}}}),
]


@pytest.mark.parametrize(("label", "schema", "expected"), SANITIZE_CASES, ids=[c[0] for c in SANITIZE_CASES])
def test_sanitize_schema(label: str, schema: Any, expected: dict[str, Any]) -> None:
    before = copy.deepcopy(schema)
    assert sanitize_schema(schema) == expected
    assert schema == before  # the input is not modified


def test_recursive_refs_terminate() -> None:
    schema = {"type": "object", "properties": {"tree": {"$ref": "#/$defs/Node"}, "again": {"$ref": "#"}},
              "$defs": {"Node": {"type": "object", "properties": {"label": {"type": "string"},
                                                                  "children": {"type": "array",
                                                                               "items": {"$ref": "#/$defs/Node"}}}}}}
    out = sanitize_schema(schema)
    assert "$ref" not in keys_anywhere(out) and "$defs" not in keys_anywhere(out)
    assert depth(out) < 40
    node = out["properties"]["tree"]
    assert node["properties"]["children"]["items"]["properties"]["label"] == {"type": "string"}
    assert validate_request({"model": "m", "messages": [USER], "tools": [
        {"type": "function", "function": {"name": "t", "parameters": out}}]}) is None


def test_reference_fan_out_is_bounded() -> None:
    defs = {f"D{i}": {"type": "object", "properties": {"a": {"$ref": f"#/$defs/D{i + 1}"},
                                                      "b": {"$ref": f"#/$defs/D{i + 1}"}}} for i in range(30)}
    defs["D30"] = {"type": "string"}
    out = sanitize_schema({"type": "object", "properties": {"x": {"$ref": "#/$defs/D0"}}, "$defs": defs})
    assert len(json.dumps(out)) < 200_000  # 2**30 copies would never finish


# ---------------------------------------------------------------- strictify
def closed(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """An object schema as sanitize_schema leaves it."""
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required is not None:
        out["required"] = required
    return out


def test_strict_makes_optional_keys_nullable_and_records_them() -> None:
    schema = closed({"id": {"type": "string"}, "note": {"type": "string"}, "tag": {"type": ["string", "null"]},
                     "opts": closed({"mode": {"type": "string", "enum": ["a", "b"]}}),
                     "items": {"type": "array", "items": closed({"n": {"type": "integer"}})}}, ["id"])
    result = strictify(schema)
    props = result.schema["properties"]
    assert result.schema["required"] == ["id", "note", "tag", "opts", "items"]
    assert result.schema["additionalProperties"] is False
    assert props["id"] == {"type": "string"}
    assert props["note"] == {"type": ["string", "null"]}
    assert props["tag"] == {"type": ["string", "null"]}
    assert props["opts"]["properties"]["mode"] == {"type": ["string", "null"], "enum": ["a", "b", None]}
    assert result.optional == {(): frozenset({"note", "opts", "items"}), ("opts",): frozenset({"mode"}),
                               ("items", "[]"): frozenset({"n"})}


@pytest.mark.parametrize(
    ("label", "prop", "expected"),
    [
        ("oneOf -> anyOf", {"oneOf": [{"type": "string"}, {"type": "integer"}]},
         {"anyOf": [{"type": "string"}, {"type": "integer"}]}),
        ("const -> enum", {"type": "string", "const": "fact"}, {"type": "string", "enum": ["fact"]}),
        ("typeless enum typed", {"enum": ["a", 1]}, {"enum": ["a", 1], "type": ["string", "integer"]}),
        ("default to description", {"type": "integer", "default": 3, "description": "Retries"},
         {"type": "integer", "description": "Retries. Default: 3."}),
        ("uri format to description", {"type": "string", "format": "uri"},
         {"type": "string", "description": "Format: uri."}),
        ("supported format kept", {"type": "string", "format": "date-time"}, {"type": "string", "format": "date-time"}),
        ("validation-only keywords dropped", {"type": "string", "minLength": 1, "x-vendor": 1}, {"type": "string"}),
        ("allOf merged",
         {"allOf": [closed({"a": {"type": "string"}}, ["a"]), closed({"b": {"type": "string"}}, ["b"])]},
         {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a", "b"],
          "additionalProperties": False}),
    ],
)
def test_strict_rewrites(label: str, prop: dict[str, Any], expected: dict[str, Any]) -> None:
    result = strictify(closed({"p": prop}, ["p"]))
    assert result.schema["properties"]["p"] == expected


@pytest.mark.parametrize(
    ("label", "prop"),
    [
        ("free-form map", {"type": "object", "additionalProperties": {}}),
        ("typed map", {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}),
        ("nested object without properties", {"type": "object", "properties": {}}),
        ("untyped", {}),
        ("no type", {"description": "anything"}),
        ("conditional", {"type": "string", "if": {"minLength": 3}}),
        ("patternProperties", {"type": "object", "properties": {"a": {"type": "string"}},
                               "patternProperties": {"^x": {"type": "string"}}}),
        ("too deep", json.loads('{"type":"object","properties":{"a":' * 11 + '{"type":"string"}' + "}}" * 11)),
    ],
)
def test_strict_refuses(label: str, prop: dict[str, Any]) -> None:
    with pytest.raises(NotStrictable):
        strictify(closed({"p": prop}, ["p"]))


def test_strict_refuses_ambiguous_nulls() -> None:
    branches = [closed({"k": {"type": "string"}}), closed({"k": {"type": ["string", "null"]}}, ["k"])]
    with pytest.raises(NotStrictable, match="both optional and nullable"):
        strictify(closed({"p": {"anyOf": branches}}, ["p"]))


def test_root_without_properties_is_strict() -> None:
    assert strictify(closed({})).schema == {"type": "object", "properties": {}, "required": [],
                                            "additionalProperties": False}


# ---------------------------------------------------------------- to_openai_tools + ToolMap
def tool(name: str, schema: dict[str, Any] | None = None, description: str = "d") -> dict[str, Any]:
    """A wire-form MCP tool."""
    return {"name": name, "description": description, "inputSchema": schema or {"type": "object", "properties": {}}}


def test_accepts_mcp_types_tool_objects() -> None:
    tools = [mcp.types.Tool(name="get_call", description="Get a call", input_schema=closed({"id": {"type": "string"}},
                                                                                           ["id"])),
             mcp.types.Tool(name="list.calls", input_schema={"type": "object"},
                            annotations=mcp.types.ToolAnnotations(title="List calls"))]
    params, tool_map = to_openai_tools(tools, server="vapi")
    assert params[0]["function"]["name"] == "get_call"
    assert params[1]["function"]["description"] == "List calls"
    assert tool_map.resolve(params[1]["function"]["name"]) == ("vapi", "list.calls")
    assert all(p["function"]["strict"] for p in params)


def test_prefix_only_on_collision_across_servers() -> None:
    params, tool_map = to_openai_tools({"truto": [tool("list_calls"), tool("get_call")],
                                        "vapi": [tool("list_calls"), tool("create_call")]})
    names = [p["function"]["name"] for p in params]
    assert names == ["truto__list_calls", "get_call", "vapi__list_calls", "create_call"]
    assert tool_map.resolve("vapi__list_calls") == ("vapi", "list_calls")
    assert tool_map.openai_name("truto", "list_calls") == "truto__list_calls"
    assert len(tool_map) == 4 and "get_call" in tool_map


def test_strict_fallback_is_per_tool_and_explained() -> None:
    params, tool_map = to_openai_tools([
        tool("get_call", closed({"id": {"type": "string"}}, ["id"])),
        tool("create_call", closed({"vars": {"type": "object", "additionalProperties": {}}})),
    ])
    assert [p["function"]["strict"] for p in params] == [True, False]
    assert tool_map.ref("create_call").strict_fallback_reason == "vars: free-form map (additionalProperties={})"
    assert tool_map.ref("get_call").strict_fallback_reason is None
    relaxed, _ = to_openai_tools([tool("get_call", closed({"id": {"type": "string"}}, ["id"]))], strict=False)
    assert relaxed[0]["function"]["strict"] is False
    assert relaxed[0]["function"]["parameters"] == closed({"id": {"type": "string"}}, ["id"])


def test_restore_arguments_drops_nulls_for_optional_keys_only() -> None:
    schema = closed({"id": {"type": "string"}, "note": {"type": "string"}, "tag": {"type": ["string", "null"]},
                     "rows": {"type": "array", "items": closed({"n": {"type": "integer"}})}}, ["id"])
    params, tool_map = to_openai_tools([tool("update_call", schema)])
    assert params[0]["function"]["strict"] is True
    sent = {"id": "c1", "note": None, "tag": None, "rows": [{"n": None}, {"n": 2}]}
    assert tool_map.restore_arguments("update_call", sent) == {"id": "c1", "tag": None, "rows": [{}, {"n": 2}]}
    assert tool_map.restore_arguments("unknown", {"a": None}) == {"a": None}


def test_descriptions_are_capped() -> None:
    params, _ = to_openai_tools([tool("t", description="word " * 600), tool("u", description="  ")])
    assert len(params[0]["function"]["description"]) == MAX_DESCRIPTION
    assert params[0]["function"]["description"].endswith("…")
    assert "description" not in params[1]["function"]


def test_conversion_is_deterministic() -> None:
    first, _ = to_openai_tools(HOSTILE["tools"])
    second, _ = to_openai_tools(copy.deepcopy(HOSTILE["tools"]))
    assert json.dumps(first) == json.dumps(second)


def test_toolmap_refuses_duplicates() -> None:
    tool_map = ToolMap()
    _, converted = to_openai_tools([tool("a")])
    ref = next(iter(converted))
    tool_map.add(ref)
    with pytest.raises(ValueError, match="duplicate"):
        tool_map.add(ref)


def test_vapi_catalogue_conversion() -> None:
    assert VAPI["version"] == "0.0.11" and len(VAPI["tools"]) == 13
    params, tool_map = to_openai_tools(VAPI["tools"], server="vapi")
    strict = {p["function"]["name"]: p["function"]["strict"] for p in params}
    # Free-form maps (variableValues, headers, function parameter properties) keep these non-strict.
    assert {n for n, s in strict.items() if not s} == {"create_call", "create_tool", "update_tool"}
    for param in params:
        found = keys_anywhere(param["function"]["parameters"])
        assert not found & {"$ref", "$schema", "$defs", "definitions"}
        assert validate_request({"model": "m", "messages": [USER], "tools": [param]}) is None, param["function"]["name"]
    create_tool = next(p for p in params if p["function"]["name"] == "create_tool")["function"]["parameters"]
    body_type = create_tool["properties"]["apiRequest"]["properties"]["body"]["properties"]["type"]
    assert body_type == {"type": "string", "const": "object"}  # the #/properties/... pointer, inlined
    assert tool_map.resolve("create_assistant") == ("vapi", "create_assistant")
    assert tool_map.restore_arguments("create_assistant", {"name": "A", "voice": None, "llm": None}) == {"name": "A"}


def test_hostile_catalogue_conversion() -> None:
    params, tool_map = to_openai_tools(HOSTILE["tools"], server="hostile")
    names = [p["function"]["name"] for p in params]
    assert len(set(names)) == 150 and all(OPENAI_NAME.match(n) for n in names)
    assert {tool_map.resolve(n)[1] for n in names} == {t["name"] for t in HOSTILE["tools"]}
    for param in params:
        assert validate_request({"model": "m", "messages": [USER], "tools": [param]}) is None, param["function"]["name"]
    strict_count = sum(p["function"]["strict"] for p in params)
    assert 60 < strict_count < 150  # most tools strict, the inexpressible ones fall back one by one


def test_hostile_fixture_matches_generator_and_covers_every_pitfall() -> None:
    assert (FIXTURES / "hostile_catalogue.json").read_text(encoding="utf-8") == make_hostile_catalogue.render()
    kinds = {k for ks in HOSTILE["pitfalls"].values() for k in ks}
    assert kinds == {kind for kind, _ in make_hostile_catalogue.PITFALLS}
    assert len(HOSTILE["tools"]) == 150


# ---------------------------------------------------------------- selection and search
CONVERTED_HOSTILE, _ = to_openai_tools(HOSTILE["tools"])


def test_everything_offered_when_it_fits() -> None:
    params, _ = to_openai_tools(VAPI["tools"])
    offered, search = select_tools(params, "anything")
    assert offered == params and search is None


def test_over_128_tools_get_ranked_subset_and_search_tool() -> None:
    offered, search = select_tools(CONVERTED_HOSTILE, "list recent calls", token_budget=10**9)
    assert search is not None and len(offered) == 127
    # The hostile catalogue has its own "search_tools" (search action on the "tools" resource).
    assert search["function"]["name"] == "search_tools_2" and search["function"]["strict"] is True
    assert len(search["function"]["description"]) <= MAX_DESCRIPTION
    index = {p["function"]["name"]: i for i, p in enumerate(CONVERTED_HOSTILE)}
    assert [index[p["function"]["name"]] for p in offered] == sorted(index[p["function"]["name"]] for p in offered)
    body = {"model": "m", "messages": [USER], "tools": [*offered, search]}
    assert validate_request(body) is None


def test_ranking_prefers_relevant_tools() -> None:
    offered, search = select_tools(CONVERTED_HOSTILE, "delete a phone number", max_tools=6, token_budget=10**9)
    names = [p["function"]["name"] for p in offered]
    assert "delete_phone_numbers" in names and len(offered) == 5 and search is not None
    ranked = BM25Index([tool_text(t) for t in CONVERTED_HOSTILE]).rank("transcripts")
    assert "transcripts" in CONVERTED_HOSTILE[ranked[0]]["function"]["name"]


def test_used_tools_stay_offered() -> None:
    offered, _ = select_tools(CONVERTED_HOSTILE, "delete a phone number", ["search_insights", "get_voices"],
                              max_tools=4, token_budget=10**9)
    names = [p["function"]["name"] for p in offered]
    assert {"search_insights", "get_voices"} <= set(names)


def test_token_budget_limits_offer_but_never_refuses() -> None:
    offered, search = select_tools(CONVERTED_HOSTILE, "calls", token_budget=1500)
    assert search is not None
    assert sum(estimate_tokens(t) for t in [*offered, search]) <= 1500
    offered, search = select_tools(CONVERTED_HOSTILE, "calls", token_budget=0)
    assert offered == [] and search is not None  # still a usable request: the search tool alone


def test_search_tool_name_avoids_real_tools() -> None:
    params, _ = to_openai_tools([tool("search_tools"), *[tool(f"t{i}") for i in range(5)]])
    _, search = select_tools(params, "x", max_tools=3)
    assert search is not None and search["function"]["name"] == "search_tools_2"


def test_selector_pins_search_results_for_next_request() -> None:
    selector = ToolSelector(CONVERTED_HOSTILE, max_tools=8, token_budget=10**9)
    first = [t["function"]["name"] for t in selector.offer("assistants")]
    assert selector.search_name == "search_tools_2"
    assert "search_tools_2" in first and "get_transcripts" not in first
    reply = json.loads(selector.handle_search_call('{"query": "get transcript", "limit": 2}'))
    assert reply["tools"][0]["name"] == "get_transcripts" and len(reply["tools"]) == 2
    second = [t["function"]["name"] for t in selector.offer("assistants")]
    assert "get_transcripts" in second
    assert json.loads(selector.handle_search_call("not json"))["tools"] == []
    assert selector.is_search("search_tools_2") and not selector.is_search("search_tools")


# ---------------------------------------------------------------- whole catalogues through the SDK
@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ScriptedOpenAI, str]]:
    """One scripted server on loopback for the module."""
    shared = ScriptedOpenAI()
    with shared.serve() as base_url:
        yield shared, base_url


@pytest.fixture
async def sdk(served: tuple[ScriptedOpenAI, str]) -> AsyncIterator[tuple[ScriptedOpenAI, openai.AsyncOpenAI]]:
    """The scripted server (emptied for this test) and the real SDK pointed at it."""
    fake, base_url = served
    fake.reset()
    async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
        yield fake, client


async def run_tool_round(fake: ScriptedOpenAI, client: openai.AsyncOpenAI, tools: Sequence[Mapping[str, Any]],
                         call: str) -> None:
    """One model turn calling ``call``, the tool result, and the final answer: all must be accepted."""
    fake.add(Turn.calls(ToolCall(call, {})), Turn.text("Here they are."))
    first = await client.chat.completions.create(model="gpt-4o-mini", messages=[USER], tools=tools)
    message = first.choices[0].message
    history = [USER, message.model_dump(exclude_none=True),
               *({"role": "tool", "tool_call_id": c.id, "content": "[]"} for c in message.tool_calls or [])]
    final = await client.chat.completions.create(model="gpt-4o-mini", messages=history, tools=tools)
    assert final.choices[0].message.content == "Here they are."
    assert fake.rejections == []
    fake.assert_all_used()


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("catalogue", ["vapi", "hostile"])
async def test_converted_catalogue_is_accepted(catalogue: str, strict: bool,
                                               sdk: tuple[ScriptedOpenAI, openai.AsyncOpenAI]) -> None:
    fake, client = sdk
    raw = VAPI["tools"] if catalogue == "vapi" else HOSTILE["tools"]
    params, tool_map = to_openai_tools(raw, server=catalogue, strict=strict)
    offered, search = select_tools(params, USER["content"])
    tools = [*offered, *([search] if search else [])]
    assert len(tools) <= 128
    assert (search is None) == (catalogue == "vapi")
    # Hostile's "list calls" tool is the one with the 90-character name: it must be offered, cut to 64.
    names = [p["function"]["name"] for p in offered]
    call = next(name for name in names if tool_map.resolve(name)[1].endswith("list_calls"))
    await run_tool_round(fake, client, tools, call)


def raw_param(t: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    """An MCP tool sent as-is: the mistake the conversion exists to prevent."""
    fn = {"name": t["name"], "parameters": t["inputSchema"], "strict": strict}
    if "description" in t:
        fn["description"] = t["description"]
    return {"type": "function", "function": fn}


async def test_raw_vapi_catalogue_is_refused_in_strict_mode(sdk: tuple[ScriptedOpenAI, openai.AsyncOpenAI]) -> None:
    fake, client = sdk
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[USER],
                                             tools=[raw_param(t, strict=True) for t in VAPI["tools"]])
    assert caught.value.code == "invalid_function_parameters"
    assert "reference can only point to definitions defined at the top level" in caught.value.message
    # Non-strict, OpenAI resolves these local pointers; the refusals are the strict-mode rules.
    assert validate_request({"model": "m", "messages": [USER],
                             "tools": [raw_param(t, strict=False) for t in VAPI["tools"]]}) is None
    assert {v.rule for v in fake.rejections} == {"schema_ref_top_level"}


# pitfall kind -> rule refusing the raw tool (non-strict, strict); None: OpenAI accepts it as-is.
RAW_REFUSALS: dict[str, tuple[str | None, str]] = {
    "long_name": ("tool_name_length", "tool_name_length"),
    "dotted_name": ("tool_name_pattern", "tool_name_pattern"),
    "colon_alias": ("tool_name_pattern", "tool_name_pattern"),
    "slash_name": ("tool_name_pattern", "tool_name_pattern"),
    "unicode_name": ("tool_name_pattern", "tool_name_pattern"),
    "long_description": ("tool_description_length", "tool_description_length"),
    "root_one_of": ("schema_root_type", "schema_root_type"),
    "root_all_of": ("schema_root_type", "schema_root_type"),
    "root_enum": ("schema_root_type", "schema_root_type"),
    "root_not": ("schema_root_type", "schema_root_type"),
    "root_array": ("schema_root_type", "schema_root_type"),
    "root_any_of_required": ("schema_root_combinators", "schema_root_combinators"),
    "root_without_properties": ("schema_root_properties", "schema_root_properties"),
    "array_without_items": ("schema_array_items", "schema_array_items"),
    "unresolvable_ref": ("schema_ref_unresolvable", "schema_ref_unresolvable"),
    "zod_pointer": (None, "schema_ref_top_level"),
    "defs_ref": (None, "schema_ref_siblings"),
    "formats": (None, "schema_format"),
    "defaults": (None, "schema_not_permitted"),
    "nested_any_of": (None, "schema_not_permitted"),
    "free_form_maps": (None, "schema_type_key"),
    "odd_keywords": (None, "schema_type_key"),
    "bad_keyword_values": ("schema_metaschema", "schema_additional_properties"),
    "nested_object_without_properties": (None, "schema_nested_properties"),
}


async def test_raw_hostile_catalogue_is_refused(sdk: tuple[ScriptedOpenAI, openai.AsyncOpenAI]) -> None:
    fake, client = sdk
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[USER],
                                             tools=[raw_param(t, strict=False) for t in HOSTILE["tools"]])
    assert caught.value.code == "array_above_max_length"
    seen: dict[tuple[str, bool], str | None] = {}
    for t in HOSTILE["tools"]:
        kind = HOSTILE["pitfalls"][t["name"]][0]
        for strict in (False, True):
            if (kind, strict) in seen or kind not in RAW_REFUSALS:
                continue
            expected = RAW_REFUSALS[kind][1 if strict else 0]
            if expected is None:
                fake.add(Turn.text("ok"))
                await client.chat.completions.create(model="gpt-4o-mini", messages=[USER],
                                                     tools=[raw_param(t, strict=strict)])
            else:
                with pytest.raises(openai.BadRequestError):
                    await client.chat.completions.create(model="gpt-4o-mini", messages=[USER],
                                                         tools=[raw_param(t, strict=strict)])
            seen[(kind, strict)] = fake.requests[-1].violation.rule if fake.requests[-1].violation else None
    assert seen == {(k, s): RAW_REFUSALS[k][1 if s else 0] for k in RAW_REFUSALS for s in (False, True)}
    fake.assert_all_used()


def test_strictify_leaves_its_input_alone() -> None:
    schema = closed({"p": {"allOf": [closed({"a": {"type": "string"}}), closed({"b": {"type": "object"}})]}})
    before = copy.deepcopy(schema)
    with pytest.raises(NotStrictable):
        strictify(schema)
    assert schema == before


async def test_sandbox_catalogue_is_accepted(sdk: tuple[ScriptedOpenAI, openai.AsyncOpenAI]) -> None:
    from sandbox.app import Sandbox
    from sandbox.truto.server import TrutoMCP
    from sandbox.world.config import SandboxConfig

    fake, client = sdk
    tools: list[mcp.types.Tool] = []
    async with mcp.Client(TrutoMCP(Sandbox(SandboxConfig(calls=50))).server) as session:
        cursor: str | None = None
        while True:
            page = await session.list_tools(cursor=cursor)
            tools += page.tools
            if (cursor := page.next_cursor) is None:
                break
    params, tool_map = to_openai_tools(tools, server="truto")
    assert len(params) == len(tools) and len(params) <= 128
    assert {tool_map.resolve(p["function"]["name"])[1] for p in params} == {t.name for t in tools}
    for param in params:
        assert validate_request({"model": "m", "messages": [USER], "tools": [param]}) is None, param["function"]["name"]
    assert any(p["function"]["strict"] for p in params) and not all(p["function"]["strict"] for p in params)
    await run_tool_round(fake, client, params, "list_all_vapi_calls")
