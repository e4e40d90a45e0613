"""The Truto-style tool catalogue for Vapi, generated from the resource table in ``truto_resources``.

Truto builds an integration's MCP tools from its documented resources: one tool per
(resource, method), named ``list_all_vapi_<resources>``, ``get_single_vapi_<singular>_by_id``,
``create_a_vapi_<singular>``, ``update_a_vapi_<singular>_by_id``, ``delete_a_vapi_<singular>_by_id``
(reference/mcp-servers.md §2.3). Input schemas are one flat object: query-param properties and
body properties side by side (§2.4); the proxy splits them again with ``ToolSpec.query`` /
``ToolSpec.body``. List tools get ``limit`` and ``next_cursor`` injected.

Besides CRUD there are a few tools whose Truto method is ``custom`` (``create_a_vapi_analytics``,
``create_a_vapi_chat_response``) and per-call recording tools
(``list_all_vapi_<kind>_recordings``, Truto method ``list``: reading them is a read).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mcp.types as types

from sandbox.truto.resources import CHAT_BODY, ID_PROP, RESOURCES, Prop, Resource, array_prop, prop, string_prop

READ_METHODS = frozenset({"list", "get"})
WRITE_METHODS = frozenset({"create", "update", "delete"})
METHOD_GROUPS: dict[str, frozenset[str]] = {
    "read": READ_METHODS,
    "write": WRITE_METHODS,
    "custom": frozenset({"custom"}),
}
TRUTO_METHODS = ("list", "get", "create", "update", "delete", "custom")
RECORDING_KINDS = ("mono", "stereo", "customer", "assistant", "video")
CURSOR_HINT = (
    "Cursor for the next page: pass the next_cursor value from the previous result back unchanged; "
    "omit it for the first page."
)


# ---------------------------------------------------------------- tool specs
@dataclass(frozen=True)
class ToolSpec:
    """One generated tool: its MCP face (name, description, schema) and how the proxy executes it.

    ``method`` is the Truto method (list/get/create/update/delete/custom). ``action`` is what the
    proxy does: ``list`` (paged GET), ``request`` (one REST call) or ``recording`` (a per-call link).
    ``query``/``body`` name the flat arguments that go to the query string / the JSON body.
    """

    name: str
    resource: str
    method: str
    action: str
    http_method: str
    path: str
    description: str
    input_schema: dict[str, Any]
    tags: tuple[str, ...]
    query: tuple[str, ...] = ()
    body: tuple[str, ...] = ()
    fixed_body: dict[str, Any] = field(default_factory=dict)
    paging: str | None = None
    recording_kind: str | None = None
    read_only: bool = False
    destructive: bool = False

    def to_tool(self) -> types.Tool:
        """The MCP ``Tool`` (with annotations and Truto metadata under ``_meta``)."""
        return types.Tool(
            name=self.name,
            description=self.description,
            input_schema=self.input_schema,
            annotations=types.ToolAnnotations(
                read_only_hint=self.read_only,
                destructive_hint=self.destructive,
                idempotent_hint=self.method in ("get", "list", "update", "delete"),
                open_world_hint=True,
            ),
            _meta={"truto": {"method": self.method, "resource": self.resource, "tags": list(self.tags)}},
        )


def _schema(props: Iterable[Prop], required: Sequence[str] = ()) -> dict[str, Any]:
    properties = {p.name: dict(p.schema) for p in props}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _returns_hint(fields: Sequence[str], required: Sequence[str]) -> str:
    hint = f" Returns: {', '.join(fields)}."
    return hint + (f" Required: {', '.join(required)}." if required else "")


def _resource_tools(res: Resource) -> list[ToolSpec]:
    label = res.label or res.name.replace("_", " ")

    def tags_for(method: str) -> tuple[str, ...]:
        return (res.name, method)

    singular = res.singular.replace("_", " ")
    item_path = f"{res.path}/{{id}}"
    list_props = (
        *res.list_query,
        prop("limit", "integer", "Maximum number of records per page (the server may return fewer)."),
        string_prop("next_cursor", CURSOR_HINT),
    )
    specs = [
        ToolSpec(
            name=f"list_all_vapi_{res.name}", resource=res.name, method="list", action="list",
            http_method="GET", path=res.path,
            description=f"List all {label} in Vapi, newest first, one page at a time."
            + _returns_hint(("result[] of " + ", ".join(res.returns[:6]) + ", ...", "next_cursor"), ()),
            input_schema=_schema(list_props), tags=tags_for("list"),
            query=tuple(p.name for p in res.list_query), paging=res.paging, read_only=True,
        ),
        ToolSpec(
            name=f"get_single_vapi_{res.singular}_by_id", resource=res.name, method="get",
            action="request", http_method="GET", path=item_path,
            description=f"Get a single {singular} in Vapi by its id." + _returns_hint(res.returns, ("id",)),
            input_schema=_schema((ID_PROP,), ("id",)), tags=tags_for("get"), read_only=True,
        ),
    ]
    if res.create is not None:
        specs.append(ToolSpec(
            name=f"create_a_vapi_{res.singular}", resource=res.name, method="create", action="request",
            http_method="POST", path=res.path,
            description=f"Create a {singular} in Vapi." + _returns_hint(res.returns, res.create_required),
            input_schema=_schema(res.create, res.create_required), tags=tags_for("create"),
            body=tuple(p.name for p in res.create), fixed_body=res.fixed_body,
        ))
    if res.update is not None:
        specs.append(ToolSpec(
            name=f"update_a_vapi_{res.singular}_by_id", resource=res.name, method="update",
            action="request", http_method="PATCH", path=item_path,
            description=f"Update a {singular} in Vapi by its id (only the given fields change)."
            + _returns_hint(res.returns, ("id",)),
            input_schema=_schema((ID_PROP, *res.update), ("id",)), tags=tags_for("update"),
            body=tuple(p.name for p in res.update),
        ))
    if res.delete:
        specs.append(ToolSpec(
            name=f"delete_a_vapi_{res.singular}_by_id", resource=res.name, method="delete",
            action="request", http_method="DELETE", path=item_path,
            description=f"Delete a {singular} in Vapi by its id; returns the deleted record."
            + _returns_hint(res.returns, ("id",)),
            input_schema=_schema((ID_PROP,), ("id",)), tags=tags_for("delete"), destructive=True,
        ))
    return specs


def _custom_tools() -> list[ToolSpec]:
    analytics = ToolSpec(
        name="create_a_vapi_analytics", resource="analytics", method="custom", action="request",
        http_method="POST", path="/analytics",
        description=(
            "Run analytics queries over Vapi calls: sums, averages, counts, min/max and history of "
            "call columns (cost, duration, costBreakdown.*), grouped by type, assistantId, endedReason, "
            "analysis.successEvaluation or status, bucketed by timeRange.step. Always set an alias on "
            "each operation." + _returns_hint(("[{name, timeRange, result[]}]",), ("queries",))
        ),
        input_schema=_schema(
            (array_prop("queries", "[{table: call|subscription, name, operations[{operation, column, alias}], "
                           "groupBy[], timeRange{start, end, step, timezone}}]."),),
            ("queries",),
        ),
        tags=("analytics", "custom"), body=("queries",),
        # Analytics reads stored calls and writes nothing, so the annotation may say so.
        read_only=True,
    )
    chat_response = ToolSpec(
        name="create_a_vapi_chat_response", resource="chat_responses", method="custom",
        action="request", http_method="POST", path="/chat/responses",
        description="Send a message to an assistant through Vapi's OpenAI Responses-compatible chat "
        "endpoint and get its reply." + _returns_hint(("id", "object", "status", "output[]"), ("input",)),
        input_schema=_schema(CHAT_BODY, ("input",)), tags=("chats", "chat_responses", "custom"),
        body=tuple(p.name for p in CHAT_BODY), fixed_body={"stream": False},
    )
    return [analytics, chat_response]


def _recording_tools() -> list[ToolSpec]:
    specs = []
    for kind in RECORDING_KINDS:
        what = "video" if kind == "video" else f"{kind} audio"
        specs.append(ToolSpec(
            name=f"list_all_vapi_{kind}_recordings", resource=f"{kind}_recordings", method="list",
            action="recording", http_method="GET", path=f"/call/{{id}}/{kind}-recording",
            description=(
                f"Get the {what} recording of one call as a short-lived download link "
                "(no auth needed; it redirects to the file). `id` is accepted as an alias of call_id."
                + _returns_hint(("url", "content_type", "expires_at"), ("call_id",))
            ),
            input_schema=_schema(
                (string_prop("call_id", "The id of the call."), string_prop("id", "Alias of call_id.")), ("call_id",)
            ),
            tags=(f"{kind}_recordings", "recordings", "calls", "list"),
            recording_kind=kind, read_only=True,
        ))
    return specs


def build_catalogue() -> list[ToolSpec]:
    """Every tool the sandbox's Truto server can offer, before method/tag filtering."""
    specs: list[ToolSpec] = []
    for res in RESOURCES:
        specs.extend(_resource_tools(res))
    specs.extend(_custom_tools())
    specs.extend(_recording_tools())
    return specs


def expand_methods(methods: Iterable[str]) -> frozenset[str]:
    """Truto ``config.methods`` → the set of Truto method names (``read``/``write``/``custom`` expand)."""
    out: set[str] = set()
    for item in methods:
        out |= METHOD_GROUPS.get(item, frozenset({item}))
    return frozenset(out)


def select_tools(specs: Iterable[ToolSpec], methods: Iterable[str], tags: Iterable[str]) -> list[ToolSpec]:
    """Truto's filter: keep tools whose method is allowed AND (no tags given or tags intersect)."""
    allowed = expand_methods(methods)
    wanted = set(tags)
    return [s for s in specs if s.method in allowed and (not wanted or wanted & set(s.tags))]


# ---------------------------------------------------------------- discovery mode
_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    words = set(_WORD.findall(text.lower()))
    # crude singular/plural folding so "call" finds "calls" and "recordings" finds "recording"
    return words | {w[:-1] for w in words if w.endswith("s") and len(w) > 3} | {w + "s" for w in words}


def search(specs: Sequence[ToolSpec], query: str, limit: int = 10) -> list[ToolSpec]:
    """Rank tools by how many query words hit their name (x3), tags (x2) and description (x1)."""
    wanted = _words(query)
    scored: list[tuple[int, int, ToolSpec]] = []
    for index, spec in enumerate(specs):
        score = (
            3 * len(wanted & _words(spec.name.replace("_", " ")))
            + 2 * len(wanted & _words(" ".join(spec.tags)))
            + len(wanted & _words(spec.description))
        )
        if score:
            scored.append((-score, index, spec))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [spec for _, _, spec in scored[: max(limit, 0)]]


DISCOVERY_TOOLS: tuple[types.Tool, ...] = (
    types.Tool(
        name="search_tools",
        description="Search the Vapi tools this server offers by keywords (e.g. 'list calls', "
        "'recording'). Returns: tools[] of name, description, method, tags. Required: query.",
        input_schema={
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Keywords to look for."},
                "limit": {"type": "integer", "description": "Maximum number of tools (default 10)."},
            },
            "required": ["query"],
        },
        annotations=types.ToolAnnotations(read_only_hint=True, destructive_hint=False),
    ),
    types.Tool(
        name="get_tool_schema",
        description="Get the full input schemas of 1 to 5 tools by name, before calling them with "
        "call_tool. Returns: tools[] of name, description, inputSchema. Required: tool_names.",
        input_schema={
            "type": "object",
            "properties": {
                "tool_names": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5,
                               "description": "Tool names from search_tools."},
            },
            "required": ["tool_names"],
        },
        annotations=types.ToolAnnotations(read_only_hint=True, destructive_hint=False),
    ),
    types.Tool(
        name="call_tool",
        description="Call one tool found with search_tools, with arguments matching its schema. "
        "Returns: that tool's result. Required: tool_name, arguments.",
        input_schema={
            "type": "object",
            "properties": {
                "tool_name": {"type": "string", "description": "Name of the tool to call."},
                "arguments": {"type": "object", "additionalProperties": True,
                              "description": "Arguments for that tool."},
            },
            "required": ["tool_name", "arguments"],
        },
        # It can run any tool, including deletes.
        annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True),
    ),
)
DISCOVERY_NAMES = frozenset(t.name for t in DISCOVERY_TOOLS)
