"""OpenAI's request validation for chat completions, as ONE table of rules (``RULES``).

Written independently of ``agent/`` (never import it here): this is the referee the conversion
code is tested against. Each row holds the 400 error text OpenAI returns, its ``code``, where the
text comes from and how sure we are. Error texts are copied from real API responses quoted in
public bug reports (kept verbatim, including OpenAI's own "preceeding" typo); rows whose exact
behaviour is not pinned down say so in ``note``. The first violated rule, in table order, is
returned, as the real API reports one error at a time.

Contexts are rendered the way OpenAI's Python back end prints them: ``repr`` of a tuple of
strings, e.g. ``In context=('properties', 'tags'), array schema missing items.``
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import SchemaError, best_match
from jsonschema.validators import Draft202012Validator, validator_for

MAX_TOOLS = 128
MAX_NAME = 64
MAX_DESCRIPTION = 1024
MAX_TOOL_CALL_ID = 40
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
# Structured-outputs docs: the formats strict mode knows. Anything else fails ("'uri' is not a valid format").
STRICT_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
# Keywords strict mode refuses ("'default' is not permitted."): composition and conditionals, and the
# type-specific keywords the structured-outputs docs list as unsupported. minLength/maxLength are in the
# docs' unsupported list; whether the API now ignores them instead is not confirmed.
STRICT_NOT_PERMITTED = (
    "default", "oneOf", "allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas",
    "patternProperties", "unevaluatedProperties", "propertyNames", "minProperties", "maxProperties",
    "unevaluatedItems", "contains", "minContains", "maxContains", "uniqueItems", "minLength", "maxLength",
)
ROOT_COMBINATORS = ("oneOf", "anyOf", "allOf", "enum", "not")
_MISSING = object()


@dataclass(frozen=True)
class Violation:
    """One 400 answer: the ``error`` object OpenAI sends, plus the rule that produced it."""

    rule: str
    message: str
    param: str | None
    code: str | None

    def body(self) -> dict[str, Any]:
        """The JSON body of the 400 response."""
        return {"error": {"message": self.message, "type": "invalid_request_error", "param": self.param,
                          "code": self.code}}


@dataclass(frozen=True)
class SchemaCtx:
    """The schema being checked: whose it is, where errors point, and whether strict rules apply."""

    label: str  # "function 'get_x'" or "response_format 'answer'"
    param: str
    code: str | None
    strict: bool
    root: Any


@dataclass(frozen=True)
class Rule:
    """A row of the table. ``check`` yields the template fields of each violation it finds.

    Schema rows leave ``code`` empty: the code belongs to where the schema sits
    (``invalid_function_parameters`` for a function, none for ``response_format``).
    """

    id: str
    scope: str  # "request" | "tool" | "schema" | "messages"
    strict_only: bool
    template: str
    code: str | None
    note: str
    check: Callable[..., Iterator[dict[str, Any]]]


# ---------------------------------------------------------------- helpers
def _types(node: dict[str, Any]) -> list[str]:
    kind = node.get("type")
    if isinstance(kind, str):
        return [kind]
    return [k for k in kind if isinstance(k, str)] if isinstance(kind, list) else []


def walk(node: Any, ctx: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every sub-schema (dicts only) with its context path, in document order."""
    if not isinstance(node, dict):
        return
    yield ctx, node
    for key, value in node.items():
        if key in ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas") and isinstance(
            value, dict
        ):
            for name, sub in value.items():
                yield from walk(sub, (*ctx, key, name))
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems") and isinstance(value, list):
            for i, sub in enumerate(value):
                yield from walk(sub, (*ctx, key, str(i)))
        elif key in ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"):
            yield from walk(value, (*ctx, key))


def resolve(root: Any, ref: str) -> Any:
    """The target of a local JSON pointer, or a sentinel (remote refs never resolve)."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return _MISSING
    node = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _nodes(s: SchemaCtx) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    return walk(s.root)


def _name_of(tool: dict[str, Any]) -> Any:
    fn = tool.get("function")
    return fn.get("name") if isinstance(fn, dict) else None


# ---------------------------------------------------------------- checks
def _too_many_tools(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    tools = body.get("tools")
    if isinstance(tools, list) and len(tools) > MAX_TOOLS:
        yield {"n": len(tools), "param": "tools"}


def _name_pattern(i: int, tool: dict[str, Any]) -> Iterator[dict[str, Any]]:
    name = _name_of(tool)
    if isinstance(name, str) and (not name or set(name) - NAME_CHARS):
        yield {"i": i, "param": f"tools[{i}].function.name"}


def _name_length(i: int, tool: dict[str, Any]) -> Iterator[dict[str, Any]]:
    name = _name_of(tool)
    if isinstance(name, str) and len(name) > MAX_NAME:
        yield {"i": i, "n": len(name), "param": f"tools[{i}].function.name"}


def _description_length(i: int, tool: dict[str, Any]) -> Iterator[dict[str, Any]]:
    fn = tool.get("function") or {}
    text = fn.get("description")
    if isinstance(text, str) and len(text) > MAX_DESCRIPTION:
        yield {"i": i, "n": len(text), "param": f"tools[{i}].function.description"}


def _root_type(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    got = s.root.get("type") if isinstance(s.root, dict) else None
    if got != "object":
        yield {"got": got}


def _root_combinators(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    if any(key in s.root for key in ROOT_COMBINATORS):
        yield {}


def _root_properties(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    if "properties" not in s.root:
        yield {"ctx": ()}


def _array_items(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    for ctx, node in _nodes(s):
        if "array" in _types(node) and not node.get("items"):
            yield {"ctx": ctx}


def _ref_unresolvable(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    for ctx, node in _nodes(s):
        ref = node.get("$ref")
        if isinstance(ref, str) and resolve(s.root, ref) is _MISSING:
            yield {"ctx": ctx, "ref": ref}


def _metaschema(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    cls = validator_for(s.root, default=Draft202012Validator)
    errors = list(cls(cls.META_SCHEMA).iter_errors(s.root))
    if errors:
        error = best_match(errors)
        yield {"detail": error.message if error else SchemaError("invalid").message}


def _ref_top_level(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    for ctx, node in _nodes(s):
        ref = node.get("$ref")
        parts = ref.split("/") if isinstance(ref, str) else []
        if isinstance(ref, str) and ref != "#" and not (len(parts) == 3 and parts[1] in ("$defs", "definitions")):
            yield {"ctx": ctx}


def _ref_siblings(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    for ctx, node in _nodes(s):
        if "$ref" in node and len(node) > 1:
            keys = sorted(k for k in node if k != "$ref")
            yield {"ctx": ctx, "keys": "{" + ", ".join(repr(k) for k in keys) + "}"}


def _type_key(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    for ctx, node in _nodes(s):
        if "type" not in node and "anyOf" not in node and "$ref" not in node:
            yield {"ctx": ctx}


def _objects(s: SchemaCtx) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    return ((ctx, node) for ctx, node in _nodes(s) if "object" in _types(node))


def _additional_properties(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    for ctx, node in _objects(s):
        if node.get("additionalProperties") is not False:
            yield {"ctx": ctx}


def _nested_properties(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    for ctx, node in _objects(s):
        if "properties" not in node:
            yield {"ctx": ctx}


def _required_all(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    for ctx, node in _objects(s):
        raw_props, raw_required = node.get("properties"), node.get("required")
        props: dict[str, Any] = raw_props if isinstance(raw_props, dict) else {}
        required: list[Any] = raw_required if isinstance(raw_required, list) else []
        missing = [k for k in props if k not in required]
        if missing:
            yield {"ctx": ctx, "detail": f"Missing '{missing[0]}'"}
        extra = [k for k in required if k not in props]
        if extra:
            yield {"ctx": ctx, "detail": f"Extra required key '{extra[0]}' supplied"}


def _not_permitted(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    for ctx, node in _nodes(s):
        for key in STRICT_NOT_PERMITTED:
            if key in node:
                yield {"ctx": ctx, "keyword": key}


def _format(s: SchemaCtx) -> Iterator[dict[str, Any]]:
    for ctx, node in _nodes(s):
        fmt = node.get("format")
        if fmt is not None and fmt not in STRICT_FORMATS:
            yield {"ctx": ctx, "format": fmt}


def _answered_ids(messages: list[Any], start: int) -> tuple[set[Any], int]:
    answered: set[Any] = set()
    j = start
    while j < len(messages) and isinstance(messages[j], dict) and messages[j].get("role") == "tool":
        answered.add(messages[j].get("tool_call_id"))
        j += 1
    return answered, j


def _call_ids(message: dict[str, Any]) -> list[Any]:
    return [c.get("id") for c in message.get("tool_calls") or [] if isinstance(c, dict)]


def _empty_messages(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if body.get("messages") == []:
        yield {"param": "messages"}


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("messages")
    return [m if isinstance(m, dict) else {} for m in raw] if isinstance(raw, list) else []


def _orphan_tool_message(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    messages = _messages(body)
    for i, msg in enumerate(messages):
        if isinstance(msg, dict) and msg.get("role") == "tool":
            k = i - 1
            while k >= 0 and messages[k].get("role") == "tool":
                k -= 1
            if k < 0 or messages[k].get("role") != "assistant" or not messages[k].get("tool_calls"):
                yield {"param": f"messages.[{i}].role"}


def _unknown_tool_call_id(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    messages = _messages(body)
    for i, msg in enumerate(messages):
        if isinstance(msg, dict) and msg.get("role") == "assistant" and msg.get("tool_calls"):
            ids = set(_call_ids(msg))
            j = i + 1
            while j < len(messages) and messages[j].get("role") == "tool":
                if messages[j].get("tool_call_id") not in ids:
                    yield {"id": messages[j].get("tool_call_id"), "param": f"messages.[{j}].tool_call_id"}
                j += 1


def _unanswered_tool_calls(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    messages = _messages(body)
    for i, msg in enumerate(messages):
        if isinstance(msg, dict) and msg.get("role") == "assistant" and msg.get("tool_calls"):
            answered, _ = _answered_ids(messages, i + 1)
            missing = [cid for cid in _call_ids(msg) if cid not in answered]
            if missing:
                yield {"ids": ", ".join(missing), "param": f"messages.[{i}].role"}


def _history_call_fields(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for i, msg in enumerate(_messages(body)):
        for j, call in enumerate(msg.get("tool_calls") or []):
            cid = call.get("id") if isinstance(call, dict) else None
            if isinstance(cid, str) and len(cid) > MAX_TOOL_CALL_ID:
                where = f"messages[{i}].tool_calls[{j}].id"
                yield {"where": where, "max": MAX_TOOL_CALL_ID, "n": len(cid), "param": where}
            name = (call.get("function") or {}).get("name") if isinstance(call, dict) else None
            if isinstance(name, str) and len(name) > MAX_NAME:
                where = f"messages[{i}].tool_calls[{j}].function.name"
                yield {"where": where, "max": MAX_NAME, "n": len(name), "param": where}


# ---------------------------------------------------------------- THE table
_CTX = "In context={ctx}, "
RULES: tuple[Rule, ...] = (
    Rule("messages_empty", "request", False,
         "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
         "empty_array", "seen in API responses", _empty_messages),
    Rule("tools_too_many", "request", False,
         "Invalid 'tools': array too long. Expected an array with maximum length 128, but got an array with length "
         "{n} instead.", "array_above_max_length", "zed#32946, opencode#1814 and others", _too_many_tools),
    Rule("tool_name_pattern", "tool", False,
         "Invalid 'tools[{i}].function.name': string does not match pattern. Expected a string that matches the "
         "pattern '^[a-zA-Z0-9_-]+$'.", "invalid_value", "verbatim from API responses", _name_pattern),
    Rule("tool_name_length", "tool", False,
         "Invalid 'tools[{i}].function.name': string too long. Expected a string with maximum length 64, but got a "
         "string with length {n} instead.", "string_above_max_length",
         "long-standing limit; one 2026 probe saw 128 accepted on api.openai.com. 64 stays the portable limit",
         _name_length),
    Rule("tool_description_length", "tool", False,
         "Invalid 'tools[{i}].function.description': string too long. Expected a string with maximum length 1024, "
         "but got a string with length {n} instead.", "string_above_max_length",
         "1024 on Azure OpenAI and older API versions; api.openai.com has been seen allowing 1048576",
         _description_length),
    Rule("schema_root_type", "schema", False,
         "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{got}\"'.", None,
         "verbatim; a missing type renders as Python's None", _root_type),
    Rule("schema_root_combinators", "schema", False,
         "schema must have type 'object' and not have 'oneOf'/'anyOf'/'allOf'/'enum'/'not' at the top level.", None,
         "verbatim", _root_combinators),
    Rule("schema_root_properties", "schema", False, _CTX + "object schema missing properties.", None,
         "verbatim; seen only with context=() in non-strict requests", _root_properties),
    Rule("schema_array_items", "schema", False, _CTX + "array schema missing items.", None,
         "verbatim at any depth. Whether items: {} passes is unconfirmed; a falsy {} is treated as missing",
         _array_items),
    Rule("schema_ref_unresolvable", "schema", False,
         _CTX + "reference to component '{ref}' which was not found in the schema.", None,
         "verbatim from strict response_format errors; assumed to apply to functions and non-strict too",
         _ref_unresolvable),
    Rule("schema_ref_top_level", "schema", True,
         _CTX + "reference can only point to definitions defined at the top level of the schema.", None,
         "verbatim (strict); non-strict requests appear to accept other local pointers", _ref_top_level),
    Rule("schema_ref_siblings", "schema", True, _CTX + "$ref cannot have keywords {keys}.", None,
         "verbatim (strict)", _ref_siblings),
    Rule("schema_type_key", "schema", True, _CTX + "schema must have a 'type' key.", None, "verbatim (strict)",
         _type_key),
    Rule("schema_not_permitted", "schema", True, _CTX + "'{keyword}' is not permitted.", None,
         "verbatim for default/oneOf/format/uniqueItems; the keyword list follows the structured-outputs docs",
         _not_permitted),
    Rule("schema_format", "schema", True, _CTX + "'{format}' is not a valid format.", None,
         "verbatim ('uri' is not a valid format), 2026", _format),
    Rule("schema_nested_properties", "schema", True, _CTX + "object schema missing properties.", None,
         "assumption: strict mode needs every object's keys", _nested_properties),
    Rule("schema_additional_properties", "schema", True,
         _CTX + "'additionalProperties' is required to be supplied and to be false.", None, "verbatim",
         _additional_properties),
    Rule("schema_required_all", "schema", True,
         _CTX + "'required' is required to be supplied and to be an array including every key in properties. "
         "{detail}.", None, "verbatim (Missing / Extra required key)", _required_all),
    Rule("schema_metaschema", "schema", False, "{detail}", None,
         "API validates against the JSON Schema meta-schema ('None is not of type 'array''); exact wording is "
         "jsonschema's best match", _metaschema),
    Rule("tool_message_orphan", "messages", False,
         "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
         None, "verbatim (OpenAI's spelling)", _orphan_tool_message),
    Rule("tool_message_unknown_id", "messages", False,
         "Invalid parameter: 'tool_call_id' of '{id}' not found in 'tool_calls' of previous message.", None,
         "verbatim text; the param value is an assumption", _unknown_tool_call_id),
    Rule("tool_calls_unanswered", "messages", False,
         "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
         "'tool_call_id'. The following tool_call_ids did not have response messages: {ids}", None,
         "verbatim; param observed as messages.[N].role (which N is not certain)", _unanswered_tool_calls),
    Rule("history_call_fields", "messages", False,
         "Invalid '{where}': string too long. Expected a string with maximum length {max}, but got a string with "
         "length {n} instead.", "string_above_max_length", "verbatim (ids: 40, names: 64)", _history_call_fields),
)


def _schemas(body: dict[str, Any]) -> Iterator[SchemaCtx]:
    for i, tool in enumerate(body.get("tools") or []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and "parameters" in fn:
            yield SchemaCtx(f"function '{fn.get('name')}'", f"tools[{i}].function.parameters",
                            "invalid_function_parameters", fn.get("strict") is True, fn["parameters"])
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        spec = fmt["json_schema"]
        yield SchemaCtx(f"response_format '{spec.get('name')}'", "response_format", None, spec.get("strict") is True,
                        spec.get("schema", {}))


def _render(rule: Rule, fields: dict[str, Any], schema: SchemaCtx | None = None) -> Violation:
    values = {k: (repr(tuple(v)) if k == "ctx" else v) for k, v in fields.items()}
    text = rule.template.format(**values)
    if schema is None:
        return Violation(rule.id, text, fields.get("param"), rule.code)
    return Violation(rule.id, f"Invalid schema for {schema.label}: {text}", schema.param, schema.code)


def validate_request(body: dict[str, Any]) -> Violation | None:
    """The first rule ``body`` (a chat-completions request) breaks, or ``None`` if OpenAI would accept it."""
    schemas = list(_schemas(body))
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    for rule in RULES:
        if rule.scope in ("request", "messages"):
            for fields in rule.check(body):
                return _render(rule, fields)
        elif rule.scope == "tool":
            for i, tool in enumerate(tools):
                for fields in rule.check(i, tool):
                    return _render(rule, fields)
        else:
            for schema in schemas:
                if (rule.strict_only and not schema.strict) or (
                    not isinstance(schema.root, dict) and rule.id != "schema_root_type"
                ):
                    continue
                for fields in rule.check(schema):
                    return _render(rule, fields, schema)
    return None
