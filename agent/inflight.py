"""Writes cut while in flight (a deadline, Ctrl-C, a failing sibling): what became of them, and where it goes.

A write whose answer never came may have been applied. The hub looks it up before the run unwinds
(``agent.vapi.VapiFacade.lookup_interrupted``, bounded to a few seconds) and appends a ``WriteReport``
to ``INTERRUPTED_WRITES``, a list the command runner sets for each command and reports before it exits:
"created (id ...)" or "may have been created; check with ...", never "nothing was written".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass
class WriteReport:
    """What became of a write cut while in flight: ``created`` (with the id) or ``unknown`` (check by hand)."""

    tool: str
    state: str
    check: str
    object_id: str | None = None

    def line(self) -> str:
        """One line for the person: the id, or how to check."""
        if self.state == "created":
            return f"{self.tool} was in flight when the run stopped: created (id {self.object_id})"
        return f"{self.tool} was in flight when the run stopped: it may have been created; check with `{self.check}`"

    def to_dict(self) -> dict[str, Any]:
        """The envelope's ``errors[]`` entry."""
        return {"code": "write_interrupted", "message": self.line(), "tool": self.tool, "state": self.state,
                "id": self.object_id, "check": self.check}


# Writes cut while in flight, for the command runner to report before it exits (it sets a list here).
INTERRUPTED_WRITES: ContextVar[list[WriteReport] | None] = ContextVar("vapi_agent_interrupted_writes", default=None)
# Looks up what became of an interrupted create: (public tool name, arguments, time sent) -> report.
LookupInterrupted = Callable[[str, dict[str, Any], float], Awaitable[WriteReport]]
