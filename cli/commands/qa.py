"""Command body of `qa-grade`: the pipeline, the terminal table, the markdown report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cli.runner import Body, CommandContext, Outcome


def qa_grade_body(params: dict[str, Any]) -> Body:
    """``vapi-agent qa-grade``: the pipeline, plus the markdown report when ``--out`` is given."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.files import write_atomically
        from agent.runtime import open_runtime
        from workflows.qa import grade as qa_grade
        from workflows.qa.render import to_markdown

        qa_params = qa_grade.QAParams(**params)
        qa_params.validate()
        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice) as rt:
            result = await qa_grade.run(rt, qa_params)
        if qa_params.out:
            write_atomically(Path(qa_params.out), to_markdown(result))
        return Outcome(result=result, status=result.status, errors=result.errors)

    return body


def qa_grade_render(outcome: Outcome, ctx: CommandContext) -> None:
    """The rich table and findings on the terminal."""
    from cli.console import terminal_console
    from workflows.qa.render import render_terminal

    render_terminal(outcome.result, terminal_console())
    for error in outcome.errors:
        ctx.notice(f"note: {error['message']}")
