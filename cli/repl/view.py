"""What the chat REPL shows while a turn runs: streamed markdown, tool calls, waits, approvals.

``TurnView`` receives the agent loop's events (``token``, ``tool_start``, ``tool_end``) and the
runtime's notices (rate-limit waits). Answer text is rendered as markdown while it streams (a rich
``Live`` display refreshed at most every 50 ms); it is closed before anything else is printed, so tool
lines, waits and approval prompts never interleave with a half-drawn answer.

``InlineApproval`` is the write gate's ``prompt`` callable for the REPL: it shows the tool, its access
class and its arguments (redacted), then asks through prompt_toolkit. Ctrl-C or Ctrl-D at that
question means no. It is asked with ``handle_sigint=False``: prompt_toolkit would otherwise replace,
then remove, the REPL's SIGINT handler that cancels the turn.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.text import Text

from agent.approval import describe_call
from agent.policy import Access
from agent.redact import StreamRedactor, redact, redact_data
from agent.terminal import printable

ARGS_SHOWN = 100  # characters of a tool call's arguments shown on its line
REFRESH_EVERY = 0.05  # seconds between redraws of the streaming answer


def short_arguments(arguments: Any, limit: int = ARGS_SHOWN) -> str:
    """Compact JSON of (redacted) arguments, cut to ``limit`` characters."""
    text = json.dumps(redact_data(arguments), ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TurnView:
    """Renders one conversation's events on a rich console (see the module docstring)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.cancelled = False
        self._text = ""  # what is shown: redacted, printable
        self._stream = StreamRedactor()
        self._live: Live | None = None
        self._last_draw = 0.0
        self._started: dict[str, list[float]] = {}

    # ------------------------------------------------------------ answer text
    def token(self, text: str) -> None:
        """Append streamed answer text and redraw it as markdown (throttled)."""
        if self.cancelled:
            return
        self._text += printable(self._stream.feed(text))
        if self._live is None:
            self._live = Live(Markdown(self._text), console=self.console, auto_refresh=False,
                              vertical_overflow="visible", redirect_stdout=False, redirect_stderr=False)
            self._live.start()
            self._last_draw = 0.0
        now = time.monotonic()
        if now - self._last_draw >= REFRESH_EVERY:
            self._live.update(Markdown(self._text), refresh=True)
            self._last_draw = now

    def close_text(self) -> None:
        """Finish the streaming answer (final redraw); later output starts below it."""
        self._text += printable(self._stream.flush())
        if self._live is not None:
            self._live.update(Markdown(self._text), refresh=True)
            self._live.stop()
            self._live = None
        self._text = ""

    # ------------------------------------------------------------ events
    def on_event(self, event: Any) -> None:
        """An ``agent.loop.AgentEvent``: token, tool_start or tool_end."""
        if self.cancelled:
            return  # after Ctrl-C the REPL reports what finished; stale events would only confuse
        data = event.data
        if event.kind == "token":
            self.token(data["text"])
        elif event.kind == "tool_start":
            self.close_text()
            self._started.setdefault(data["name"], []).append(time.monotonic())
            self.console.print(Text.assemble(("→ ", "cyan"), (printable(data["name"], one_line=True), "bold"), " ",
                                             (printable(short_arguments(data.get("arguments", {}))), "dim")))
        elif event.kind == "tool_end":
            self.close_text()
            starts = self._started.get(data["name"]) or [time.monotonic()]
            took = time.monotonic() - starts.pop(0)
            self.tool_outcome(data["name"], bool(data.get("ok")), data.get("refused"), took)

    def tool_outcome(self, name: str, ok: bool, refused: str | None = None, took: float | None = None) -> None:
        """One line: the tool and how it ended (ok, failed, refused), with its duration."""
        seconds = f" ({took:.1f} s)" if took is not None else ""
        name = printable(name, one_line=True)
        if refused:
            why = printable(redact(refused), one_line=True)
            self.console.print(Text.assemble(("  ✗ ", "yellow"), name, (f" refused: {why}", "yellow")))
        elif ok:
            self.console.print(Text.assemble(("  ✓ ", "green"), name, (seconds, "dim")))
        else:
            self.console.print(Text.assemble(("  ✗ ", "red"), name, (f" failed{seconds}", "red")))

    def notice(self, message: str) -> None:
        """A runtime notice (rate-limit waits, the sandbox line), dimmed, between answer chunks."""
        if self._live is not None:
            self._live.console.print(Text(printable(redact(message)), style="dim"))
        else:
            self.console.print(Text(printable(redact(message)), style="dim"))

    def error(self, message: str) -> None:
        """An error line in red."""
        self.close_text()
        self.console.print(Text(printable(redact(message)), style="red"))

    def reset(self) -> None:
        """Before a new turn."""
        self.close_text()
        self.cancelled = False
        self._started.clear()


class InlineApproval:
    """The gate's ``prompt``: show the call, ask y/N (``yes`` for destructive tools) via prompt_toolkit."""

    def __init__(self, view: TurnView) -> None:
        self.view = view

    async def __call__(self, tool: str, access: Access, arguments: Mapping[str, Any]) -> bool:
        """Ask the person at the terminal; anything but y/yes (or ``yes`` when destructive) is no."""
        from prompt_toolkit import PromptSession

        self.view.close_text()
        style = "bold red" if access is Access.DESTRUCTIVE else "bold yellow"
        self.view.console.print(Text(describe_call(tool, access, arguments), style=style))
        question = "Run this destructive tool? type 'yes' to confirm: " if access is Access.DESTRUCTIVE \
            else "Run it? [y/N] "
        session: PromptSession[str] = PromptSession()
        try:
            answer = await session.prompt_async(question, handle_sigint=False)
        except (KeyboardInterrupt, EOFError):
            answer = ""
        answer = answer.strip().lower()
        approved = answer == "yes" if access is Access.DESTRUCTIVE else answer in ("y", "yes")
        if not approved:
            self.view.console.print(Text("  not run", style="yellow"))
        return approved
