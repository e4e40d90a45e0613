"""Renderings of a qa-grade result: a markdown report (``--out``) and a rich table (the terminal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text

from agent.display import ID, NUMBER, WHOLE, Column, byte_size, fit_table, terminal_text
from agent.terminal import printable
from workflows.qa.grade import QAResult


def _value(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def to_markdown(result: QAResult) -> str:
    """The report as markdown: summary, a table of calls, findings per failing call, recommendations."""
    data = result.to_dict()
    lines = [
        f"# QA report: {data['assistant']['name']}",
        "",
        f"- Assistant id: `{data['assistant']['id']}`",
        f"- Metric: {data['metric']} ({result.metric['kind']}), threshold {data['threshold']:g}",
        f"- Calls graded: {len(result.calls)}; failing: {len(result.failing)}",
        "",
        "| Call | Started | Value | Failed | Recording |",
        "|---|---|---|---|---|",
    ]
    for call in result.calls:
        recording = call["recording"]["path"] if call.get("recording") else "—"
        lines.append(f"| `{call['id']}` | {call.get('started_at') or ''} | {_value(call['value'])} | "
                     f"{'yes' if call['failed'] else 'no'} | {recording} |")
    for call in result.failing:
        lines += ["", f"## Call `{call['id']}` ({_value(call['value'])})", ""]
        if not call["findings"]:
            lines.append("_No verified findings._")
        for finding in call["findings"]:
            lines.append(f"- **{finding['at_seconds']:.1f}s** “{finding['quote']}”: {finding['problem']} "
                         f"Instead: {finding['recommendation']}")
        for note in call.get("notes") or []:
            lines.append(f"- _Note: {note}_")
    if result.recommendations:
        lines += ["", "## Recommendations for the assistant's prompt", ""]
        for rec in result.recommendations:
            lines.append(f"- {rec['text']} (based on {', '.join(f'`{c}`' for c in rec['based_on'])})")
    for error in result.errors:
        lines += ["", f"> {error['code']}: {error['message']}"]
    for note in result.notes:
        lines += ["", f"> {note}"]
    return printable("\n".join(lines) + "\n")  # server text (names, quotes) without terminal controls


CALL_COLUMNS = (
    Column("call", ID, keep=100),
    Column("started (UTC)", WHOLE, keep=70),
    Column("value", NUMBER, keep=90),
    Column("failed", WHOLE, keep=80),
    Column("recording", WHOLE, keep=30),
)


def render_terminal(result: QAResult, console: Any) -> None:
    """A table of the calls that fits the terminal, then the findings of failing calls."""
    rows, styles = [], []
    for call in result.calls:
        recording = Path(call["recording"]["path"]).name if call.get("recording") else "—"
        rows.append([call["id"], str(call.get("started_at") or "").replace("T", " ")[:19], _value(call["value"]),
                     "yes" if call["failed"] else "no", recording])
        styles.append("red" if call["failed"] else None)
    notes = []
    if result.missing_values:
        notes.append(f"{result.missing_values} of {len(result.calls)} calls have no {result.metric['name']} "
                     "value (—): not graded")
    folders = sorted({str(Path(c["recording"]["path"]).parent) for c in result.calls if c.get("recording")})
    if folders:
        notes.append(f"recording files are in {', '.join(f + '/' for f in folders)}")
    title = f"{result.assistant['name']}: {result.metric['name']} (threshold {result.threshold:g})"
    console.print(fit_table(CALL_COLUMNS, rows, console.width, title=title, row_styles=styles, notes=notes))
    skipped = any(e["code"] == "analysis_skipped" for e in result.errors)
    for call in result.failing:
        console.print(Text.assemble("\n", (call["id"], "bold"), f" ({_value(call['value'])})"))
        if call.get("recording"):
            rec = call["recording"]
            length = f", {rec['duration_seconds']:.0f} s" if rec.get("duration_seconds") else ""
            where, size = f"  recording: {rec['path']}", f"({byte_size(rec['bytes'])}{length})"
            fits = len(where) + 1 + len(size) <= console.width
            console.print(Text(f"{where} {size}" if fits else f"{where}\n    {size}"), soft_wrap=True)
        if not call["findings"] and skipped:
            console.print("  not analysed: no model configured", style="dim")
        for finding in call["findings"]:
            console.print(Text(f"  {finding['at_seconds']:.1f}s “{terminal_text(finding['quote'])}”\n"
                               f"    {terminal_text(finding['problem'])}\n"
                               f"    → {terminal_text(finding['recommendation'])}"))
        for note in call.get("notes") or []:
            console.print(Text(f"  {terminal_text(note)}", style="dim"))
    if result.recommendations:
        console.print("\nRecommendations", style="bold")
        for rec in result.recommendations:
            console.print(Text(f"  • {terminal_text(rec['text'])}"))
    for note in result.notes:
        console.print(Text(terminal_text(note), style="dim"))
    for path in result.files:
        console.print(Text(f"wrote {path}"), soft_wrap=True)
