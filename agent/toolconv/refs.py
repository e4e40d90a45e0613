"""Inline local ``$ref``s so the schema OpenAI sees is self-contained.

Servers emit three kinds of local pointers: ``#/$defs/X`` (pydantic, zod 4), ``#/definitions/X``
(draft-07 tools) and zod-to-json-schema's pointers into the document itself, such as
``#/properties/function/properties/parameters/properties/type`` (Vapi's ``create_tool``).
OpenAI strict mode only follows ``#/$defs``-style references at the top level, and other clients
drop ``$defs`` altogether, so every local reference is replaced by a copy of its target.

Recursion (``"$ref": "#"`` or a definition that contains itself) must terminate: once the same
reference is open ``max_repeat`` times on the current path, or the expansion budget is spent,
the reference becomes a permissive schema of the target's type. Unresolvable references (missing
pointers, remote URLs) become an unconstrained schema; the server still validates the call.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import unquote

# Keywords whose value is one schema, a list of schemas, or a name -> schema map. Anything else
# (enum, const, default, examples, ...) is data and must not be searched for "$ref".
SCHEMA_KEYS = frozenset(
    {"items", "additionalProperties", "additionalItems", "not", "if", "then", "else", "contains",
     "propertyNames", "unevaluatedItems", "unevaluatedProperties"}
)
SCHEMA_LIST_KEYS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
SCHEMA_MAP_KEYS = frozenset({"properties", "patternProperties", "dependentSchemas"})
DEFINITION_KEYS = frozenset({"$defs", "definitions"})

MAX_REPEAT = 2  # how often one reference may nest inside itself before it is cut
MAX_EXPANSIONS = 500  # total inlined references per schema (guards against exponential fan-out)

_MISSING = object()


def resolve_pointer(root: Any, ref: str) -> Any:
    """The node ``ref`` (``#`` or ``#/a/b``, RFC 6901 escapes) points at in ``root``, or a sentinel.

    Returns the module-private ``_MISSING`` sentinel (test with ``is_missing``) for remote
    references and pointers that lead nowhere.
    """
    if not ref.startswith("#"):
        return _MISSING
    fragment = unquote(ref[1:])
    if fragment == "":
        return root
    if not fragment.startswith("/"):
        return _MISSING  # "#anchor" style; anchors are rare in tool schemas and not supported
    node = root
    for raw in fragment[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def is_missing(value: Any) -> bool:
    """True for the sentinel ``resolve_pointer`` returns when a reference leads nowhere."""
    return value is _MISSING


def permissive_like(target: Any) -> dict[str, Any]:
    """A schema accepting any value of ``target``'s type (used to cut recursion)."""
    note = "Nested deeper than this description goes; any value of this shape is accepted."
    kind = target.get("type") if isinstance(target, dict) else None
    if kind == "object" or (isinstance(target, dict) and "properties" in target):
        return {"type": "object", "properties": {}, "description": note}
    if kind == "array":
        return {"type": "array", "items": {}, "description": note}
    if isinstance(kind, str):
        return {"type": kind, "description": note}
    return {"description": note}


class _Inliner:
    def __init__(self, root: Any, max_repeat: int, max_expansions: int) -> None:
        self.root = root
        self.max_repeat = max_repeat
        self.budget = max_expansions

    def schema(self, node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, list):  # draft-04 tuple "items"
            return [self.schema(item, stack) for item in node]
        if not isinstance(node, dict):
            return copy.deepcopy(node)
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self._expand(ref, node, stack)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in DEFINITION_KEYS:
                continue  # every local reference is inlined below, so definitions are dead weight
            if key in SCHEMA_KEYS:
                out[key] = self.schema(value, stack)
            elif key in SCHEMA_LIST_KEYS and isinstance(value, list):
                out[key] = [self.schema(item, stack) for item in value]
            elif key in SCHEMA_MAP_KEYS and isinstance(value, dict):
                out[key] = {name: self.schema(sub, stack) for name, sub in value.items()}
            else:
                out[key] = copy.deepcopy(value)
        return out

    def _expand(self, ref: str, node: dict[str, Any], stack: tuple[str, ...]) -> Any:
        target = resolve_pointer(self.root, ref)
        if target is _MISSING:
            replaced: Any = {"description": "Schema reference could not be resolved; any value accepted."}
        elif stack.count(ref) >= self.max_repeat or self.budget <= 0:
            replaced = permissive_like(target)
        else:
            self.budget -= 1
            replaced = self.schema(target, (*stack, ref))
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if not siblings:
            return replaced
        # Sibling keywords (usually "description") refine the target: they win over its own.
        merged = dict(replaced) if isinstance(replaced, dict) else {}
        merged.update(self.schema(siblings, stack))
        return merged


def inline_refs(
    schema: dict[str, Any], *, max_repeat: int = MAX_REPEAT, max_expansions: int = MAX_EXPANSIONS
) -> dict[str, Any]:
    """A copy of ``schema`` with every ``$ref`` replaced by its target and ``$defs``/``definitions`` removed."""
    result = _Inliner(schema, max_repeat, max_expansions).schema(schema, ())
    return result if isinstance(result, dict) else {}
