"""The result of one report: the tables, the periods, where the numbers came from, the files written."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from agent.timeparse import iso_ms
from workflows.report.params import Thresholds
from workflows.report.tables import Tables
from workflows.report.window import Window


@dataclass
class ReportResult:
    """The tables and where they came from; ``files`` are the paths written."""

    window: Window
    previous: Window
    as_of: datetime
    group_by: str
    source: str
    tables: Tables
    thresholds: Thresholds
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def report_date(self) -> str:
        """``YYYY-MM-DD``: the day of ``as_of`` (now, or ``--as-of``) in the report's time zone (names the files).

        ``--as-of 2026-12-01T00:00:00Z`` is a report made on 2026-12-01 (in UTC), although its
        window ends with the last second of 2026-11-30.
        """
        return self.window.local_date(self.as_of).isoformat()

    def to_dict(self, *, compact: bool = False, files: bool = True) -> dict[str, Any]:
        """JSON-ready: the envelope's ``result`` (``compact``: summary only, for the chat tool).

        The ``--format json`` file is this without ``files`` (so it does not depend on ``--out``).
        """
        data: dict[str, Any] = {
            "as_of": iso_ms(self.as_of), "period": self.window.to_dict(), "previous_period": self.previous.to_dict(),
            "group_by": self.group_by, "source": self.source,
            "thresholds": {"worse_success_pp": self.thresholds.success_pp,
                           "worse_cost_pct": self.thresholds.cost_pct, "min_calls": self.thresholds.min_calls},
            "summary": records(self.tables.summary),
            "worse": [r["group"] for r in records(self.tables.worse())],
        }
        if not compact:
            data.update(daily=records(self.tables.daily), ended_reasons=records(self.tables.ended),
                        success_evaluation=records(self.tables.success))
        data["notes"] = list(self.notes)
        if files:
            data["files"] = list(self.files)
        return data


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with plain Python values (NaN -> None), in column order."""
    out = []
    for row in frame.to_dict("records"):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if hasattr(value, "item"):
                value = value.item()  # numpy scalar -> Python
            if isinstance(value, float) and math.isnan(value):
                value = None
            clean[str(key)] = value
        out.append(clean)
    return out
