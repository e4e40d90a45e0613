"""Issue 7, campaigns: ``vapi-agent campaign create|status|list|cancel`` and the chat tool, on the sandbox.

Every test checks what reached the sandbox (its workspace and request log), not only what the
command says: a plan that "creates nothing" must leave no campaign and no create call behind, and a
create that met a fault must leave exactly one campaign. The CLI runs in-process (``cli.main``)
against a sandbox served on loopback, headless (stdin is not a terminal).
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import cli
from agent.runtime import open_runtime
from sandbox.app import Sandbox
from tests.ask_support import Endpoint, check_endpoint, make_runner, serve_endpoint
from tests.openai_fake import ScriptedOpenAI, ToolCall, Turn
from tests.test_ratelimit_e2e import restore_logging, warm_up
from tests.test_write_reconcile import mcp_calls, rest_requests, settings, wait_for
from workflows import campaign as campaign_wf

_FIXTURES = (restore_logging,)  # used by name through ``usefixtures``
pytestmark = pytest.mark.usefixtures("restore_logging")

CREATE_TOOL = "create_a_vapi_campaign"
CALLS = 120
FUTURE_START = "2030-01-02T09:00:00-05:00"  # never dials during a test

# Lines: 1 header, 2 good, 3 national (--region US), 4 duplicate of 2, 5 not a number, 6 too short,
# 7 good with an empty extra cell (left out of the variable values).
LEADS_CSV = (
    "number,name,plan,renewal_date\n"
    "+14155552671,Ann Lee,gold,2030-02-01\n"
    "(650) 253-0000,Bo Chen,silver,2030-03-01\n"
    "+1 415-555-2671,Ann again,gold,2030-02-01\n"
    "not a number,Cy,bronze,2030-04-01\n"
    "12345,Di,bronze,2030-05-01\n"
    "+12025550173,Ed,,2030-06-01\n"
)


@dataclass
class Run:
    """One ``vapi-agent`` run: exit code, stdout, stderr."""

    code: int
    stdout: str
    stderr: str

    @property
    def envelope(self) -> dict[str, Any]:
        """The ``--json`` envelope."""
        return json.loads(self.stdout)


Runner = Callable[..., Run]


@pytest.fixture
def sandbox(serve_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A small sandbox served on loopback."""
    return serve_sandbox(calls=CALLS)


@pytest.fixture
def leads(tmp_path: Path) -> str:
    """The mixed leads CSV."""
    path = tmp_path / "leads.csv"
    path.write_text(LEADS_CSV, encoding="utf-8")
    return str(path)


def runner_for(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sandbox: Sandbox) -> Runner:
    """Run ``vapi-agent <argv>`` headless against the served ``sandbox``."""

    def run(*argv: str) -> Run:
        monkeypatch.setenv("VAPI_AGENT_MCP_URL", sandbox.mcp_url)
        monkeypatch.setenv("VAPI_AGENT_MCP_KIND", "sandbox")
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        capsys.readouterr()
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sandbox: Sandbox) -> Runner:
    """The runner bound to this test's sandbox."""
    return runner_for(monkeypatch, capsys, sandbox)


def create_argv(leads: str, *extra: str, name: str = "Renewals Q1",
                phone: str = "primary US toll-free") -> list[str]:
    """``campaign create`` with the usual flags."""
    return ["campaign", "create", "--name", name, "--assistant", "Renewal Outreach", "--phone-number", phone,
            "--leads", leads, "--region", "US", *extra]


def campaigns(sandbox: Sandbox, name: str | None = None) -> list[dict[str, Any]]:
    """The sandbox's campaigns (optionally by name)."""
    return sandbox.workspace.list_objects("campaigns", name=name)


def one(sandbox: Sandbox, kind: str, name: str) -> dict[str, Any]:
    """The sandbox object of ``kind`` called ``name``."""
    (found,) = sandbox.workspace.list_objects(kind, name=name)
    return found


def parse_time(text: str) -> datetime:
    """An ISO timestamp as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def nothing_created(sandbox: Sandbox, before: int) -> bool:
    """No campaign was added and no create call reached the MCP server."""
    return len(campaigns(sandbox)) == before and mcp_calls(sandbox, CREATE_TOOL) == 0


# ---------------------------------------------------------------- leads
def test_leads_accepted_rejected_duplicates_and_variable_values(run: Runner, sandbox: Sandbox, leads: str) -> None:
    run_ = run(*create_argv(leads, "--start", FUTURE_START, "--max-duration", "2h", "--json", "--yes"))
    assert run_.code == 0, run_.stderr
    result = run_.envelope["result"]
    assert result["leads"]["accepted"] == 3
    rejected = {r["line"]: r["reason"] for r in result["leads"]["rejected"]}
    assert sorted(rejected) == [5, 6]
    assert "not a number" in rejected[5] and "12345" in rejected[6]
    assert result["leads"]["duplicates"] == [{"line": 4, "number": "+14155552671", "duplicate_of": 2}]

    created = one(sandbox, "campaigns", "Renewals Q1")
    customers = {c["number"]: c for c in created["customers"]}
    assert list(customers) == ["+14155552671", "+16502530000", "+12025550173"]  # national -> E.164, dup gone
    assert customers["+14155552671"]["name"] == "Ann Lee"
    assert customers["+14155552671"]["assistantOverrides"]["variableValues"] == {
        "plan": "gold", "renewal_date": "2030-02-01"}
    assert customers["+16502530000"]["assistantOverrides"]["variableValues"]["plan"] == "silver"
    assert customers["+12025550173"]["assistantOverrides"]["variableValues"] == {"renewal_date": "2030-06-01"}


def test_strict_refuses_a_file_with_an_invalid_row(run: Runner, sandbox: Sandbox, leads: str) -> None:
    before = len(campaigns(sandbox))
    run_ = run(*create_argv(leads, "--strict", "--json", "--yes"))
    assert run_.code == 2
    error = run_.envelope["errors"][0]
    assert "--strict" in error["message"] and "5, 6" in error["message"]
    assert nothing_created(sandbox, before)


def test_a_file_with_no_valid_row_is_refused(run: Runner, sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("number,name\nnope,A\n123,B\n", encoding="utf-8")
    before = len(campaigns(sandbox))
    run_ = run(*create_argv(str(path), "--json", "--yes"))
    assert run_.code == 2 and "no valid row" in run_.envelope["errors"][0]["message"]
    assert nothing_created(sandbox, before)


# ---------------------------------------------------------------- the phone number and the assistant
@pytest.mark.parametrize("query", ["primary US toll-free", "+18885550123", "(888) 555-0123", "id",
                                   "PRIMARY us TOLL-FREE"])
def test_phone_number_lookup(run: Runner, sandbox: Sandbox, leads: str, query: str) -> None:
    primary = one(sandbox, "phone_numbers", "Primary US Toll-Free")
    assert primary["number"] == "+18885550123"  # the dataset the queries are written for
    run_ = run(*create_argv(leads, "--dry-run", "--json", phone=primary["id"] if query == "id" else query))
    assert run_.code == 0, run_.stderr
    plan = run_.envelope["result"]["plan"]
    assert plan["phone_number"]["id"] == primary["id"]
    assert plan["assistant"] == {"id": one(sandbox, "assistants", "Renewal Outreach")["id"],
                                 "name": "Renewal Outreach"}


def test_us_toll_free_alone_is_ambiguous(run: Runner, sandbox: Sandbox, leads: str) -> None:
    run_ = run(*create_argv(leads, "--dry-run", "--json", phone="US toll-free"))
    assert run_.code == 2
    error = run_.envelope["errors"][0]
    ids = {one(sandbox, "phone_numbers", n)["id"] for n in ("Primary US Toll-Free", "Secondary US Toll-Free")}
    assert set(error["candidates"]) == ids
    assert "Primary US Toll-Free" in error["message"] and "Secondary US Toll-Free" in error["message"]


def test_an_ambiguous_assistant_name_lists_the_candidates(run: Runner, sandbox: Sandbox, leads: str) -> None:
    original = one(sandbox, "assistants", "Renewal Outreach")
    twin = sandbox.workspace.create_object("assistants", {"name": "Renewal Outreach"})
    before = len(campaigns(sandbox))
    run_ = run(*create_argv(leads, "--json", "--yes"))
    assert run_.code == 2
    text = json.dumps(run_.envelope["errors"])
    assert original["id"] in text and twin["id"] in text
    assert nothing_created(sandbox, before)


# ---------------------------------------------------------------- dry run, confirmation, the result
def test_dry_run_creates_nothing_and_warns_about_a_same_name_campaign(run: Runner, sandbox: Sandbox,
                                                                      leads: str) -> None:
    existing = sandbox.workspace.create_object("campaigns", {
        "name": "Renewals Q1", "assistantId": one(sandbox, "assistants", "Renewal Outreach")["id"],
        "phoneNumberId": one(sandbox, "phone_numbers", "Primary US Toll-Free")["id"],
        "customers": [{"number": "+14155550199"}], "schedulePlan": {"earliestAt": "2030-01-01T00:00:00.000Z"}})
    before = len(campaigns(sandbox))
    run_ = run(*create_argv(leads, "--dry-run", "--json"))
    assert run_.code == 0, run_.stderr
    result = run_.envelope["result"]
    assert result["dry_run"] is True and result["campaign"] is None
    assert any("already exists" in w and existing["id"] in w for w in result["plan"]["warnings"])
    assert nothing_created(sandbox, before)

    shown = run(*create_argv(leads, "--dry-run"))  # the plan on stderr, warning included
    assert shown.code == 0 and "already exists" in shown.stderr and "rejected line 5" in shown.stderr
    assert "dry run: nothing was created" in shown.stdout


def test_headless_without_yes_exits_5_and_creates_nothing(run: Runner, sandbox: Sandbox, leads: str) -> None:
    before = len(campaigns(sandbox))
    run_ = run(*create_argv(leads, "--json"))
    assert run_.code == 5
    assert len(campaigns(sandbox)) == before and campaigns(sandbox, "Renewals Q1") == []


def expected_estimate(sandbox: Sandbox, assistant_id: str, leads: int) -> dict[str, Any]:
    """The estimate computed from the sandbox's own calls: newest ended calls with a cost, averaged."""
    calls = sandbox.workspace.list_calls(assistant_id=assistant_id, limit=None)
    costs = [c["cost"] for c in calls if c.get("status") == "ended" and (c.get("cost") or 0) > 0]
    costs = costs[:campaign_wf.ESTIMATE_BASIS_CALLS]
    assert costs, "the dataset gives Renewal Outreach a call history"
    per_call = sum(costs) / len(costs)
    return {"per_call_usd": round(per_call, 4), "total_usd": round(per_call * leads, 2), "basis_calls": len(costs)}


def test_yes_creates_exactly_one_campaign_with_the_window_and_the_contract(run: Runner, sandbox: Sandbox,
                                                                          leads: str) -> None:
    run_ = run(*create_argv(leads, "--start", FUTURE_START, "--max-duration", "2h", "--json", "--yes"))
    assert run_.code == 0, run_.stderr
    result = run_.envelope["result"]
    (created,) = campaigns(sandbox, "Renewals Q1")
    assert mcp_calls(sandbox, CREATE_TOOL) == 1
    assert set(result["campaign"]) == {"id", "name", "status"}
    assert result["campaign"] == {"id": created["id"], "name": "Renewals Q1", "status": created["status"]}
    assert set(result["leads"]) >= {"accepted", "rejected"}
    assert all(set(r) >= {"line", "reason"} for r in result["leads"]["rejected"])
    assert set(result["estimate"]) == {"per_call_usd", "total_usd", "basis_calls"}

    start = datetime(2030, 1, 2, 14, 0, tzinfo=UTC)
    assert parse_time(created["schedulePlan"]["earliestAt"]) == start
    assert parse_time(created["schedulePlan"]["latestAt"]) == start + timedelta(hours=2)
    assistant = one(sandbox, "assistants", "Renewal Outreach")
    assert created["assistantId"] == assistant["id"]
    assert created["phoneNumberId"] == one(sandbox, "phone_numbers", "Primary US Toll-Free")["id"]
    assert result["estimate"] == expected_estimate(sandbox, assistant["id"], 3)


# ---------------------------------------------------------------- faults: created, then the answer lost
def params(leads: str, name: str) -> campaign_wf.CampaignParams:
    """A campaign that never dials during the test."""
    return campaign_wf.CampaignParams(name=name, assistant="Renewal Outreach", phone_number="primary US toll-free",
                                      leads=leads, start=FUTURE_START, max_duration="2h")


async def test_created_then_502_leaves_exactly_one_campaign(make_sandbox: Any, leads: str) -> None:
    sandbox = make_sandbox(calls=CALLS, write_fault="502")
    name = f"fault-{uuid.uuid4().hex[:8]}"
    async with open_runtime(settings(), sandbox=sandbox, notice=lambda _: None, store=None, prompt=None) as rt:
        result = await campaign_wf.create(rt, params(leads, name))
    (created,) = campaigns(sandbox, name)
    assert result.campaign is not None and result.campaign["id"] == created["id"]
    assert rest_requests(sandbox, "POST", "/campaign") == [502]  # applied, answered 502, never resent
    assert mcp_calls(sandbox, CREATE_TOOL) == 1


def test_created_then_timeout_leaves_exactly_one_campaign(serve_sandbox: Any, leads: str) -> None:
    sandbox = serve_sandbox(calls=CALLS, write_fault="timeout", write_fault_delay=2.0)
    warm_up(sandbox, "/campaign")  # the reconciling list must not pay the suite's one-time validation cost
    name = f"fault-{uuid.uuid4().hex[:8]}"

    async def create() -> campaign_wf.CampaignResult:
        async with open_runtime(settings(sandbox), notice=lambda _: None, store=None, prompt=None,
                                tool_timeout=0.75) as rt:
            return await campaign_wf.create(rt, params(leads, name))

    result = asyncio.run(create())
    wait_for(lambda: rest_requests(sandbox, "POST", "/campaign") and mcp_calls(sandbox, CREATE_TOOL))
    (created,) = campaigns(sandbox, name)
    assert result.campaign is not None and result.campaign["id"] == created["id"]
    assert len(rest_requests(sandbox, "POST", "/campaign")) == 1 and mcp_calls(sandbox, CREATE_TOOL) == 1


# ---------------------------------------------------------------- status --watch, list, cancel
def test_status_watch_follows_a_campaign_to_its_end(serve_sandbox: Any, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sandbox = serve_sandbox(calls=CALLS, time_scale=300.0)  # a minute-long call lasts 0.2 s
    run = runner_for(monkeypatch, capsys, sandbox)
    path = tmp_path / "two.csv"
    path.write_text("number,name\n+14155552671,Ann\n+16502530000,Bo\n", encoding="utf-8")
    created = run(*create_argv(str(path), "--max-duration", "1h", "--json", "--yes"))
    assert created.code == 0, created.stderr
    campaign_id = created.envelope["result"]["campaign"]["id"]

    watched = run("campaign", "status", campaign_id, "--watch", "--interval", "0.2", "--json")
    assert watched.code == 0, watched.stderr
    result = watched.envelope["result"]
    assert result["id"] == campaign_id and result["status"] == "ended"
    counters = result["counters"]
    assert counters["customers"] == 2 and counters["callsCounterEnded"] == 2
    assert counters["callsCounterScheduled"] == counters["callsCounterQueued"] == 0
    assert counters["callsCounterInProgress"] == 0
    assert counters["callsCounterEndedVoicemail"] <= counters["callsCounterEnded"]
    assert one(sandbox, "campaigns", "Renewals Q1")["status"] == "ended"  # the sandbox agrees

    listed = run("campaign", "list", "--json")
    assert listed.code == 0
    rows = {c["id"]: c for c in listed.envelope["result"]["campaigns"]}
    assert rows[campaign_id]["status"] == "ended" and rows[campaign_id]["callsCounterEnded"] == 2


def test_cancel_needs_allow_headless(run: Runner, sandbox: Sandbox) -> None:
    target = sandbox.workspace.create_object("campaigns", {
        "name": "to-cancel", "assistantId": one(sandbox, "assistants", "Renewal Outreach")["id"],
        "phoneNumberId": one(sandbox, "phone_numbers", "Primary US Toll-Free")["id"],
        "customers": [{"number": "+14155550199"}], "schedulePlan": {"earliestAt": "2030-01-01T00:00:00.000Z"}})

    refused = run("campaign", "cancel", target["id"], "--json", "--yes")  # --yes does not cover it
    assert refused.code == 5
    assert one(sandbox, "campaigns", "to-cancel")["status"] != "cancelled"

    allowed = run("campaign", "cancel", target["id"], "--json", "--allow", "update_a_vapi_campaign_by_id")
    assert allowed.code == 0, allowed.stderr
    assert allowed.envelope["result"] == {"id": target["id"], "status": "cancelled"}
    assert one(sandbox, "campaigns", "to-cancel")["status"] == "cancelled"


# ---------------------------------------------------------------- the chat tool
@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """A scripted OpenAI server; after the test nothing was refused and every turn was used."""
    with serve_endpoint() as served:
        yield served
        check_endpoint(served)


def test_ask_dry_run_returns_the_same_plan_as_the_command(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str], endpoint: Endpoint,
                                                          sandbox: Sandbox, leads: str) -> None:
    ask = make_runner(monkeypatch, capsys, endpoint, sandbox)
    fake: ScriptedOpenAI = endpoint.fake
    arguments = {"name": "Renewals Q1", "assistant": "Renewal Outreach", "phone_number": "primary US toll-free",
                 "leads": leads, "region": "US", "start": FUTURE_START, "max_duration": "2h", "dry_run": True,
                 "strict": None}
    fake.add(Turn.calls(ToolCall("campaign_create", arguments)), Turn.text("Here is the plan."))
    asked = ask("ask", "--json", "plan the renewals campaign from my leads file")
    assert asked.code == 0, asked.stderr
    (call,) = asked.result["tool_calls"]
    assert call["name"] == "campaign_create" and call["ok"] is True

    tool_message = next(m for m in fake.bodies()[1]["messages"] if m["role"] == "tool")
    from_tool = json.loads(tool_message["content"])

    command = ask(*create_argv(leads, "--start", FUTURE_START, "--max-duration", "2h", "--dry-run", "--json"))
    assert command.code == 0, command.stderr
    from_command = command.result
    for key in ("plan", "leads", "estimate", "campaign", "dry_run"):
        assert from_tool[key] == from_command[key], key
    assert from_tool["dry_run"] is True and from_tool["campaign"] is None
    assert nothing_created(sandbox, len(campaigns(sandbox)))
