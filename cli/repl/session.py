"""``vapi-agent chat``: the interactive REPL around the tool-calling loop.

- Input: prompt_toolkit with persistent history (``<data dir>/chat-history``, redacted, mode 0600),
  Up/Down to recall earlier lines (also from earlier sessions), multi-line input with Esc+Enter or a
  trailing backslash, Ctrl-C to clear the line, Ctrl-D (or ``/exit``) to leave.
- A turn: ``agent.loop.run_agent`` with the conversation so far (``history``), the MCP tools and the
  workflows as tools; the answer streams as markdown, tool calls show as they run
  (``cli.repl.view``), rate-limit waits arrive through the runtime's notice callback, and writes
  are approved inline (``InlineApproval``, the gate's ``prompt``).
- Ctrl-C during a turn cancels it (a SIGINT handler on the event loop cancels the turn's task) and
  the REPL stays. A write that was already sent is shielded from the cancellation: it finishes, its
  outcome is shown, and the conversation records that the turn was cancelled and what was written.
- Slash commands live in ``cli.repl.slash``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.text import Text

from agent.errors import AgentError
from agent.loop import SYSTEM_PROMPT, Limits, LocalTool, run_agent
from agent.policy import Access
from agent.redact import redact
from agent.runtime import Runtime
from cli.repl.slash import MULTILINE_HELP, handle_command
from cli.repl.view import InlineApproval, TurnView

PROMPT = "vapi> "
HISTORY_FILE = "chat-history"


def history_path() -> Path:
    """Where the REPL keeps its input history (the user data dir)."""
    from agent.paths import data_dir

    return data_dir() / HISTORY_FILE


def make_session(path: Path | None = None) -> Any:
    """A prompt_toolkit ``PromptSession`` with redacted file history and the multi-line key bindings."""
    import os

    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.key_binding import KeyBindings

    class RedactedHistory(FileHistory):
        """File history that never stores a secret typed into the prompt."""

        def store_string(self, string: str) -> None:
            super().store_string(redact(string))

    target = path or history_path()
    if not target.exists():
        target.touch(mode=0o600)  # conversation text: private to the user
    os.chmod(target, 0o600)

    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    @bindings.add("enter")
    def _enter(event: Any) -> None:
        buffer = event.current_buffer
        if buffer.document.text_before_cursor.endswith("\\") and buffer.document.is_cursor_at_the_end:
            buffer.delete_before_cursor(1)
            buffer.insert_text("\n")
        else:
            buffer.validate_and_handle()

    return PromptSession(history=RedactedHistory(str(target)), key_bindings=bindings, multiline=False,
                         prompt_continuation="... ", enable_history_search=False)


def shield_writes(hub: Any, inflight: dict[asyncio.Future[Any], str]) -> None:
    """Make every write dispatched through ``hub`` survive the cancellation of the turn that sent it.

    Reads are cancelled with the turn. A write (after its approval, which happens inside ``Hub.call``)
    runs as its own task behind ``asyncio.shield``; ``inflight`` maps it to its tool name so the REPL
    can wait for it and show its outcome after Ctrl-C.
    """
    original = hub.call

    async def call(name: str, arguments: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        stricter = kwargs.get("at_least") not in (None, Access.READ)
        if hub.access(name, arguments) is Access.READ and not stricter:
            return await original(name, arguments, **kwargs)
        task = asyncio.ensure_future(original(name, arguments, **kwargs))
        inflight[task] = name
        return await asyncio.shield(task)

    hub.call = call  # an instance attribute: the facade and the loop both dispatch through it


class Repl:
    """One chat session over an open runtime (see the module docstring)."""

    def __init__(self, rt: Runtime, view: TurnView, approval: InlineApproval, *, limits: Limits,
                 local_tools: list[LocalTool], session: Any = None, price_override: tuple[float, float] | None = None,
                 argv: list[str] | None = None) -> None:
        self.rt = rt
        self.view = view
        self.console = view.console
        self.approval = approval
        self.limits = limits
        self.local_tools = local_tools
        self.session = session if session is not None else make_session()
        self.price_override = price_override
        self.argv = argv or ["chat"]
        self.history: list[dict[str, Any]] = []
        self.turns = 0
        self.running = True
        self.locked_read_only = rt.settings.read_only  # --read-only at start cannot be lifted
        self.inflight: dict[asyncio.Future[Any], str] = {}
        shield_writes(rt.hub, self.inflight)

    # ------------------------------------------------------------ the loop
    def banner(self) -> None:
        """The first lines: model, servers, how to get help."""
        servers = ", ".join(f"{c.spec.name} ({c.spec.kind})" for c in self.rt.hub.connections)
        model = self.rt.model.name if self.rt.model is not None else "none"
        mode = " · read-only" if self.rt.hub.gate.read_only else ""
        self.console.print(Text.assemble(("vapi-agent chat", "bold"), f" · model {model} · {servers}{mode}"))
        self.console.print(Text(f"/help for commands · {MULTILINE_HELP} · Ctrl-C cancels a turn · Ctrl-D quits",
                                style="dim"))

    async def run(self) -> int:
        """Read and answer until /exit or Ctrl-D; returns the number of turns answered."""
        self.banner()
        while self.running:
            try:
                text = await self.session.prompt_async(PROMPT)
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line
            except EOFError:
                break
            text = text.strip()
            if not text:
                continue
            if text.startswith("/"):
                await handle_command(self, text)
            else:
                await self.turn(text)
        return self.turns

    # ------------------------------------------------------------ one turn
    async def turn(self, text: str) -> None:
        """Answer one message; Ctrl-C cancels it (writes already sent finish first)."""
        self.view.reset()
        self.inflight.clear()
        run_log = self.rt.store.start_run("chat", self.argv, text) if self.rt.store is not None else None
        task = asyncio.ensure_future(run_agent(
            self.rt, text, limits=self.limits, local_tools=self.local_tools, history=self.history or None,
            on_event=self.view.on_event, run_log=run_log))
        with _sigint(lambda: self._interrupt(task)):
            try:
                await asyncio.wait({task})
            finally:
                if not task.done():  # the REPL itself is going away (deadline): take the turn with it
                    task.cancel()
            self.view.close_text()
            if task.cancelled():
                await self._after_cancel(text, run_log)
                return
        error = task.exception()
        if error is not None:
            if not isinstance(error, AgentError):
                raise error
            self.view.error(f"error: {error.line()}")
            if run_log is not None:
                run_log.finish("error", error.exit_code, None, self.rt.usage.to_dict(), errors=[error.to_dict()])
            return
        result = task.result()
        self.history = result.messages
        self.turns += 1
        if result.stop_error is not None:
            self.view.error(f"stopped: {result.stop_error.line()}")
        if run_log is not None:
            status = "ok" if result.stop_error is None else "error" if result.stopped_by == "error" else "partial"
            run_log.finish(status, 0 if result.stop_error is None else result.stop_error.exit_code,
                           result.to_dict(), self.rt.usage.to_dict())

    def _interrupt(self, task: asyncio.Future[Any]) -> None:
        """SIGINT during a turn: cancel it; while writes finish, say so instead."""
        if not task.done():
            self.view.cancelled = True
            self.view.close_text()
            self.console.print(Text("^C cancelling the turn…", style="yellow"))
            task.cancel()
        elif any(not t.done() for t in self.inflight):
            self.console.print(Text("a write already sent is finishing; its outcome follows", style="yellow"))

    async def _after_cancel(self, text: str, run_log: Any) -> None:
        """Wait for writes already sent, show their outcomes, and note the cancel in the conversation."""
        pending = [t for t in self.inflight if not t.done()]
        if pending:
            self.console.print(Text(f"waiting for {len(pending)} write(s) already sent…", style="yellow"))
            await asyncio.wait(pending)
        finished = []
        for task, name in self.inflight.items():
            ok, line = _write_outcome(task)
            self.view.tool_outcome(name, ok, None if ok else line)
            finished.append(f"{name}: {line}")
        self.inflight.clear()
        self.console.print(Text("turn cancelled", style="yellow"))
        note = "[The user cancelled this turn before it finished."
        note += f" Writes that completed anyway: {'; '.join(finished)}.]" if finished else "]"
        self.history = [*(self.history or [{"role": "system", "content": SYSTEM_PROMPT}]),
                        {"role": "user", "content": text}, {"role": "assistant", "content": note}]
        if run_log is not None:
            run_log.finish("error", 130, {"cancelled": True, "writes": finished}, self.rt.usage.to_dict(),
                           errors=[{"code": "interrupted", "message": "turn cancelled by Ctrl-C"}])


def _write_outcome(task: asyncio.Future[Any]) -> tuple[bool, str]:
    """(ok, one line) for a finished write task."""
    if task.cancelled():
        return False, "cancelled before it was sent"
    error = task.exception()
    if error is not None:
        return False, error.line() if isinstance(error, AgentError) else f"{type(error).__name__}: {error}"
    output = task.result()
    if getattr(output, "ok", True):
        return True, "done"
    problem = getattr(output, "error", None)
    return False, problem.line() if isinstance(problem, AgentError) else "failed"


@contextmanager
def _sigint(handler: Callable[[], None]) -> Iterator[None]:
    """Route SIGINT to ``handler`` on the running loop for the duration of a ``with`` block."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, handler)
    except (NotImplementedError, RuntimeError, ValueError):  # no signals here (Windows, a thread)
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
