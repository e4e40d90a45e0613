"""The command layer, the only code above ``workflows``: nothing in the library imports it.

- ``cli.app``       the Typer declaration of every command and option (thin: no logic)
- ``cli.argv``      lifts the common options out of argv so they work before or after the command
- ``cli.runner``    runs one command body: logging, the ``--json`` envelope, exit codes, Ctrl-C,
                    the cron contract (``--deadline``, per-job locks)
- ``cli.commands``  each command's body and its rendering, one module per command family
- ``cli.repl``      the chat REPL (prompt_toolkit) and its slash commands
"""

from __future__ import annotations

from cli.app import main

__all__ = ["main"]
