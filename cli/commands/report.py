"""Command bodies of ``vapi-agent report`` and ``vapi-agent schedule add|list|remove|sync|run``.

The CLI parses flags and hands them here; ``cli.runner.run_command`` does the envelope, exit codes,
the ``--deadline`` and the per-job lock.
"""

from __future__ import annotations

from typing import Any

from cli.runner import Body, CommandContext, Outcome


# ---------------------------------------------------------------- report
def report_body(params: dict[str, Any], *, sandbox: Any = None) -> Body:
    """``vapi-agent report``: the report workflow (``sandbox``: an already built one, for tests)."""

    async def body(ctx: CommandContext) -> Outcome:
        from workflows.report.params import ReportParams

        report_params = ReportParams(**params)
        report_params.validate()  # before the heavy imports: a bad flag fails fast

        from agent.runtime import open_runtime
        from workflows.report import pipeline as report

        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice, store=None, sandbox=sandbox) as rt:
            result = await report.run(rt, report_params)
        return Outcome(result=result)

    return body


def report_render(outcome: Outcome, ctx: CommandContext) -> None:
    """Tables fitted to the terminal; off a terminal (cron logs) 160 columns wide, or ``$COLUMNS``."""
    from agent.display import console
    from workflows.report.render import render_terminal

    render_terminal(outcome.result, console())

