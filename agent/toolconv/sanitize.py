"""The schema every tool is sent with: valid for OpenAI function calling with ``strict: false``.

What OpenAI rejects outright, even without strict mode (each one fails the *whole* request):
- a root that is not ``type: "object"``, or that carries ``oneOf``/``anyOf``/``allOf``/``enum``/``not``;
- a root object without ``properties`` ("object schema missing properties");
- an array without ``items`` ("array schema missing items"); ``items: {}`` is treated the same way
  here because a falsy ``{}`` is indistinguishable from "missing" to a truthiness check;
- references it cannot resolve.
Everything else is normalised so the strict pass (``strict.py``) has one shape to reason about:
``$schema``/``$id``/``$comment`` go, OpenAPI's ``nullable`` becomes a ``null`` type, boolean
sub-schemas become objects, nested ``anyOf`` is flattened and ``required`` names only real keys.
"""

from __future__ import annotations

import json
from typing import Any

from agent.toolconv.refs import SCHEMA_KEYS, SCHEMA_LIST_KEYS, SCHEMA_MAP_KEYS, inline_refs

META_KEYS = frozenset({"$schema", "$id", "$comment", "$anchor", "$dynamicAnchor", "$dynamicRef", "$vocabulary"})
ROOT_COMBINATORS = ("oneOf", "anyOf", "allOf", "enum", "not")
# What "any JSON value" means for an array element once "{}" is not allowed (arrays are left out
# so this needs no "items" of its own).
ANY_ITEM: dict[str, Any] = {"type": ["string", "number", "boolean", "object", "null"]}


def any_item() -> dict[str, Any]:
    """A fresh copy of ``ANY_ITEM`` (outputs never share mutable parts with module constants)."""
    return {"type": list(ANY_ITEM["type"])}
MAX_DEPTH = 48  # deeper nesting than this is pathological; the rest is accepted as any value
JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
# Type names hand-written or Python-generated schemas use; OpenAI validates "type" against the
# meta-schema and refuses the request for anything else ("'int' is not valid under any of ...").
TYPE_ALIASES = {"int": "integer", "float": "number", "double": "number", "str": "string", "dict": "object",
                "list": "array", "bool": "boolean", "none": "null"}


def _normalise_type(node: dict[str, Any]) -> None:
    kind = node.get("type")
    if kind is None:
        return
    raw = kind if isinstance(kind, list) else [kind]
    mapped = [TYPE_ALIASES.get(k.lower(), k.lower()) for k in raw if isinstance(k, str)]
    valid = list(dict.fromkeys(k for k in mapped if k in JSON_TYPES))
    if not valid:
        del node["type"]  # "any" or garbage: say nothing rather than something OpenAI refuses
    else:
        node["type"] = valid[0] if len(valid) == 1 else valid


def _types(node: dict[str, Any]) -> list[str]:
    kind = node.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    return []


def is_object_schema(node: Any) -> bool:
    """True when ``node`` describes a JSON object (by ``type`` or by carrying ``properties``)."""
    return isinstance(node, dict) and ("object" in _types(node) or isinstance(node.get("properties"), dict))


def _flatten_union(branches: list[Any], key: str) -> list[Any]:
    """Splice ``anyOf: [{anyOf: [a, b]}, c]`` into ``[a, b, c]`` (Vapi's ``llm`` nests them)."""
    flat: list[Any] = []
    for branch in branches:
        if isinstance(branch, dict) and set(branch) <= {key, "description"} and isinstance(branch.get(key), list):
            flat.extend(_flatten_union(branch[key], key))
        else:
            flat.append(branch)
    return flat


def _well_formed(key: str, value: Any) -> bool:
    """False for keyword values the meta-schema refuses (``"enum": "a"``, ``"anyOf": {}``...): dropped."""
    if key in SCHEMA_MAP_KEYS:
        return isinstance(value, dict)
    if key in SCHEMA_LIST_KEYS or key == "enum":
        return isinstance(value, list) and (key == "enum" or bool(value))
    if key in ("description", "title", "pattern", "format"):
        return isinstance(value, str)
    return True


def _clean(node: Any, depth: int) -> dict[str, Any]:
    if node is True or node is None or not isinstance(node, dict):
        return {}
    if depth > MAX_DEPTH:
        return {"description": "Nested too deeply to describe; any value accepted."}
    out: dict[str, Any] = {}
    lifted: list[str] = []
    for key, value in node.items():
        if key in META_KEYS or key in ("$defs", "definitions", "nullable") or not _well_formed(key, value):
            continue
        if key in SCHEMA_MAP_KEYS:
            # "false" forbids a property: leaving it out says the same thing to the model.
            out[key] = {name: _clean(sub, depth + 1) for name, sub in value.items() if sub is not False}
            if key == "properties":
                # Draft-03 style "required": true on the property itself belongs in the parent's list.
                lifted = [name for name, sub in value.items() if isinstance(sub, dict) and sub.get("required") is True]
        elif key in SCHEMA_LIST_KEYS:
            branches = _flatten_union(value, key) if key in ("anyOf", "oneOf") else value
            out[key] = [_clean(sub, depth + 1) for sub in branches]
        elif key == "items" and isinstance(value, list):
            # Draft-04 tuple form: keep the element shapes, lose only their positions.
            out[key] = {"anyOf": [_clean(sub, depth + 1) for sub in value]} if value else any_item()
        elif key in SCHEMA_KEYS:
            out[key] = value if isinstance(value, bool) and key == "additionalProperties" else _clean(value, depth + 1)
        else:
            out[key] = value
    if not isinstance(out.get("required"), list):
        out.pop("required", None)
    if lifted:
        out["required"] = [*out.get("required", []), *lifted]
    if node.get("nullable") is True and "type" in out:
        out["type"] = [*_types(out), "null"] if "null" not in _types(out) else out["type"]
    _normalise_type(out)
    if "type" not in out and "properties" in out:
        out["type"] = "object"
    if "type" not in out and "items" in out:
        out["type"] = "array"
    if isinstance(out.get("enum"), list):
        out["enum"] = _unique(out["enum"])
    kinds = _types(out)
    if "object" in kinds:
        _fix_object(out)
    if "array" in kinds and not out.get("items"):
        out["items"] = any_item()
    return out


def _unique(values: list[Any]) -> list[Any]:
    """Enum values without repeats (Vapi lists "11labs" twice), order kept."""
    seen: set[str] = set()
    out = []
    for value in values:
        key = json.dumps(value, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


def _fix_object(node: dict[str, Any]) -> None:
    props = node.get("properties")
    if not isinstance(props, dict):
        props = node["properties"] = {}
    required = node.get("required")
    if not isinstance(required, list):
        node.pop("required", None)
        return
    names = list(dict.fromkeys(r for r in required if isinstance(r, str)))
    for name in names:
        # A key that is required but undescribed still has to be sent: describe it as "anything".
        props.setdefault(name, {})
    node["required"] = names


def _merge_objects(branches: list[dict[str, Any]], *, all_required: bool) -> tuple[dict[str, Any], list[str]]:
    """Union of the branches' properties; required = union (allOf) or intersection (anyOf/oneOf)."""
    props: dict[str, Any] = {}
    required_sets: list[set[str]] = []
    order: dict[str, None] = {}
    for branch in branches:
        own = branch.get("properties")
        for name, sub in (own if isinstance(own, dict) else {}).items():
            if name not in props:
                props[name] = sub
            elif props[name] != sub:
                existing = props[name].get("anyOf") if set(props[name]) == {"anyOf"} else [props[name]]
                props[name] = {"anyOf": [*existing, sub]}
        required = branch.get("required")
        names = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
        order.update(dict.fromkeys(names))
        required_sets.append(set(names))
    if not required_sets:
        return props, []
    chosen = set.union(*required_sets) if all_required else set.intersection(*required_sets)
    return props, [name for name in order if name in chosen]


def _object_like(branch: Any) -> bool:
    """A branch that can describe (part of) an arguments object, e.g. ``{"required": ["a"]}``."""
    if not isinstance(branch, dict) or "enum" in branch or "const" in branch:
        return False
    kinds = _types(branch)
    return not kinds or "object" in kinds


def _shape_summary(branches: list[dict[str, Any]]) -> str:
    shapes = []
    for branch in branches:
        need = [r for r in branch.get("required", []) if isinstance(r, str)]
        own = branch.get("properties")
        keys = list(own if isinstance(own, dict) else {}) or need
        shapes.append("{" + ", ".join(f"{k}{'' if k in need else '?'}" for k in keys) + "}")
    return "Accepts one of these argument shapes: " + " | ".join(shapes) + "."


def _append_description(node: dict[str, Any], text: str) -> None:
    current = node.get("description")
    if not isinstance(current, str) or not current.strip():
        node["description"] = text
        return
    current = current.rstrip()
    node["description"] = f"{current}{'' if current.endswith(('.', '!', '?', ':')) else '.'} {text}"


def _fix_root(root: dict[str, Any]) -> dict[str, Any]:
    if "type" not in root and not any(k in root for k in ROOT_COMBINATORS):
        root["type"] = "object"
    for key in ("anyOf", "oneOf"):
        branches = root.pop(key, None)
        if not isinstance(branches, list):
            continue
        objects = [b for b in branches if _object_like(b)]
        if not objects:
            return _wrap(root, {key: branches})
        # Alternatives of one arguments object: offer the union of their keys, require only what
        # every alternative requires, and say in words which combinations are meant.
        props, required = _merge_objects(objects, all_required=False)
        _merge_into(root, props, required)
        if len(objects) > 1:
            _append_description(root, _shape_summary(objects))
    all_of = root.pop("allOf", None)
    if isinstance(all_of, list):
        props, required = _merge_objects([b for b in all_of if _object_like(b)], all_required=True)
        _merge_into(root, props, required)
    root.pop("not", None)  # cannot be expressed at the root; the server still enforces it
    if "enum" in root and "object" not in _types(root):
        return _wrap(root, {"enum": root.pop("enum")})
    root.pop("enum", None)
    if not _types(root):
        root["type"] = "object"
    elif _types(root) != ["object"]:
        if "object" not in _types(root):
            return _wrap(root, {})
        root["type"] = "object"  # ["object", "null"]: arguments are always an object
    _fix_object(root)
    return root


def _merge_into(root: dict[str, Any], props: dict[str, Any], required: list[str]) -> None:
    root["type"] = "object"
    own = root.setdefault("properties", {})
    for name, sub in props.items():
        own.setdefault(name, sub)
    own_required = root.get("required")
    merged = list(dict.fromkeys([*(own_required if isinstance(own_required, list) else []), *required]))
    if merged:
        root["required"] = merged


def _wrap(root: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """MCP arguments are always an object: a non-object schema becomes the ``value`` property."""
    inner = {**root, **extra}
    description = inner.pop("description", None)
    wrapped: dict[str, Any] = {"type": "object", "properties": {"value": _clean(inner, 1)}, "required": ["value"]}
    if isinstance(description, str):
        wrapped["description"] = description
    return wrapped


def sanitize_schema(schema: Any) -> dict[str, Any]:
    """Return an OpenAI-acceptable copy of an MCP ``inputSchema`` (the input is not modified)."""
    if not isinstance(schema, dict):
        schema = {}
    inlined = inline_refs(schema)
    cleaned = _clean(inlined, 0)
    return _fix_root(cleaned)


def schema_size(schema: dict[str, Any]) -> int:
    """Characters of the compact JSON encoding (what the token estimate is based on)."""
    return len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False))
