"""MCP tools -> OpenAI chat-completions function tools (pure functions, no I/O).

``to_openai_tools`` turns the tools of one or more MCP servers into the ``tools=[...]`` parameter
of ``chat.completions.create`` and a ``ToolMap`` that routes the model's calls back:

- names are fitted to ``^[a-zA-Z0-9_-]{1,64}$`` (``fit_name``); a name that exists on two servers
  is prefixed with its server name first, and only then;
- every schema is sanitised (``sanitize_schema``): self-contained, object root, no pitfalls that
  make OpenAI refuse the whole request;
- with ``strict=True`` each tool is tried in strict mode on a copy; a tool whose schema strict mode
  cannot express is sent with ``strict: false`` instead (the fallback is per tool, never global);
- descriptions are cut to 1024 characters (Azure OpenAI and older API versions refuse longer).

Tools may be ``mcp.types.Tool`` objects (snake_case attributes) or plain dicts in wire form
(``inputSchema``); nothing here imports ``mcp``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.toolconv.names import MAX_NAME, fit_name, is_valid_name
from agent.toolconv.sanitize import sanitize_schema
from agent.toolconv.strict import ArgPath, NotStrictable, drop_optional_nulls, strictify

__all__ = [
    "MAX_DESCRIPTION",
    "MAX_NAME",
    "NotStrictable",
    "ToolMap",
    "ToolRef",
    "fit_name",
    "is_valid_name",
    "sanitize_schema",
    "strictify",
    "to_openai_tools",
]

MAX_DESCRIPTION = 1024
SERVER_SEPARATOR = "__"


@dataclass(frozen=True)
class ToolRef:
    """Where an OpenAI function name leads: the MCP server and the tool's own name there."""

    openai_name: str
    server: str
    mcp_name: str
    strict: bool
    strict_fallback_reason: str | None = None
    optional_paths: Mapping[ArgPath, frozenset[str]] = field(default_factory=dict, hash=False)


class ToolMap:
    """The reversible map openai name <-> (server, mcp name), plus what is needed to route a call."""

    def __init__(self, refs: Iterable[ToolRef] = ()) -> None:
        self._by_openai: dict[str, ToolRef] = {}
        self._by_mcp: dict[tuple[str, str], ToolRef] = {}
        for ref in refs:
            self.add(ref)

    def add(self, ref: ToolRef) -> None:
        """Register one tool; both of its names must be unused."""
        if ref.openai_name in self._by_openai:
            raise ValueError(f"duplicate OpenAI tool name {ref.openai_name!r}")
        if (ref.server, ref.mcp_name) in self._by_mcp:
            raise ValueError(f"duplicate MCP tool {ref.server}/{ref.mcp_name}")
        self._by_openai[ref.openai_name] = ref
        self._by_mcp[(ref.server, ref.mcp_name)] = ref

    def resolve(self, openai_name: str) -> tuple[str, str]:
        """``(server, mcp_name)`` for a function name the model called; ``KeyError`` if unknown."""
        ref = self._by_openai[openai_name]
        return ref.server, ref.mcp_name

    def ref(self, openai_name: str) -> ToolRef:
        """The full ``ToolRef`` for a function name; ``KeyError`` if unknown."""
        return self._by_openai[openai_name]

    def openai_name(self, server: str, mcp_name: str) -> str:
        """The function name the model sees for an MCP tool; ``KeyError`` if unknown."""
        return self._by_mcp[(server, mcp_name)].openai_name

    def restore_arguments(self, openai_name: str, arguments: Any) -> Any:
        """The arguments to send to the MCP server for a call the model made.

        Strict mode made optional keys required-but-nullable; the ``null``s the model sends for
        them are dropped here so the server sees the key as absent, as its schema expects.
        """
        ref = self._by_openai.get(openai_name)
        if ref is None or not ref.optional_paths:
            return arguments
        return drop_optional_nulls(arguments, dict(ref.optional_paths))

    def __contains__(self, openai_name: object) -> bool:
        return openai_name in self._by_openai

    def __iter__(self) -> Iterator[ToolRef]:
        return iter(self._by_openai.values())

    def __len__(self) -> int:
        return len(self._by_openai)


def _field(tool: Any, *names: str) -> Any:
    for name in names:
        value = tool.get(name) if isinstance(tool, Mapping) else getattr(tool, name, None)
        if value is not None:
            return value
    return None


def tool_fields(tool: Any) -> tuple[str, str, Any]:
    """``(name, description, input schema)`` of an ``mcp.types.Tool`` or a wire-form dict."""
    name = _field(tool, "name")
    if not isinstance(name, str) or not name:
        raise ValueError("an MCP tool without a name")
    description = _field(tool, "description")
    if not isinstance(description, str) or not description.strip():
        annotations = _field(tool, "annotations")
        title = _field(tool, "title") or (annotations and _field(annotations, "title"))
        description = title if isinstance(title, str) else ""
    return name, description.strip(), _field(tool, "input_schema", "inputSchema")


def fit_description(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """``text`` cut to ``limit`` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _grouped(tools: Iterable[Any] | Mapping[str, Iterable[Any]], server: str) -> list[tuple[str, Any]]:
    if isinstance(tools, Mapping):
        return [(srv, tool) for srv, group in tools.items() for tool in group]
    return [(server, tool) for tool in tools]


def convert_tool(name: str, description: str, schema: Any, *, strict: bool) -> tuple[dict[str, Any], ToolRef]:
    """One tool param with its name already fitted; the ``ToolRef`` has server/mcp name left empty."""
    parameters = sanitize_schema(schema)
    use_strict, reason, optional = False, None, {}
    if strict:
        try:
            result = strictify(parameters)
        except NotStrictable as exc:
            reason = str(exc)
        else:
            parameters, optional, use_strict = result.schema, result.optional, True
    function: dict[str, Any] = {"name": name}
    if description:
        function["description"] = fit_description(description)
    function["parameters"] = parameters
    function["strict"] = use_strict
    ref = ToolRef(name, "", "", use_strict, reason, optional)
    return {"type": "function", "function": function}, ref


def to_openai_tools(
    tools: Iterable[Any] | Mapping[str, Iterable[Any]], *, strict: bool = True, server: str = ""
) -> tuple[list[dict[str, Any]], ToolMap]:
    """Convert MCP tools to chat-completions tool params and the map back to (server, mcp name).

    ``tools`` is one server's tool list (named by ``server``) or a mapping server -> tool list.
    Output order follows input order, so repeated conversions give byte-identical requests
    (good for prompt caching).
    """
    pairs = [(srv, tool, *tool_fields(tool)) for srv, tool in _grouped(tools, server)]
    servers_per_name = Counter(name for name, _srv in {(p[2], p[0]) for p in pairs})
    taken: set[str] = set()
    params: list[dict[str, Any]] = []
    tool_map = ToolMap()
    seen: set[tuple[str, str]] = set()
    for srv, _tool, name, description, schema in pairs:
        if (srv, name) in seen:
            continue  # a server listing one name twice can only ever run one of them: keep the first
        seen.add((srv, name))
        wanted = f"{srv}{SERVER_SEPARATOR}{name}" if srv and servers_per_name[name] > 1 else name
        openai_name = fit_name(wanted, taken)
        taken.add(openai_name)
        param, ref = convert_tool(openai_name, description, schema, strict=strict)
        params.append(param)
        tool_map.add(ToolRef(openai_name, srv, name, ref.strict, ref.strict_fallback_reason, ref.optional_paths))
    return params, tool_map
