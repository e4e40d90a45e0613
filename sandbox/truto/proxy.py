"""Execute one Truto tool call as a live pass-through to the sandbox REST API (Truto stores nothing).

Flat arguments are validated against the tool's schema and split back into query and body
(reference/mcp-servers.md §2.4); the REST app is called in-process over ``httpx2.ASGITransport``
with the base URL on the sandbox's public origin (so links it builds point where clients can
reach them). Lists come back as Truto's envelope ``{"result": [...], "next_cursor": ...}``:

- bare-array lists (``/call``, ``/assistant``, ...) are paged **by time**: newest first, the
  cursor holds the ``createdAt`` of the last item returned plus the ids already returned at that
  instant (ties), and the next page asks ``createdAtLe=<boundary>`` and skips those ids;
- ``{results, metadata}`` lists are paged **by page number** with a fixed page size.

Cursors are opaque base64url JSON bound to their tool and filters. Errors become ``isError``
results holding Truto's envelope; a Vapi error is marked ``truto_is_remote_error`` with the body.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx2
import jsonschema
import mcp.types as types

from sandbox.rest.recordings import make_recording_link
from sandbox.rest.validation import VapiHttpError
from sandbox.truto.catalogue import ToolSpec
from sandbox.truto.gate import envelope

if TYPE_CHECKING:
    from sandbox.core import SandboxCore

DEFAULT_PAGE = 100  # Vapi's default `limit`
VAPI_MAX_LIMIT = 1000  # Vapi rejects larger `limit` values on bare-array lists
CURSOR_VERSION = 1
# query filters replaced by the cursor boundary when paging by time
_UPPER_BOUNDS = ("createdAtLt", "createdAtLe")


class ToolFailure(Exception):
    """A tool call that ends in a Truto error envelope (an ``isError`` result)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", "tool failed"))
        self.body = body

    @classmethod
    def bad_request(cls, message: str) -> ToolFailure:
        """A Truto-side 400 (bad arguments or cursor): nothing was sent to Vapi."""
        return cls(envelope(400, message))


def text_result(payload: Any, *, is_error: bool = False) -> types.CallToolResult:
    """One text content item holding ``payload`` as JSON."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=is_error)


# ---------------------------------------------------------------- arguments
def _coerce(value: Any, schema: dict[str, Any]) -> Any:
    """Query-string style leniency: ``"50"`` for an integer is accepted (Truto forwards strings)."""
    kind = schema.get("type")
    if isinstance(value, str) and kind in ("integer", "number"):
        try:
            return int(value) if kind == "integer" else float(value)
        except ValueError:
            return value
    return value


def validate_arguments(spec: ToolSpec, arguments: dict[str, Any] | None) -> dict[str, Any]:
    """Checked, cleaned arguments, or ``ToolFailure`` 400 naming every problem.

    ``null`` values count as absent (strict-mode function calling sends every key).
    """
    if arguments is not None and not isinstance(arguments, dict):
        raise ToolFailure.bad_request("Tool arguments must be a JSON object.")
    properties: dict[str, Any] = spec.input_schema.get("properties", {})
    args = {k: v for k, v in (arguments or {}).items() if v is not None}
    if spec.recording_kind and "id" in args:
        alias = args.pop("id")  # `id` is the documented alias of `call_id`
        args.setdefault("call_id", alias)
    unknown = sorted(set(args) - set(properties))
    if unknown:
        raise ToolFailure.bad_request(
            f"Unknown argument(s) for {spec.name}: {', '.join(unknown)}. "
            f"Allowed: {', '.join(properties) or 'none'}."
        )
    args = {k: _coerce(v, properties[k]) for k, v in args.items()}
    validator = jsonschema.Draft202012Validator(spec.input_schema)
    problems = sorted(validator.iter_errors(args), key=lambda e: list(e.absolute_path))
    if problems:
        messages = []
        for problem in problems:
            where = ".".join(str(p) for p in problem.absolute_path)
            messages.append(f"{where}: {problem.message}" if where else problem.message)
        raise ToolFailure.bad_request(f"Invalid arguments for {spec.name}: " + "; ".join(messages))
    return args


# ---------------------------------------------------------------- cursors
def encode_cursor(state: dict[str, Any]) -> str:
    """Opaque base64url of the paging state (no padding)."""
    raw = json.dumps({"v": CURSOR_VERSION, **state}, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, spec: ToolSpec) -> dict[str, Any]:
    """The paging state of ``cursor`` for ``spec``; ``ToolFailure`` 400 when garbage or foreign."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ToolFailure.bad_request("Invalid next_cursor: pass back the value you received, unchanged.") from None
    if not isinstance(state, dict) or state.get("v") != CURSOR_VERSION or not isinstance(state.get("f"), dict):
        raise ToolFailure.bad_request("Invalid next_cursor: pass back the value you received, unchanged.")
    if state.get("tool") != spec.name:
        raise ToolFailure.bad_request(f"This next_cursor belongs to another list, not {spec.name}.")
    size, page, boundary, ties = state.get("s"), state.get("p", 1), state.get("b"), state.get("x", [])
    well_formed = (
        _positive_int(size)
        and _positive_int(page)
        and (boundary is None or isinstance(boundary, str))
        and isinstance(ties, list)
        and all(isinstance(t, str) for t in ties)
    )
    if not well_formed:
        # a hand-edited cursor must be a 400, never a crash deeper in the proxy
        raise ToolFailure.bad_request("Invalid next_cursor: pass back the value you received, unchanged.")
    return state


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# ---------------------------------------------------------------- the proxy
class TrutoProxy:
    """Runs ``ToolSpec`` calls against the sandbox REST app, in-process, as Truto would against Vapi."""

    def __init__(self, sandbox: SandboxCore) -> None:
        self.sandbox = sandbox

    def client(self, *, authorised: bool = True) -> httpx2.AsyncClient:
        """A fresh in-process client to the REST app on the public origin (cheap: no sockets, no TLS)."""
        headers = {"Authorization": f"Bearer {self.sandbox.config.api_key}"} if authorised else {}
        return httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=self.sandbox.rest_app),
            base_url=self.sandbox.public_url,
            headers=headers,
        )

    async def call(self, spec: ToolSpec, arguments: dict[str, Any] | None) -> types.CallToolResult:
        """Run one tool call; every failure becomes an ``isError`` envelope result."""
        try:
            args = validate_arguments(spec, arguments)
            if spec.action == "list":
                return text_result(await self._list(spec, args))
            if spec.action == "recording":
                return await self._recording(spec, args["call_id"])
            return text_result(await self._request(spec, args))
        except ToolFailure as failure:
            return text_result(failure.body, is_error=True)

    async def send(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        """One REST request; the parsed JSON (or text) on 2xx, ``ToolFailure`` with the remote body else."""
        async with self.client() as http:
            response = await http.request(method, path, params=params or None, json=body)
        try:
            payload: Any = response.json()
        except ValueError:
            payload = response.text
        if response.status_code >= 400:
            raise ToolFailure(envelope(response.status_code, _remote_message(payload, response), remote=True,
                                       raw=payload))
        return payload

    async def _request(self, spec: ToolSpec, args: dict[str, Any]) -> Any:
        path = spec.path
        if "{id}" in path:
            # quoted, so an id holding "/" or "?" cannot reach another route
            path = path.replace("{id}", quote(str(args["id"]), safe=""))
        params = {k: args[k] for k in spec.query if k in args}
        body: dict[str, Any] | None = None
        if spec.http_method in ("POST", "PATCH"):
            body = {k: args[k] for k in spec.body if k in args} | spec.fixed_body
        return await self.send(spec.http_method, path, params=params, body=body)

    # ------------------------------------------------------------ lists
    def _page_size(self, requested: int | None) -> int:
        cap = max(1, self.sandbox.config.page_cap)
        if requested is None:
            return min(DEFAULT_PAGE, cap)
        if requested < 1:
            raise ToolFailure.bad_request("limit must be at least 1.")
        return min(requested, cap)

    async def _list(self, spec: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
        filters = {k: args[k] for k in spec.query if k in args}
        cursor = args.get("next_cursor")
        state = decode_cursor(cursor, spec) if cursor else None
        if state is not None:
            if filters and filters != state["f"]:
                raise ToolFailure.bad_request(
                    "next_cursor was issued for other filters: repeat the original filters or omit them."
                )
            filters = state["f"]
        if spec.paging == "page":
            return await self._list_by_page(spec, filters, state, args.get("limit"))
        return await self._list_by_time(spec, filters, state, args.get("limit"))

    async def _list_by_page(
        self, spec: ToolSpec, filters: dict[str, Any], state: dict[str, Any] | None, limit: int | None
    ) -> dict[str, Any]:
        # the page size is fixed by the first call: page N only means something with the same size
        size = int(state["s"]) if state else self._page_size(limit)
        page = int(state["p"]) if state else 1
        payload = await self.send("GET", spec.path, params={**filters, "page": page, "limit": size})
        if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
            raise ToolFailure(envelope(502, f"Unexpected list response from {spec.path}", remote=True,
                                       raw=payload))
        items = payload["results"][:size]
        raw_meta = payload.get("metadata")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        if isinstance(meta.get("hasNextPage"), bool):
            more = meta["hasNextPage"]
        elif meta.get("totalPages") is not None:
            more = page < int(meta["totalPages"])
        else:
            more = page * size < int(meta.get("totalItems") or 0)
        more = more and bool(items)
        nxt = encode_cursor({"tool": spec.name, "f": filters, "s": size, "p": page + 1}) if more else None
        return {"result": items, "next_cursor": nxt}

    async def _list_by_time(
        self, spec: ToolSpec, filters: dict[str, Any], state: dict[str, Any] | None, limit: int | None
    ) -> dict[str, Any]:
        size = self._page_size(limit if limit is not None else (state or {}).get("s"))
        boundary: str | None = state.get("b") if state else None
        skip: list[str] = list(state.get("x", [])) if state else []
        query = dict(filters)
        if boundary is not None:
            # every item still to come is at or before the boundary (and inside the user's own bounds)
            for key in _UPPER_BOUNDS:
                query.pop(key, None)
            query["createdAtLe"] = boundary
        # one extra item tells whether another page exists; the skipped ties must not crowd it out
        query["limit"] = min(VAPI_MAX_LIMIT, size + len(skip) + 1)
        payload = await self.send("GET", spec.path, params=query)
        if not isinstance(payload, list):
            raise ToolFailure(envelope(502, f"Unexpected list response from {spec.path}", remote=True,
                                       raw=payload))
        skipped = set(skip)
        fresh = [item for item in payload if not (isinstance(item, dict) and item.get("id") in skipped)]
        items = fresh[:size]
        more = len(fresh) > size
        nxt = None
        if more and items:
            last = str(items[-1].get("createdAt"))
            ties = [str(i.get("id")) for i in items if str(i.get("createdAt")) == last]
            if last == boundary:
                ties = skip + ties
            nxt = encode_cursor({"tool": spec.name, "f": filters, "s": size, "b": last, "x": ties})
        return {"result": items, "next_cursor": nxt}

    # ------------------------------------------------------------ recordings
    async def _recording(self, spec: ToolSpec, call_id: str) -> types.CallToolResult:
        """A per-call recording in the configured shape (``config.recording_shape``).

        Vapi answers ``GET /call/{id}/<kind>-recording`` with a 302 to a presigned URL; how Truto
        exposes that is not documented, so the sandbox's labelled assumption is a short-lived,
        unauthenticated link on the REST origin that itself answers 302 to the signed storage URL.
        """
        kind = spec.recording_kind or "mono"
        try:
            link = make_recording_link(self.sandbox, call_id, kind)
        except VapiHttpError as exc:
            raise ToolFailure(envelope(exc.status, str(exc), remote=True, raw=exc.body())) from None
        shape = self.sandbox.config.recording_shape
        if shape == "resource_link":
            item = types.ResourceLink(
                type="resource_link",
                uri=link["url"],
                name=f"{kind}-recording-{call_id}",
                mime_type=link["content_type"],
                description=f"{kind} recording of call {call_id}; link expires at {link['expires_at']}",
            )
            return types.CallToolResult(content=[item])
        if shape == "embedded":
            data = await self._download(link["url"])
            blob = types.BlobResourceContents(
                uri=link["url"], mime_type=link["content_type"], blob=base64.b64encode(data).decode()
            )
            return types.CallToolResult(content=[types.EmbeddedResource(type="resource", resource=blob)])
        return text_result(link)

    async def _download(self, url: str) -> bytes:
        """Follow a link like a client would (no Authorization: the signed storage URL refuses it)."""
        async with self.client(authorised=False) as http:
            response = await http.get(url, follow_redirects=True)
        if response.status_code >= 400:
            raise ToolFailure(envelope(response.status_code, "Could not download the recording", remote=True,
                                       raw=response.text[:500]))
        return response.content


def _remote_message(payload: Any, response: httpx2.Response) -> str:
    if isinstance(payload, dict):
        message = payload.get("message")
        if isinstance(message, list):
            return "; ".join(str(m) for m in message)
        if isinstance(message, str) and message:
            return message
    return f"Vapi answered HTTP {response.status_code}"
