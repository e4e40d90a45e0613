"""One fleet job: one workflow (qa-grade or report) on one account, summarised, its server deleted.

``run_account_job`` is plain async code (no DBOS here: ``workflows.fleet.durable`` makes it a durable
step). It mints the job's least-privilege server when the account is reached through Truto, opens an
ordinary runtime on it, runs the existing pipeline (qa-grade keeps its per-call checkpoints, so a
re-run after a crash redoes only unfinished calls), writes the account's files under
``DIR/accounts/<account>/`` and returns a JSON-ready summary holding no secret. An account's failure
(401, ``needs_reauth``, missing assistant, rate-limit budget) is its outcome, never an exception.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import Settings
from agent.errors import AgentError
from agent.fleet.accounts import Account
from agent.fleet.source import FleetSource, connect_settings, needs_minting

WORKFLOWS = ("qa-grade", "report")


def check_params(workflow: str, params: dict[str, Any]) -> None:
    """The workflow's options, validated as each job will read them: ``ConfigError`` (exit 2) before any job."""
    if workflow == "qa-grade":
        from workflows.qa import grade

        grade.QAParams(**{**params, "recordings_dir": ".", "out": None}).validate()
    elif workflow == "report":
        from workflows.report.params import ReportParams

        ReportParams(**{**params, "out": None}).validate()


@dataclass
class JobEnvironment:
    """What jobs of this process run with (in memory only): settings, the source, the run store."""

    settings: Settings
    source: FleetSource
    store: Any = None
    notice: Any = None


@dataclass
class AccountOutcome:
    """One account's line of the fleet result (JSON-ready, no secret)."""

    account: str
    tenant: str | None
    status: str  # ok | partial | error
    summary: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # codes of what made it partial
    files: list[str] = field(default_factory=list)
    server: dict[str, Any] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The dict stored as the durable job's output and shown in ``result.accounts``."""
        return {"account": self.account, "tenant": self.tenant, "status": self.status, "summary": self.summary,
                "error": self.error, "notes": self.notes, "reasons": self.reasons, "files": self.files,
                "server": self.server, "seconds": round(self.seconds, 3)}


def _not_active(account: Account) -> AccountOutcome | None:
    if account.status == "active":
        return None
    hints = {"needs_reauth": "its credentials are no longer valid: the customer must reconnect it in Truto"}
    message = f"account is {account.status}: " + hints.get(account.status, "Truto cannot reach it now")
    return AccountOutcome(account.name, account.tenant, "error",
                          error={"code": account.status, "message": message})


async def run_account_job(env: JobEnvironment, account: Account, workflow: str, params: dict[str, Any], *,
                          run_id: str, out_dir: str | None, deadline: float | None) -> dict[str, Any]:
    """Run ``workflow`` on one account (see the module docstring); the outcome as a dict."""
    started = time.monotonic()
    outcome = _not_active(account)
    if outcome is None:
        outcome = AccountOutcome(account.name, account.tenant, "ok")
        try:
            await _run(env, account, workflow, params, run_id=run_id, out_dir=out_dir, deadline=deadline,
                       outcome=outcome)
        except AgentError as exc:
            outcome.status = "error"
            outcome.error = {"code": exc.code, "message": exc.line()}
    outcome.seconds = time.monotonic() - started
    return outcome.to_dict()


async def _run(env: JobEnvironment, account: Account, workflow: str, params: dict[str, Any], *, run_id: str,
               out_dir: str | None, deadline: float | None, outcome: AccountOutcome) -> None:
    folder = Path(out_dir) / "accounts" / account.folder if out_dir else None
    if not needs_minting(account):
        await _workflow(env, connect_settings(env.settings, account, None, truto_token=None), account, workflow,
                        params, folder, outcome)
        return
    from agent.fleet.access import job_server, methods_for

    async with env.source.admin() as admin:
        async with job_server(admin, account, run_id=run_id, workflow=workflow, deadline=deadline) as held:
            outcome.server = {"id": held.server.id, "methods": methods_for(workflow),
                              "expires_at": held.server.expires_at}
            settings = connect_settings(env.settings, account, held.server, truto_token=env.source.token)
            await _workflow(env, settings, account, workflow, params, folder, outcome)
        outcome.server["deleted"] = held.deleted
        if held.delete_error:
            outcome.notes.append(held.delete_error)


async def _workflow(env: JobEnvironment, settings: Settings, account: Account, workflow: str,
                    params: dict[str, Any], folder: Path | None, outcome: AccountOutcome) -> None:
    from agent.runtime import open_runtime

    sandbox = env.source.sandbox
    async with open_runtime(settings, notice=env.notice, store=env.store, sandbox=sandbox,
                            prompt=None) as rt:
        if workflow == "qa-grade":
            await _qa_grade(rt, params, account, folder, outcome)
        elif workflow == "report":
            await _report(rt, params, folder, outcome)
        else:
            raise AgentError(f"unknown fleet workflow {workflow!r}")


async def _qa_grade(rt: Any, params: dict[str, Any], account: Account, folder: Path | None,
                    outcome: AccountOutcome) -> None:
    from agent.files import write_atomically
    from workflows.qa import grade
    from workflows.qa.render import to_markdown

    recordings_dir = (folder / "recordings") if folder else Path(params.get("recordings_dir") or "./recordings") / \
        account.folder
    qa_params = grade.QAParams(**{**params, "recordings_dir": str(recordings_dir), "out": None})
    result = await grade.run(rt, qa_params)
    graded = [c for c in result.calls if c.get("value") is not None]
    failing = result.failing
    outcome.summary = {
        "assistant": result.assistant.get("name"), "metric": result.metric.get("name"), "calls": len(result.calls),
        "graded": len(graded), "failing": len(failing),
        "failing_rate": round(len(failing) / len(graded), 4) if graded else None,
        "recordings": sum(1 for c in result.calls if c.get("recording")),
    }
    outcome.notes.extend(result.notes)
    if result.errors:
        outcome.status = "partial"
        outcome.notes.extend(e["message"] for e in result.errors)
        outcome.reasons.extend(dict.fromkeys(e["code"] for e in result.errors))
    if folder is not None:
        from workflows.fleet.render import markdown_page

        data, markdown = result.to_dict(), to_markdown(result)
        files = {
            "qa-grade.md": markdown,
            "qa-grade.json": json.dumps(data, indent=2, sort_keys=True) + "\n",
            "qa-grade.csv": _calls_csv(data["calls"]),
            "qa-grade.html": markdown_page(f"qa-grade {account.name}", markdown),
        }
        for name, text in files.items():
            outcome.files.append(str(write_atomically(folder / name, text)))


def _calls_csv(calls: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["call", "started_at", "value", "failed", "recording"])
    for call in calls:
        recording = (call.get("recording") or {}).get("path", "")
        writer.writerow([call["id"], call.get("started_at") or "", call.get("value"), call.get("failed"), recording])
    return buffer.getvalue()


async def _report(rt: Any, params: dict[str, Any], folder: Path | None, outcome: AccountOutcome) -> None:
    from workflows.report import pipeline
    from workflows.report.params import ReportParams
    from workflows.report.tables import ALL_KEY

    formats = params.get("formats") or ("md,csv,html,json" if folder else None)
    report_params = ReportParams(**{**params, "out": str(folder) if folder else None, "formats": formats})
    result = await pipeline.run(rt, report_params)
    data = result.to_dict(compact=True)
    total: dict[str, Any] = next((row for row in data["summary"] if row.get("key") == ALL_KEY), {})
    outcome.summary = {key: total.get(key) for key in ("calls", "minutes", "cost", "prev_calls", "prev_cost",
                                                       "cost_per_call_change_pct", "success_rate",
                                                       "success_change_pp")}
    outcome.summary["worse"] = data["worse"]
    outcome.notes.extend(data["notes"])
    outcome.files.extend(result.files)
