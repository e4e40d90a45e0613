"""Click group behaviours that typer cannot declare on its own.

``logs`` has real subcommands (``list``, ``show RUN_ID``, ``prune``) and keeps its short forms: bare
``logs`` lists and ``logs RUN_ID`` shows. A plain typer group with an optional argument would swallow
``prune`` as a run id, so the group routes the first token itself before click parses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from typer.core import TyperGroup

if TYPE_CHECKING:  # typer vendors click; its Context type is only reachable here
    from typer._click import Context


class DefaultSubcommandGroup(TyperGroup):
    """A group whose first token, when it is not a subcommand, goes to ``show`` (else to ``list``).

    ``logs``, ``logs --limit 5`` -> ``logs list ...``; ``logs 3fa2`` -> ``logs show 3fa2``;
    ``logs prune --help`` is ``prune``'s help, ``logs --help`` the group's.
    """

    default_command = "list"
    argument_command = "show"

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        """Insert the implied subcommand name before click reads the arguments."""
        first = args[0] if args else None
        if first is None or (first.startswith("-") and first not in ctx.help_option_names):
            args = [self.default_command, *args]
        elif not first.startswith("-") and first not in self.commands:
            args = [self.argument_command, *args]
        return super().parse_args(ctx, args)
