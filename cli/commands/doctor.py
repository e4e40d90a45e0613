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
                  "model": model_summary(ctx.settings)}
        return Outcome(result=result)

    return body


def doctor_render(outcome: Outcome, ctx: CommandContext) -> None:
    """Servers, then the capability matrix."""
    from rich.text import Text

    from agent.display import console as make_console

    console = make_console()
    for server in outcome.result["servers"]:
        console.print(Text.assemble(("✓", "green"), f" {server['name']} ({server['kind']}, {server['transport']}) at "
                                    f"{server['endpoint']}: {server['tools']} tools, protocol {server['protocol']}"))
    for workflow, info in outcome.result["workflows"].items():
        if info["supported"]:
            console.print(Text.assemble("  ", ("✓", "green"), f" {workflow}"))
        else:
            missing = "; ".join(f"{k} ({v})" for k, v in info["missing"].items())
            console.print(Text.assemble("  ", ("✗", "red"), f" {workflow}: {missing}"))
    console.print(f"model: {outcome.result['model']['summary']}", highlight=False, soft_wrap=True)


def model_summary(settings: Any) -> dict[str, Any]:
    """The effective model as `doctor` and `config show` both name it: its name, where it was set, and
    whether an endpoint is configured to call it."""
    from agent.redact import redact

    name = settings.effective_model
    endpoint = redact(settings.openai_base_url) if settings.openai_base_url else (
        "OpenAI" if settings.openai_api_key else None)
    where = f"at {endpoint}" if endpoint else "not configured: set OPENAI_API_KEY, or OPENAI_BASE_URL"
    default = " (the default)" if settings.model is None else ""
    return {"name": name, "configured": settings.has_model, "endpoint": endpoint,
            "summary": f"{name}{default}, {where}"}
