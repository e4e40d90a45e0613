"""The response-observer hook: every JSON body and SSE event the REST app serves is shown to observers.

Tests register a validator here (tests/sdk_validation.py) so nothing is served without being checked
against the Vapi SDK models. Observers run inside the server (in-process or on a uvicorn thread), so
they must never break serving: their exceptions are caught and kept for ``take_observer_errors()``.

A sandbox served by another process (``python -m sandbox serve``, a CLI run on the embedded sandbox)
cannot reach an observer of the test process: when ``VAPI_SANDBOX_RESPONSE_LOG`` names a file, every
served response is also appended to it as one JSON line (with the serving process's id), and the
tests read the file back and validate it the same way.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

RESPONSE_LOG_ENV = "VAPI_SANDBOX_RESPONSE_LOG"


@dataclass(frozen=True)
class ServedResponse:
    """One served JSON body (or one SSE event when ``sse``) with the route template that produced it."""

    method: str
    route: str  # the route template, e.g. "/call/{id}" (never the concrete path)
    status: int
    body: Any
    sse: bool = False


RESPONSE_OBSERVERS: list[Callable[[ServedResponse], None]] = []

_errors: list[str] = []
_errors_lock = threading.Lock()


def notify(served: ServedResponse) -> None:
    """Show ``served`` to every observer; an observer that raises is recorded, never propagated."""
    for observer in list(RESPONSE_OBSERVERS):
        try:
            observer(served)
        except Exception as exc:  # an observer bug must not turn into a 500 for the client
            summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            with _errors_lock:
                _errors.append(f"{served.method} {served.route}: {summary}")


def take_observer_errors() -> list[str]:
    """Observer crashes recorded since the last call, then forget them."""
    with _errors_lock:
        errors = list(_errors)
        _errors.clear()
    return errors


def append_to_response_log(served: ServedResponse) -> None:
    """Append ``served`` to the file named by ``VAPI_SANDBOX_RESPONSE_LOG`` (read at every response)."""
    path = os.environ.get(RESPONSE_LOG_ENV)
    if not path:
        return
    line = json.dumps({"pid": os.getpid(), **asdict(served)}, default=str).encode() + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # whole lines, even with several serving processes
        while line:
            line = line[os.write(fd, line):]
    finally:
        os.close(fd)


RESPONSE_OBSERVERS.append(append_to_response_log)
