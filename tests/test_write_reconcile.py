"""Ambiguous writes end to end: applied-then-failed writes are reconciled, failed writes reported, none resent.

A write that timed out or got a 5xx may or may not have happened. The product never sends it again:
the connection layer raises ``AmbiguousWrite`` and ``VapiFacade.create`` / ``update`` look the object
up (created since sending, matching the request) before deciding. Every test counts what reached the
sandbox in its own logs and workspace, so a duplicate or a resend cannot hide.

Fault sources: the sandbox's ``write_fault`` (the REST API applies the write, then answers 502 or
holds the answer; it reaches the client as a Truto ``isError`` envelope or as no answer), its seeded
``error_rate`` (5xx before anything is done), and a small gateway in front of the MCP path answering
HTTP 5xx on the MCP POST itself, before or after passing it on.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from agent.config import load_settings
from agent.runtime import open_runtime
from cli.runner import CommandContext, Outcome, run_command
from sandbox.app import Sandbox
from tests.test_ratelimit_e2e import restore_logging, seed_whose_faults_start, warm_up

_FIXTURES = (restore_logging,)  # used by name through ``usefixtures``

SQUAD_TOOL = "create_a_vapi_squad"


def settings(sandbox: Sandbox | None = None) -> Any:
    """Settings for a write run: in-process sandbox, or the served sandbox's URL; writes approved."""
    if sandbox is not None and sandbox.public_url.startswith("http://127.0.0.1"):
        return load_settings({"mcp_url": sandbox.mcp_url, "mcp_kind": "sandbox", "yes": True}, env={})
    return load_settings({"sandbox": True, "yes": True}, env={})


def squad_body(sandbox: Sandbox) -> tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]:
    """A unique squad of one existing assistant, and the predicate that recognises it in a listing."""
    assistant = sandbox.workspace.list_objects("assistants", name="Support")[0]
    name = f"reconcile-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "members": [{"assistantId": assistant["id"]}]}

    def matches(candidate: dict[str, Any]) -> bool:
        members = [m.get("assistantId") for m in candidate.get("members") or []]
        return candidate.get("name") == name and members == [assistant["id"]]

    return body, matches


def mcp_calls(sandbox: Sandbox, tool: str) -> int:
    """How many MCP POSTs calling ``tool`` reached the sandbox."""
    return sum(1 for e in sandbox.log.entries("mcp") if e.rpc_method == "tools/call" and e.tool == tool)


def rest_requests(sandbox: Sandbox, method: str, path: str) -> list[int]:
    """Statuses of the REST requests ``method path`` the sandbox received."""
    return [e.status for e in sandbox.log.entries("rest") if e.method == method and e.path == path]


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll until ``condition`` holds (a held answer is logged only once the server lets it go)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the sandbox never finished the request"
        time.sleep(0.02)


class McpPostGate:
    """Base of the ASGI wrappers in front of a sandbox: every request but an MCP POST passes unchanged;
    an MCP POST goes to ``post`` with its first ``http.request`` message already received."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/mcp/"):
            await self.app(scope, receive, send)
            return
        await self.post(scope, await receive(), receive, send)

    async def post(self, scope: Scope, message: Message, receive: Receive, send: Send) -> None:
        """Handle one MCP POST (``message`` is its first body message; ``receive`` gives the rest)."""
        raise NotImplementedError


class Gateway(McpPostGate):
    """The first MCP POST whose body holds ``marker`` is answered HTTP ``status`` by the gateway,
    ``before`` passing it on (nothing happens) or ``after`` the sandbox handled it (the write is
    applied, its answer is lost). Counts what it saw."""

    def __init__(self, app: Any, *, marker: bytes, status: int, when: str) -> None:
        super().__init__(app)
        self.marker, self.status, self.when = marker, status, when
        self.seen = 0
        self.armed = True

    async def post(self, scope: Scope, message: Message, receive: Receive, send: Send) -> None:
        replay = _replay(message, receive)
        if self.marker not in message.get("body", b""):
            await self.app(scope, replay, send)
            return
        self.seen += 1
        if not self.armed:
            await self.app(scope, replay, send)
            return
        self.armed = False
        if self.when == "after":
            async def discard(_: Message) -> None:
                return None

            await self.app(scope, replay, discard)
        payload = json.dumps({"statusCode": self.status, "error": "Bad Gateway", "message": "upstream hiccup"})
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload.encode()})


def _replay(message: Message, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return message

    return replay


# ---------------------------------------------------------------- applied, then the answer was lost
async def test_a_write_answered_502_after_it_was_applied_is_reconciled_to_one_object(make_sandbox: Any) -> None:
    sandbox = make_sandbox(write_fault="502")
    body, matches = squad_body(sandbox)
    notices: list[str] = []
    async with open_runtime(settings(), sandbox=sandbox, notice=notices.append, store=None, prompt=None) as rt:
        squad = await rt.vapi.create("squads.create", body, matches=matches, list_operation="squads.list")

    existing = sandbox.workspace.list_objects("squads", name=body["name"])
    assert len(existing) == 1 and squad["id"] == existing[0]["id"]
    assert rest_requests(sandbox, "POST", "/squad") == [502]  # applied, answered 502: sent once
    assert mcp_calls(sandbox, SQUAD_TOOL) == 1
    assert rest_requests(sandbox, "GET", "/squad") == [200]  # the reconciling lookup


def test_a_write_that_timed_out_after_it_was_applied_is_reconciled_to_one_object(serve_sandbox: Any) -> None:
    """Over a real socket: the answer is held past the tool timeout; the campaign exists exactly once."""
    sandbox = serve_sandbox(write_fault="timeout", write_fault_delay=2.0)
    warm_up(sandbox, "/campaign")  # the reconciling list must not pay a one-time cost of the test suite
    workspace = sandbox.workspace
    assistant = workspace.list_objects("assistants", name="Renewal Outreach")[0]
    number = workspace.list_objects("phone_numbers", name="Primary US Toll-Free")[0]
    name = f"reconcile-{uuid.uuid4().hex[:8]}"
    start = (datetime.now(tz=UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")  # never dials
    body = {"name": name, "assistantId": assistant["id"], "phoneNumberId": number["id"],
            "customers": [{"number": "+14155550199"}], "schedulePlan": {"earliestAt": start}}

    def matches(candidate: dict[str, Any]) -> bool:
        return candidate.get("name") == name and candidate.get("phoneNumberId") == number["id"]

    async def create() -> dict[str, Any]:
        async with open_runtime(settings(sandbox), notice=lambda _: None, store=None, prompt=None,
                                tool_timeout=0.75) as rt:
            campaign = await rt.vapi.create("campaigns.create", body, matches=matches,
                                            list_operation="campaigns.list")
            # reconciled at the timeout, not after the held answer: the sandbox has not let the POST go yet
            assert rest_requests(sandbox, "POST", "/campaign") == []
            return campaign

    campaign = asyncio.run(create())
    # The held request is logged once the sandbox lets it go (REST first, then the MCP POST around it).
    wait_for(lambda: rest_requests(sandbox, "POST", "/campaign") and mcp_calls(sandbox, "create_a_vapi_campaign"))
    existing = workspace.list_objects("campaigns", name=name)
    assert len(existing) == 1 and campaign["id"] == existing[0]["id"]
    assert mcp_calls(sandbox, "create_a_vapi_campaign") == 1
    assert len(rest_requests(sandbox, "POST", "/campaign")) == 1


async def test_an_update_answered_502_after_it_was_applied_is_read_back(make_sandbox: Any) -> None:
    sandbox = make_sandbox(write_fault="502")
    body, _ = squad_body(sandbox)
    campaign = sandbox.workspace.create_object("campaigns", {
        "name": body["name"], "assistantId": body["members"][0]["assistantId"],
        "phoneNumberId": sandbox.workspace.list_objects("phone_numbers")[0]["id"],
        "customers": [{"number": "+14155550199"}],
        "schedulePlan": {"earliestAt": (datetime.now(tz=UTC) + timedelta(days=2)).isoformat()}})
    renamed = body["name"] + "-renamed"
    async with open_runtime(settings(), sandbox=sandbox, notice=lambda _: None, store=None, prompt=None) as rt:
        updated = await rt.vapi.update("campaigns.update", campaign["id"], {"name": renamed})
    assert updated["id"] == campaign["id"] and updated["name"] == renamed
    assert rest_requests(sandbox, "PATCH", f"/campaign/{campaign['id']}") == [502]  # sent once
    assert rest_requests(sandbox, "GET", f"/campaign/{campaign['id']}") == [200]  # read back


async def test_an_http_502_on_the_mcp_post_after_the_write_is_reconciled(make_sandbox: Any) -> None:
    """The gateway in front of the MCP path loses the answer of an applied write: the transport does not
    resend it (a write's 5xx is ambiguous), the facade finds the object."""
    sandbox = make_sandbox()
    gateway = Gateway(sandbox.app, marker=SQUAD_TOOL.encode(), status=502, when="after")
    sandbox.app = gateway
    body, matches = squad_body(sandbox)
    async with open_runtime(settings(), sandbox=sandbox, notice=lambda _: None, store=None, prompt=None) as rt:
        squad = await rt.vapi.create("squads.create", body, matches=matches, list_operation="squads.list")
    existing = sandbox.workspace.list_objects("squads", name=body["name"])
    assert len(existing) == 1 and squad["id"] == existing[0]["id"]
    assert gateway.seen == 1 and mcp_calls(sandbox, SQUAD_TOOL) == 1


# ---------------------------------------------------------------- really failed: reported, never resent
def run_create(sandbox: Sandbox, body: dict[str, Any],
               matches: Callable[[dict[str, Any]], bool]) -> tuple[int, dict[str, Any], str]:
    """Create through ``run_command`` (exit code and ``--json`` envelope as the CLI reports them)."""
    config = load_settings({"sandbox": True, "yes": True, "json": True}, env={})
    stderr = io.StringIO()

    async def command(ctx: CommandContext) -> Outcome:
        ctx.stderr = stderr
        async with open_runtime(config, sandbox=sandbox, usage=ctx.usage, notice=ctx.notice, store=None,
                                prompt=None) as rt:
            squad = await rt.vapi.create("squads.create", body, matches=matches, list_operation="squads.list")
        return Outcome(result=squad)

    stdout = io.StringIO()
    code = run_command("squad", config, command, stdout=stdout)
    return code, json.loads(stdout.getvalue()), stderr.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_a_write_refused_with_a_5xx_before_anything_happened_is_reported_once(make_sandbox: Any) -> None:
    """The API answers the create 5xx before doing anything (the seeded stream starts with a failure):
    exit 3, said plainly, nothing created, and the create reached the sandbox exactly once."""
    sandbox = make_sandbox(error_rate=0.5, seed=seed_whose_faults_start("x.", 0.5))
    body, matches = squad_body(sandbox)
    code, envelope, _ = run_create(sandbox, body, matches)

    assert code == 3 and envelope["status"] == "error"
    message = envelope["errors"][0]["message"]
    assert "nothing was created" in message and "squads.create" in message
    assert sandbox.workspace.list_objects("squads", name=body["name"]) == []
    statuses = rest_requests(sandbox, "POST", "/squad")
    assert len(statuses) == 1 and statuses[0] >= 500
    assert mcp_calls(sandbox, SQUAD_TOOL) == 1


@pytest.mark.usefixtures("restore_logging")
def test_an_http_502_on_the_mcp_post_before_the_write_is_reported_once(make_sandbox: Any) -> None:
    """The gateway fails the MCP POST before it reaches the server: nothing exists, exit 3, one POST."""
    sandbox = make_sandbox()
    gateway = Gateway(sandbox.app, marker=SQUAD_TOOL.encode(), status=502, when="before")
    sandbox.app = gateway
    body, matches = squad_body(sandbox)
    code, envelope, _ = run_create(sandbox, body, matches)

    assert code == 3 and "nothing was created" in envelope["errors"][0]["message"]
    assert gateway.seen == 1  # the transport did not resend the write
    assert mcp_calls(sandbox, SQUAD_TOOL) == 0 and sandbox.workspace.list_objects("squads", name=body["name"]) == []


class LateWrite(McpPostGate):
    """The first write naming ``SQUAD_TOOL`` is answered HTTP 502 at once and handed to the sandbox only
    just before the second squad listing after it, so the object exists for the second look of a
    reconcile but not for the first (a server that lists a new object late)."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.pending: tuple[Scope, Message] | None = None
        self.listings = 0

    async def post(self, scope: Scope, message: Message, receive: Receive, send: Send) -> None:
        body = message.get("body", b"")
        if SQUAD_TOOL.encode() in body and self.pending is None:
            while message.get("more_body", False):  # the whole request, to hand on later in one message
                more = await receive()
                body += more.get("body", b"")
                message = {"type": "http.request", "body": body, "more_body": more.get("more_body", False)}
            self.pending = (scope, message)
            await send({"type": "http.response.start", "status": 502, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"Bad Gateway"})
            return
        if b"list_all_vapi_squads" in body and self.pending is not None:
            self.listings += 1
            if self.listings == 2:  # the first look found nothing; the write lands before the second
                await self._apply_late(*self.pending)
        await self.app(scope, _replay(message, receive), send)

    async def _apply_late(self, scope: Scope, message: Message) -> None:
        answered = asyncio.Event()

        async def discard(sent: Message) -> None:  # the late request's answer goes nowhere
            if sent["type"] == "http.response.body" and not sent.get("more_body", False):
                answered.set()

        async def disconnect() -> Message:  # its client goes away once it was answered
            await answered.wait()
            return {"type": "http.disconnect"}

        await self.app(scope, _replay(message, disconnect), discard)


async def test_a_write_listed_only_on_the_second_look_is_found(make_sandbox: Any,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """"Not found yet" is not "not created": the object that appears between the two looks is the result."""
    sandbox = make_sandbox()
    gateway = LateWrite(sandbox.app)
    sandbox.app = gateway
    body, matches = squad_body(sandbox)
    async with open_runtime(settings(), sandbox=sandbox, notice=lambda _: None, store=None, prompt=None) as rt:
        squad = await rt.vapi.create("squads.create", body, matches=matches, list_operation="squads.list")

    (existing,) = sandbox.workspace.list_objects("squads", name=body["name"])
    assert squad["id"] == existing["id"]
    assert any("not found yet" in r.getMessage() for r in caplog.records)  # the first look came up empty
    assert gateway.listings == 2 and mcp_calls(sandbox, SQUAD_TOOL) == 1  # looked twice; written once


@pytest.mark.parametrize("status", [500, 503])
async def test_a_read_is_not_mistaken_for_an_ambiguous_write(make_sandbox: Any, status: int) -> None:
    """The same gateway failure on a read is simply retried (reads are safe to resend)."""
    sandbox = make_sandbox()
    gateway = Gateway(sandbox.app, marker=b"list_all_vapi_squads", status=status, when="before")
    sandbox.app = gateway
    async with open_runtime(settings(), sandbox=sandbox, notice=lambda _: None, store=None, prompt=None) as rt:
        squads = await rt.vapi.list_squads()
    assert isinstance(squads, list) and gateway.seen == 2
