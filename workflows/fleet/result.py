"""The fleet result: one line per account, worst first, plus fleet totals; status and exit code.

Status: ``ok`` when every account is ok, ``partial`` when some are not but at least one succeeded
(ok or partial), ``error`` when none succeeded, which is exit 3 (``EXIT_UPSTREAM``); else exit 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.errors import EXIT_OK, EXIT_UPSTREAM

_RANK = {"error": 0, "partial": 1, "ok": 2}
QA_COLUMNS = ("calls", "graded", "failing", "failing_rate", "recordings")
REPORT_COLUMNS = ("calls", "minutes", "cost", "cost_per_call_change_pct", "success_change_pp")


def _badness(entry: dict[str, Any]) -> tuple[Any, ...]:
    summary = entry.get("summary") or {}
    figure = summary.get("failing_rate") if "failing_rate" in summary else summary.get("cost_per_call_change_pct")
    return (_RANK.get(entry.get("status", "error"), 0), -(figure or 0.0), entry.get("account", ""))


@dataclass
class FleetResult:
    """Every account's outcome for one fleet run (``accounts`` sorted worst first)."""

    run_id: str
    workflow: str
    accounts: list[dict[str, Any]]
    pending: list[str] = field(default_factory=list)  # accounts whose job has not finished (status, --detach)
    files: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.accounts = sorted(self.accounts, key=_badness)

    @property
    def status(self) -> str:
        """ok / partial / error (see the module docstring); ``partial`` while jobs are pending."""
        statuses = [a["status"] for a in self.accounts]
        if not statuses:
            return "partial" if self.pending else "ok"
        if all(s == "error" for s in statuses) and not self.pending:
            return "error"
        return "ok" if all(s == "ok" for s in statuses) and not self.pending else "partial"

    @property
    def exit_code(self) -> int:
        """3 when no account succeeded, else 0."""
        return EXIT_UPSTREAM if self.status == "error" else EXIT_OK

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The envelope's ``errors``: one per failed account."""
        return [{"code": a["error"]["code"], "message": f"{a['account']}: {a['error']['message']}",
                 "account": a["account"]} for a in self.accounts if a.get("error")]

    def totals(self) -> dict[str, Any]:
        """Fleet totals: account counts, and the workflow's figures summed over the accounts."""
        counts = {s: sum(1 for a in self.accounts if a["status"] == s) for s in ("ok", "partial", "error")}
        totals: dict[str, Any] = {"accounts": len(self.accounts) + len(self.pending), **counts,
                                  "pending": len(self.pending)}
        columns = QA_COLUMNS if self.workflow == "qa-grade" else REPORT_COLUMNS[:3]
        for column in columns:
            if column == "failing_rate":
                continue
            values = [a["summary"].get(column) for a in self.accounts if a.get("summary")]
            totals[column] = round(sum(v for v in values if isinstance(v, int | float)), 6)
        if self.workflow == "qa-grade":
            graded = totals.get("graded") or 0
            totals["failing_rate"] = round(totals["failing"] / graded, 4) if graded else None
        return totals

    def to_dict(self) -> dict[str, Any]:
        """The envelope's ``result``: ``{run_id, workflow, accounts: [...], totals: {...}}``."""
        data: dict[str, Any] = {"run_id": self.run_id, "workflow": self.workflow, "accounts": list(self.accounts),
                                "totals": self.totals()}
        if self.pending:
            data["pending"] = list(self.pending)
        if self.files:
            data["files"] = list(self.files)
        return data

    def columns(self) -> tuple[str, ...]:
        """The workflow's summary columns, in table order."""
        return QA_COLUMNS if self.workflow == "qa-grade" else REPORT_COLUMNS
