"""Writes cut in flight are reconciled, never denied; a campaign created twice by mistake is refused.

The sandbox's ``write_fault="timeout"`` is "commit then hang": the REST API applies the create, then
holds the answer. A ``--deadline`` or a Ctrl-C (SIGINT to a real child process) lands while the write
is in flight: the run must look the object up before it exits and name its id. Running the same
``campaign create`` again is refused (exit 2, naming it) unless ``--allow-duplicate``. A look-alike
that existed before the request is never taken for the object it created.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.app import Sandbox
from tests.test_campaign import Runner, campaigns, create_argv, one, runner_for
from tests.test_ratelimit_e2e import restore_logging
from tests.test_write_reconcile import SQUAD_TOOL, Gateway, mcp_calls, run_create, squad_body, wait_for

_FIXTURES = (restore_logging,)
pytestmark = pytest.mark.usefixtures("restore_logging")

ROOT = Path(__file__).resolve().parents[1]
NAME = "Held Renewals"
LEADS = "number,name\n+14155552671,Ann Lee\n+12025550173,Ed\n"
DEADLINE = 8.0


@pytest.fixture
def leads(tmp_path: Path) -> str:
    """A two-lead CSV."""
    path = tmp_path / "leads.csv"
    path.write_text(LEADS, encoding="utf-8")
    return str(path)


@pytest.fixture
def held(serve_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A served sandbox whose first write is applied, then its answer held past the deadline."""
    return serve_sandbox(calls=40, write_fault="timeout", write_fault_delay=DEADLINE + 6)


def create(leads: str, *extra: str) -> list[str]:
    """``campaign create`` of ``NAME`` that never dials during a test."""
    return create_argv(leads, "--start", "2030-01-02T09:00:00-05:00", "--yes", "--json", *extra, name=NAME)


def test_a_create_cut_by_the_deadline_names_the_created_campaign_and_a_rerun_is_refused(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], held: Sandbox, leads: str) -> None:
    run: Runner = runner_for(monkeypatch, capsys, held)
    cut = run(*create(leads, "--deadline", f"{DEADLINE:g}s"))
    (created,) = campaigns(held, NAME)  # the write was applied, its answer held past the deadline
    assert cut.code == 6, cut.stderr
    report = next(e for e in cut.envelope["errors"] if e["code"] == "write_interrupted")
    assert report["state"] == "created" and report["id"] == created["id"]
    assert f"created (id {created['id']})" in cut.stderr
    assert "nothing partial was written" not in cut.stdout + cut.stderr
    assert mcp_calls(held, "create_a_vapi_campaign") <= 1  # sent once (logged once the held answer goes)

    again = run(*create(leads))
    assert again.code == 2, again.stderr
    assert created["id"] in again.envelope["errors"][0]["message"] and "--allow-duplicate" in again.stderr
    assert len(campaigns(held, NAME)) == 1

    second = run(*create(leads, "--allow-duplicate"))
    assert second.code == 0, second.stderr
    assert len(campaigns(held, NAME)) == 2 and second.envelope["result"]["campaign"]["id"] != created["id"]


def test_ctrl_c_during_a_create_names_the_created_campaign(held: Sandbox, leads: str) -> None:
    env = {**os.environ, "VAPI_AGENT_MCP_URL": held.mcp_url, "VAPI_AGENT_MCP_KIND": "sandbox"}
    child = subprocess.Popen([sys.executable, "-m", "cli", *create(leads)], cwd=ROOT, env=env, text=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: campaigns(held, NAME), timeout=60)  # applied; its answer is held: in flight
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    (created,) = campaigns(held, NAME)
    assert child.returncode == 130, err
    envelope = json.loads(out)
    report = next(e for e in envelope["errors"] if e["code"] == "write_interrupted")
    assert report["state"] == "created" and report["id"] == created["id"]
    assert f"created (id {created['id']})" in err and "Traceback" not in err


def test_a_look_alike_made_before_the_request_is_not_taken_for_it(make_sandbox: Callable[..., Sandbox],
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The create fails before it reaches the server (nothing is created), while a squad with the same
    name and members already exists: reconciling must not report it as the new one."""
    sandbox = make_sandbox()
    body, matches = squad_body(sandbox)
    twin = sandbox.workspace.create_object("squads", body)
    time.sleep(2.5)  # the look-alike is older than the request by more than the allowed clock skew
    gateway = Gateway(sandbox.app, marker=SQUAD_TOOL.encode(), status=502, when="before")
    sandbox.app = gateway
    code, envelope, _ = run_create(sandbox, body, matches)
    assert code == 3, envelope
    message = envelope["errors"][0]["message"]
    assert "nothing was created" in message and twin["id"] not in json.dumps(envelope)
    assert any("not found yet" in r.getMessage() for r in caplog.records)  # looked twice before declaring it
    assert [s["id"] for s in sandbox.workspace.list_objects("squads", name=body["name"])] == [twin["id"]]


def test_the_same_look_alike_listed_as_existing_is_excluded_even_within_the_skew(
        make_sandbox: Callable[..., Sandbox]) -> None:
    """A same-name campaign seen by the plan (``existing_ids``) is never the new one, however recent."""
    import asyncio

    from agent.runtime import open_runtime
    from tests.test_write_reconcile import settings

    sandbox = make_sandbox()
    assistant = one(sandbox, "assistants", "Renewal Outreach")["id"]
    number = sandbox.workspace.list_objects("phone_numbers")[0]["id"]
    body: dict[str, Any] = {"name": "twin", "assistantId": assistant, "phoneNumberId": number,
                            "customers": [{"number": "+14155550199"}],
                            "schedulePlan": {"earliestAt": "2030-01-01T00:00:00.000Z"}}
    twin = sandbox.workspace.create_object("campaigns", body)

    async def look() -> Any:
        async with open_runtime(settings(), sandbox=sandbox, notice=lambda _: None, store=None, prompt=None) as rt:
            return await rt.vapi.find_created("campaigns.list", body, time.time(), existing_ids=[twin["id"]],
                                              recheck_after=0.01)

    assert asyncio.run(look()) is None


def test_ask_cut_by_its_deadline_reports_the_created_assistant(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], endpoint: Any, fake: Any,
        held: Sandbox) -> None:
    """The agent loop's own deadline cuts a create in a parallel batch: the call is listed as cancelled with
    what became of it, and the envelope's errors name the id."""
    from tests.ask_support import make_runner
    from tests.openai_fake import ToolCall, Turn

    fake.add(Turn.calls(ToolCall("create_a_vapi_assistant", {"name": "Held Assistant"}),
                        ToolCall("list_all_vapi_squads", {})))
    run = make_runner(monkeypatch, capsys, endpoint, held)("ask", "--json", "--yes", "--deadline", "5s", "go")
    (created,) = held.workspace.list_objects("assistants", name="Held Assistant")
    assert run.code == 6, run.stderr
    calls = {c["name"]: c for c in run.result["tool_calls"]}
    assert calls["create_a_vapi_assistant"]["outcome"] == "cancelled"
    assert calls["create_a_vapi_assistant"]["write"] == {"state": "created", "id": created["id"]}
    assert calls["list_all_vapi_squads"]["outcome"] == "ok"
    report = next(e for e in run.envelope["errors"] if e["code"] == "write_interrupted")
    assert report["id"] == created["id"] and f"created (id {created['id']})" in run.stderr
