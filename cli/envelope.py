"""The ``--json`` envelope: exactly one JSON object on stdout per command, also on failure."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agent.redact import redact_data
from agent.terminal import escape_c1_in_json
from agent.usage import Usage


@dataclass
class Envelope:
    """``{"workflow", "status", "result", "usage", "errors"}``; status is ok | partial | error."""

    workflow: str
    status: str = "ok"
    result: Any = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The envelope as a JSON-ready dict, secrets redacted."""
        return redact_data(
            {
                "workflow": self.workflow,
                "status": self.status,
                "result": self.result if self.result is not None else {},
                "usage": self.usage.to_dict(),
                "errors": self.errors,
            }
        )

    def dumps(self) -> str:
        """Serialised on one line (scripts read it with ``jq``); no raw control codes (C0 are JSON-escaped)."""
        return escape_c1_in_json(json.dumps(self.to_dict(), default=str, ensure_ascii=False))
