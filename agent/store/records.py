"""What the run log holds, as plain records, and the one way values are encoded for it (redacted JSON)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from agent.redact import redact, redact_data

RUN_STATUSES = ("ok", "partial", "error")
RUNNING = "running"
SHORT_ID = 8


def scrub(value: Any) -> Any:
    """A JSON-ready, redacted copy of ``value``: every string *and every dict key* is passed through ``redact``.

    Values that JSON cannot hold (datetimes, paths, dataclasses...) become their ``str()`` first, so
    they are redacted too rather than slipping through a ``default=`` hook after redaction.
    """
    plain = json.loads(json.dumps(value, default=str, ensure_ascii=False))
    return _scrub_keys(redact_data(plain))


def _scrub_keys(value: Any) -> Any:
    # redact_data leaves dict keys alone; tool arguments sometimes carry secrets as keys (header maps).
    if isinstance(value, dict):
        return {redact(str(k)): _scrub_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_keys(v) for v in value]
    return value


def encode(value: Any) -> str:
    """``value`` scrubbed and dumped as compact JSON text (the only way JSON columns are written)."""
    return json.dumps(scrub(value), ensure_ascii=False, separators=(",", ":"))


def decode(text: str | None) -> Any:
    """The inverse of ``encode`` (None stays None)."""
    return None if text is None else json.loads(text)


def text(value: str | None) -> str | None:
    """A plain text column value, redacted (None stays None)."""
    return None if value is None else redact(str(value))


@dataclass(frozen=True)
class MessageRecord:
    """One conversation message of a run (content as JSON: a string, parts, or a whole message dict).

    ``seq`` is shared by a run's messages, tool calls and waits: it is their order within the run.
    """

    seq: int
    role: str
    content: Any
    at: str


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call of a run: redacted arguments, outcome, who approved it, and how long it took."""

    seq: int
    name: str
    arguments: Any
    ok: bool
    approved_by: str | None
    access: str | None
    error: str | None
    duration: float | None
    at: str
    outcome: str | None = None  # ok | error | refused | cancelled (None in runs logged before it was kept)


@dataclass(frozen=True)
class WaitRecord:
    """One rate-limit wait: which upstream (display name) made the run wait, and for how long."""

    seq: int
    upstream: str
    seconds: float
    at: str


@dataclass(frozen=True)
class RunRecord:
    """One row of ``runs``; ``messages``/``tool_calls``/``waits`` are filled only by ``RunStore.get_run``."""

    id: str
    workflow: str
    argv: list[str]
    prompt: str | None
    started_at: str
    ended_at: str | None
    duration: float | None
    status: str
    exit_code: int | None
    result: Any
    errors: list[Any]
    usage: dict[str, Any]
    pid: int | None
    messages: tuple[MessageRecord, ...] = ()
    tool_calls: tuple[ToolCallRecord, ...] = ()
    waits: tuple[WaitRecord, ...] = ()
    detailed: bool = field(default=False, compare=False)

    @property
    def short_id(self) -> str:
        """The first 8 hex digits, which is what listings show and what users usually type."""
        return self.id[:SHORT_ID]


RUN_COLUMNS = (
    "id, workflow, argv, prompt, started_at, ended_at, duration, status, exit_code, result, errors, usage, pid"
)


def run_from_row(row: sqlite3.Row | tuple[Any, ...]) -> RunRecord:
    """A ``RunRecord`` (without children) from a row selected with ``RUN_COLUMNS``."""
    (run_id, workflow, argv, prompt, started, ended, duration, status, exit_code, result, errors, usage, pid) = row
    return RunRecord(
        id=run_id,
        workflow=workflow,
        argv=decode(argv) or [],
        prompt=prompt,
        started_at=started,
        ended_at=ended,
        duration=duration,
        status=status,
        exit_code=exit_code,
        result=decode(result),
        errors=decode(errors) or [],
        usage=decode(usage) or {},
        pid=pid,
    )
