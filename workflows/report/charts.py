"""The report's charts with matplotlib: cost per day by group, and the ended-reason mix.

Reproducible bytes: the Figure API with the Agg canvas (no pyplot, no global state, safe off the
main thread), matplotlib's default style whatever the user's matplotlibrc says, the bundled DejaVu
font, and ``metadata={"Software": None}`` so no version tag is written (PNG has no date chunk).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pandas as pd

from workflows.report.tables import ALL_KEY, Tables

MAX_SERIES = 8  # more groups or reasons than this are folded into "other"
PNG_METADATA = {"Software": None}
COST_HEIGHT = 4.2  # inches


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # fixed margins instead of a layout engine: several times faster, and the legends sit on the right
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata=PNG_METADATA)
    return buffer.getvalue()


def _top(frame: pd.DataFrame, by: str, value: str, limit: int = MAX_SERIES) -> list[str]:
    totals = frame.groupby(by, sort=False)[value].sum().sort_values(ascending=False, kind="stable")
    return [str(k) for k in totals.index[:limit]]


@dataclass(frozen=True)
class Period:
    """What the charts say about the window: its span as text and its partial (first or last) days."""

    text: str
    partial: frozenset[str] = frozenset()

    def mark(self, day: str) -> str:
        """A day's tick label, ``*`` when the window covers only part of it."""
        return day[5:] + ("*" if day in self.partial else "")

    def note(self) -> str:
        """The title's note on partial days (empty when every day is whole)."""
        return "; * partial day (hatched)" if self.partial else ""


def draw_cost_per_day(ax: Any, tables: Tables, group_title: str, period: Period | None = None) -> None:
    """Stacked bars: cost per local day, one colour per group (the biggest few, the rest as other).

    The title carries the period; a partial first or last day is hatched and starred.
    """
    from matplotlib.patches import Patch

    period = period or Period("")
    daily = tables.daily
    days = list(dict.fromkeys(daily["day"]))
    top = _top(daily, "group", "cost")
    bottom = pd.Series(0.0, index=days)
    hatches = ["//" if day in period.partial else "" for day in days]
    legend = []
    for i, group in enumerate([*top, "other"]):
        part = daily[daily["group"] == group] if group != "other" else daily[~daily["group"].isin(top)]
        values = part.groupby("day")["cost"].sum().reindex(days, fill_value=0.0)
        if group == "other" and not values.any():
            continue
        bars = ax.bar(range(len(days)), values.to_numpy(), bottom=bottom.to_numpy(), color=f"C{i % 10}")
        for bar, hatch in zip(bars, hatches, strict=True):
            if hatch:
                bar.set_hatch(hatch)
                bar.set_edgecolor("white")
        legend.append(Patch(color=f"C{i % 10}", label=group))  # plain swatches, whatever the first day is
        bottom += values
    span = f", {period.text}" if period.text else ""
    ax.set_title(f"Cost per day by {group_title} (USD){span}{period.note()}")
    ax.set_ylabel("USD")
    step = max(1, len(days) // 10)
    shown = sorted({*range(0, len(days), step), *(i for i, d in enumerate(days) if d in period.partial)})
    ax.set_xticks(shown, [period.mark(days[i]) for i in shown])
    ax.grid(axis="y", alpha=0.3)
    if top:
        ax.legend(handles=legend, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no calls in this period", ha="center", va="center", transform=ax.transAxes)


def draw_ended_mix(ax: Any, tables: Tables, group_title: str, period: Period | None = None) -> None:
    """One horizontal 100 % bar per group: the share of each ended reason (the biggest few)."""
    ended = tables.ended
    reasons = _top(ended[ended["key"] == ALL_KEY], "ended_reason", "calls")
    groups = list(dict.fromkeys(ended["group"]))[::-1]  # "All" at the bottom, the costliest on top
    left = pd.Series(0.0, index=groups)
    for i, reason in enumerate([*reasons, "other"]):
        part = ended[ended["ended_reason"] == reason] if reason != "other" else ended[
            ~ended["ended_reason"].isin(reasons)]
        shares = part.groupby("group")["share"].sum().reindex(groups, fill_value=0.0)
        if reason == "other" and not shares.any():
            continue
        ax.barh(range(len(groups)), shares.to_numpy() * 100, left=left.to_numpy() * 100, label=reason,
                color=f"C{i % 10}")
        left += shares
    ax.set_yticks(range(len(groups)), groups)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of calls")
    ax.set_title(f"Ended-reason mix by {group_title}" + (f", {period.text}" if period and period.text else ""))
    if groups:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no calls in this period", ha="center", va="center", transform=ax.transAxes)


def _mix_height(tables: Tables) -> float:
    """Inches for the mix chart: room for one bar per group and the legend."""
    return max(2.6, 1.0 + 0.4 * tables.ended["group"].nunique())


def _with_default_style(draw: Any) -> bytes:
    import matplotlib.style

    with matplotlib.style.context("default"):
        return draw()


def chart_pngs(tables: Tables, group_title: str, period: Period | None = None) -> list[tuple[str, bytes]]:
    """Each chart as its own PNG (for the HTML page): ``[(title, png bytes), ...]``."""

    def cost() -> bytes:
        figure = _figure(11, COST_HEIGHT)
        figure.subplots_adjust(left=0.07, right=0.74, top=0.9, bottom=0.12)
        draw_cost_per_day(figure.add_subplot(), tables, group_title, period)
        return _png(figure)

    def mix() -> bytes:
        height = _mix_height(tables)
        figure = _figure(11, height)
        figure.subplots_adjust(left=0.2, right=0.74, top=1 - 0.45 / height, bottom=0.55 / height)
        draw_ended_mix(figure.add_subplot(), tables, group_title, period)
        return _png(figure)

    return [(f"Cost per day by {group_title}", _with_default_style(cost)),
            (f"Ended-reason mix by {group_title}", _with_default_style(mix))]


def report_png(tables: Tables, group_title: str, period: Period | None = None) -> bytes:
    """Both charts in one PNG (the ``--format png`` file)."""

    def draw() -> bytes:
        height = COST_HEIGHT + _mix_height(tables)
        figure = _figure(11, height)
        figure.subplots_adjust(left=0.2, right=0.74, top=1 - 0.45 / height, bottom=0.55 / height, hspace=0.35)
        top, bottom = figure.subplots(2, 1, height_ratios=[COST_HEIGHT, _mix_height(tables)])
        draw_cost_per_day(top, tables, group_title, period)
        draw_ended_mix(bottom, tables, group_title, period)
        return _png(figure)

    return _with_default_style(draw)
