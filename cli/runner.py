"""The command runner: one place that turns a library call into output, an envelope and an exit code.

Every CLI command goes through ``run_command``: logging on stderr with secrets redacted, the
``--json`` envelope (exactly one object on stdout, also on failure), the error tree mapped to exit
codes with one line per error, Ctrl-C as 130, and a traceback only with ``--debug``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from agent.config import Settings
from agent.errors import EXIT_INTERRUPTED, AgentError, internal_error
from agent.inflight import INTERRUPTED_WRITES, WriteReport
from agent.redact import install_logging_redaction, redact
from agent.terminal import printable
from agent.usage import Usage
from cli.envelope import Envelope

# The reader of stdout went away (`vapi-agent calls list | head -3`): what a shell reports for a
# program killed by SIGPIPE (128 + 13), the work itself having finished and been recorded.
EXIT_STDOUT_CLOSED = 141
STDOUT_CLOSED = {"code": "stdout_closed", "message": "stdout was closed before all output was written"}


@dataclass
class Outcome:
    """What a command body returns: its result, ``partial`` status and non-fatal errors."""

    result: Any = None
    status: str = "ok"
    errors: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int = 0


@dataclass
class CommandContext:
    """Handed to a command body: settings, usage counters, and the stderr stream for notices."""

    workflow: str
    settings: Settings
    usage: Usage = field(default_factory=Usage)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    def notice(self, message: str) -> None:
        """One line on stderr (never stdout: stdout belongs to the result or the envelope).

        Redacted, and without terminal control codes: notices quote server text (names, errors).
        """
        print(printable(redact(message)), file=self.stderr, flush=True)


# A command body: the async work of one command, given its context, returning its outcome.
Body = Callable[[CommandContext], Awaitable[Outcome]]


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is *now* (not the stream of the moment it was created).

    Records are redacted by filters; the formatted line also loses terminal control codes (libraries
    log server text: bodies, names, URLs).
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, redacted (tracebacks too) and printable."""
        return printable(redact(super().format(record)))

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(settings: Settings) -> None:
    """Log to stderr at a level from -v/--debug/VAPI_AGENT_LOG_LEVEL, with redaction filters."""
    if settings.debug:
        level = logging.DEBUG
    elif settings.log_level:
        level = getattr(logging, settings.log_level.upper(), logging.WARNING)
    else:
        level = {0: logging.WARNING, 1: logging.INFO}.get(settings.verbose, logging.DEBUG)
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    # The mcp SDK logs, with tracebacks, failures that we report ourselves in one line (a malformed
    # answer, an ended session's DELETE): its own records only with --debug.
    logging.getLogger("mcp").setLevel(logging.DEBUG if settings.debug else logging.CRITICAL)
    install_logging_redaction()


def run_command(
    workflow: str,
    settings: Settings,
    body: Callable[[CommandContext], Awaitable[Outcome]],
    render: Callable[[Outcome, CommandContext], None] | None = None,
    *,
    stdout: TextIO | None = None,
    lock: bool = False,
    deadline_inside: bool = False,
    record: bool = True,
) -> int:
    """Run ``body`` and report it; returns the process exit code.

    The cron contract lives here, once for every command: logs on stderr, no prompt without a TTY
    (``agent.runtime``), ``--deadline`` (exit 6; temporary files are removed as the cancellation
    unwinds, so no partial file is left), and with ``lock`` one run per job at a time (exit 7).
    """
    out = stdout or sys.stdout
    configure_logging(settings)
    ctx = CommandContext(workflow=workflow, settings=settings)
    envelope = Envelope(workflow=workflow, usage=ctx.usage)
    exit_code = 0
    from agent.store import runlog

    store = runlog.open_store() if record else None
    run = store.start_run(workflow, sys.argv[1:]) if store is not None else None
    token = runlog.CURRENT_RUN.set(run)
    interrupted: list[WriteReport] = []  # writes cut in flight, looked up by the hub before the body unwound
    writes_token = INTERRUPTED_WRITES.set(interrupted)
    try:
        deadline = None if deadline_inside else settings.deadline
        outcome = asyncio.run(_guarded(workflow, settings, body(ctx), lock, deadline))
        result = outcome.result
        envelope.result = result.to_dict() if hasattr(result, "to_dict") else result
        envelope.status, envelope.errors = outcome.status, outcome.errors
        exit_code = outcome.exit_code
        if not settings.json and render is not None:
            try:
                render(outcome, ctx)
            except (BrokenPipeError, SystemExit) as exc:
                if not _reader_gone(exc):
                    raise
                envelope.errors.append(dict(STDOUT_CLOSED))
                exit_code = EXIT_STDOUT_CLOSED
    except KeyboardInterrupt:
        envelope.status = "error"
        envelope.errors.append({"code": "interrupted", "message": "interrupted by Ctrl-C"})
        ctx.notice("interrupted")
        exit_code = EXIT_INTERRUPTED
    except BaseException as exc:
        error = _as_agent_error(exc)
        if error is None:
            raise
        envelope.status = "error"
        envelope.errors.append(error.to_dict())
        exit_code = error.exit_code
        ctx.notice(f"error: {printable(error.line(), one_line=True)}")
        if settings.debug:  # a traceback quotes messages and locals' reprs: redacted like every other line
            text = "".join(traceback.format_exception(exc))
            print(printable(redact(text)), end="", file=ctx.stderr, flush=True)
    finally:
        runlog.CURRENT_RUN.reset(token)
        INTERRUPTED_WRITES.reset(writes_token)
    for report in interrupted:  # never "nothing was written" while a write may have been: say which
        envelope.errors.append(report.to_dict())
        envelope.status = "error" if envelope.status == "error" else "partial"
        ctx.notice(report.line())
    if run is not None:
        data = envelope.to_dict()
        runlog.record("finish", data["status"], exit_code, data["result"], data["usage"], errors=data["errors"],
                      run=run)
    if store is not None:
        store.close()  # writes what is still queued (waiting out another process's lock), then closes
    if settings.json:
        try:
            print(envelope.dumps(), file=out, flush=True)
        except BrokenPipeError:
            _silence(out)
            return EXIT_STDOUT_CLOSED
    return exit_code


def _reader_gone(exc: BaseException) -> bool:
    """Whether rendering stopped because stdout's reader closed it.

    rich answers a broken pipe by pointing stdout at /dev/null and raising ``SystemExit(1)`` from
    the ``BrokenPipeError``; a bare ``print`` raises the ``BrokenPipeError`` itself.
    """
    if isinstance(exc, BrokenPipeError):
        _silence(sys.stdout)
        return True
    return isinstance(exc, SystemExit) and isinstance(exc.__context__, BrokenPipeError)


def _silence(stream: TextIO) -> None:
    """Point a closed stream's descriptor at /dev/null, so flushing it at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real descriptor (captured in tests): nothing left to flush there
        pass


def fail_before_start(workflow: str, error: AgentError | dict[str, Any], *, json: bool, exit_code: int | None = None,
                      stdout: TextIO | None = None) -> int:
    """A failure before any command body ran (a usage error, a bad setting); returns the exit code.

    One line on stderr, and with ``--json`` the same envelope a failing body gives (status
    ``error``), so stdout holds exactly one envelope on every path.
    """
    entry = error.to_dict() if isinstance(error, AgentError) else error
    code = exit_code if exit_code is not None else error.exit_code if isinstance(error, AgentError) else 2
    print(f"error: {printable(redact(str(entry['message'])), one_line=True)}", file=sys.stderr, flush=True)
    if json:
        envelope = Envelope(workflow=workflow, status="error", errors=[entry])
        print(envelope.dumps(), file=stdout or sys.stdout, flush=True)
    return code


def fail_on_usage(exc: Exception, *, json: bool) -> int:
    """A click/typer usage error (bad option, missing argument, unknown command) on one line; exit 2.

    With ``--json`` the envelope names the command the parser had reached.
    """
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", "") or "vapi-agent"
    workflow = ".".join(path.split()[1:]) or "vapi-agent"
    exit_code = int(getattr(exc, "exit_code", 2) or 2)
    if type(exc).__name__ == "NoArgsIsHelpError":  # a group without its command: its help, as always
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        if json:
            entry = {"code": "usage", "message": f"`{path}` needs a command (see `{path} --help`)"}
            print(Envelope(workflow=workflow, status="error", errors=[entry]).dumps(), flush=True)
        return exit_code
    format_message = getattr(exc, "format_message", None)
    message = " ".join(str(format_message() if format_message else exc).split())
    entry = {"code": "usage", "message": f"{message} (see `{path} --help`)"}
    return fail_before_start(workflow, entry, json=json, exit_code=exit_code)


async def _guarded(workflow: str, settings: Settings, work: Awaitable[Outcome], lock: bool,
                   deadline: float | None) -> Outcome:
    """Apply the job lock and the deadline around one command body."""
    from contextlib import nullcontext

    from agent.errors import BudgetExceeded
    from agent.joblock import job_key, job_lock

    guard = job_lock(job_key(sys.argv[1:] or [workflow]), label=workflow) if lock else nullcontext()
    with guard:
        if deadline is None:
            return await work
        try:
            return await asyncio.wait_for(work, timeout=deadline)
        except TimeoutError:
            cut = INTERRUPTED_WRITES.get()
            raise BudgetExceeded(f"{workflow} did not finish within the --deadline of {deadline:g} s",
                                 hint="raise --deadline" if cut else "raise --deadline; nothing partial was written",
                                 ) from None


def _as_agent_error(exc: BaseException) -> AgentError | None:
    """The AgentError inside ``exc`` (unwrapping exception groups), or a generic one for bugs."""
    if isinstance(exc, AgentError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _as_agent_error(inner)
            if found is not None:
                return found
    if isinstance(exc, (SystemExit, GeneratorExit)):
        return None
    if isinstance(exc, KeyboardInterrupt):
        return None
    return internal_error(exc)
