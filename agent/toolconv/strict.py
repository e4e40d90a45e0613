"""The strict-mode copy of a sanitised schema, or ``NotStrictable`` when strict mode cannot say it.

OpenAI strict mode (structured outputs for function calls) accepts a subset of JSON Schema:
every object closed with ``additionalProperties: false`` and listing *every* key in ``required``,
every node typed, ``anyOf`` but no ``oneOf``/``allOf``/``not``/conditionals, no ``default``, and
only a few ``format`` values. The conversion here is lossless for the model where it can be:

- an optional key becomes required-but-nullable; its path is recorded so the caller can drop the
  ``null`` the model sends for it before the MCP server sees it (``optional`` in the result);
- ``oneOf`` becomes ``anyOf``, a one-branch or all-object ``allOf`` is merged, ``const`` becomes a
  one-value ``enum``, ``default`` and unsupported ``format``s move into the description;
- pure validation keywords strict mode does not know (``minLength``, ``uniqueItems``...) are dropped:
  the MCP server still validates the call.

What cannot be expressed raises ``NotStrictable`` and the tool is sent with ``strict: false``:
free-form maps (``additionalProperties`` with a schema, or an object with no properties below the
root), untyped ``{}`` schemas, ``not``/``if``/``patternProperties``..., and the documented size
limits (nesting depth, property and enum counts).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

SUPPORTED_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
ALLOWED = frozenset(
    {"type", "properties", "required", "additionalProperties", "items", "anyOf", "enum", "description", "title",
     "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
     "minItems", "maxItems"}
)
UNSUPPORTED = frozenset(
    {"not", "if", "then", "else", "patternProperties", "dependentSchemas", "dependentRequired", "propertyNames",
     "unevaluatedProperties", "unevaluatedItems", "contains", "prefixItems", "additionalItems", "$ref",
     "oneOf", "allOf"}  # the last two only survive rewriting when nested inside a merged allOf
)
MAX_DEPTH = 10  # documented nesting limit for structured outputs
MAX_PROPERTIES = 5000
MAX_ENUM_VALUES = 1000
ArgPath = tuple[str, ...]  # property names from the arguments root; "[]" steps into array items


class NotStrictable(ValueError):
    """The schema needs a feature strict mode lacks; the message says which and where."""


@dataclass
class StrictResult:
    """A strict-mode schema and, per object path, the keys that were optional in the original."""

    schema: dict[str, Any]
    optional: dict[ArgPath, frozenset[str]] = field(default_factory=dict)


def _types(node: dict[str, Any]) -> list[str]:
    kind = node.get("type")
    if isinstance(kind, str):
        return [kind]
    return [k for k in kind if isinstance(k, str)] if isinstance(kind, list) else []


def accepts_null(node: dict[str, Any]) -> bool:
    """True when ``null`` is a valid value for ``node``."""
    if "null" in _types(node) or None in (node.get("enum") or []):
        return True
    return any(isinstance(b, dict) and accepts_null(b) for b in node.get("anyOf") or [])


def make_nullable(node: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``node`` that also accepts ``null`` (strict mode's spelling of "optional")."""
    if accepts_null(node):
        return node
    out = dict(node)
    if "anyOf" in out:
        out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        return out
    kinds = _types(out)
    if kinds:
        out["type"] = [*kinds, "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    raise NotStrictable(f"enum value {value!r} is not a scalar")


def _note(node: dict[str, Any], text: str) -> None:
    current = node.get("description")
    if not isinstance(current, str) or not current.strip():
        node["description"] = text
        return
    current = current.rstrip()
    node["description"] = f"{current}{'' if current.endswith(('.', '!', '?', ':')) else '.'} {text}"


class _Strictifier:
    def __init__(self) -> None:
        self.optional: dict[ArgPath, set[str]] = {}
        self.legit_null: dict[ArgPath, set[str]] = {}
        self.properties = 0
        self.enum_values = 0

    def node(self, raw: Any, path: ArgPath, depth: int, *, root: bool = False) -> dict[str, Any]:
        where = "/".join(path) or "(root)"
        if not isinstance(raw, dict) or not raw:
            raise NotStrictable(f"{where}: an empty schema accepts anything and has no strict form")
        if depth > MAX_DEPTH:
            raise NotStrictable(f"{where}: nested deeper than {MAX_DEPTH} levels")
        node = self._rewrite(dict(raw), where)
        if "anyOf" in node:
            node["anyOf"] = [self.node(b, path, depth) for b in node["anyOf"]]
        elif "type" not in node:
            if "enum" not in node:
                raise NotStrictable(f"{where}: schema has no type")
            node["type"] = list(dict.fromkeys(_json_type(v) for v in node["enum"]))
        kinds = _types(node)
        if "object" in kinds:
            self._object(node, path, depth, root=root)
        if "array" in kinds:
            node["items"] = self.node(node.get("items"), (*path, "[]"), depth + 1)
        if "enum" in node:
            self.enum_values += len(node["enum"])
            if self.enum_values > MAX_ENUM_VALUES:
                raise NotStrictable(f"more than {MAX_ENUM_VALUES} enum values")
        return node

    def _rewrite(self, node: dict[str, Any], where: str) -> dict[str, Any]:
        if "oneOf" in node:
            if "anyOf" in node:
                raise NotStrictable(f"{where}: both oneOf and anyOf")
            node["anyOf"] = node.pop("oneOf")  # "exactly one" relaxed to "at least one"
        if "allOf" in node:
            self._merge_all_of(node, node.pop("allOf"), where)
        if "const" in node:
            node["enum"] = [node.pop("const")]
        if "default" in node:
            _note(node, f"Default: {json.dumps(node.pop('default'), ensure_ascii=False)[:200]}.")
        if "format" in node and node["format"] not in SUPPORTED_FORMATS:
            _note(node, f"Format: {node.pop('format')}.")
        for key in list(node):
            if key in UNSUPPORTED:
                raise NotStrictable(f"{where}: '{key}' has no strict-mode equivalent")
            if key not in ALLOWED:
                del node[key]  # validation-only or vendor keywords: the server still checks them
        return node

    @staticmethod
    def _merge_all_of(node: dict[str, Any], branches: Any, where: str) -> None:
        if not isinstance(branches, list) or not all(isinstance(b, dict) for b in branches):
            raise NotStrictable(f"{where}: malformed allOf")
        if len(branches) > 1 and not all("object" in _types(b) or "properties" in b for b in branches):
            raise NotStrictable(f"{where}: allOf of non-object schemas")
        for branch in branches:
            for key, value in branch.items():
                if key == "properties":
                    node["properties"] = {**(node.get("properties") or {}), **value}
                elif key == "required":
                    node["required"] = list(dict.fromkeys([*node.get("required", []), *value]))
                else:
                    node.setdefault(key, value)

    def _object(self, node: dict[str, Any], path: ArgPath, depth: int, *, root: bool) -> None:
        where = "/".join(path) or "(root)"
        props = node.get("properties") or {}
        extra = node.get("additionalProperties")
        if extra not in (None, False) and not (props and extra in (True, {})):
            raise NotStrictable(f"{where}: free-form map (additionalProperties={json.dumps(extra)[:60]})")
        if not props and not root and extra is not False:
            raise NotStrictable(f"{where}: object without properties accepts any keys")
        self.properties += len(props)
        if self.properties > MAX_PROPERTIES:
            raise NotStrictable(f"more than {MAX_PROPERTIES} properties")
        required = set(node.get("required") or [])
        strict_props: dict[str, Any] = {}
        for name, sub in props.items():
            converted = self.node(sub, (*path, name), depth + 1)
            if accepts_null(converted):
                self.legit_null.setdefault(path, set()).add(name)
            elif name not in required:
                self.optional.setdefault(path, set()).add(name)
                converted = make_nullable(converted)
            strict_props[name] = converted
        node["properties"] = strict_props
        node["required"] = list(strict_props)
        node["additionalProperties"] = False

    def result(self, schema: dict[str, Any]) -> StrictResult:
        for path, names in self.optional.items():
            clash = names & self.legit_null.get(path, set())
            if clash:
                # One anyOf branch makes the key optional, another lets it be null on purpose:
                # a null from the model could not be told apart, so keep the tool non-strict.
                raise NotStrictable(f"{'/'.join(path) or '(root)'}: {sorted(clash)} both optional and nullable")
        return StrictResult(schema, {path: frozenset(names) for path, names in self.optional.items()})


def strictify(schema: dict[str, Any]) -> StrictResult:
    """Convert a sanitised schema (see ``sanitize_schema``) for ``strict: true``, or raise ``NotStrictable``."""
    worker = _Strictifier()
    # A deep copy: on failure the caller sends the untouched schema non-strict.
    converted = worker.node(copy.deepcopy(schema), (), 0, root=True)
    if _types(converted) != ["object"]:
        raise NotStrictable("the root is not a plain object")
    return worker.result(converted)


def drop_optional_nulls(arguments: Any, optional: dict[ArgPath, frozenset[str]], path: ArgPath = ()) -> Any:
    """Remove the ``null``s the model sent for keys that were optional before strictification."""
    if isinstance(arguments, list):
        return [drop_optional_nulls(item, optional, (*path, "[]")) for item in arguments]
    if not isinstance(arguments, dict):
        return arguments
    skip = optional.get(path, frozenset())
    return {
        key: drop_optional_nulls(value, optional, (*path, key))
        for key, value in arguments.items()
        if not (value is None and key in skip)
    }
