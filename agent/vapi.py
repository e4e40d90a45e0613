"""The typed Vapi facade every workflow uses, mapped onto whatever tools the connected server offers.

Each operation lists candidate tools in preference order: Truto's names (which the sandbox also
serves), then Vapi's official MCP server names. Argument and result shapes differ per style:

- ``truto``: flat arguments with Vapi's own query/body names; lists answer
  ``{"result": [...], "next_cursor": ...}`` and are paged by passing ``next_cursor`` back unchanged.
- ``vapi``: ``@vapi-ai/mcp-server``: ids as ``callId``/``assistantId``...; lists take no arguments and
  return at most 10 reshaped items (no filters, no artifacts), so operations that need filters or
  artifacts are reported as missing there.

Writes (create/update) reconcile an ambiguous failure (timeout or 5xx after sending) by looking the
object up before anything could be sent again; they never resend. Only an object created after the
request was sent and carrying the fields sent counts; "not found yet" is looked at once more before a
write is declared not applied. A create cut while in flight (deadline, Ctrl-C) is looked up the same
way, within a few seconds, by ``lookup_interrupted`` (the hub calls it).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.errors import AgentError, AmbiguousWrite, ConfigError, MissingCapability, ToolError, UpstreamError
from agent.inflight import WriteReport
from agent.mcp.catalogue import CatalogueTool
from agent.mcp.decode import ToolOutput
from agent.mcp.hub import Hub
from agent.timeparse import iso_ms

log = logging.getLogger(__name__)

CLOCK_SKEW = 2.0  # seconds our clock may be ahead of the server's when matching createdAt
RECHECK_AFTER = 2.0  # seconds before the second look for an object not found yet
INTERRUPTED_LOOKUP = 5.0  # seconds a run that is stopping spends looking up a write it cut
# What to run to check by hand, per list operation (otherwise `tools call <list tool>`).
CHECK_COMMANDS = {"campaigns.list": "vapi-agent campaign list"}


@dataclass(frozen=True)
class Binding:
    """One way to perform an operation: a tool name and its style (``truto`` | ``vapi``)."""

    tool: str
    style: str


def _truto(tool: str) -> Binding:
    return Binding(tool, "truto")


def _vapi(tool: str) -> Binding:
    return Binding(tool, "vapi")


# operation -> candidates, preferred first. "vapi" list bindings are marked limited (see LIMITED).
OPERATIONS: dict[str, tuple[Binding, ...]] = {
    "calls.list": (_truto("list_all_vapi_calls"), _vapi("list_calls")),
    "calls.get": (_truto("get_single_vapi_call_by_id"), _vapi("get_call")),
    "calls.create": (_truto("create_a_vapi_call"), _vapi("create_call")),
    "assistants.list": (_truto("list_all_vapi_assistants"), _vapi("list_assistants")),
    "assistants.get": (_truto("get_single_vapi_assistant_by_id"), _vapi("get_assistant")),
    "assistants.create": (_truto("create_a_vapi_assistant"), _vapi("create_assistant")),
    "phone_numbers.list": (_truto("list_all_vapi_phone_numbers"), _vapi("list_phone_numbers")),
    "phone_numbers.get": (_truto("get_single_vapi_phone_number_by_id"), _vapi("get_phone_number")),
    "squads.list": (_truto("list_all_vapi_squads"),),
    "squads.get": (_truto("get_single_vapi_squad_by_id"),),
    "squads.create": (_truto("create_a_vapi_squad"),),
    "campaigns.list": (_truto("list_all_vapi_campaigns"),),
    "campaigns.get": (_truto("get_single_vapi_campaign_by_id"),),
    "campaigns.create": (_truto("create_a_vapi_campaign"),),
    "campaigns.update": (_truto("update_a_vapi_campaign_by_id"),),
    "analytics.query": (_truto("create_a_vapi_analytics"),),
    "scorecards.list": (_truto("list_all_vapi_observability_scorecards"),),
    "structured_outputs.list": (_truto("list_all_vapi_structured_outputs"),),
    "chat.respond": (_truto("create_a_vapi_chat_response"),),
    **{f"recordings.{kind}": (_truto(f"list_all_vapi_{kind}_recordings"),)
       for kind in ("mono", "stereo", "customer", "assistant", "video")},
}
# Vapi's npm server lists only 10 items, with no filters and no artifacts.
LIMITED = {"list_calls", "list_assistants", "list_phone_numbers"}
_ID_ARG = {"get_call": "callId", "get_assistant": "assistantId", "get_phone_number": "phoneNumberId"}

# What each workflow needs, and why (for `doctor` and for exit-3 messages).
WORKFLOW_NEEDS: dict[str, dict[str, str]] = {
    "qa-grade": {
        "assistants.list": "find the assistant",
        "calls.list": "list the assistant's calls with filters and artifacts",
        "recordings.mono": "download recordings of failing calls",
    },
    "report": {"assistants.list": "name assistants", "calls.list": "list calls in a time window"},
    "campaign": {
        "assistants.list": "find the assistant", "phone_numbers.list": "find the phone number",
        "campaigns.create": "create the campaign", "campaigns.list": "check for duplicates",
    },
    "squad": {"assistants.list": "resolve member names", "squads.create": "create the squad"},
    "assistant-chat": {"assistants.list": "find the assistant", "chat.respond": "talk to the assistant"},
}


# Objects a command names by id; a unique prefix of the id is enough (as `logs` takes run ids).
# kind -> (get operation, list operation, how many of the newest are searched for a prefix: None = all)
ID_KINDS: dict[str, tuple[str, str, int | None]] = {
    "call": ("calls.get", "calls.list", 1000),
    "campaign": ("campaigns.get", "campaigns.list", None),
}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_ID_PREFIX = re.compile(r"[0-9a-zA-Z][0-9a-zA-Z_-]*")
_AMBIGUOUS_SHOWN = 5
_LISTING = {"call": "see the ids with: vapi-agent calls list --assistant NAME",
            "campaign": "see the ids with: vapi-agent campaign list"}


def by_id_prefix(items: list[dict[str, Any]], text: str, kind: str) -> dict[str, Any] | None:
    """The item whose id is ``text``, else the one whose id starts with it; None when none does.

    Two or more ids starting with ``text`` (and none equal to it) is a ConfigError listing them.
    """
    wanted = text.strip().lower()
    if not wanted or not _ID_PREFIX.fullmatch(wanted):
        return None
    exact = [i for i in items if str(i.get("id") or "").lower() == wanted]
    if exact:
        return exact[0]
    matches = [i for i in items if str(i.get("id") or "").lower().startswith(wanted)]
    if len(matches) > 1:
        shown = ", ".join(str(m.get("id")) for m in matches[:_AMBIGUOUS_SHOWN])
        more = ", ..." if len(matches) > _AMBIGUOUS_SHOWN else ""
        raise ConfigError(f"{kind} id prefix {text!r} is ambiguous: it matches {shown}{more}",
                          hint="type more characters of the id", candidates=[m.get("id") for m in matches])
    return matches[0] if matches else None


def _iso(value: datetime | str | None) -> str | None:
    return value if value is None or isinstance(value, str) else iso_ms(value)


def _epoch(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 ``createdAt`` (None when absent or unreadable)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def carries_fields(candidate: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether ``candidate`` holds what was sent: every scalar field equal, every list of the same length
    (nested objects are left to the caller's ``matches``: servers normalise them, e.g. timestamps)."""
    for key, sent in body.items():
        if isinstance(sent, (str, int, float, bool)) and candidate.get(key) != sent:
            return False
        if isinstance(sent, list) and len(candidate.get(key) or []) != len(sent):
            return False
    return True


def _check_command(list_operation: str | None, facade: VapiFacade) -> str:
    if list_operation in CHECK_COMMANDS:
        return CHECK_COMMANDS[list_operation]
    found = facade.binding(list_operation) if list_operation else None
    return f"vapi-agent tools call {found[1].name}" if found else "vapi-agent tools list"


def _items(data: Any) -> tuple[list[dict[str, Any]], str | None]:
    """Items and next cursor from any list shape: Truto envelope, Vapi page, or a bare array."""
    if isinstance(data, list):
        return data, None
    if isinstance(data, dict):
        if isinstance(data.get("result"), list):
            return data["result"], data.get("next_cursor")
        if isinstance(data.get("results"), list):
            return data["results"], data.get("next_cursor")
    raise ToolError(f"unexpected list result shape: {str(data)[:200]}")


class VapiFacade:
    """Typed operations over a ``Hub``. ``page_size`` is what we ask for; the server may cap it."""

    def __init__(self, hub: Hub, *, page_size: int = 100, clock: Callable[[], float] = time.time) -> None:
        self.hub = hub
        self.page_size = page_size
        self.clock = clock

    # ------------------------------------------------------------ capabilities
    def binding(self, operation: str) -> tuple[Binding, CatalogueTool] | None:
        """The tool that performs ``operation`` on the connected servers, if any."""
        for binding in OPERATIONS[operation]:
            tool = self.hub.find([binding.tool])
            if tool is not None:
                return binding, tool
        return None

    def supports(self, operation: str, *, full: bool = True) -> bool:
        """True when the operation is available (``full``: not only in Vapi's 10-item form)."""
        found = self.binding(operation)
        return found is not None and not (full and found[0].tool in LIMITED)

    def missing_for(self, workflow: str) -> dict[str, str]:
        """Operations a workflow needs that the server lacks, with why they are needed."""
        missing = {}
        for operation, why in WORKFLOW_NEEDS[workflow].items():
            found = self.binding(operation)
            if found is None:
                missing[operation] = f"no tool to {why}"
            elif found[0].tool in LIMITED:
                missing[operation] = f"{found[0].tool} lists only 10 items with no filters and no artifacts"
        return missing

    def require_workflow(self, workflow: str) -> None:
        """Raise ``MissingCapability`` (exit 3) naming what the server lacks for ``workflow``."""
        missing = self.missing_for(workflow)
        if missing:
            detail = "; ".join(f"{op}: {why}" for op, why in missing.items())
            raise MissingCapability(
                f"{workflow} cannot run on this server: {detail}",
                hint="connect a Truto Vapi MCP server (--mcp-url https://api.truto.one/mcp/<token>)",
                missing=sorted(missing),
            )

    def _require(self, operation: str, *, full: bool = False) -> tuple[Binding, CatalogueTool]:
        found = self.binding(operation)
        if found is None or (full and found[0].tool in LIMITED):
            names = ", ".join(b.tool for b in OPERATIONS[operation])
            raise MissingCapability(f"the server has no tool for {operation} (looked for {names})")
        return found

    async def _call(self, tool: CatalogueTool, args: dict[str, Any]) -> Any:
        output: ToolOutput = await self.hub.call(tool.name, args)
        output.raise_for_error()
        if output.data is None and output.text.strip():
            raise ToolError(f"tool {tool.name} answered non-JSON text: {output.text[:200]}")
        return output.data

    # ------------------------------------------------------------ generic list / get
    async def iter_pages(self, operation: str, *, full: bool = False,
                         **filters: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a list operation (the items of one request), following ``next_cursor``."""
        binding, tool = self._require(operation, full=full)
        if binding.style == "vapi":
            yield _items(await self._call(tool, {}))[0]
            return
        args = {k: v for k, v in filters.items() if v is not None}
        args.setdefault("limit", self.page_size)
        seen: set[str] = set()
        while True:
            items, cursor = _items(await self._call(tool, args))
            yield items
            if not cursor or cursor in seen:
                return
            seen.add(cursor)
            args["next_cursor"] = cursor

    async def iter_list(self, operation: str, *, full: bool = False, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every item of a list operation, following ``next_cursor`` whatever the server's page cap."""
        async for page in self.iter_pages(operation, full=full, **filters):
            for item in page:
                yield item

    async def list_all(self, operation: str, *, limit: int | None = None, full: bool = False,
                       **filters: Any) -> list[dict[str, Any]]:
        """Collect ``iter_list`` (up to ``limit`` items)."""
        out: list[dict[str, Any]] = []
        async for item in self.iter_list(operation, full=full, **filters):
            out.append(item)
            if limit is not None and len(out) >= limit:
                break
        return out

    async def get(self, operation: str, object_id: str) -> dict[str, Any]:
        """One object by id (``calls.get``, ``assistants.get``...)."""
        binding, tool = self._require(operation)
        key = _ID_ARG.get(binding.tool, "id") if binding.style == "vapi" else "id"
        data = await self._call(tool, {key: object_id})
        if not isinstance(data, dict):
            raise ToolError(f"{tool.name} returned {type(data).__name__}, expected an object")
        return data

    async def resolve_id(self, kind: str, text: str) -> dict[str, Any]:
        """The ``kind`` object (``call``, ``campaign``) whose id is ``text`` or starts with it.

        A whole UUID is fetched directly; a shorter prefix is matched against the list (for calls,
        the newest ``ID_KINDS`` limit). Unknown or ambiguous is a ConfigError (exit 2), not a 404.
        """
        get_operation, list_operation, newest = ID_KINDS[kind]
        wanted = text.strip()
        if _UUID.fullmatch(wanted) and self.supports(get_operation, full=False):
            try:
                return await self.get(get_operation, wanted)
            except ToolError as exc:
                if exc.status not in (400, 404):
                    raise
                raise ConfigError(f"no {kind} has the id {wanted!r}", hint=_LISTING[kind]) from None
        if not _ID_PREFIX.fullmatch(wanted):
            raise ConfigError(f"{text!r} is not a {kind} id", hint="ids are letters, digits and dashes")
        items = await self.list_all(list_operation, limit=newest, full=kind == "call")
        found = by_id_prefix(items, wanted, kind)
        if found is None:
            among = f" among the newest {len(items):,} {kind}s" if newest is not None and len(items) >= newest else ""
            raise ConfigError(f"no {kind} id starts with {wanted!r}{among}", hint=_LISTING[kind])
        if kind == "call" and not (found.get("artifact") or {}) and self.supports("calls.get", full=False):
            return await self.get("calls.get", str(found["id"]))
        return found

    # ------------------------------------------------------------ calls
    def iter_calls(self, *, assistant_id: str | None = None, created_at_ge: datetime | str | None = None,
                   created_at_lt: datetime | str | None = None, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Calls newest first, with filters and artifacts (needs a full ``calls.list``)."""
        return self.iter_list("calls.list", full=True, assistantId=assistant_id,
                              createdAtGe=_iso(created_at_ge), createdAtLt=_iso(created_at_lt), **filters)

    def iter_call_pages(self, *, created_at_ge: datetime | str | None = None,
                        created_at_lt: datetime | str | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        """``iter_calls`` a page at a time (a caller that works on one page while the next is fetched)."""
        return self.iter_pages("calls.list", full=True, createdAtGe=_iso(created_at_ge),
                               createdAtLt=_iso(created_at_lt))

    async def get_call(self, call_id: str) -> dict[str, Any]:
        """One call with its artifact."""
        return await self.get("calls.get", call_id)

    # ------------------------------------------------------------ assistants
    async def list_assistants(self) -> list[dict[str, Any]]:
        """Every assistant (Vapi has no server-side name filter)."""
        return await self.list_all("assistants.list")

    async def resolve_assistant(self, id_or_name: str) -> dict[str, Any]:
        """An assistant by id, else by exact whole (case-sensitive) name, else by a unique id prefix.

        No match: ConfigError suggesting close names. Two of that exact name: ConfigError listing ids.
        """
        assistants = await self.list_assistants()
        by_id = [a for a in assistants if a.get("id") == id_or_name]
        if by_id:
            return by_id[0]
        exact = [a for a in assistants if a.get("name") == id_or_name]
        if len(exact) == 1:
            return exact[0]
        if len(exact) > 1:
            ids = ", ".join(str(a.get("id")) for a in exact)
            raise ConfigError(f"{len(exact)} assistants are named {id_or_name!r}: {ids}",
                              hint="pass the id instead of the name", candidates=[a.get("id") for a in exact])
        by_prefix = by_id_prefix(assistants, id_or_name, "assistant")
        if by_prefix is not None:
            return by_prefix
        import difflib

        names = sorted({str(a.get("name")) for a in assistants if a.get("name")})
        lowered = {n.lower(): n for n in names}
        close = difflib.get_close_matches(id_or_name.lower(), list(lowered), n=3, cutoff=0.5)
        close += [n.lower() for n in names if id_or_name.lower() in n.lower() and n.lower() not in close]
        suggestions = [lowered[c] for c in dict.fromkeys(close)][:5]
        hint = f"did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else (
            f"assistants: {', '.join(names[:10]) or 'none'}")
        raise ConfigError(f"no assistant has the id or exact name {id_or_name!r}", hint=hint, suggestions=suggestions)

    # ------------------------------------------------------------ other reads
    async def list_phone_numbers(self) -> list[dict[str, Any]]:
        """Every phone number (provider-discriminated objects)."""
        return await self.list_all("phone_numbers.list")

    async def list_scorecards(self) -> list[dict[str, Any]]:
        """Every observability scorecard."""
        return await self.list_all("scorecards.list")

    async def list_structured_outputs(self) -> list[dict[str, Any]]:
        """Every structured output definition."""
        return await self.list_all("structured_outputs.list")

    async def list_campaigns(self, **filters: Any) -> list[dict[str, Any]]:
        """Every campaign (optionally filtered, e.g. ``status``)."""
        return await self.list_all("campaigns.list", **filters)

    async def list_squads(self) -> list[dict[str, Any]]:
        """Every squad."""
        return await self.list_all("squads.list")

    async def analytics(self, queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run ``POST /analytics`` queries; one result per query, in order."""
        _, tool = self._require("analytics.query")
        data = await self._call(tool, {"queries": queries})
        if isinstance(data, dict) and isinstance(data.get("result"), list):
            data = data["result"]
        if not isinstance(data, list):
            raise ToolError("analytics returned an unexpected shape")
        return data

    async def recording_link(self, call_id: str, kind: str = "mono") -> ToolOutput:
        """The recording tool's raw output (JSON link, resource_link or embedded blob)."""
        _, tool = self._require(f"recordings.{kind}")
        output = await self.hub.call(tool.name, {"call_id": call_id})
        return output.raise_for_error()

    async def chat_response(self, body: dict[str, Any]) -> Any:
        """``POST /chat/responses`` through the server (non-streaming: an MCP result is not a stream)."""
        _, tool = self._require("chat.respond")
        output = await self.hub.call(tool.name, body)
        output.raise_for_error()
        return output.data if output.data is not None else output.text

    # ------------------------------------------------------------ writes, reconciled
    async def create(self, operation: str, body: dict[str, Any], *,
                     matches: Callable[[dict[str, Any]], bool] | None = None, list_operation: str,
                     existing_ids: Iterable[str] = ()) -> dict[str, Any]:
        """Create once. An ambiguous failure (timeout, 5xx after sending) is reconciled before anything
        could be sent again: ``find_created`` looks for an object created after the request was sent
        that carries the fields sent (and ``matches``); found, it is the result; not found after a
        second look, the write is reported as not applied. The request is never sent twice.
        """
        _, tool = self._require(operation)
        sent_at = self.clock()
        try:
            data = await self._call(tool, body)
        except AmbiguousWrite as exc:
            log.warning("%s; reconciling before anything is sent again", exc.line())
            found = await self.find_created(list_operation, body, sent_at, matches=matches,
                                            existing_ids=existing_ids)
            if found is not None:
                log.warning("reconciled: the %s was created (id %s)", operation, found.get("id"))
                return found
            raise UpstreamError(
                f"{operation} failed: {exc.message}; no matching object was created after it was sent "
                f"(looked twice, {RECHECK_AFTER:g} s apart), so nothing was created",
                hint="check the server and try again", status=exc.status,
            ) from None
        if not isinstance(data, dict):
            raise ToolError(f"{tool.name} returned {type(data).__name__}, expected the created object")
        return data

    async def find_created(self, list_operation: str, body: dict[str, Any], sent_at: float, *,
                           matches: Callable[[dict[str, Any]], bool] | None = None,
                           existing_ids: Iterable[str] = (), recheck_after: float = RECHECK_AFTER,
                           ) -> dict[str, Any] | None:
        """The object a create sent at ``sent_at`` made, if any: created after it was sent (``createdAt``,
        allowing ``CLOCK_SKEW``), carrying the fields sent, accepted by ``matches``, and not among
        ``existing_ids`` (seen before sending). "Not found yet" is looked at once more after
        ``recheck_after`` seconds (a server may list a new object a moment late).
        """
        known = set(existing_ids)
        since = sent_at - CLOCK_SKEW

        def made_by_us(candidate: dict[str, Any]) -> bool:
            created = _epoch(candidate.get("createdAt"))
            return (created is not None and created >= since and candidate.get("id") not in known
                    and carries_fields(candidate, body) and (matches is None or matches(candidate)))

        for attempt in (1, 2):
            listed = await self.list_all(list_operation, createdAtGe=_iso(datetime.fromtimestamp(since, tz=UTC)))
            found = [c for c in listed if made_by_us(c)]
            if found:
                return min(found, key=lambda c: _epoch(c.get("createdAt")) or 0.0)  # the first one after sending
            if attempt == 1:
                log.warning("not found yet: no object of %s created since the write was sent; looking again in "
                            "%g s", list_operation, recheck_after)
                await asyncio.sleep(recheck_after)
        return None

    def list_operation_for(self, tool_mcp_name: str) -> str | None:
        """The list operation that shows what a create tool makes (``create_a_vapi_campaign`` -> campaigns)."""
        for operation, bindings in OPERATIONS.items():
            if operation.endswith(".create") and any(b.tool == tool_mcp_name for b in bindings):
                return operation.replace(".create", ".list")
        return None

    async def lookup_interrupted(self, tool: str, body: dict[str, Any], sent_at: float) -> WriteReport:
        """What became of a create cut while in flight (deadline, Ctrl-C, a failing sibling): looked up
        within ``INTERRUPTED_LOOKUP`` seconds, reported as created (with the id) or as unknown."""
        known = next((t for t in self.hub.catalogue if t.name == tool), None)
        list_operation = self.list_operation_for(known.mcp_name if known is not None else tool)
        report = WriteReport(tool=tool, state="unknown", check=_check_command(list_operation, self))
        if list_operation is None or self.binding(list_operation) is None:
            return report
        try:
            found = await asyncio.wait_for(
                self.find_created(list_operation, body, sent_at, recheck_after=INTERRUPTED_LOOKUP / 3),
                INTERRUPTED_LOOKUP)
        except (TimeoutError, AgentError) as exc:
            log.warning("could not look up the interrupted %s: %s", tool, exc)
            return report
        if found is not None:
            report.state, report.object_id = "created", str(found.get("id"))
        return report

    async def update(self, operation: str, object_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Update once; an ambiguous failure is reconciled by reading the object back."""
        _, tool = self._require(operation)
        try:
            data = await self._call(tool, {"id": object_id, **patch})
        except AmbiguousWrite as exc:
            current = await self.get(operation.replace(".update", ".get"), object_id)
            if all(current.get(k) == v for k, v in patch.items()):
                return current
            raise UpstreamError(f"{operation} failed: {exc.message}; the object is unchanged") from None
        if not isinstance(data, dict):
            raise ToolError(f"{tool.name} returned {type(data).__name__}, expected the updated object")
        return data
