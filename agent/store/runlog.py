"""The run being recorded right now (a ContextVar), so deep layers can log to it without plumbing.

The runner opens one run record per command in the run store; the hub adds each tool call to it and
the rate-limit reporter each wait. Recording never breaks a command: a store that cannot be opened
or written is logged and skipped. Writes go through ``agent.store.writer.BackgroundStore``: they are
queued, never waited for on the event loop.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

log = logging.getLogger(__name__)

CURRENT_RUN: ContextVar[Any] = ContextVar("vapi_agent_current_run", default=None)


def open_store() -> Any:
    """The default run store behind a background writer, or None when it is unavailable."""
    try:
        from agent.store.writer import BackgroundStore

        return BackgroundStore()
    except Exception as exc:  # the run log is a record, never a reason to fail the command
        log.warning("run log unavailable: %s", exc)
        return None


def record(method: str, *args: Any, run: Any = None, **kwargs: Any) -> None:
    """Call ``method`` on ``run`` (default: the current run record); failures are logged, not raised."""
    run = run if run is not None else CURRENT_RUN.get()
    if run is None:
        return
    try:
        getattr(run, method)(*args, **kwargs)
    except Exception as exc:
        log.warning("run log write failed: %s", exc)
