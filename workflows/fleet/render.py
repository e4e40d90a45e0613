"""The fleet table on the terminal, and the fleet summary as md/csv/html/json files.

Account names and error messages come from servers (untrusted text): table cells are never markup,
the HTML escapes everything, and terminal control characters are removed before printing.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path
from typing import Any

from workflows.fleet.result import FleetResult

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
FORMATS = ("md", "csv", "html", "json")


def _clean(text: Any) -> str:
    return _CONTROL.sub("", "" if text is None else str(text))


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "—"
    if column in ("failing_rate", "success_rate"):
        return f"{value * 100:.1f}%"
    if column == "cost":
        return f"${value:,.2f}"
    if column == "minutes":
        return f"{value:,.1f}"
    if column.endswith(("_pct", "_pp")):
        return f"{value:+.1f}"
    return f"{value:,}" if isinstance(value, int) else _clean(value)


def _tenants_shown(result: FleetResult) -> bool:
    return any(a.get("tenant") not in (None, a["account"]) for a in result.accounts)


def rows(result: FleetResult) -> list[list[str]]:
    """The table's rows: account, (tenant,) status, the workflow's figures, the error or the notes' codes."""
    tenants = _tenants_shown(result)
    out = []
    for entry in result.accounts:
        summary = entry.get("summary") or {}
        error = entry.get("error")
        problem = f"{error['code']}: {error['message']}" if error else ", ".join(entry.get("reasons") or [])
        tenant = [_clean(entry.get("tenant") or "—")] if tenants else []
        out.append([_clean(entry["account"]), *tenant, entry["status"],
                    *[_cell(c, summary.get(c)) for c in result.columns()], _clean(problem)])
    for name in result.pending:
        out.append([_clean(name), *([""] if tenants else []), "pending", *["" for _ in result.columns()], ""])
    return out


def header(result: FleetResult) -> list[str]:
    """Column titles of the table and of the files."""
    tenant = ["tenant"] if _tenants_shown(result) else []
    return ["account", *tenant, "status", *[c.replace("_", " ") for c in result.columns()], "error / why partial"]


def totals_line(result: FleetResult) -> str:
    """One line of fleet totals."""
    t = result.totals()
    parts = [f"{t['accounts']} accounts: {t['ok']} ok, {t['partial']} partial, {t['error']} failed"]
    if t.get("pending"):
        parts.append(f"{t['pending']} pending")
    if result.workflow == "qa-grade":
        rate = "—" if t.get("failing_rate") is None else f"{t['failing_rate'] * 100:.1f}%"
        parts.append(f"{t.get('graded', 0):,} calls graded, {t.get('failing', 0):,} failing ({rate}), "
                     f"{t.get('recordings', 0):,} recordings saved")
    else:
        parts.append(f"{t.get('calls', 0):,} calls, {t.get('minutes', 0):,.1f} minutes, ${t.get('cost', 0):,.2f}")
    return "; ".join(parts)


def render_terminal(result: FleetResult, console: Any) -> None:
    """The rich table, worst first, and the totals line."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"fleet {result.workflow} {result.run_id}")
    for title in header(result):
        table.add_column(title, overflow="fold")
    for row in rows(result):
        table.add_row(*[Text(cell) for cell in row])  # shown as written: never markup
    console.print(table)
    console.print(totals_line(result))


def render_files(result: FleetResult) -> dict[str, bytes]:
    """``fleet-<workflow>.<ext>`` for every format, rendered in memory."""
    stem = f"fleet-{result.workflow}"
    head, body = header(result), rows(result)
    md = [f"# Fleet {result.workflow} — run {result.run_id}", "", totals_line(result), "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(head)
    writer.writerows(body)
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n" for row in body)
    page = (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Fleet {html.escape(result.workflow)}"
            f"</title></head><body>\n<h1>Fleet {html.escape(result.workflow)} — run {html.escape(result.run_id)}</h1>\n"
            f"<p>{html.escape(totals_line(result))}</p>\n<table border=\"1\">\n<tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>\n{cells}</table>\n</body></html>\n")
    return {
        f"{stem}.md": ("\n".join(md) + "\n").encode(),
        f"{stem}.csv": buffer.getvalue().encode(),
        f"{stem}.html": page.encode(),
        f"{stem}.json": (json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n").encode(),
    }


def markdown_page(title: str, markdown: str) -> str:
    """A standalone HTML page of ``markdown`` (raw HTML in it, e.g. a server's names, is escaped, not kept)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>"
            f"<body>\n{body}</body></html>\n")


def write_files(result: FleetResult, out_dir: str) -> list[str]:
    """Write the fleet summary files into ``out_dir`` atomically; their paths."""
    from agent.files import write_atomically

    contents = render_files(result)
    result.files = [str(Path(out_dir) / name) for name in contents]  # the json file lists itself too
    contents = render_files(result)
    return [str(write_atomically(Path(out_dir) / name, data)) for name, data in contents.items()]
