"""Command body of `squad create`."""

from __future__ import annotations

from typing import Any

from agent.terminal import printable
from cli.runner import Body, CommandContext, Outcome


def squad_create_body(params: dict[str, Any]) -> Body:
    """``squad create``."""

    async def body(ctx: CommandContext) -> Outcome:
        import json

        from agent.runtime import open_runtime
        from workflows import squad

        def show(body_: dict[str, Any]) -> None:
            if not ctx.settings.json:
                ctx.notice("Squad to create:\n" + json.dumps(body_, indent=2, ensure_ascii=False))

        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice) as rt:
            result = await squad.create(rt, squad.SquadParams(**params), show_plan=show)
        return Outcome(result=result)

    return body


def squad_create_render(outcome: Outcome, ctx: CommandContext) -> None:
    """One line."""
    result = outcome.result
    print("dry run: nothing was created" if result.dry_run else printable(f"created squad {result.squad.get('id')}"))
