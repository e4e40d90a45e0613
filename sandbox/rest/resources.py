"""Route handlers for Vapi's resources: calls, the generic CRUD kinds, and analytics.

Every write validates the body shape first (``sandbox.rest.schemas``), then lets the workspace check
cross-object rules; both happen before anything is stored, so a refused write leaves no trace.
Workspace errors map to Nest's: ``NotFound`` → 404, ``ValidationFailed`` → 400 (message array),
``Conflict`` → 409. Every Call served gets fresh presigned recording URLs (``sandbox.rest.recordings``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sandbox.rest import schemas as S
from sandbox.rest.analytics import COST_COLUMNS, run_queries
from sandbox.rest.endpoints import Ctx, Endpoint, Reply, workspace_errors
from sandbox.rest.recordings import vault_for
from sandbox.rest.validation import Obj, Q, Query, bad_request, validate_body


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _filters(query: Query, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Query values as the workspace's snake_case keyword filters."""
    return {_snake(k): v for k, v in query.values.items() if k not in skip}


# ---------------------------------------------------------------- calls
def _presign(ctx: Ctx, call: dict[str, Any]) -> dict[str, Any]:
    return vault_for(ctx.sandbox).with_presigned_urls(call)


async def list_calls(ctx: Ctx) -> Reply:
    """``GET /call``: a bare array, newest first."""
    query = ctx.query(S.CALL_LIST_QUERY)
    with workspace_errors():
        calls = ctx.sandbox.workspace.list_calls(limit=int(query.get("limit", 100)), **_filters(query, ("limit",)))
    return Reply([_presign(ctx, c) for c in calls])


async def create_call(ctx: Ctx) -> Reply:
    """``POST /call``: a Call, or a CallBatchResponse for ``customers[]``."""
    ctx.query(S.NO_QUERY)
    body = await ctx.body(S.CALL_BODY)
    with workspace_errors():
        created = ctx.sandbox.workspace.create_call(body)
    if "results" in created:
        created = {**created, "results": [_presign(ctx, c) for c in created["results"]]}
    else:
        created = _presign(ctx, created)
    return Reply(created, 201)


async def get_call(ctx: Ctx) -> Reply:
    """``GET /call/{id}``."""
    ctx.query(S.NO_QUERY)
    with workspace_errors():
        return Reply(_presign(ctx, ctx.sandbox.workspace.get_call(ctx.params["id"])))


async def update_call(ctx: Ctx) -> Reply:
    """``PATCH /call/{id}`` (only ``name``)."""
    ctx.query(S.NO_QUERY)
    body = await ctx.body(S.CALL_PATCH)
    with workspace_errors():
        return Reply(_presign(ctx, ctx.sandbox.workspace.update_call(ctx.params["id"], body)))


async def delete_call(ctx: Ctx) -> Reply:
    """``DELETE /call/{id}``; an optional ``{ids}`` body deletes those too (all must exist first)."""
    ctx.query(S.NO_QUERY)
    body = await ctx.body(S.CALL_DELETE)
    ws = ctx.sandbox.workspace
    extra = [i for i in body.get("ids") or [] if i != ctx.params["id"]]
    with workspace_errors():
        for call_id in [ctx.params["id"], *extra]:
            ws.get_call(call_id)  # all-or-nothing: every id must exist before anything goes
        deleted = ws.delete_call(ctx.params["id"])
        for call_id in extra:
            ws.delete_call(call_id)
    return Reply(_presign(ctx, deleted))


# ---------------------------------------------------------------- generic kinds
@dataclass(frozen=True)
class Kind:
    """One CRUD resource: its workspace kind, URL path, list query and body specs."""

    kind: str
    path: str
    list_query: Mapping[str, Q]
    create: Obj | Callable[[Any], Obj]
    patch: Obj | Callable[[dict[str, Any]], Obj] | None
    paginated: bool = False


def _phone_create_spec(body: Any) -> Obj:
    provider = body.get("provider") if isinstance(body, dict) else None
    if provider not in S.PHONE_PROVIDERS:
        raise bad_request([f"provider must be one of the following values: {', '.join(S.PHONE_PROVIDERS)}"])
    return S.phone_body(provider, create=True)


def _phone_patch_spec(current: dict[str, Any]) -> Obj:
    return S.phone_body(str(current.get("provider", "vapi")), create=False)


def _tool_create_spec(body: Any) -> Obj:
    return S.tool_body(body.get("type") if isinstance(body, dict) else None, create=True)


def _tool_patch_spec(current: dict[str, Any]) -> Obj:
    return S.tool_body(str(current.get("type")), create=False)


KINDS = (
    Kind("assistants", "/assistant", S.BARE_LIST_QUERY, S.ASSISTANT_BODY, S.ASSISTANT_BODY),
    Kind("squads", "/squad", S.SQUAD_LIST_QUERY, S.SQUAD_BODY, S.SQUAD_PATCH),
    Kind("phone_numbers", "/phone-number", S.BARE_LIST_QUERY, _phone_create_spec, _phone_patch_spec),
    Kind("campaigns", "/campaign", S.CAMPAIGN_LIST_QUERY, S.CAMPAIGN_BODY, S.CAMPAIGN_PATCH, paginated=True),
    Kind("scorecards", "/observability/scorecard", S.SCORECARD_LIST_QUERY, S.SCORECARD_BODY, S.SCORECARD_PATCH,
         paginated=True),
    Kind("structured_outputs", "/structured-output", S.STRUCTURED_OUTPUT_LIST_QUERY, S.STRUCTURED_OUTPUT_BODY,
         S.STRUCTURED_OUTPUT_PATCH, paginated=True),
    Kind("tools", "/tool", S.BARE_LIST_QUERY, _tool_create_spec, _tool_patch_spec),
    Kind("chats", "/chat", S.CHAT_LIST_QUERY, S.CHAT_BODY, None, paginated=True),
)


def _list(kind: Kind) -> Callable[[Ctx], Any]:
    async def handler(ctx: Ctx) -> Reply:
        query = ctx.query(kind.list_query)
        ws = ctx.sandbox.workspace
        filters = _filters(query, ("limit", "page", "sortOrder", "sortBy", "assistantIdAny"))
        limit = int(query.get("limit", 100))
        with workspace_errors():
            if not kind.paginated:
                return Reply(ws.list_objects(kind.kind, limit=limit, **filters))
            # sortBy duration/cost is accepted but the sandbox orders by createdAt only
            items = ws.list_objects(kind.kind, **filters)
            if query.get("assistantIdAny") is not None:
                wanted = set(query.get("assistantIdAny"))
                items = [item for item in items if item.get("assistantId") in wanted]
            return Reply(ws.page(items, int(query.get("page", 1)), limit, query.get("sortOrder", "DESC")))

    handler.__doc__ = f"GET {kind.path}"
    return handler


def _get(kind: Kind) -> Callable[[Ctx], Any]:
    async def handler(ctx: Ctx) -> Reply:
        ctx.query(S.NO_QUERY)
        with workspace_errors():
            return Reply(ctx.sandbox.workspace.get_object(kind.kind, ctx.params["id"]))

    handler.__doc__ = f"GET {kind.path}/{{id}}"
    return handler


def _create(kind: Kind) -> Callable[[Ctx], Any]:
    async def handler(ctx: Ctx) -> Reply:
        ctx.query(S.NO_QUERY)
        raw = await ctx.json()
        spec = kind.create if isinstance(kind.create, Obj) else kind.create(raw)
        body = validate_body(raw, spec)
        with workspace_errors():
            return Reply(ctx.sandbox.workspace.create_object(kind.kind, body), 201)

    handler.__doc__ = f"POST {kind.path}"
    return handler


def _update(kind: Kind) -> Callable[[Ctx], Any]:
    async def handler(ctx: Ctx) -> Reply:
        query = ctx.query(S.STRUCTURED_OUTPUT_PATCH_QUERY if kind.kind == "structured_outputs" else S.NO_QUERY)
        ws = ctx.sandbox.workspace
        raw = await ctx.json()
        with workspace_errors():
            if isinstance(kind.patch, Obj):
                spec = kind.patch
            else:
                assert kind.patch is not None
                spec = kind.patch(ws.get_object(kind.kind, ctx.params["id"]))
            body = validate_body(raw, spec)
            if query.get("schemaOverride") is not None:
                body = {**body, "schema": _schema_override(query.get("schemaOverride"))}
            return Reply(ws.update_object(kind.kind, ctx.params["id"], body))

    handler.__doc__ = f"PATCH {kind.path}/{{id}}"
    return handler


def _schema_override(raw: str) -> dict[str, Any]:
    import json

    try:
        schema = json.loads(raw)
    except ValueError:
        raise bad_request(["schemaOverride must be a JSON string"]) from None
    if not isinstance(schema, dict):
        raise bad_request(["schemaOverride must be a JSON object"])
    return schema


def _delete(kind: Kind) -> Callable[[Ctx], Any]:
    async def handler(ctx: Ctx) -> Reply:
        ctx.query(S.NO_QUERY)
        await ctx.body(Obj(fields={}))  # DELETE takes no body keys
        with workspace_errors():
            return Reply(ctx.sandbox.workspace.delete_object(kind.kind, ctx.params["id"]))

    handler.__doc__ = f"DELETE {kind.path}/{{id}}"
    return handler


# ---------------------------------------------------------------- analytics
async def post_analytics(ctx: Ctx) -> Reply:
    """``POST /analytics``: 201 with one ``AnalyticsQueryResult`` per query (see sandbox.analytics)."""
    ctx.query(S.NO_QUERY)
    body = await ctx.json()
    frame = analytics_frame(ctx.sandbox.workspace)
    return Reply(run_queries(body, frame, ctx.sandbox.clock.now_dt()), 201)


def analytics_frame(ws: Any) -> pd.DataFrame:
    """One row per call from the workspace's columnar accessor, sorted by createdAt.

    Matches the served Call JSON: calls that have not ended carry ``cost: 0`` but no
    ``costBreakdown`` and no duration (NaN here); values the calls never carry
    (``transcriber``, cached tokens, analysis costs) are NaN, i.e. absent.
    """
    cols = ws.calls_frame_columns()
    statuses = np.array(cols.statuses, dtype=object)
    status = statuses[cols.status]
    ended = status == "ended"

    def labels(codes: np.ndarray, table: tuple[str, ...]) -> np.ndarray:
        lookup = np.array([*table, None], dtype=object)  # code -1 picks the trailing None
        return lookup[np.where(codes >= 0, codes, len(table))]

    def when_ended(values: np.ndarray) -> np.ndarray:
        return np.where(ended, values.astype(float), np.nan)

    minutes = cols.duration_s / 60.0
    frame = pd.DataFrame(
        {
            "createdAt": cols.created_ms.astype(np.int64),
            "id": np.ones(len(cols), dtype=bool),
            "type": labels(cols.type, cols.types),
            "assistantId": labels(cols.assistant, cols.assistant_ids),
            "endedReason": labels(cols.ended_reason, cols.ended_reasons),
            "analysis.successEvaluation": labels(cols.success, ("false", "true")),
            "status": status,
            "cost": cols.cost.astype(float),
            "duration": minutes,
            "minutesUsed": minutes,
        }
    )
    known = {
        "costBreakdown.llm": cols.cost_llm,
        "costBreakdown.stt": cols.cost_stt,
        "costBreakdown.tts": cols.cost_tts,
        "costBreakdown.vapi": cols.cost_vapi,
        "costBreakdown.transport": cols.cost_transport,
        "costBreakdown.ttsCharacters": cols.tts_characters,
        "costBreakdown.llmPromptTokens": cols.llm_prompt_tokens,
        "costBreakdown.llmCompletionTokens": cols.llm_completion_tokens,
    }
    for column in COST_COLUMNS:
        frame[column] = when_ended(known[column]) if column in known else np.nan
    return frame.sort_values("createdAt", kind="stable", ignore_index=True)


# ---------------------------------------------------------------- the sandbox's own log
async def get_log(ctx: Ctx) -> Reply:
    """``GET /_sandbox/log``: the request log (Bearer api key), optionally ``?transport=``."""
    query = ctx.query({"transport": Q()})
    entries = ctx.sandbox.log.entries(query.get("transport"))
    return Reply([e.to_dict() for e in entries])


def endpoints() -> list[Endpoint]:
    """Every resource route (recordings and chat creation live in their own modules)."""
    routes = [
        Endpoint("GET", "/call", list_calls),
        Endpoint("POST", "/call", create_call, write=True),
        Endpoint("GET", "/call/{id}", get_call),
        Endpoint("PATCH", "/call/{id}", update_call, write=True),
        Endpoint("DELETE", "/call/{id}", delete_call, write=True),
        Endpoint("POST", "/analytics", post_analytics),
        Endpoint("GET", "/_sandbox/log", get_log, api=False, transport="internal"),
    ]
    for kind in KINDS:
        item = f"{kind.path}/{{id}}"
        routes += [Endpoint("GET", kind.path, _list(kind)), Endpoint("GET", item, _get(kind))]
        if kind.kind != "chats":  # chats are created by sandbox.chat and cannot be patched
            routes.append(Endpoint("POST", kind.path, _create(kind), write=True))
        if kind.patch is not None:
            routes.append(Endpoint("PATCH", item, _update(kind), write=True))
        routes.append(Endpoint("DELETE", item, _delete(kind), write=kind.kind != "chats"))
    return routes
