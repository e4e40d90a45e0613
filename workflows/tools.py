"""Workflows offered to the chat agent as tools: each runs the whole pipeline as one call."""

from __future__ import annotations

from typing import Any

from agent.loop import LocalTool
from agent.runtime import Runtime


def qa_grade_tool(rt: Runtime) -> LocalTool:
    """``qa_grade``: the qa-grade pipeline (the same result as the command's ``--json`` envelope)."""

    async def handler(args: dict[str, Any]) -> dict[str, Any]:
        from workflows import qa_grade

        params = qa_grade.QAParams(**{k: v for k, v in args.items() if v is not None})
        result = await qa_grade.run(rt, params)
        return {**result.to_dict(), "status": result.status, "errors": result.errors}

    return LocalTool(
        name="qa_grade",
        description=(
            "Grade an assistant's newest ended calls on a scorecard or numeric structured output, download the "
            "recordings of failing calls, and explain where the assistant failed. Prefer this over listing "
            "calls yourself when asked to grade, audit or QA calls."
        ),
        parameters={
            "type": "object",
            "properties": {
                "assistant": {"type": "string", "description": "assistant id or exact whole name"},
                "last": {"type": "integer", "description": "how many newest ended calls (default 5)"},
                "since": {"type": "string", "description": "only calls within this window, e.g. 7d"},
                "metric": {"type": "string", "description": "scorecard or numeric output name"},
                "threshold": {"type": "number", "description": "fail below this (default 80)"},
                "recordings": {"type": "string", "enum": ["failing", "all", "none"]},
            },
            "required": ["assistant"],
            "additionalProperties": False,
        },
        handler=handler,
    )


def workflow_tools(rt: Runtime) -> list[LocalTool]:
    """Every workflow tool the chat agent gets."""
    return [qa_grade_tool(rt)]
