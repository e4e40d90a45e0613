"""Command body of `config show`: the effective settings, secrets redacted."""

from __future__ import annotations

import json

from cli.runner import Body, CommandContext, Outcome


def config_show_body() -> Body:
    """``config show``: where the config file is and every setting after flags, env and file are merged."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.config import config_path
        from cli.commands.doctor import model_summary

        return Outcome(result={"config_file": str(config_path()), "settings": ctx.settings.redacted(),
                               "model": model_summary(ctx.settings)})  # the same words `doctor` prints

    return body


def config_show_render(outcome: Outcome, ctx: CommandContext) -> None:
    """Indented JSON on stdout (``--json`` gives the same inside the envelope's ``result``)."""
    print(json.dumps(outcome.result, indent=2))
