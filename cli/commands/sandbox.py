"""Command body of ``vapi-agent sandbox reset`` (``sandbox serve`` and ``ground-truth`` run ``sandbox.__main__``)."""

from __future__ import annotations

from cli.runner import Body, CommandContext, Outcome


def sandbox_reset_body() -> Body:
    """Remove the embedded sandbox's saved workspaces: the next command starts from a fresh one."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.runtime import embedded_sandbox_dir, reset_embedded_sandbox

        removed = reset_embedded_sandbox()
        return Outcome(result={"reset": removed, "directory": str(embedded_sandbox_dir())})

    return body


def sandbox_reset_render(outcome: Outcome, ctx: CommandContext) -> None:
    """One line: what was forgotten (or that there was nothing to forget)."""
    removed = outcome.result["reset"]
    if not removed:
        print("the embedded sandbox has no saved changes: nothing to reset")
    else:
        print(f"reset the embedded sandbox ({', '.join(removed)}): the next command starts from a fresh workspace")
