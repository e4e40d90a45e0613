"""Validate everything the sandbox serves against the real vapi-server-sdk 3.x models, strictly.

``install()`` registers (once) an observer in ``sandbox.rest.app.RESPONSE_OBSERVERS``; the REST app calls it
for every JSON response and every SSE event it serves, in-process or on a uvicorn thread. Failures are
collected (never raised inside the server) and ``take_failures()`` hands them to the test fixture.

Validation happens on a worker thread fed by the observer (``take_failures`` waits for it to catch
up), so serving is never slowed by the SDK's expensive first model builds.

Strict means ``Model.model_validate`` / ``TypeAdapter.validate_python`` (required fields, types), not
the SDK's lenient ``construct_type`` which never fails, and then ``tests.sdk_strict.problems`` on the
result: no key the SDK does not declare, no snake_case key, no enum value outside the SDK's literal
set, no string where a number is declared, scorecard and structured-output entries of the documented
shape. Unions the SDK discriminates (phone numbers by ``provider``, tools by ``type``) are also checked
to have resolved to the variant the discriminator names, because pydantic would otherwise happily
fall back to another member.

Sandboxes served by other processes (``python -m sandbox serve``, CLI runs on the embedded sandbox)
append what they serve to the file named by ``VAPI_SANDBOX_RESPONSE_LOG`` (``sandbox/rest/observe.py``);
``take_logged_failures(path)`` reads it back and validates every line the same way.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic

from sandbox.rest.app import RESPONSE_OBSERVERS, ServedResponse
from sandbox.rest.observe import append_to_response_log
from tests.sdk_strict import problems

# Route templates answered with something other than one JSON value per response (or not JSON at all)
_UNCHECKED_PREFIXES = ("/_sandbox/",)

_lock = threading.Lock()
_failures: list[str] = []


def _adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(tp)


class _Validators:
    """Lazily built table ``(method, route template) -> checker``.

    Importing an SDK model is slow (``vapi.types.Assistant`` alone takes seconds: pydantic builds
    the whole nested schema), so each checker is built the first time its route is served.
    """

    def __init__(self) -> None:
        self._built: dict[tuple[bool, str, str], Callable[[Any], None]] = {}
        self._lock = threading.Lock()

    def checker(self, sse: bool, method: str, route: str) -> Callable[[Any], None] | None:
        """The checker for one route, or None when no SDK model is registered for it."""
        key = (sse, method, route)
        with self._lock:
            if key not in self._built:
                factory = (_SSE if sse else _JSON).get((method, route))
                if factory is None:
                    return None
                self._built[key] = factory()
            return self._built[key]

    def check(self, served: ServedResponse) -> str | None:
        """A failure string, or None when the body is what the SDK expects."""
        if served.route.startswith(_UNCHECKED_PREFIXES):
            return None
        if served.status >= 400:
            return _check_error_body(served.body, served.status)
        checker = self.checker(served.sse, served.method, served.route)
        if checker is None:
            kind = "SSE event" if served.sse else "JSON body"
            return f"no SDK model registered for {kind} of {served.method} {served.route}"
        try:
            checker(served.body)
        except (pydantic.ValidationError, TypeError, ValueError) as exc:
            return f"{served.method} {served.route} ({served.status}): {_short(exc)}"
        return None


def check(served: ServedResponse) -> str | None:
    """Validate one served response now (on this thread): a failure string, or None (a validator that
    crashes is a failure to report too)."""
    try:
        return _validators.check(served)
    except Exception as exc:
        return f"validator crashed on {served.method} {served.route}: {exc!r}"


def _types() -> Any:
    import vapi.types

    return vapi.types


class StrictnessError(ValueError):
    """The SDK accepted the body, but it holds what Vapi never sends (see ``tests.sdk_strict``)."""


def strict(parsed: Any, body: Any) -> None:
    """Raise ``StrictnessError`` listing what ``tests.sdk_strict.problems`` finds in a validated body."""
    found = problems(parsed, body)
    if found:
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        raise StrictnessError("; ".join(found[:5]) + more)


def _model(name: str) -> Callable[[], Callable[[Any], None]]:
    def build() -> Callable[[Any], None]:
        cls = getattr(_types(), name)
        return lambda body: strict(cls.model_validate(body), body)

    return build


def _list_of(name: str) -> Callable[[], Callable[[Any], None]]:
    def build() -> Callable[[Any], None]:
        adapter = _adapter(list[getattr(_types(), name)])  # type: ignore[misc]
        return lambda body: strict(adapter.validate_python(body), body)

    return build


def _union(kind: str, *, many: bool) -> Callable[[], Callable[[Any], None]]:
    """Phone numbers (by ``provider``) or tools (by ``type``), one or a bare array."""

    def build() -> Callable[[Any], None]:
        if kind == "phone":
            from vapi.phone_numbers.types import ListPhoneNumbersResponseItem as Item

            discriminator = "provider"
        else:
            from vapi.tools.types import ListToolsResponseItem as Item

            discriminator = "type"
        adapter = _adapter(Item)

        def one(body: Any) -> None:
            parsed = adapter.validate_python(body)
            _check_variant(parsed, body, discriminator)
            strict(parsed, body)

        def each(body: Any) -> None:
            if not isinstance(body, list):
                raise TypeError(f"expected a bare JSON array, got {type(body).__name__}")
            for item in body:
                one(item)

        return each if many else one

    return build


def _create_call() -> Callable[[Any], None]:
    types = _types()

    def check(body: Any) -> None:
        # POST /call answers a Call, or a CallBatchResponse when ``customers[]`` was sent
        model = types.CallBatchResponse if isinstance(body, dict) and "results" in body else types.Call
        strict(model.model_validate(body), body)

    return check


def _responses_event() -> Callable[[Any], None]:
    types = _types()
    events: dict[str, Any] = {
        "response.output_text.delta": types.ResponseTextDeltaEvent,
        "response.output_text.done": types.ResponseTextDoneEvent,
        "response.completed": types.ResponseCompletedEvent,
        "error": types.ResponseErrorEvent,
    }

    def check(body: Any) -> None:
        kind = body.get("type") if isinstance(body, dict) else None
        if kind not in events:
            raise ValueError(f"unknown Responses SSE event type {kind!r}")
        strict(events[kind].model_validate(body), body)

    return check


def _crud(path: str, one: Callable[[], Callable[[Any], None]], listing: Callable[[], Callable[[Any], None]],
          *, patch: bool = True) -> dict[tuple[str, str], Callable[[], Callable[[Any], None]]]:
    table = {("GET", path): listing, ("POST", path): one, ("GET", f"{path}/{{id}}"): one,
             ("DELETE", f"{path}/{{id}}"): one}
    if patch:
        table[("PATCH", f"{path}/{{id}}")] = one
    return table


_JSON: dict[tuple[str, str], Callable[[], Callable[[Any], None]]] = {
    **_crud("/call", _model("Call"), _list_of("Call")),
    ("POST", "/call"): _create_call,
    **_crud("/assistant", _model("Assistant"), _list_of("Assistant")),
    **_crud("/squad", _model("Squad"), _list_of("Squad")),
    **_crud("/phone-number", _union("phone", many=False), _union("phone", many=True)),
    **_crud("/campaign", _model("Campaign"), _model("CampaignPaginatedResponse")),
    **_crud("/observability/scorecard", _model("Scorecard"), _model("ScorecardPaginatedResponse")),
    **_crud("/structured-output", _model("StructuredOutput"), _model("StructuredOutputPaginatedResponse")),
    **_crud("/tool", _union("tool", many=False), _union("tool", many=True)),
    **_crud("/chat", _model("Chat"), _model("ChatPaginatedResponse"), patch=False),
    ("POST", "/analytics"): _list_of("AnalyticsQueryResult"),
    ("POST", "/chat/responses"): _model("ResponseObject"),
}
_SSE: dict[tuple[str, str], Callable[[], Callable[[Any], None]]] = {
    ("POST", "/chat"): _model("CreateChatStreamResponse"),
    ("POST", "/chat/responses"): _responses_event,
}


def _check_variant(parsed: Any, body: Any, discriminator: str) -> None:
    """The union member pydantic picked must be the one the discriminator value names."""
    if not isinstance(body, dict):
        raise TypeError(f"expected an object, got {type(body).__name__}")
    value = getattr(parsed, discriminator, None)
    if value != body.get(discriminator):
        raise ValueError(
            f"{discriminator}={body.get(discriminator)!r} resolved to {type(parsed).__name__} "
            f"({discriminator}={value!r})"
        )


def _check_error_body(body: Any, status: int) -> str | None:
    """NestJS error shape: ``{message: str | str[], error: str, statusCode: <the status>}``."""
    problems: list[str] = []
    if not isinstance(body, dict):
        return f"error body for {status} is not an object: {body!r:.200}"
    message = body.get("message")
    if not (isinstance(message, str) or (isinstance(message, list) and all(isinstance(m, str) for m in message))):
        problems.append("message must be a string or a list of strings")
    if not isinstance(body.get("error"), str):
        problems.append("error must be a string")
    if body.get("statusCode") != status:
        problems.append(f"statusCode {body.get('statusCode')!r} != HTTP status {status}")
    return f"error body {body!r:.200}: {'; '.join(problems)}" if problems else None


def _short(exc: Exception) -> str:
    text = str(exc).replace("\n", " | ")
    return text[:600]


_validators = _Validators()
# Validation runs on a worker thread: the observer only enqueues, so a slow first SDK model build
# (tens of seconds for Call/Assistant) never stalls a served sandbox's event loop into client timeouts.
_queue: queue.Queue[ServedResponse] = queue.Queue()
_worker: list[threading.Thread] = []


def _work() -> None:
    while True:
        served = _queue.get()
        try:
            failure = check(served)  # a validator bug is a failure to report, not a dead worker
            if failure is not None:
                with _lock:
                    _failures.append(failure)
        finally:
            _queue.task_done()


def _observer(served: ServedResponse) -> None:
    _queue.put(served)


def install() -> None:
    """Register the validating observer once (idempotent) and start its worker; clears nothing."""
    with _lock:
        if not _worker:
            thread = threading.Thread(target=_work, name="sdk-validation", daemon=True)
            thread.start()
            _worker.append(thread)
        if _observer not in RESPONSE_OBSERVERS:
            RESPONSE_OBSERVERS.append(_observer)
        # this process validates in memory: its sandboxes need not write the log other processes write
        if append_to_response_log in RESPONSE_OBSERVERS:
            RESPONSE_OBSERVERS.remove(append_to_response_log)


def take_failures() -> list[str]:
    """Wait until everything served so far is validated; return the failures (and observer crashes)."""
    from sandbox.rest.app import take_observer_errors

    _queue.join()
    with _lock:
        failures = list(_failures)
        _failures.clear()
    return failures + [f"observer crashed: {e}" for e in take_observer_errors()]


def take_logged_failures(path: Path) -> list[str]:
    """Validate what other processes served (``VAPI_SANDBOX_RESPONSE_LOG`` lines); the failures, each
    tagged with the serving process. Lines of this process are skipped: its observer saw them already."""
    if not path.exists():
        return []
    failures = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
            pid = record.pop("pid")
            if pid == os.getpid():
                continue
            served = ServedResponse(**record)
        except (ValueError, TypeError, KeyError) as exc:
            failures.append(f"{path.name} line {number} is not a served response: {exc}")
            continue
        failure = check(served)
        if failure is not None:
            failures.append(f"(served by process {pid}) {failure}")
    return failures
