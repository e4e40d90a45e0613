"""Command body of `doctor`: reachability, auth, tool count, supported workflows."""

from __future__ import annotations

from typing import Any

from cli.runner import Body, CommandContext, Outcome


def doctor_body() -> Body:
    """``doctor``: reachability, auth, tool count, and which workflows this server supports."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.runtime import open_runtime
        from agent.vapi import WORKFLOW_NEEDS

        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice, store=None) as rt:
            servers: list[dict[str, Any]] = [{"name": c.spec.name, "kind": c.spec.kind, "transport": c.spec.transport,
                        "endpoint": c.spec.display, "server_name": c.server_name,
                        "protocol": c.protocol_version, "tools": sum(1 for t in rt.hub.catalogue
                                                                     if t.server == c.spec.name)}
                       for c in rt.hub.connections]
            matrix: dict[str, Any] = {}
            for workflow in WORKFLOW_NEEDS:
                missing = rt.vapi.missing_for(workflow)
                matrix[workflow] = {"supported": not missing, "missing": missing}
        result = {"servers": servers, "tool_count": sum(s["tools"] for s in servers), "workflows": matrix,
                  "model": {"configured": ctx.settings.has_model, "name": ctx.settings.effective_model}}
        return Outcome(result=result)

    return body


def doctor_render(outcome: Outcome, ctx: CommandContext) -> None:
    """Servers, then the capability matrix."""
    from rich.text import Text

    from cli.console import terminal_console

    console = terminal_console()
    for server in outcome.result["servers"]:
        console.print(Text.assemble(("✓", "green"), f" {server['name']} ({server['kind']}, {server['transport']}) at "
                                    f"{server['endpoint']}: {server['tools']} tools, protocol {server['protocol']}"))
    for workflow, info in outcome.result["workflows"].items():
        if info["supported"]:
            console.print(Text.assemble("  ", ("✓", "green"), f" {workflow}"))
        else:
            missing = "; ".join(f"{k} ({v})" for k, v in info["missing"].items())
            console.print(Text.assemble("  ", ("✗", "red"), f" {workflow}: {missing}"))
    model = outcome.result["model"]
    console.print(f"model: {model['name'] if model['configured'] else 'not configured (set OPENAI_API_KEY)'}")
