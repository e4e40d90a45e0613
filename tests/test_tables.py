"""Issue 14 item 13: every table stays readable at 80, 100 and 160 columns.

Each command's renderer draws into rich consoles of those widths; the checks are on the text a
person sees: no line wider than the terminal, every id whole or a unique prefix of at least 8
characters (what every command accepts), no number cut, and text cut only after a whole word,
with an ellipsis.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console

from agent.config import Settings
from agent.display import ELLIPSIS, TEXT, Column, clip_words, fit_table, short_ids, terminal_text
from cli.runner import CommandContext, Outcome

WIDTHS = (80, 100, 160)
LONG_REASON = "pipeline-error-eleven-labs-voice-not-found-in-the-account"


# ---------------------------------------------------------------- what a person sees
def body_cells(text: str) -> list[list[str]]:
    """The cells of every body row of every table in ``text``."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


def check_readable(text: str, width: int, *, ids: list[str] = (), originals: list[str] = ()) -> None:  # type: ignore[assignment]
    """The rules of item 13 on rendered text (see the module docstring)."""
    for line in text.splitlines():
        assert cell_len(line) <= width, f"line wider than {width}: {line!r}"
    cells = [cell for row in body_cells(text) for cell in row]
    for value in ids:
        shown = [c for c in cells if value.startswith(c) and (len(c) >= 8 or re.search(r"[a-f-]", c))]
        assert shown, f"id {value} is not shown"
        assert all(len(c) >= 8 for c in shown), f"id {value} cut to {shown}"
        others = [o for o in ids if o != value]
        assert all(not o.startswith(shown[0]) for o in others), f"prefix {shown[0]} is not unique"
    assert not re.search(r"[\d$%]" + ELLIPSIS, text), "a number was cut"
    for cell in cells:
        assert not (cell.endswith(ELLIPSIS) and any(v.startswith(cell[:-1]) for v in ids)), f"id cut: {cell}"
    for cell in cells:
        if cell.endswith(ELLIPSIS):
            kept = cell[:-1]
            source = [o for o in originals if terminal_text(o).startswith(kept)]
            assert source, f"cut cell {cell!r} is not the start of any original text"
            after = source[0][len(kept):]
            assert kept[-1:] in " -/_" or after[:1] in (" ", "-", "/", "_", ","), f"cut inside a word: {cell!r}"


@pytest.fixture
def at_width(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    """Run a CLI renderer with ``$COLUMNS`` set (what ``agent.display.console`` reads off a terminal)."""

    def render(renderer: Callable[[Outcome, CommandContext], None], result: Any, width: int) -> str:
        monkeypatch.setenv("COLUMNS", str(width))
        capsys.readouterr()
        renderer(Outcome(result=result), CommandContext(workflow="test", settings=Settings()))
        return capsys.readouterr().out

    return render


def uuids(count: int, *, shared: str = "") -> list[str]:
    """Random UUIDs; ``shared`` starts every one (to force longer unique prefixes)."""
    return [shared + str(uuid.uuid4())[len(shared):] for _ in range(count)]


# ---------------------------------------------------------------- the helpers
def test_clip_words_cuts_after_a_word_and_strips_control_characters() -> None:
    assert clip_words("the quick brown fox jumps", 12) == "the quick…"
    assert clip_words("customer-ended-call", 12) == "customer-…"
    assert clip_words("short", 12) == "short"
    assert clip_words("Evil\x1b[2J\x1b]0;PWNED\x07 name\u202e", 40) == "Evil name"
    assert short_ids(["abcdef0123", "abcdef0199", "ffff000011"]) == {
        "abcdef0123": "abcdef012", "abcdef0199": "abcdef019", "ffff000011": "ffff0000"}


@pytest.mark.parametrize("width", WIDTHS)
def test_a_table_too_wide_drops_low_value_columns_and_says_so(width: int) -> None:
    columns = [Column("id", "id", keep=100), Column("note", TEXT, keep=60, min_width=12),
               Column("extra", "whole", keep=10), Column("cost", "number", keep=90)]
    ids = uuids(5, shared="9b9d")
    rows = [[i, "a long note about what happened on this call and why", "x" * 50, "$1,069.7880"] for i in ids]
    out = Console(width=width, file=io.StringIO(), color_system=None)
    out.print(fit_table(columns, rows, width, title="wide"))
    text = out.file.getvalue()  # type: ignore[attr-defined]
    check_readable(text, width, ids=ids, originals=[rows[0][1]])
    assert ("hidden at this width: extra" in text) == (width == 80)  # 100: ids shortened, the note cut
    assert text.count("$1,069.7880") == 5


# ---------------------------------------------------------------- every command's table
def call_rows(ids: list[str]) -> list[dict[str, Any]]:
    return [{"id": cid, "status": "ended", "endedReason": LONG_REASON if n % 2 else "customer-ended-call",
             "startedAt": "2026-11-25T21:22:26.123Z", "endedAt": None, "cost": 1234.5678 * n}
            for n, cid in enumerate(ids)]


@pytest.mark.parametrize("width", WIDTHS)
def test_calls_list(width: int, at_width: Callable[..., str]) -> None:
    from cli.commands.calls import calls_list_render

    ids = uuids(6, shared="1ac0")
    text = at_width(calls_list_render, {"assistant": {"id": "a", "name": "Support"}, "calls": call_rows(ids)}, width)
    check_readable(text, width, ids=ids, originals=[LONG_REASON, "customer-ended-call"])
    assert "ended reason" in text and "2026-11-25 21:22:26" in text and "$6,172.8390" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_tools_list(width: int, at_width: Callable[..., str]) -> None:
    from cli.commands.tools import tools_list_render

    description = "List all calls of the account, newest first, with filters on the assistant and the creation time"
    tools = [{"name": f"list_all_vapi_observability_scorecards_{n}", "server": "sandbox", "access": "read",
              "description": description} for n in range(4)]
    text = at_width(tools_list_render, {"tools": tools, "count": 4}, width)
    check_readable(text, width, originals=[description])
    assert all(t["name"] in text for t in tools)  # tool names are never cut


@pytest.mark.parametrize("width", WIDTHS)
def test_logs(width: int, at_width: Callable[..., str]) -> None:
    from cli.commands.logs import logs_render

    summary = "qa-grade --assistant 'Support Legacy' --last 50 --recordings all --out reports/"
    ids = [u.replace("-", "")[:8] for u in uuids(5)]
    runs = [{"id": i, "started": "2026-12-05 19:41:13Z", "workflow": "campaign.create", "status": "error (3)",
             "duration": "12.4s", "tools": "17", "cost": "$0.0123", "summary": summary} for i in ids]
    text = at_width(logs_render, {"runs": runs}, width)
    check_readable(text, width, ids=ids, originals=[summary])
    assert "error (3)" in text and "qa-grade --assistant" in text
    assert ("campaign.create" in text) == (width > 80)  # at 80 the summary (the command) says it


@pytest.mark.parametrize("width", WIDTHS)
def test_campaign_and_schedule_lists(width: int, at_width: Callable[..., str]) -> None:
    from cli.commands.campaign import campaign_list_render
    from cli.commands.schedule import schedule_list_render

    name = "Renewals for the first quarter of the year, west coast customers"
    ids = uuids(3)
    campaigns = [{"id": i, "name": name, "status": "in-progress", "created_at": "2026-12-01T08:00:00.000Z",
                  "callsCounterEnded": 1234, "customers": 5000} for i in ids]
    text = at_width(campaign_list_render, {"campaigns": campaigns}, width)
    check_readable(text, width, ids=ids, originals=[name])
    assert "1,234" in text and "5,000" in text

    command = "report --since 7d --tz Europe/Berlin --group-by endedReason --out /var/reports/weekly"
    schedules = [{"name": "weekly-cost", "cron": "0 8 * * 1", "command": command,
                  "next_run": "2026-12-07T08:00:00+00:00", "in_crontab": True, "local_only": False}]
    text = at_width(schedule_list_render, {"schedules": schedules}, width)
    check_readable(text, width, originals=[command])
    assert "weekly-cost" in text and "0 8 * * 1" in text and "2026-12-07 08:00" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_qa_grade(width: int) -> None:
    from workflows.qa.grade import QAResult
    from workflows.qa.render import render_terminal

    ids = uuids(10, shared="80ae")
    calls = [{"id": cid, "started_at": "2026-11-25T21:22:26.000Z", "value": None if n == 3 else float(n * 10),
              "failed": n < 3, "findings": [], "notes": [],
              "recording": {"path": f"recordings/{cid}-mono.wav", "bytes": 1069788, "sha256": "0" * 64,
                            "duration_seconds": 50.0} if n < 3 else None} for n, cid in enumerate(ids)]
    result = QAResult(assistant={"id": "a", "name": "Support"}, metric={"kind": "scorecard", "id": "s",
                      "name": "Support QA"}, threshold=80, calls=calls, recommendations=[])
    out = Console(width=width, file=io.StringIO(), color_system=None)
    render_terminal(result, out)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    check_readable(text, width, ids=ids)
    assert "1,069,788 bytes" in text and "1 of 10 calls have no Support QA value" in text


@pytest.fixture(scope="module")
def report_result() -> Iterator[Any]:
    import asyncio

    from agent.runtime import open_runtime
    from sandbox.app import Sandbox
    from sandbox.world.config import SandboxConfig
    from workflows.report import pipeline as report

    async def build() -> Any:
        async with open_runtime(Settings(), sandbox=Sandbox(SandboxConfig(calls=400, seed=7)), store=None) as rt:
            return await report.run(rt, report.ReportParams(since="7d", as_of="2026-12-01T12:00:00Z"))

    yield asyncio.run(build())


@pytest.mark.parametrize("width", WIDTHS)
def test_report(width: int, report_result: Any) -> None:
    from workflows.report.render import render_terminal

    out = Console(width=width, file=io.StringIO(), color_system=None)
    render_terminal(report_result, out)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    groups = [str(r["group"]) for r in report_result.tables.summary.to_dict("records")]
    check_readable(text, width, originals=groups)
    for header in ("group", "calls", "cost/call", "success", "success Δ", "cost/call Δ"):
        assert header in text  # the valuable columns survive at 80
    assert "WORSE:" not in text  # the flag is one word in the table; the reasons follow it whole
    if width == 160:
        assert "hidden at this width" not in text.split("Cost breakdown")[0]


def test_squad_dry_run_is_a_tree_not_json() -> None:
    from cli.commands.squad import plan_tree

    body = {"name": "Triage", "members": [
        {"assistantId": "a1", "assistantDestinations": [
            {"type": "assistant", "assistantName": "Technical Fallback", "description": "when it is technical"}]},
        {"assistantId": "b2"}]}
    out = Console(width=80, file=io.StringIO(), color_system=None)
    out.print(plan_tree(body, {"a1": "Support", "b2": "Technical Fallback"}))
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "{" not in text and "Support (a1)" in text
    assert "└── → transfers to Technical Fallback: when it is technical" in text


def test_report_files_are_named_after_the_as_of_day_and_charts_carry_the_period(tmp_path: Path,
                                                                                report_result: Any) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from workflows.report.charts import draw_cost_per_day, draw_ended_mix
    from workflows.report.render import chart_period, render_files

    assert report_result.window.days()[-1] == "2026-12-01" and report_result.report_date == "2026-12-01"
    assert list(render_files(report_result, ("md",))) == ["report-2026-12-01.md"]
    period = chart_period(report_result)
    assert period.partial == {"2026-11-24", "2026-12-01"}  # the window starts and ends at noon
    figure = Figure()
    FigureCanvasAgg(figure)
    cost, mix = figure.subplots(2, 1)
    draw_cost_per_day(cost, report_result.tables, "assistant", period)
    draw_ended_mix(mix, report_result.tables, "assistant", period)
    assert "2026-11-24 to 2026-12-01 (UTC)" in cost.get_title() and "partial day" in cost.get_title()
    assert "2026-11-24 to 2026-12-01 (UTC)" in mix.get_title()
    labels = [t.get_text() for t in cost.get_xticklabels()]
    assert labels[0] == "11-24*" and labels[-1] == "12-01*"
    hatched = {round(p.get_x() + p.get_width() / 2) for p in cost.patches if p.get_hatch()}
    assert hatched == {0, len(report_result.window.days()) - 1}
