"""The response-observer hook: every JSON body and SSE event the REST app serves is shown to observers.

Tests register a validator here (tests/sdk_validation.py) so nothing is served without being checked
against the Vapi SDK models. Observers run inside the server (in-process or on a uvicorn thread), so
they must never break serving: their exceptions are caught and kept for ``take_observer_errors()``.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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
