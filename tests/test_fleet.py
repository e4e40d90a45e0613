"""Fleet runs in-process (DBOS on SQLite under the data dir) against a sandbox fleet.

The command bodies run through the real runner (envelope, exit code) with an in-process sandbox
fleet, so the tests can read its admin history and request log: every job minted a read-only,
second-factor, expiring server and deleted it; results equal each account's ground truth; one
account's failure never stops the others; no secret reaches the SQLite system database.
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings, load_settings
from agent.paths import data_dir
from cli.commands import fleet as fleet_cmd
from cli.runner import run_command
from sandbox.fleet import FleetConfig, SandboxFleet
from sandbox.world.config import SandboxConfig

TOKEN = "truto-sentinel-fleet-api-token-7f3a"


def build(accounts: int = 4, calls: int = 80) -> SandboxFleet:
    """A small in-process fleet with a sentinel Truto API token."""
    return SandboxFleet(FleetConfig(accounts=accounts, base=SandboxConfig(calls=calls), api_token=TOKEN))


def run(body: Any, settings: Settings | None = None, *, record: bool = False) -> tuple[int, dict[str, Any]]:
    """Run a command body with --json; (exit code, envelope)."""
    out = io.StringIO()
    settings = settings or load_settings({"json": True, "sandbox": True})
    code = run_command("fleet", settings, body, None, stdout=out, record=record)
    return code, json.loads(out.getvalue())


def qa_body(sandbox: SandboxFleet, tmp_path: Path, **overrides: Any) -> Any:
    params = {"assistant": "Support", "last": 4, "recordings": "failing", "threshold": 80.0, **overrides}
    fleet_params = dict(workflow="qa-grade", params=params, source={}, concurrency=3, out=str(tmp_path / "out"))
    return fleet_cmd.fleet_run_body(fleet_params, sandbox=sandbox)


def check_against_ground_truth(sandbox: SandboxFleet, account_id: str, entry: dict[str, Any], last: int,
                               threshold: float) -> None:
    """The account's fleet entry is qa-grade of *its* calls: the generator's newest ended Support calls, and
    failing exactly where the generator's value of the graded metric is below the threshold."""
    from sandbox.world.groundtruth import ground_truth

    workspace = sandbox.sandbox_of(account_id).workspace
    truth = ground_truth(workspace, recordings="none")
    support = next(a for a in truth["assistants"].values() if a["name"] == "Support")
    newest = [cid for cid, call in support["calls"].items() if call["status"] == "ended"][:last]  # newest first
    graded = json.loads(Path(_file(entry, "qa-grade.json")).read_text())
    assert [c["id"] for c in graded["calls"]] == newest
    cards = {card["name"]: card["id"] for card in workspace.list_objects("scorecards")}
    metric = graded["metric"]  # a scorecard (its normalised score) or a structured output (its value)
    values = [support["calls"][cid]["scores"][cards[metric]] if metric in cards
              else support["calls"][cid]["metrics"][metric] for cid in newest]
    assert entry["summary"]["calls"] == len(newest)
    assert entry["summary"]["failing"] == sum(1 for v in values if v is not None and v < threshold)


def _file(entry: dict[str, Any], name: str) -> str:
    return next(f for f in entry["files"] if Path(f).name == name)


def durable_text(database: Path) -> str:
    """Everything the SQLite system database holds, with DBOS's base64 pickles decoded."""
    from tests.pg_support import with_pickles_decoded

    with sqlite3.connect(database) as db:
        return with_pickles_decoded("\n".join(db.iterdump()))


def test_fleet_qa_grade_on_the_sandbox_fleet(tmp_path: Path) -> None:
    sandbox = build()
    code, envelope = run(qa_body(sandbox, tmp_path))
    assert code == 0 and envelope["status"] == "partial"
    result = envelope["result"]
    assert set(result) >= {"accounts", "totals", "run_id", "workflow"}
    by_name = {a["account"]: a for a in result["accounts"]}
    assert len(by_name) == 4
    stale = next(a for a in sandbox.accounts if a.status == "needs_reauth")
    assert result["accounts"][0]["account"] == stale.tenant_id  # worst first
    assert by_name[stale.tenant_id]["error"]["code"] == "needs_reauth"
    assert [e["account"] for e in envelope["errors"]] == [stale.tenant_id]
    for account in sandbox.accounts:
        if account.status != "active":
            continue
        entry = by_name[account.tenant_id]
        assert entry["status"] in ("ok", "partial") and entry["error"] is None
        # the account's own calls, graded as qa-grade grades them (its ground truth)
        check_against_ground_truth(sandbox, account.id, entry, 4, 80.0)
        # one file set per account under DIR/accounts/
        assert sorted(Path(f).name for f in entry["files"]) == [f"qa-grade.{x}" for x in ("csv", "html", "json", "md")]
        assert len({Path(f).parent for f in entry["files"]}) == 1
        assert Path(entry["files"][0]).parent.parent == tmp_path / "out" / "accounts"
        assert {"account", "tenant", "status", "summary", "error"} <= set(entry)
        assert entry["summary"]["recordings"] == entry["summary"]["failing"]
        assert entry["server"]["deleted"] is True and entry["server"]["methods"] == ["read"]
    totals = result["totals"]
    assert totals["accounts"] == 4 and totals["error"] == 1 and totals["ok"] + totals["partial"] == 3
    assert totals["graded"] == sum(a["summary"].get("graded", 0) for a in result["accounts"])
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("fleet-qa-grade.*")) == [f"fleet-qa-grade.{x}" for x in
                                                                    ("csv", "html", "json", "md")]
    assert json.loads((out / "fleet-qa-grade.json").read_text())["totals"] == totals
    assert len(list((out / "accounts").iterdir())) == 3


def test_served_fleet_of_20_least_privilege_ground_truth_and_isolation(tmp_path: Path,
                                                                        capfd: pytest.CaptureFixture[str]) -> None:
    """`sandbox serve --accounts 20` (loopback, Truto's admin API): every job minted a read-only, second-factor,
    expiring server and deleted it after its last MCP request; each account's result is its ground truth;
    the needs_reauth account is reported and the others succeed; no secret (the Truto API token, a minted
    server's token) in the durable store, the run log, the output files or the debug log."""
    from sandbox.serve import ServerThread

    sandbox = build(accounts=20, calls=40)
    before = time.time()
    with ServerThread(sandbox, host="127.0.0.1", port=0):
        settings = load_settings({"json": True, "truto_api": sandbox.api_url, "truto_api_token": TOKEN,
                                  "log_level": "DEBUG"})
        params = {"assistant": "Support", "last": 3, "recordings": "none", "threshold": 80.0}
        body = fleet_cmd.fleet_run_body(dict(workflow="qa-grade", params=params, source={}, concurrency=8,
                                             out=str(tmp_path / "out")))
        code, envelope = run(body, settings, record=True)
    printed = capfd.readouterr()
    assert code == 0 and envelope["status"] == "partial", envelope["errors"]
    stale = [a.tenant_id for a in sandbox.accounts if a.status == "needs_reauth"]
    assert len(stale) == 1 and [e["account"] for e in envelope["errors"]] == stale
    by_name = {entry["account"]: entry for entry in envelope["result"]["accounts"]}
    assert len(by_name) == 20 and by_name[stale[0]]["error"]["code"] == "needs_reauth"
    active = [a for a in sandbox.accounts if a.status == "active"]
    for account in active:
        entry = by_name[account.tenant_id]
        assert entry["status"] in ("ok", "partial") and entry["error"] is None
        check_against_ground_truth(sandbox, account.id, entry, 3, 80.0)
    minted = sandbox.admin.history
    assert sorted(s.account_id for s in minted) == sorted(a.id for a in active)  # one server per job
    for server in minted:
        assert server.methods == ("read",) and server.require_api_token_auth
        assert server.name.startswith("vapi-agent fleet-") and " qa-grade " in server.name
        assert server.expires_at is not None and before + 60 <= server.expires_at <= time.time() + 3600 + 180
    assert sandbox.admin.servers() == []  # every one deleted
    log = sandbox.log_entries()
    deletes = [e for e in log if e["transport"] == "admin" and e["method"] == "DELETE" and e["status"] == 200]
    assert sorted(e["extra"]["mcp_server"] for e in deletes) == sorted(s.id for s in minted)
    for server in minted:  # deleted at the end: after the server's last MCP request
        last_use = max(e["t_start"] for e in log if e["extra"].get("mcp_server") == server.id)
        deleted = next(e for e in deletes if e["extra"]["mcp_server"] == server.id)
        assert deleted["t_start"] >= last_use
    # no secret in the durable store (its pickles decoded), while the account names are there
    stored = durable_text(data_dir() / "fleet.sqlite")
    assert active[0].tenant_id in stored
    everything = [stored, printed.out, printed.err, json.dumps(envelope)]
    everything += [path.read_bytes().decode("utf-8", "replace") for folder in (data_dir(), tmp_path / "out")
                   for path in folder.rglob("*") if path.is_file() and not path.name.startswith("fleet.sqlite")]
    assert "/mcp/***" in printed.err  # the debug log shows the minted servers' URLs, masked
    assert (data_dir() / "runs.sqlite3").exists()  # the run log was written (and is searched)
    for secret in [TOKEN, *(s.token for s in minted)]:
        assert not any(secret in text for text in everything), "a secret leaked"


def test_no_account_succeeds_is_exit_3(tmp_path: Path) -> None:
    sandbox = build(accounts=2)
    code, envelope = run(qa_body(sandbox, tmp_path, assistant="Nobody Here", recordings="none"))
    assert code == 3 and envelope["status"] == "error"
    assert {a["status"] for a in envelope["result"]["accounts"]} == {"error"}
    assert sandbox.admin.servers() == []  # deleted although the job failed


def test_accounts_file_source_keeps_secrets_out_of_the_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             serve_sandbox: Any) -> None:
    served = serve_sandbox(calls=60)
    monkeypatch.setenv("ACME_MCP_URL", served.mcp_url)
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[[account]]\nname = "acme"\ntenant = "acme-dental"\nmcp_url = "${ACME_MCP_URL}"\n')
    params = {"assistant": "Support", "last": 3, "recordings": "none"}
    body = fleet_cmd.fleet_run_body(dict(workflow="qa-grade", params=params,
                                         source={"accounts_file": str(accounts)}, concurrency=2))
    code, envelope = run(body, load_settings({"json": True}))
    assert code == 0, envelope
    assert envelope["result"]["accounts"][0]["summary"]["calls"] == 3
    stored = durable_text(data_dir() / "fleet.sqlite")
    assert served.config.token not in stored and "${ACME_MCP_URL}" not in stored and "acme-dental" in stored


def test_accounts_file_errors_are_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "accounts.toml"
    bad.write_text('[[account]]\nname = "a"\nmcp_url = "x"\nvapi_api_key = "y"\n')
    body = fleet_cmd.accounts_body({"accounts_file": str(bad)}, None, None)
    code, envelope = run(body)
    assert code == 2 and "exactly one of" in envelope["errors"][0]["message"]


def test_fleet_accounts_and_cleanup(tmp_path: Path) -> None:
    sandbox = build(accounts=3)
    code, envelope = run(fleet_cmd.accounts_body({}, None, "active", sandbox=sandbox))
    assert code == 0 and len(envelope["result"]["accounts"]) == 3
    import asyncio

    from agent.fleet.truto import TrutoAdminClient

    async def leave_leftovers() -> None:
        import httpx2

        async with TrutoAdminClient(sandbox.api_url, TOKEN, transport=httpx2.ASGITransport(app=sandbox.app)) as admin:
            expires = datetime.fromtimestamp(time.time() + 600, tz=UTC)
            for account in sandbox.accounts:
                await admin.mint(account.id, f"vapi-agent fleet-x qa-grade {account.tenant_id}", methods=["read"],
                                 expires_at=expires)
            await admin.mint(sandbox.accounts[0].id, "someone else's server", methods=["read"], expires_at=expires)

    asyncio.run(leave_leftovers())
    code, envelope = run(fleet_cmd.cleanup_body({}, True, None, sandbox=sandbox))
    assert code == 0 and len(envelope["result"]["servers"]) == 3 and envelope["result"]["deleted"] == []
    assert len(sandbox.admin.servers()) == 4
    code, envelope = run(fleet_cmd.cleanup_body({}, False, None, sandbox=sandbox))
    assert len(envelope["result"]["deleted"]) == 3
    assert [s.name for s in sandbox.admin.servers()] == ["someone else's server"]
    code, envelope = run(fleet_cmd.cleanup_body({}, False, None, sandbox=sandbox))  # idempotent
    assert code == 0 and envelope["result"]["deleted"] == []


def test_killed_run_resumes_without_redoing_finished_accounts(tmp_path: Path) -> None:
    """kill -9 of an in-process run mid-way; `fleet resume RUN_ID` finishes exactly the unfinished jobs."""
    config = tmp_path / "config.toml"
    config.write_text("sandbox_options = { calls = 60, latency = 0.15 }\n")
    import os

    env = {**os.environ, "VAPI_AGENT_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "cli", "fleet", "qa-grade", "--assistant", "Support", "--last", "3",
           "--recordings", "none", "--sandbox", "--sandbox-accounts", "6", "--concurrency", "2"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    run_id, done = None, 0
    for line in proc.stderr:
        if line.startswith("fleet run "):
            run_id = line.split()[2].rstrip(":")
        if "(" in line and "/6)" in line:
            done += 1
            if done == 2:
                break
    proc.kill()
    proc.wait()
    assert run_id is not None and done == 2
    resumed = subprocess.run([sys.executable, "-m", "cli", "--json", "fleet", "resume", run_id], env=env,
                             capture_output=True, text=True, timeout=240)
    envelope = json.loads(resumed.stdout)
    assert resumed.returncode == 0, resumed.stderr
    assert len(envelope["result"]["accounts"]) == 6 and envelope["result"].get("pending") is None
    with sqlite3.connect(data_dir() / "fleet.sqlite") as db:
        rows = db.execute("select workflow_uuid, status from workflow_status where workflow_uuid like ?",
                          (f"{run_id}:%",)).fetchall()
        steps = db.execute("select workflow_uuid, count(*) from operation_outputs where workflow_uuid like ? "
                           "group by workflow_uuid", (f"{run_id}:%",)).fetchall()
    assert len(rows) == 6 and {status for _, status in rows} == {"SUCCESS"}
    assert all(count == 1 for _, count in steps)  # each account's job recorded exactly once


def test_dbos_loads_only_for_fleet_commands() -> None:
    code = ("import sys, contextlib, io\nfrom cli.app import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['--help']); main(['fleet', '--help'])\n"
            "print('dbos' in sys.modules, 'sqlalchemy' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert shown.stdout.split() == ["False", "False"], shown.stderr


def test_recovery_adapter_still_matches_dbos() -> None:
    """``workflows.fleet.recovery`` relies on DBOS's internal recovery call: fail loudly if it changes."""
    import inspect

    from dbos import DBOS

    recover = DBOS._recover_pending_workflows
    assert list(inspect.signature(recover).parameters) == ["executor_ids"]
    from dbos._recovery import recover_pending_workflows

    assert list(inspect.signature(recover_pending_workflows).parameters)[:2] == ["dbos", "executor_ids"]


def test_fleet_report_every_account_ok_is_exit_0(tmp_path: Path) -> None:
    """`fleet report --status active`: every account succeeds (status ok, exit 0); each account's call volume
    and minutes are its own calls' (the generator's ground truth) in the window."""
    from sandbox.world.groundtruth import ground_truth
    from sandbox.world.ids import parse_iso

    sandbox = build(accounts=4, calls=60)
    truths = {a.id: ground_truth(sandbox.sandbox_of(a.id).workspace, recordings="none") for a in sandbox.accounts}
    anchor = truths[sandbox.accounts[0].id]["anchor"]
    params = {"since": "7d", "as_of": anchor}
    body = fleet_cmd.fleet_run_body(dict(workflow="report", params=params, source={}, status="active", concurrency=2,
                                         out=str(tmp_path / "out")), sandbox=sandbox)
    code, envelope = run(body)
    assert code == 0 and envelope["status"] == "ok" and envelope["errors"] == [], envelope["errors"]
    result = envelope["result"]
    active = [a for a in sandbox.accounts if a.status == "active"]
    assert sorted(e["account"] for e in result["accounts"]) == sorted(a.tenant_id for a in active)
    end = parse_iso(anchor).timestamp()
    start = end - 7 * 86400
    for account in active:
        entry = next(e for e in result["accounts"] if e["account"] == account.tenant_id)
        calls = [c for a in truths[account.id]["assistants"].values() for c in a["calls"].values()
                 if start <= parse_iso(c["createdAt"]).timestamp() < end]
        assert entry["status"] == "ok" and entry["summary"]["calls"] == len(calls)
        assert entry["summary"]["minutes"] == pytest.approx(sum(c["duration_seconds"] or 0 for c in calls) / 60,
                                                            abs=1e-3)
        assert sorted(Path(f).suffix for f in entry["files"] if Path(f).suffix != ".png") == [
            ".csv", ".html", ".json", ".md"]
    assert result["totals"]["calls"] == sum(e["summary"]["calls"] for e in result["accounts"])
    assert sorted(p.name for p in (tmp_path / "out").glob("fleet-report.*")) == [
        f"fleet-report.{x}" for x in ("csv", "html", "json", "md")]
