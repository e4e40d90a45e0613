"""The tool catalogue of one run: every page of every server's ``tools/list``, filtered and merged.

Names are kept as the servers give them; a name offered by two servers is prefixed with the server
name (``<server>__<tool>``) only on collision. Client-side allow/deny globs (``--tools``,
``--exclude-tools``, per server in the config) apply before merging.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CatalogueTool:
    """One tool as offered to callers: its public ``name``, the server it lives on and its MCP name."""

    name: str
    server: str
    mcp_name: str
    description: str
    input_schema: dict[str, Any]
    annotations: dict[str, Any] = field(default_factory=dict)


def tool_allowed(name: str, allow: Iterable[str], deny: Iterable[str]) -> bool:
    """True when ``name`` matches some allow glob (or there are none) and no deny glob."""
    allow = tuple(allow)
    if allow and not any(fnmatch.fnmatchcase(name, pattern) for pattern in allow):
        return False
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in deny)


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)
    return dump(by_alias=True, exclude_none=True) if dump else dict(value)


def merge_catalogue(per_server: list[tuple[str, list[Any], tuple[str, ...], tuple[str, ...]]]) -> list[CatalogueTool]:
    """Merge ``[(server, tools, allow, deny), ...]`` (config order) into one list of ``CatalogueTool``."""
    filtered: list[tuple[str, Any]] = []
    for server, tools, allow, deny in per_server:
        filtered.extend((server, tool) for tool in tools if tool_allowed(_attr(tool, "name"), allow, deny))
    counts: dict[str, int] = {}
    for _, tool in filtered:
        counts[_attr(tool, "name")] = counts.get(_attr(tool, "name"), 0) + 1
    merged: list[CatalogueTool] = []
    for server, tool in filtered:
        mcp_name = _attr(tool, "name")
        public = f"{server}__{mcp_name}" if counts[mcp_name] > 1 else mcp_name
        merged.append(
            CatalogueTool(
                name=public,
                server=server,
                mcp_name=mcp_name,
                description=_attr(tool, "description") or "",
                input_schema=_as_dict(_attr(tool, "input_schema")) or {"type": "object", "properties": {}},
                annotations=_as_dict(_attr(tool, "annotations")),
            )
        )
    return merged


def _attr(tool: Any, name: str) -> Any:
    if isinstance(tool, dict):
        return tool.get(name, tool.get({"input_schema": "inputSchema"}.get(name, name)))
    return getattr(tool, name, None)
