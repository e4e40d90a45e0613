"""Slash commands of the chat REPL: /tools /servers /read-only /usage /model /save /clear /help /exit."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rich.table import Table
from rich.text import Text

from agent.policy import Access
from agent.redact import redact, redact_data

if TYPE_CHECKING:
    from rich.console import Console

    from agent.loop import LocalTool
    from agent.runtime import Runtime

MULTILINE_HELP = "Esc+Enter (or a trailing \\) starts a new line; Enter sends"


class Repl(Protocol):
    """What the slash commands read and change of a chat session (``cli.repl.session.Repl``)."""

    rt: Runtime
    console: Console
    local_tools: list[LocalTool]
    price_override: tuple[float, float] | None
    history: list[dict[str, Any]]
    turns: int
    running: bool
    locked_read_only: bool

HELP = [
    ("/tools", "the tools the model may use now, with their access class"),
    ("/servers", "the connected MCP servers"),
    ("/read-only on|off", "refuse every write (off cannot lift a --read-only given at start)"),
    ("/usage", "model calls, tokens and cost so far; tool calls; rate-limit waits"),
    ("/model NAME", "switch the model for the next turns"),
    ("/save FILE", "save the conversation, redacted (.json: the raw messages; else markdown)"),
    ("/clear", "forget the conversation (history of typed lines stays)"),
    ("/help", "this list"),
    ("/exit", "leave (or Ctrl-D)"),
]


async def handle_command(repl: Repl, line: str) -> None:
    """Run one slash command; unknown ones list the known ones."""
    name, _, arg = line.strip().partition(" ")
    handler = COMMANDS.get(name.lower())
    if handler is None:
        repl.console.print(Text(f"unknown command {name}; /help lists them", style="red"))
        return
    await handler(repl, arg.strip())


async def _help(repl: Repl, arg: str) -> None:
    table = Table(show_header=False, box=None, padding=(0, 2))
    for command, what in HELP:
        table.add_row(command, what)
    repl.console.print(table)
    repl.console.print(Text(f"{MULTILINE_HELP}. Up/Down recall earlier lines. Ctrl-C cancels the running "
                            "turn (a write already sent finishes and is shown). Writes ask before they run.",
                            style="dim"))


async def _tools(repl: Repl, arg: str) -> None:
    gate = repl.rt.hub.gate
    table = Table(title="tools the model may use", title_justify="left")
    for column in ("name", "access", "server"):
        table.add_column(column)
    count = 0
    for tool in repl.local_tools:
        if not gate.read_only or tool.access is Access.READ:
            table.add_row(tool.name, tool.access.value, "workflow")
            count += 1
    for entry in repl.rt.hub.catalogue:
        if gate.visible(entry.name):
            table.add_row(entry.name, repl.rt.hub.access(entry.name).value, entry.server)
            count += 1
    repl.console.print(table)
    hidden = " (writes hidden: read-only)" if gate.read_only else ""
    repl.console.print(Text(f"{count} tools{hidden}", style="dim"))


async def _servers(repl: Repl, arg: str) -> None:
    table = Table(title="MCP servers", title_justify="left")
    for column in ("name", "kind", "transport", "endpoint", "tools", "protocol"):
        table.add_column(column)
    for conn in repl.rt.hub.connections:
        tools = sum(1 for t in repl.rt.hub.catalogue if t.server == conn.spec.name)
        table.add_row(conn.spec.name, conn.spec.kind, conn.spec.transport, redact(conn.spec.display), str(tools),
                      str(conn.protocol_version or ""))
    repl.console.print(table)


async def _read_only(repl: Repl, arg: str) -> None:
    gate = repl.rt.hub.gate
    choice = arg.lower()
    if choice == "on":
        gate.read_only = True
        repl.console.print("read-only on: write tools are hidden and refused")
    elif choice == "off":
        if repl.locked_read_only:
            repl.console.print(Text("read-only stays on: --read-only was given at start", style="yellow"))
            return
        gate.read_only = False
        repl.console.print("read-only off: writes ask before they run")
    else:
        repl.console.print(f"read-only is {'on' if gate.read_only else 'off'} (/read-only on|off)")


async def _usage(repl: Repl, arg: str) -> None:
    u = repl.rt.usage
    cost = "unknown (no price for this model; give --price)" if u.cost_usd is None else f"${u.cost_usd:.4f}"
    repl.console.print(
        f"model calls {u.model_calls} · tokens {u.input_tokens:,} in / {u.output_tokens:,} out · cost {cost}\n"
        f"tool calls {u.tool_calls} · rate-limit waits {u.rate_limit_waits} ({u.wait_seconds:.1f} s) · "
        f"turns {repl.turns}")


async def _model(repl: Repl, arg: str) -> None:
    from agent.model import price_for

    model = repl.rt.model
    if not arg:
        repl.console.print(f"model: {model.name if model is not None else 'none'} (/model NAME to switch)")
        return
    if model is None:
        repl.console.print(Text("no model is configured", style="red"))
        return
    model.name = arg  # the OpenAI model sends its name with every request; the client is kept
    repl.rt.price = price_for(arg, repl.price_override)
    if repl.rt.price is None and repl.rt.usage.cost_usd is not None:
        repl.rt.usage.cost_usd = None
        repl.console.print(Text(f"no known price for {arg}: cost is no longer counted (start with --price IN,OUT)",
                                style="yellow"))
    repl.console.print(f"model: {arg}")


async def _save(repl: Repl, arg: str) -> None:
    if not arg:
        repl.console.print(Text("/save needs a file name", style="red"))
        return
    path = Path(arg).expanduser()
    text = transcript_json(repl.history) if path.suffix.lower() == ".json" else transcript_markdown(repl.history)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        repl.console.print(Text(f"cannot write {path}: {exc.strerror or exc}", style="red"))
        return
    repl.console.print(f"saved {len(repl.history)} messages to {path}")


async def _clear(repl: Repl, arg: str) -> None:
    repl.history = []
    repl.console.print("conversation cleared")


async def _exit(repl: Repl, arg: str) -> None:
    repl.running = False


COMMANDS: dict[str, Callable[[Repl, str], Awaitable[None]]] = {
    "/help": _help, "/?": _help, "/tools": _tools, "/servers": _servers, "/read-only": _read_only,
    "/usage": _usage, "/model": _model, "/save": _save, "/clear": _clear, "/exit": _exit, "/quit": _exit,
}


# ---------------------------------------------------------------- transcripts (always redacted)
def transcript_json(messages: list[dict[str, Any]]) -> str:
    """The conversation's messages as JSON, every string redacted."""
    return json.dumps(redact_data(messages), indent=2, ensure_ascii=False, default=str) + "\n"


def transcript_markdown(messages: list[dict[str, Any]], *, result_chars: int = 600) -> str:
    """The conversation as markdown: what was asked, the tools called (results cut), the answers."""
    when = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# vapi-agent chat ({when})", ""]
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role == "user":
            lines += ["## You", "", redact(str(content)), ""]
        elif role == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                lines.append(f"- called `{function.get('name')}` with `{redact(str(function.get('arguments')))}`")
            if content:
                lines += ["", "## Assistant", "", redact(str(content)), ""]
        elif role == "tool":
            body = redact(str(content))
            cut = body if len(body) <= result_chars else body[:result_chars] + " …"
            lines += ["", "  result:", "", "  ```", *("  " + line for line in cut.splitlines()), "  ```", ""]
    return "\n".join(lines).rstrip() + "\n"
