"""The report's tables, computed with pandas from the cubes of this period and the previous one.

- ``summary``: one row per group and an ``All`` row: calls, minutes, cost and its breakdown, cost
  per call, average duration, success rate, the previous period's figures and the change, and
  ``worse`` (success rate dropped by more than ``worse_success_pp`` points, or cost per call rose by
  more than ``worse_cost_pct`` percent; only when both periods have at least ``min_calls`` calls).
- ``daily``: calls, minutes and cost per local day and group (every day of the window, zeros kept).
- ``ended``: the ended-reason mix per group (calls and share of the group's calls).
- ``success``: the success-evaluation mix per group.

Success rate counts pass/fail evaluations only (``true``/``false`` and their synonyms); numeric or
descriptive rubrics show in the mix but not in the rate, since their pass mark is unknown here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from workflows.report.data import BREAKDOWN, METRICS, NONE
from workflows.report.params import Thresholds
from workflows.report.window import Window

PASS = frozenset({"true", "pass", "passed", "success", "successful", "yes"})
FAIL = frozenset({"false", "fail", "failed", "failure", "unsuccessful", "no"})
ALL = "All"
ALL_KEY = "*"
NOT_ENDED = "(not ended)"
NOT_EVALUATED = "(not evaluated)"
SUMMARY_COLUMNS = (
    "group", "key", "calls", "minutes", "cost", *(f"cost_{p}" for p in BREAKDOWN), "cost_other",
    "cost_per_call", "avg_duration_s", "evaluated", "success_rate",
    "prev_calls", "prev_cost", "prev_cost_per_call", "prev_success_rate",
    "success_change_pp", "cost_per_call_change_pct", "worse", "worse_because",
)


@dataclass
class Tables:
    """The report's four tables (see the module docstring)."""

    summary: pd.DataFrame
    daily: pd.DataFrame
    ended: pd.DataFrame
    success: pd.DataFrame

    def worse(self) -> pd.DataFrame:
        """The summary rows flagged worse (groups only, not the ``All`` row)."""
        rows = self.summary[(self.summary["worse"]) & (self.summary["key"] != ALL_KEY)]
        return rows.reset_index(drop=True)


def _num(value: float, digits: int) -> float:
    """Rounded, or NaN for a missing value (a rate of zero calls)."""
    return float("nan") if value is None or math.isnan(value) else round(float(value), digits)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def _sums(cube: pd.DataFrame) -> pd.DataFrame:
    """Per group key: the metric sums plus passed/failed evaluations."""
    success = cube["success"].str.lower()
    cube = cube.assign(passed=cube["calls"].where(success.isin(PASS), 0),
                       failed=cube["calls"].where(success.isin(FAIL), 0))
    return cube.groupby("key")[[*METRICS, "passed", "failed"]].sum()


def _figures(row: pd.Series | None) -> dict[str, float]:
    """Calls, cost, rates... of one group's sums (zeros when the group had no calls)."""
    get = (lambda name: float(row[name])) if row is not None else (lambda name: 0.0)
    calls, cost_u = get("calls"), get("cost_u")
    parts = {p: get(f"{p}_u") for p in BREAKDOWN}
    evaluated = get("passed") + get("failed")
    return {
        "calls": calls, "minutes": get("duration_ms") / 60_000, "cost": cost_u / 1e6,
        **{f"cost_{p}": v / 1e6 for p, v in parts.items()}, "cost_other": (cost_u - sum(parts.values())) / 1e6,
        "cost_per_call": _ratio(cost_u / 1e6, calls), "avg_duration_s": _ratio(get("duration_ms") / 1000, get("timed")),
        "evaluated": evaluated, "success_rate": _ratio(get("passed"), evaluated),
    }


def _summary_row(group: str, key: str, now: pd.Series | None, before: pd.Series | None,
                 limits: Thresholds) -> dict[str, Any]:
    cur, prev = _figures(now), _figures(before)
    success_change = (cur["success_rate"] - prev["success_rate"]) * 100
    cost_change = (_ratio(cur["cost_per_call"], prev["cost_per_call"]) - 1) * 100
    reasons = []
    enough = cur["calls"] >= limits.min_calls and prev["calls"] >= limits.min_calls
    if enough and not math.isnan(success_change) and -success_change > limits.success_pp:
        reasons.append(f"success rate {success_change:+.1f} pp")
    if enough and not math.isnan(cost_change) and cost_change > limits.cost_pct:
        reasons.append(f"cost per call {cost_change:+.1f} %")
    return {
        "group": group, "key": key, "calls": int(cur["calls"]), "minutes": _num(cur["minutes"], 4),
        "cost": _num(cur["cost"], 6), **{f"cost_{p}": _num(cur[f"cost_{p}"], 6) for p in BREAKDOWN},
        "cost_other": _num(cur["cost_other"], 6), "cost_per_call": _num(cur["cost_per_call"], 6),
        "avg_duration_s": _num(cur["avg_duration_s"], 3), "evaluated": int(cur["evaluated"]),
        "success_rate": _num(cur["success_rate"], 6),
        "prev_calls": int(prev["calls"]), "prev_cost": _num(prev["cost"], 6),
        "prev_cost_per_call": _num(prev["cost_per_call"], 6), "prev_success_rate": _num(prev["success_rate"], 6),
        "success_change_pp": _num(success_change, 4), "cost_per_call_change_pct": _num(cost_change, 4),
        "worse": bool(reasons), "worse_because": "; ".join(reasons),
    }


def summary_table(current: pd.DataFrame, previous: pd.DataFrame, labels: dict[str, str],
                  limits: Thresholds) -> pd.DataFrame:
    """The summary (see the module docstring): groups by cost, then the ``All`` row."""
    now, before = _sums(current), _sums(previous)
    keys = sorted(set(now.index) | set(before.index))
    rows = [_summary_row(labels.get(k, k), k, now.loc[k] if k in now.index else None,
                         before.loc[k] if k in before.index else None, limits) for k in keys]
    rows.sort(key=lambda r: (-(r["cost"] if not math.isnan(r["cost"]) else 0), -r["calls"], r["group"], r["key"]))
    total_now = now.sum() if len(now) else None
    total_before = before.sum() if len(before) else None
    rows.append(_summary_row(ALL, ALL_KEY, total_now, total_before, limits))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def daily_table(current: pd.DataFrame, window: Window, labels: dict[str, str], order: list[str]) -> pd.DataFrame:
    """Calls, minutes and cost per local day and group; every day of the window, zeros included."""
    keys = [k for k in order if k in set(current["key"])]
    grid = pd.MultiIndex.from_product([window.days(), keys], names=["day", "key"])
    sums = current.groupby(["day", "key"])[["calls", "cost_u", "duration_ms"]].sum().reindex(grid, fill_value=0)
    frame = sums.reset_index()
    return pd.DataFrame({
        "day": frame["day"], "group": frame["key"].map(lambda k: labels.get(k, k)), "key": frame["key"],
        "calls": frame["calls"].astype("int64"), "minutes": (frame["duration_ms"] / 60_000).round(4),
        "cost": (frame["cost_u"] / 1e6).round(6),
    })


def _mix(current: pd.DataFrame, column: str, empty: str, labels: dict[str, str], order: list[str],
         name: str) -> pd.DataFrame:
    """Calls per (group, value of ``column``) and their share of the group, plus the ``All`` group."""
    per_group = current.groupby(["key", column])["calls"].sum().reset_index()
    overall = current.groupby(column)["calls"].sum().reset_index().assign(key=ALL_KEY)
    both = pd.concat([per_group, overall[["key", column, "calls"]]], ignore_index=True)
    both = both[both["calls"] > 0]
    rank = {k: i for i, k in enumerate([*order, ALL_KEY])}
    both = both.assign(rank=both["key"].map(lambda k: rank.get(k, len(rank))))
    both = both.sort_values(["rank", "calls", column], ascending=[True, False, True], kind="stable")
    totals = both.groupby("key")["calls"].transform("sum")
    return pd.DataFrame({
        "group": both["key"].map(lambda k: ALL if k == ALL_KEY else labels.get(k, k)), "key": both["key"],
        name: both[column].map(lambda v: empty if v == NONE else v), "calls": both["calls"].astype("int64"),
        "share": (both["calls"] / totals).round(6),
    }).reset_index(drop=True)


def build_tables(current: pd.DataFrame, previous: pd.DataFrame, window: Window, labels: dict[str, str],
                 limits: Thresholds) -> Tables:
    """All four tables from the two cubes."""
    summary = summary_table(current, previous, labels, limits)
    order = [k for k in summary["key"] if k != ALL_KEY]
    return Tables(
        summary=summary,
        daily=daily_table(current, window, labels, order),
        ended=_mix(current, "reason", NOT_ENDED, labels, order, "ended_reason"),
        success=_mix(current, "success", NOT_EVALUATED, labels, order, "evaluation"),
    )
