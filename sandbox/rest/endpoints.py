"""The REST app's machinery: routing, Bearer auth, faults, NestJS errors, observers, the request log.

Handlers are plain ``async def handler(ctx: Ctx) -> Reply | Response``. ``Reply`` is a JSON answer
(shown to ``RESPONSE_OBSERVERS`` with its route template); a Starlette ``Response`` is used as-is for
redirects, audio bytes and SSE streams (which notify observers per event themselves).

Order per API request, as a NestJS service behind a gateway would do it: latency → Bearer auth (401)
→ REST rate limit (429) → random 5xx → handler (validation 400, 404, 409, …) → write fault for an
applied write (502, or the answer held back). Unknown paths/methods answer Nest's own 404
``Cannot GET /path``.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from sandbox.core.requestlog import LogEntry
from sandbox.rest.faults import Faults
from sandbox.rest.observe import ServedResponse, notify
from sandbox.rest.validation import Obj, Q, Query, VapiHttpError, bad_request, validate_body, validate_query

if TYPE_CHECKING:
    from sandbox.core import SandboxCore

log = logging.getLogger("sandbox.api")

UNAUTHORIZED = (
    "Invalid Key. Hot tip, you may be using the private key instead of the public key, or vice versa."
)


@dataclass
class Reply:
    """A JSON answer: ``body`` is sent as JSON with ``status`` and extra ``headers``."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Ctx:
    """What a handler gets: the sandbox, the request, the route template and the path parameters."""

    sandbox: SandboxCore
    request: Request
    route: str
    params: dict[str, str]
    _body: Any = None
    _body_read: bool = False

    @property
    def method(self) -> str:
        """The HTTP method."""
        return self.request.method

    async def json(self) -> Any:
        """The parsed JSON body (an empty body counts as ``{}``, as Express's body-parser does)."""
        if not self._body_read:
            raw = await self.request.body()
            self._body_read = True
            if raw.strip():
                try:
                    self._body = json.loads(raw)
                except (ValueError, UnicodeDecodeError) as exc:
                    position = getattr(exc, "pos", 0)
                    raise bad_request([f"Unexpected token in JSON at position {position}"]) from None
            else:
                self._body = {}
        return self._body

    async def body(self, spec: Obj) -> dict[str, Any]:
        """The JSON body validated against ``spec`` (400 with every problem, before any write)."""
        return validate_body(await self.json(), spec)

    def query(self, spec: Mapping[str, Q]) -> Query:
        """The query string validated against ``spec`` (unknown parameters are refused)."""
        return validate_query(self.request.query_params.multi_items(), spec)


Handler = Callable[[Ctx], Awaitable["Reply | Response"]]


@dataclass(frozen=True)
class Endpoint:
    """One route: ``write`` marks create/update/delete (write faults apply after they succeed)."""

    method: str
    route: str
    handler: Handler
    write: bool = False
    auth: bool = True  # Bearer api key required
    api: bool = True  # latency / rate limit / 5xx faults apply
    transport: str = "rest"  # request-log transport name


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return re.compile(f"^{pattern}$")


class RestApp:
    """A pure ASGI app over a list of ``Endpoint`` objects (see the module docstring)."""

    def __init__(self, sandbox: SandboxCore, endpoints: Iterable[Endpoint]) -> None:
        self.sandbox = sandbox
        self.faults = Faults(sandbox.config, sandbox.clock)
        self._routes: list[tuple[re.Pattern[str], str, dict[str, Endpoint]]] = []
        by_template: dict[str, dict[str, Endpoint]] = {}
        for endpoint in endpoints:
            methods = by_template.setdefault(endpoint.route, {})
            if endpoint.method in methods:
                raise ValueError(f"duplicate route {endpoint.method} {endpoint.route}")
            methods[endpoint.method] = endpoint
        # literal segments must win over parameters ("/chat/responses" before "/chat/{id}")
        ordered = sorted(by_template.items(), key=lambda item: item[0].count("{"))
        self._routes = [(_compile(t), t, methods) for t, methods in ordered]

    def match(self, method: str, path: str) -> tuple[Endpoint | None, dict[str, str]]:
        """The endpoint for ``method path`` (HEAD falls back to GET) and its path parameters."""
        normalized = path.rstrip("/") or "/"
        for pattern, _template, methods in self._routes:
            found = pattern.match(normalized)
            if found is None:
                continue
            endpoint = methods.get(method) or (methods.get("GET") if method == "HEAD" else None)
            if endpoint is not None:
                return endpoint, found.groupdict()
        return None, {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        endpoint, params = self.match(scope["method"], scope["path"])
        status_box: dict[str, Any] = {"status": 0, "extra": {}}
        started = self.sandbox.clock.real()

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
            await send(message)

        request = Request(scope, receive)
        if endpoint is None:
            response: Response = _nest_404(scope["method"], scope["path"])
            route, transport = None, _transport_for(scope["path"])
            notify(ServedResponse(scope["method"], "(no route)", 404, json.loads(bytes(response.body))))
        else:
            ctx = Ctx(self.sandbox, request, endpoint.route, params)
            response = await self._serve(endpoint, ctx, status_box["extra"])
            route, transport = endpoint.route, endpoint.transport
        try:
            await response(scope, receive, logged_send)
        finally:
            if transport is not None:
                self._log(scope, transport, route, started, status_box)

    async def _serve(self, endpoint: Endpoint, ctx: Ctx, extra: dict[str, Any]) -> Response:
        rate_headers: dict[str, str] = {}
        try:
            if endpoint.api:
                await self.faults.delay()
            if endpoint.auth:
                key = _bearer(ctx.request)
                expected = self.sandbox.config.api_key.encode()
                if key is None or not hmac.compare_digest(key.encode(), expected):
                    raise VapiHttpError(401, UNAUTHORIZED)
                if endpoint.api:
                    decision = self.faults.rate_limit(key)
                    rate_headers = decision.headers() if decision else {}
            if endpoint.api:
                self.faults.random_error()
            result = await endpoint.handler(ctx)
            if endpoint.write and _succeeded(result):
                fault = self.faults.claim_write_fault()
                if fault is not None:
                    extra["write_fault"] = fault
                    await self.faults.inflict_write_fault(fault)
        except VapiHttpError as exc:
            result = Reply(exc.body(), exc.status, {**rate_headers, **exc.headers})
        except Exception:
            log.exception("unhandled error in %s %s", endpoint.method, endpoint.route)
            result = Reply(VapiHttpError(500, "Internal server error").body(), 500, rate_headers)
        if isinstance(result, Reply):
            result.headers = {**rate_headers, **result.headers}
            notify(ServedResponse(ctx.method, endpoint.route, result.status, result.body))
            return JSONResponse(result.body, result.status, headers=result.headers)
        result.headers.update(rate_headers)
        return result

    def _log(
        self, scope: Scope, transport: str, route: str | None, started: float, box: dict[str, Any]
    ) -> None:
        if transport == "internal":
            return
        extra: dict[str, Any] = dict(box["extra"])
        if route is not None:
            extra["route"] = route
        path = scope["path"]
        if transport == "rest" and scope.get("query_string"):
            extra["query"] = scope["query_string"].decode("latin-1")
        if transport == "link":
            path = "/_links/***"  # the opaque link is a bearer capability: never log it
        # storage: scope["path"] never holds the query string, so X-Amz-Signature stays out
        self.sandbox.log.add(
            LogEntry(
                t_start=started,
                t_end=self.sandbox.clock.real(),
                transport=transport,
                method=scope["method"],
                path=path,
                status=box["status"],
                extra=extra,
            )
        )


def _succeeded(result: Reply | Response) -> bool:
    status = result.status if isinstance(result, Reply) else result.status_code
    return 200 <= status < 300


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _transport_for(path: str) -> str:
    if path.startswith("/_links/"):
        return "link"
    if path.startswith("/_storage/"):
        return "storage"
    return "rest"


def _nest_404(method: str, path: str) -> Response:
    body = VapiHttpError(404, f"Cannot {method} {path}").body()
    return JSONResponse(body, 404)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


@contextmanager
def workspace_errors() -> Iterator[None]:
    """Translate the workspace's exceptions into NestJS HTTP errors."""
    from sandbox.world.workspace import Conflict, NotFound, ValidationFailed

    try:
        yield
    except NotFound as exc:
        raise VapiHttpError(404, str(exc)) from None
    except ValidationFailed as exc:
        raise bad_request(list(exc.messages)) from None
    except Conflict as exc:
        raise VapiHttpError(409, str(exc)) from None
