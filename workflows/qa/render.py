"""Renderings of a qa-grade result: a markdown report (``--out``) and a rich table (the terminal)."""

from __future__ import annotations

from typing import Any

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


def render_terminal(result: QAResult, console: Any) -> None:
    """A rich table of the calls, then the findings of failing calls."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{result.assistant['name']}: {result.metric['name']} (threshold {result.threshold:g})")
    for column in ("call", "started", "value", "failed", "recording"):
        table.add_column(column)
    for call in result.calls:
        recording = call["recording"]["path"] if call.get("recording") else "—"
        table.add_row(call["id"][:8], str(call.get("started_at") or "")[:19], _value(call["value"]),
                      Text("yes", style="red") if call["failed"] else "no", recording)
    console.print(table)
    skipped = any(e["code"] == "analysis_skipped" for e in result.errors)
    for call in result.failing:
        console.print(Text.assemble("\n", (call["id"], "bold"), f" ({_value(call['value'])})"))
        if call.get("recording"):
            rec = call["recording"]
            length = f", {rec['duration_seconds']:.0f} s" if rec.get("duration_seconds") else ""
            console.print(f"  recording: {rec['path']} ({rec['bytes']:,} bytes{length})")
        if not call["findings"] and skipped:
            console.print("  not analysed: no model configured", style="dim")
        for finding in call["findings"]:
            console.print(f"  {finding['at_seconds']:.1f}s “{finding['quote']}”\n    {finding['problem']}\n"
                          f"    → {finding['recommendation']}")
        for note in call.get("notes") or []:
            console.print(f"  {note}", style="dim")
    if result.recommendations:
        console.print("\nRecommendations", style="bold")
        for rec in result.recommendations:
            console.print(f"  • {rec['text']}")
    for note in result.notes:
        console.print(note, style="dim")
