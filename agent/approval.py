"""Interactive approval of a write: show exactly what would run, then ask (on the terminal only)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from typing import Any

from agent.policy import Access, effect_of
from agent.redact import redact_data
from agent.terminal import printable


def describe_call(tool: str, access: Access, arguments: Mapping[str, Any]) -> str:
    """The text shown before asking: tool, its access class, and the arguments (redacted, printable)."""
    args = json.dumps(redact_data(dict(arguments)), indent=2, ensure_ascii=False, default=str)
    effect = effect_of(tool, arguments)
    undo = f" ({effect.description}: this cannot be undone)" if effect is not None else ""
    return printable(f"{access.value.upper()} {printable(tool, one_line=True)}{undo}\n{args}")


async def ask_on_terminal(tool: str, access: Access, arguments: Mapping[str, Any]) -> bool:
    """Print the call on stderr and read y/N from the terminal (in a thread: never block the loop)."""
    print(describe_call(tool, access, arguments), file=sys.stderr, flush=True)
    question = "Run this destructive tool? type 'yes' to confirm: " if access is Access.DESTRUCTIVE \
        else "Run it? [y/N] "

    def read() -> str:
        print(question, end="", file=sys.stderr, flush=True)
        return sys.stdin.readline()

    answer = (await asyncio.to_thread(read)).strip().lower()
    return answer == "yes" if access is Access.DESTRUCTIVE else answer in ("y", "yes")
