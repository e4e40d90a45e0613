"""The sandbox's own record of every request it received (tests read it to prove what reached it)."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LogEntry:
    """One request as the sandbox saw it. ``path`` never holds the MCP token (it is redacted)."""

    t_start: float  # real epoch seconds when the request arrived
    t_end: float  # real epoch seconds when the answer was sent
    transport: str  # "rest" | "mcp" | "link" | "storage"
    method: str
    path: str
    status: int
    rpc_method: str | None = None  # JSON-RPC method of an MCP POST
    tool: str | None = None  # tools/call name (inner tool name for a discovery call_tool)
    arguments: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


class RequestLog:
    """Thread-safe append-only list of ``LogEntry`` (the server may run on a thread beside the tests)."""

    def __init__(self) -> None:
        self._entries: list[LogEntry] = []
        self._lock = threading.Lock()

    def add(self, entry: LogEntry) -> None:
        """Append one entry."""
        with self._lock:
            self._entries.append(entry)

    def entries(self, transport: str | None = None) -> list[LogEntry]:
        """A snapshot, optionally only one transport."""
        with self._lock:
            items = list(self._entries)
        return [e for e in items if transport is None or e.transport == transport]

    def clear(self) -> None:
        """Forget everything (between test phases)."""
        with self._lock:
            self._entries.clear()
