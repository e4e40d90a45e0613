"""Rendering of the run log for ``vapi-agent logs``: table rows, a JSON-ready detail, transcript lines.

The CLI stays thin: it asks the store for records and prints what these helpers return.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from agent.display import clip_words
from agent.store.records import RunRecord
from agent.store.timeutil import format_seconds, from_iso

RUNS_TABLE_COLUMNS = ("id", "started", "workflow", "status", "duration", "tools", "cost", "summary")
SUMMARY_WIDTH = 60
_FAILED = {"error": "failed", "refused": "refused", "cancelled": "cancelled"}  # a tool call's outcome, as shown
ARGUMENTS_WIDTH = 160


def _clip(value: str, width: int) -> str:
    return clip_words(value, width)


def _started(iso: str) -> str:
    # UTC on purpose: the same in cron mail, CI logs and a terminal; the Z says so.
    return from_iso(iso).strftime("%Y-%m-%d %H:%M:%SZ")


def _cost(usage: dict[str, Any]) -> str:
    cost = usage.get("cost_usd")
    return "" if cost is None else f"${float(cost):.4f}"


def command_line(run: RunRecord) -> str:
    """The (redacted) command line of a run as one shell-quoted string."""
    return shlex.join(str(a) for a in run.argv)


def _summary(run: RunRecord) -> str:
    if run.prompt:
        return _clip(run.prompt, SUMMARY_WIDTH)
    return _clip(command_line(run), SUMMARY_WIDTH)


def runs_table_rows(runs: list[RunRecord]) -> list[dict[str, str]]:
    """One row per run, keys ``RUNS_TABLE_COLUMNS`` in order, every cell a display string."""
    rows = []
    for run in runs:
        tool_calls = run.usage.get("tool_calls")
        rows.append(
            {
                "id": run.short_id,
                "started": _started(run.started_at),
                "workflow": run.workflow,
                "status": run.status if run.exit_code in (None, 0) else f"{run.status} ({run.exit_code})",
                "duration": format_seconds(run.duration),
                "tools": "" if tool_calls is None else str(tool_calls),
                "cost": _cost(run.usage),
                "summary": _summary(run),
            }
        )
    return rows


def run_detail(run: RunRecord) -> dict[str, Any]:
    """A JSON-ready view of a run (``logs --json`` and ``logs RUN_ID``).

    Messages, tool calls and waits are included when ``run`` came from ``RunStore.get_run``; a run
    from ``list_runs`` gives the header only.
    """
    detail: dict[str, Any] = {
        "id": run.id,
        "workflow": run.workflow,
        "command": command_line(run),
        "argv": run.argv,
        "prompt": run.prompt,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration_s": None if run.duration is None else round(run.duration, 3),
        "status": run.status,
        "exit_code": run.exit_code,
        "result": run.result,
        "errors": run.errors,
        "usage": run.usage,
        "pid": run.pid,
    }
    if run.detailed:
        detail["messages"] = [{"seq": m.seq, "role": m.role, "content": m.content, "at": m.at} for m in run.messages]
        detail["tool_calls"] = [
            {
                "seq": c.seq,
                "name": c.name,
                "arguments": c.arguments,
                "ok": c.ok,
                "approved_by": c.approved_by,
                "access": c.access,
                "error": c.error,
                "outcome": c.outcome,
                "duration_s": None if c.duration is None else round(c.duration, 3),
                "at": c.at,
            }
            for c in run.tool_calls
        ]
        detail["waits"] = [{"seq": w.seq, "upstream": w.upstream, "seconds": w.seconds, "at": w.at} for w in run.waits]
    return detail


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and isinstance(content.get("content"), str):
        return content["content"]
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


def run_transcript_lines(run: RunRecord) -> list[str]:
    """A human-readable account of a run: header, then messages, tool calls and waits in time order."""
    usage = run.usage
    lines = [
        f"run {run.id}  {run.workflow}  {run.status}" + ("" if run.exit_code is None else f" (exit {run.exit_code})"),
        f"started {_started(run.started_at)}" + (f"  took {format_seconds(run.duration)}" if run.duration else ""),
        f"command {command_line(run)}",
    ]
    if run.prompt:
        lines.append(f"prompt  {run.prompt}")
    if usage:
        lines.append(
            "usage   "
            + ", ".join(
                f"{key}={usage[key]}"
                for key in (
                    "model_calls",
                    "input_tokens",
                    "output_tokens",
                    "cost_usd",
                    "tool_calls",
                    "rate_limit_waits",
                    "wait_seconds",
                )
                if usage.get(key) not in (None, 0, 0.0)
            )
        )
    events: list[tuple[int, str]] = []
    for m in run.messages:
        events.append((m.seq, f"[{m.role}] {_content_text(m.content)}"))
    for c in run.tool_calls:
        outcome = "ok" if c.ok else f"{_FAILED.get(c.outcome or 'error', 'failed')}: {c.error or c.outcome or 'error'}"
        approved = f"approved by {c.approved_by}" if c.approved_by else ""
        extras = ", ".join(part for part in (c.access, approved, format_seconds(c.duration)) if part)
        arguments = _clip(json.dumps(c.arguments, ensure_ascii=False, separators=(",", ":")), ARGUMENTS_WIDTH)
        events.append((c.seq, f"-> {c.name}({arguments}) {outcome}" + (f" [{extras}]" if extras else "")))
    for w in run.waits:
        events.append((w.seq, f".. waited {format_seconds(w.seconds)} for {w.upstream} (rate limit)"))
    # seq is one counter across the three kinds of event, so it is the run's order.
    lines.extend(line for _, line in sorted(events))
    for error in run.errors:
        message = error.get("message") if isinstance(error, dict) else str(error)
        lines.append(f"error   {message}")
    return lines
