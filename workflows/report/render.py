"""Renderings of a report: markdown, CSV, JSON, a self-contained HTML page, PNG charts, the terminal.

Files are named ``report-YYYY-MM-DD.<ext>``. Nothing in a file depends on where it is written or
when it was rendered, only on the data and ``--as-of``: two runs with the same ``--as-of`` over the
same data give the same bytes. The HTML page embeds its charts as ``data:`` PNGs and its style
inline: it references no URL at all, so it opens offline and leaks nothing when opened.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import tempfile
from base64 import b64encode
from pathlib import Path
from typing import Any

import pandas as pd

from agent.display import NUMBER, TEXT, WHOLE, Column, fit_table, terminal_text
from agent.timeparse import iso_ms
from workflows.report.result import ReportResult, records
from workflows.report.tables import ALL_KEY

GROUP_TITLE = {"assistant": "assistant", "endedReason": "ended reason", "squad": "squad"}


# ---------------------------------------------------------------- value formatting
def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def usd(value: Any) -> str:
    """``$1,234.5678`` (4 decimals: single calls cost cents)."""
    return "—" if _missing(value) else f"${value:,.4f}"


def number(value: Any, digits: int = 1) -> str:
    """A grouped number, ``—`` when missing."""
    return "—" if _missing(value) else f"{value:,.{digits}f}"


def percent(value: Any) -> str:
    """A 0..1 rate as ``87.5 %``."""
    return "—" if _missing(value) else f"{value * 100:.1f} %"


def change(value: Any, unit: str) -> str:
    """A signed change: ``+2.5 pp``, ``-10.0 %``."""
    return "—" if _missing(value) else f"{value:+.1f} {unit}"


def summary_cells(row: dict[str, Any]) -> list[str]:
    """One summary row as display text (the columns of ``SUMMARY_HEADERS``)."""
    return [
        str(row["group"]), f"{row['calls']:,}", number(row["minutes"]), usd(row["cost"]),
        usd(row["cost_per_call"]), number(row["avg_duration_s"]), percent(row["success_rate"]),
        f"{row['prev_calls']:,}", usd(row["prev_cost_per_call"]), percent(row["prev_success_rate"]),
        change(row["success_change_pp"], "pp"), change(row["cost_per_call_change_pct"], "%"),
        ("WORSE: " + row["worse_because"]) if row["worse"] else "",
    ]


SUMMARY_HEADERS = ["group", "calls", "minutes", "cost", "cost/call", "avg s", "success",
                   "prev calls", "prev cost/call", "prev success", "success Δ", "cost/call Δ", "flag"]
BREAKDOWN_HEADERS = ["group", "cost", "llm", "stt", "tts", "vapi", "transport", "other"]


def breakdown_cells(row: dict[str, Any]) -> list[str]:
    """One row of the cost breakdown table."""
    return [str(row["group"]), *(usd(row[c]) for c in ("cost", "cost_llm", "cost_stt", "cost_tts", "cost_vapi",
                                                         "cost_transport", "cost_other"))]


def _title(result: ReportResult) -> str:
    days = result.window.days()
    span = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
    return f"Vapi calls by {GROUP_TITLE[result.group_by]}, {span} ({result.window.tz})"


def _facts(result: ReportResult) -> list[str]:
    p, q, t = result.window.to_dict(), result.previous.to_dict(), result.thresholds
    source = "Vapi analytics" if result.source == "analytics" else "computed from the calls"
    return [
        f"Period: {p['start']} to {p['end']} (days in {p['tz']})",
        f"Compared with: {q['start']} to {q['end']}",
        f"As of: {iso_ms(result.as_of)}; source: {source}",
        f"Worse means: success rate down more than {t.success_pp:g} pp, or cost per call up more than "
        f"{t.cost_pct:g} %, with at least {t.min_calls} calls in both periods",
    ]


def _mix_rows(frame: pd.DataFrame, column: str) -> list[list[str]]:
    return [[str(r["group"]), str(r[column]), f"{r['calls']:,}", percent(r["share"])] for r in records(frame)]


def _daily_rows(result: ReportResult) -> list[list[str]]:
    return [[r["day"], str(r["group"]), f"{r['calls']:,}", number(r["minutes"]), usd(r["cost"])]
            for r in records(result.tables.daily)]


def sections(result: ReportResult) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report's tables as (title, headers, rows of text), shared by markdown and HTML."""
    summary = records(result.tables.summary)
    return [
        ("Summary and change against the previous period", SUMMARY_HEADERS, [summary_cells(r) for r in summary]),
        ("Cost breakdown", BREAKDOWN_HEADERS, [breakdown_cells(r) for r in summary]),
        ("Ended-reason mix", ["group", "ended reason", "calls", "share"],
         _mix_rows(result.tables.ended, "ended_reason")),
        ("Success evaluation", ["group", "evaluation", "calls", "share"],
         _mix_rows(result.tables.success, "evaluation")),
        ("Per day", ["day", "group", "calls", "minutes", "cost"], _daily_rows(result)),
    ]


def _worse_lines(result: ReportResult) -> list[str]:
    rows = records(result.tables.worse())
    if not rows:
        return ["No group got worse than in the previous period."]
    return [f"{r['group']}: {r['worse_because']}" for r in rows]


# ---------------------------------------------------------------- files
def to_markdown(result: ReportResult) -> str:
    """The report as markdown."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"# {_title(result)}", "", *(f"- {fact}" for fact in _facts(result)), "", "## Worse than before", ""]
    lines += [f"- {line}" for line in _worse_lines(result)]
    for title, headers, rows in sections(result):
        lines += ["", f"## {title}", "", "| " + " | ".join(headers) + " |",
                  "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    for note in result.notes:
        lines += ["", f"> {note}"]
    return "\n".join(lines) + "\n"


def to_csv(result: ReportResult) -> str:
    """The summary table as CSV (machine-readable values: USD, minutes, rates 0..1)."""
    return str(result.tables.summary.to_csv(index=False, lineterminator="\n"))


def to_json(result: ReportResult) -> str:
    """Every table as JSON (the ``--format json`` file; not the ``--json`` envelope)."""
    return json.dumps(result.to_dict(files=False), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:28px 0 8px}
ul.facts{color:#4a5163;font-size:13px;margin:0 0 12px;padding-left:18px}
figure{margin:8px 0 16px}figure img{width:100%;max-width:1100px;height:auto;display:block}
figcaption{font-size:12px;color:#4a5163}
table{border-collapse:collapse;font-size:13px;margin-bottom:8px}
th,td{border:1px solid #d5d9e2;padding:3px 8px}th{background:#f2f4f8;text-align:left}
td:first-child{white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}tr.all td{font-weight:600}
.worse{color:#b3261e;font-weight:600}
""".strip()


def to_html(result: ReportResult, charts: list[tuple[str, bytes]]) -> str:
    """A self-contained page: inline style, charts as ``data:`` PNGs, the tables; no URL anywhere."""
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{esc(_title(result))}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{esc(_title(result))}</h1>", '<ul class="facts">',
             *(f"<li>{esc(fact)}</li>" for fact in _facts(result)), "</ul>", '<section id="charts">']
    for title, png in charts:
        parts.append(f'<figure><img alt="{esc(title)}" src="data:image/png;base64,{b64encode(png).decode()}">'
                     f"<figcaption>{esc(title)}</figcaption></figure>")
    parts += ["</section>", "<h2>Worse than before</h2>", "<ul>"]
    worse = not result.tables.worse().empty
    parts += [f'<li class="{"worse" if worse else ""}">{esc(line)}</li>' for line in _worse_lines(result)]
    parts.append("</ul>")
    for title, headers, rows in sections(result):
        parts += [f"<h2>{esc(title)}</h2>", "<table><thead><tr>",
                  "".join(f"<th>{esc(h)}</th>" for h in headers), "</tr></thead><tbody>"]
        for row in rows:
            css = ' class="all"' if row[0] == "All" else ""
            cells = "".join(f"<td>{esc(c)}</td>" if i == 0 or not _numeric(c) else f'<td class="n">{esc(c)}</td>'
                            for i, c in enumerate(row))
            parts.append(f"<tr{css}>{cells}</tr>")
        parts.append("</tbody></table>")
    parts += [f"<p><em>{esc(note)}</em></p>" for note in result.notes]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


_NUMERIC = re.compile(r"^(—|[+-]?\$?[\d,]+(\.\d+)?( %| pp)?)$")


def _numeric(text: str) -> bool:
    """Right-align numbers, money, rates and changes."""
    return bool(_NUMERIC.match(text))


def chart_period(result: ReportResult) -> Any:
    """The charts' period: the span of local days, and which of its ends are partial days."""
    from datetime import time

    from workflows.report.charts import Period

    window = result.window
    days = window.days()
    partial = set()
    if window.start.astimezone(window.zone).time() != time(0):
        partial.add(days[0])
    if window.end.astimezone(window.zone).time() != time(0):
        partial.add(days[-1])
    span = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
    return Period(f"{span} ({window.tz})", frozenset(partial))


def render_files(result: ReportResult, formats: tuple[str, ...]) -> dict[str, bytes]:
    """Every requested file's name and bytes, rendered in memory (nothing is written here)."""
    from workflows.report.charts import chart_pngs, report_png

    base = f"report-{result.report_date}"
    title = GROUP_TITLE[result.group_by]
    period = chart_period(result)
    out: dict[str, bytes] = {}
    for fmt in formats:
        if fmt == "md":
            out[f"{base}.md"] = to_markdown(result).encode()
        elif fmt == "csv":
            out[f"{base}.csv"] = to_csv(result).encode()
        elif fmt == "json":
            out[f"{base}.json"] = to_json(result).encode()
        elif fmt == "html":
            out[f"{base}.html"] = to_html(result, chart_pngs(result.tables, title, period)).encode()
        elif fmt == "png":
            out[f"{base}.png"] = report_png(result.tables, title, period)
    return out


def write_all(folder: Path, contents: dict[str, bytes]) -> list[Path]:
    """Write every file via temporary siblings, then rename them all: all files appear, or none.

    No ``await`` happens in here, so a deadline (task cancellation) cannot stop it half way; an
    error (disk full) removes the temporary files and leaves the earlier report files untouched.
    """
    folder.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for name, data in contents.items():
            fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
            staged.append((name, Path(temp)))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o644)
        written = []
        for name, staged_path in staged:
            os.replace(staged_path, folder / name)
            written.append(folder / name)
        return written
    finally:
        for _, leftover in staged:
            leftover.unlink(missing_ok=True)


# ---------------------------------------------------------------- terminal
# How much each column of the terminal tables is worth when the terminal is narrow (higher stays longer).
_KEEP = {"group": 100, "calls": 95, "cost": 80, "cost/call": 90, "success": 88, "success Δ": 86, "cost/call Δ": 84,
         "flag": 70, "minutes": 50, "avg s": 30, "prev calls": 40, "prev cost/call": 35, "prev success": 36,
         "llm": 60, "stt": 50, "tts": 50, "vapi": 45, "transport": 40, "other": 30}


def _columns(headers: list[str]) -> list[Column]:
    columns = []
    for header in headers:
        if header == "group":
            columns.append(Column(header, TEXT, keep=_KEEP[header], min_width=20))
        elif header == "flag":
            columns.append(Column(header, WHOLE, keep=_KEEP[header]))
        else:
            columns.append(Column(header, NUMBER, keep=_KEEP.get(header, 50)))
    return columns


def render_terminal(result: ReportResult, console: Any) -> None:
    """The summary with changes, the cost breakdown and the ended-reason mix, fitted to the terminal."""
    from rich.text import Text

    console.print(Text(_title(result), style="bold"))
    for fact in _facts(result):
        console.print(Text(f"  {fact}"))
    for title, headers, rows in sections(result)[:2]:
        styles = None
        if headers[-1] == "flag":  # the reasons are listed under the tables ("worse: ..."), whole
            styles = ["red" if row[-1].startswith("WORSE") else None for row in rows]
            rows = [[*row[:-1], "WORSE" if row[-1].startswith("WORSE") else ""] for row in rows]
        bold = [i for i, row in enumerate(rows) if row[0] == "All"]
        console.print(fit_table(_columns(headers), rows, console.width, title=title, bold_rows=bold,
                                row_styles=styles))
    mix = result.tables.ended
    overall = mix[mix["key"] == ALL_KEY]
    columns = [Column("ended reason", TEXT, keep=100, min_width=20), Column("calls", NUMBER, keep=90),
               Column("share", NUMBER, keep=80)]
    rows = [[str(r["ended_reason"]), f"{r['calls']:,}", percent(r["share"])] for r in records(overall)]
    console.print(fit_table(columns, rows, console.width, title="Ended reasons (all groups)"))
    worse = not result.tables.worse().empty
    for line in _worse_lines(result):
        console.print(Text.assemble(("worse: ", "red") if worse else "", terminal_text(line)))
    for path in result.files:
        console.print(Text(f"wrote {path}"), soft_wrap=True)
    for note in result.notes:
        console.print(Text(f"note: {terminal_text(note)}", style="dim"))
