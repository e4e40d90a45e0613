"""Several MCP connections behind one catalogue, with the write gate applied at dispatch.

Every tool call of the product (the chat loop, the facade, ``tools call``) goes through
``Hub.call``, so read-only mode and approvals can never be bypassed. Approvals are asked one at a
time (a lock around the gate for writes): parallel writes never show overlapping prompts, so an
answer always belongs to the call the person just read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from agent.errors import AgentError, ApprovalRequired, ConfigError, ToolError
from agent.inflight import INTERRUPTED_WRITES, LookupInterrupted, WriteReport
from agent.mcp.catalogue import CatalogueTool, merge_catalogue
from agent.mcp.connection import Connection
from agent.mcp.decode import ToolOutput
from agent.policy import Access, Approval, WriteGate
from agent.redact import redact_data
from agent.usage import Usage

log = logging.getLogger(__name__)


@dataclass
class CallRecord:
    """One dispatched tool call, for the run log and the ``ask`` envelope (arguments redacted).

    ``outcome`` is ok | error | refused | cancelled (a write cut while in flight is also ``cancelled``).
    """

    name: str
    arguments: dict[str, Any]
    ok: bool
    approved_by: str | None
    access: str
    error: str | None = None
    outcome: str = "error"
    write: WriteReport | None = None


# Where the records of the calls made by the current task go (besides ``Hub.records``). The agent loop
# sets a fresh list in each tool call's task, so parallel calls each see only their own records.
CALL_SINK: ContextVar[list[CallRecord] | None] = ContextVar("vapi_agent_call_sink", default=None)


@dataclass
class Hub:
    """Open connections (config order), the merged catalogue, and the gate."""

    connections: list[Connection]
    gate: WriteGate = field(default_factory=WriteGate)
    usage: Usage = field(default_factory=Usage)
    preferred_server: str | None = None
    catalogue: list[CatalogueTool] = field(default_factory=list)
    records: list[CallRecord] = field(default_factory=list)
    on_call: Callable[[CallRecord], None] | None = None
    lookup_interrupted: LookupInterrupted | None = None
    _approval_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def load_catalogue(self, *, refresh: bool = False) -> list[CatalogueTool]:
        """List every page of every server once (before any fan-out: see the rate-limit notes)."""
        per_server = []
        for conn in self.connections:
            tools = await conn.list_tools(refresh=refresh or conn.catalogue_stale)
            per_server.append((conn.spec.name, tools, conn.spec.allow, conn.spec.deny))
        self.catalogue = merge_catalogue(per_server)
        by_name = {t.name: t for t in self.catalogue}
        self.gate.annotations_of = lambda name: by_name[name].annotations if name in by_name else None
        return self.catalogue

    async def refresh_if_changed(self) -> bool:
        """List again when a server announced ``tools/list_changed``; True when the catalogue was reloaded."""
        if not any(conn.catalogue_stale for conn in self.connections):
            return False
        await self.load_catalogue()  # only the servers that announced a change are listed again
        return True

    def tool(self, name: str) -> CatalogueTool:
        """A catalogue entry by public name; unknown names are a ConfigError with close suggestions."""
        for tool in self.catalogue:
            if tool.name == name:
                return tool
        import difflib

        close = difflib.get_close_matches(name, [t.name for t in self.catalogue], n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "run `vapi-agent tools list`"
        raise ConfigError(f"unknown tool {name!r}", hint=hint)

    def find(self, candidates: Iterable[str]) -> CatalogueTool | None:
        """The first tool whose MCP name is among ``candidates``: ``--server`` first, then config order."""
        wanted = list(candidates)
        ordered = sorted(self.catalogue, key=lambda t: t.server != self.preferred_server)
        for mcp_name in wanted:
            for tool in ordered:
                if tool.mcp_name == mcp_name:
                    return tool
        return None

    def access(self, name: str, arguments: dict[str, Any] | None = None) -> Access:
        """The access class of a call (discovery calls by their inner tool)."""
        return self.gate.access_of(name, arguments)

    def _connection(self, server: str) -> Connection:
        for conn in self.connections:
            if conn.spec.name == server:
                return conn
        raise ToolError(f"no connection named {server}")

    async def call(self, name: str, arguments: dict[str, Any] | None = None, *,
                   timeout: float | None = None, at_least: Access | None = None) -> ToolOutput:
        """Gate, then dispatch one tool call by public name; records it and counts usage."""
        tool = self.tool(name)
        args = dict(arguments or {})
        access = self.access(name, args)
        record = CallRecord(name=name, arguments=redact_data(args), ok=False, approved_by=None, access=access.value)
        try:
            approval = await self._approve(name, args, access, at_least)
            record.approved_by = approval.approved_by
            self.usage.tool_calls += 1
            is_write = approval.access is not Access.READ
            sent_at = time.time()
            try:
                output = await self._connection(tool.server).call(tool.mcp_name, args, is_write=is_write,
                                                                  timeout=timeout)
            except asyncio.CancelledError:
                if is_write:  # cut in flight: it may have been applied; find out before the run ends
                    record.write = await self._report_interrupted(name, args, sent_at)
                raise
            record.ok = output.ok
            record.outcome = "ok" if output.ok else "error"
            record.error = output.error.line() if output.error else None
            return output
        except ApprovalRequired as exc:
            record.outcome, record.error = "refused", exc.line()
            raise
        except asyncio.CancelledError:
            record.outcome, record.error = "cancelled", "cancelled before it finished"
            raise
        except Exception as exc:
            record.error = exc.line() if isinstance(exc, AgentError) else str(exc)
            raise
        finally:
            self._record(record)

    async def approve_local(self, name: str, arguments: dict[str, Any]) -> Approval:
        """Gate an effect a workflow tool has on this machine (writing files), as a write named ``name``.

        Refused under read-only, needs ``--yes``/``--allow NAME``/a yes otherwise; recorded like a call
        (nothing is dispatched), so the run log and the loop's record say who approved it.
        """
        args = dict(arguments)
        record = CallRecord(name=name, arguments=redact_data(args), ok=False, approved_by=None,
                            access=Access.WRITE.value)
        try:
            approval: Approval = await self._approve(name, args, Access.WRITE, Access.WRITE)
            record.approved_by, record.ok, record.outcome = approval.approved_by, True, "ok"
            return approval
        except ApprovalRequired as exc:
            record.outcome, record.error = "refused", exc.line()
            raise
        finally:
            self._record(record)

    def _record(self, record: CallRecord) -> None:
        self.records.append(record)
        sink = CALL_SINK.get()
        if sink is not None:
            sink.append(record)
        if self.on_call is not None:
            self.on_call(record)

    async def _report_interrupted(self, name: str, args: dict[str, Any], sent_at: float) -> WriteReport:
        """Look up (bounded) what became of a write cut in flight, and hand it to the runner's report."""
        report = WriteReport(tool=name, state="unknown", check="vapi-agent tools list")
        if self.lookup_interrupted is not None:
            try:
                report = await self.lookup_interrupted(name, args, sent_at)
            except Exception as exc:  # the run is stopping anyway: say what is known
                log.warning("could not look up the interrupted %s: %s", name, exc)
        sink = INTERRUPTED_WRITES.get()
        if sink is not None:
            sink.append(report)
        return report

    async def _approve(self, name: str, args: dict[str, Any], access: Access, at_least: Access | None) -> Any:
        """The gate's decision; for writes under the approval lock, so prompts never overlap."""
        if access is Access.READ and at_least in (None, Access.READ):
            return await self.gate.check(name, args, at_least=at_least)
        async with self._approval_lock:
            return await self.gate.check(name, args, at_least=at_least)
