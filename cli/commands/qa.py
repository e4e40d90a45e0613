"""Command body of `qa-grade`: the pipeline, the terminal table, the markdown report."""

from __future__ import annotations

from typing import Any

from cli.runner import Body, CommandContext, Outcome


def qa_grade_body(params: dict[str, Any]) -> Body:
    """``vapi-agent qa-grade``: the pipeline, plus the markdown report when ``--out`` is given."""

    async def body(ctx: CommandContext) -> Outcome:
        from datetime import UTC, datetime

        from agent.files import output_file, write_atomically
        from agent.runtime import open_runtime
        from workflows.qa import grade as qa_grade
        from workflows.qa.render import to_markdown

        qa_params = qa_grade.QAParams(**params)
        qa_params.validate()  # flags and --recordings-dir, before any request
        default_name = f"qa-grade-{datetime.now(tz=UTC):%Y-%m-%d}.md"
        out = output_file(qa_params.out, default_name, option="--out") if qa_params.out else None
        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice) as rt:
            result = await qa_grade.run(rt, qa_params)
        if out is not None:
            result.files = [str(out)]  # listed in the file too
            write_atomically(out, to_markdown(result))
        return Outcome(result=result, status=result.status, errors=result.errors)

    return body


def qa_grade_render(outcome: Outcome, ctx: CommandContext) -> None:
    """The rich table and findings on the terminal."""
    from agent.display import console
    from workflows.qa.render import render_terminal

    render_terminal(outcome.result, console())
    for error in outcome.errors:
        ctx.notice(f"note: {error['message']}")
