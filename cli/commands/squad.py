"""Command body of `squad create`."""

from __future__ import annotations

from typing import Any

from agent.display import terminal_text
from agent.terminal import printable
from cli.runner import Body, CommandContext, Outcome


def squad_create_body(params: dict[str, Any]) -> Body:
    """``squad create``."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.runtime import open_runtime
        from workflows import squad

        def show(body_: dict[str, Any], names: dict[str, str]) -> None:
            if not ctx.settings.json:
                from agent.display import console

                console(stderr=True, highlight=False).print(plan_tree(body_, names))

        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice) as rt:
            result = await squad.create(rt, squad.SquadParams(**params), show_plan=show)
        return Outcome(result=result)

    return body


def plan_tree(body: dict[str, Any], names: dict[str, str]) -> Any:
    """The squad to create as a tree: each member (name and id), under it where it transfers and when."""
    from rich.text import Text
    from rich.tree import Tree

    members = body["members"]
    tree = Tree(Text(f"Squad {terminal_text(body['name'])!r}: {len(members)} members, the first one answers"))
    for member in members:
        assistant_id = str(member["assistantId"])
        branch = tree.add(Text(f"{terminal_text(names.get(assistant_id) or '(no name)')} ({assistant_id})"))
        for route in member.get("assistantDestinations") or []:
            when = f": {terminal_text(route['description'])}" if route.get("description") else ""
            branch.add(Text(f"→ transfers to {terminal_text(route['assistantName'])}{when}"))
        if not member.get("assistantDestinations"):
            branch.add(Text("(transfers to no one)", style="dim"))
    return tree


def squad_create_render(outcome: Outcome, ctx: CommandContext) -> None:
    """One line."""
    result = outcome.result
    print("dry run: nothing was created" if result.dry_run else printable(f"created squad {result.squad.get('id')}"))
