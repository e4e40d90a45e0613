"""`vapi-agent report` on the sandbox: numbers, both sources, every format, reproducibility, the chat tool.

The reference numbers are computed here, independently, with pandas over the sandbox's raw Call JSON
(``workspace.all_calls_raw()``): no code is shared with sandbox/rest/analytics.py or workflows/report*.py.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from agent.config import Settings
from agent.errors import ConfigError, MissingCapability
from agent.runtime import open_runtime
from sandbox.app import Sandbox
from sandbox.world.config import SandboxConfig
from workflows import report

ANCHOR = datetime(2025, 4, 6, 15, 30, tzinfo=UTC)  # the 7-day window spans Europe's DST switch (30 March)
AS_OF = "2025-04-06T15:30:00Z"
PARTS = ("llm", "stt", "tts", "vapi", "transport")


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    """One small sandbox with a fixed anchor for the whole module (reports only read)."""
    return Sandbox(SandboxConfig(calls=400, seed=7, anchor=ANCHOR))


async def _report(sb: Sandbox, **params: Any) -> report.ReportResult:
    async with open_runtime(Settings(), sandbox=sb, store=None) as rt:
        return await report.run(rt, report.ReportParams(**params))


# ---------------------------------------------------------------- the independent reference
def reference_calls(sb: Sandbox) -> pd.DataFrame:
    """One row per call, read straight from its JSON."""
    rows = []
    for call in sb.workspace.all_calls_raw():
        breakdown = call.get("costBreakdown") or {}
        rows.append({
            "created": call["createdAt"], "assistant": call.get("assistantId"), "reason": call.get("endedReason"),
            "success": (call.get("analysis") or {}).get("successEvaluation"), "cost": call.get("cost") or 0.0,
            **{part: breakdown.get(part) or 0.0 for part in PARTS},
            "started": call.get("startedAt"), "ended": call.get("endedAt"),
        })
    frame = pd.DataFrame(rows)
    for column in ("created", "started", "ended"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    frame["seconds"] = (frame["ended"] - frame["started"]).dt.total_seconds()
    return frame


def reference_summary(calls: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Per assistant: calls, minutes, cost and parts, average seconds, success rate."""
    window = calls[(calls["created"] >= pd.Timestamp(start)) & (calls["created"] < pd.Timestamp(end))]
    groups = window.groupby("assistant")
    out = pd.DataFrame({
        "calls": groups.size(), "minutes": groups["seconds"].sum() / 60, "cost": groups["cost"].sum(),
        **{f"cost_{p}": groups[p].sum() for p in PARTS}, "avg_duration_s": groups["seconds"].mean(),
        "passed": groups["success"].agg(lambda s: int((s == "true").sum())),
        "evaluated": groups["success"].agg(lambda s: int(s.isin(["true", "false"]).sum())),
    })
    out["success_rate"] = out["passed"] / out["evaluated"]
    out["cost_per_call"] = out["cost"] / out["calls"]
    return out


def _summary_by_key(result: report.ReportResult) -> pd.DataFrame:
    return result.tables.summary.set_index("key")


@pytest.mark.parametrize("source", ["calls", "analytics"])
async def test_numbers_equal_an_independent_pandas_computation(sandbox: Sandbox, source: str) -> None:
    tz = "Europe/Berlin"
    result = await _report(sandbox, since="7d", as_of=AS_OF, tz=tz, source=source, min_calls=5)
    assert result.source == source
    calls = reference_calls(sandbox)
    start, previous_start = ANCHOR - timedelta(days=7), ANCHOR - timedelta(days=14)
    now, before = reference_summary(calls, start, ANCHOR), reference_summary(calls, previous_start, start)
    got = _summary_by_key(result)
    assert set(got.index) - {"*"} == set(now.index) | set(before.index)
    for key, expected in now.iterrows():
        row = got.loc[key]
        assert row["calls"] == expected["calls"]
        for column in ("minutes", "cost", *(f"cost_{p}" for p in PARTS), "avg_duration_s", "success_rate",
                       "cost_per_call"):
            assert row[column] == pytest.approx(expected[column], abs=1e-3), (key, column)
        assert row["evaluated"] == expected["evaluated"]
        prior = before.loc[key]
        assert row["prev_calls"] == prior["calls"]
        assert row["prev_cost_per_call"] == pytest.approx(prior["cost_per_call"], abs=1e-6)
        change_pp = (expected["success_rate"] - prior["success_rate"]) * 100
        change_pct = (expected["cost_per_call"] / prior["cost_per_call"] - 1) * 100
        assert row["success_change_pp"] == pytest.approx(change_pp, abs=1e-3)
        assert row["cost_per_call_change_pct"] == pytest.approx(change_pct, abs=1e-3)
        worse = expected["calls"] >= 5 and prior["calls"] >= 5 and (change_pp < -5 or change_pct > 10)
        assert bool(row["worse"]) == worse, key
    flagged = {k for k in now.index if bool(got.loc[k, "worse"])}
    assert flagged, "the fixed dataset has assistants that got worse: the flag must show them"
    total = got.loc["*"]
    assert total["calls"] == now["calls"].sum()
    assert total["cost"] == pytest.approx(now["cost"].sum(), abs=1e-6)

    # ended-reason mix per assistant
    window = calls[(calls["created"] >= pd.Timestamp(start)) & (calls["created"] < pd.Timestamp(ANCHOR))]
    mix = window.assign(reason=window["reason"].fillna("(not ended)")).groupby(["assistant", "reason"]).size()
    ended = result.tables.ended
    ended = ended[ended["key"] != "*"].set_index(["key", "ended_reason"])["calls"]
    assert ended.sort_index().to_dict() == mix.sort_index().to_dict()

    # cost per local day and assistant
    local_day = window["created"].dt.tz_convert(tz).dt.strftime("%Y-%m-%d")
    per_day = window.assign(day=local_day).groupby(["day", "assistant"])["cost"].sum()
    daily = result.tables.daily
    daily = daily[daily["calls"] > 0].set_index(["day", "key"])["cost"]
    assert list(daily.sort_index().index) == list(per_day.sort_index().index)
    assert daily.sort_index().to_numpy() == pytest.approx(per_day.sort_index().to_numpy(), abs=1e-6)
    assert set(result.tables.daily["day"]) == {f"2025-03-{d}" for d in range(30, 32)} | {
        f"2025-04-0{d}" for d in range(1, 7)}


@pytest.mark.parametrize(("group_by", "tz", "window"), [
    ("assistant", "Europe/Berlin", {"since": "7d"}),
    ("endedReason", "UTC", {"since": "3d"}),
    ("assistant", "America/New_York", {"start": "2025-03-10", "end": "2025-03-24"}),
])
async def test_analytics_and_computed_paths_give_the_same_tables(sandbox: Sandbox, group_by: str, tz: str,
                                                                  window: dict[str, str]) -> None:
    sandbox.log.clear()
    analytics = await _report(sandbox, as_of=AS_OF, tz=tz, group_by=group_by, source="analytics", **window)
    tools = {e.tool for e in sandbox.log.entries("mcp") if e.tool}
    assert "create_a_vapi_analytics" in tools and "list_all_vapi_calls" not in tools
    sandbox.log.clear()
    computed = await _report(sandbox, as_of=AS_OF, tz=tz, group_by=group_by, source="calls", **window)
    tools = {e.tool for e in sandbox.log.entries("mcp") if e.tool}
    assert "list_all_vapi_calls" in tools and "create_a_vapi_analytics" not in tools
    assert analytics.tables.summary["calls"].sum() > 0
    for name in ("summary", "daily", "ended", "success"):
        pd.testing.assert_frame_equal(getattr(analytics.tables, name), getattr(computed.tables, name),
                                      check_exact=True, obj=name)
    # auto prefers the analytics tool when the grouping allows
    assert (await _report(sandbox, as_of=AS_OF, group_by=group_by)).source == "analytics"


async def test_squads_are_computed_from_calls(make_sandbox: Any) -> None:
    sb = make_sandbox(calls=60)
    squad = sb.workspace.list_objects("squads")[0]
    phone = sb.workspace.list_objects("phone_numbers")[0]
    sb.workspace.create_call({"squadId": squad["id"], "phoneNumberId": phone["id"],
                              "customer": {"number": "+14155550100"}})
    result = await _report(sb, since="7d", group_by="squad")
    assert result.source == "calls" and "analytics cannot group by squad" in result.notes[0]
    rows = result.tables.summary.set_index("group")
    assert rows.loc[squad["name"], "calls"] == 1
    assert rows.loc["(no squad)", "calls"] == rows.loc["All", "calls"] - 1
    with pytest.raises(ConfigError, match="cannot group by squad"):
        await _report(sb, group_by="squad", source="analytics")


async def test_without_the_analytics_tool_it_computes(make_sandbox: Any) -> None:
    sb = make_sandbox(calls=60, methods=("read",))  # analytics is a Truto "custom" method
    result = await _report(sb, since="7d")
    assert result.source == "calls" and "no analytics tool" in result.notes[0]
    with pytest.raises(MissingCapability):
        await _report(sb, since="7d", source="analytics")


async def test_auto_falls_back_to_the_calls_when_analytics_fails(sandbox: Sandbox,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.errors import UpstreamError
    from workflows.report import data as report_data

    real = report_data.analytics_query

    def rejected(name: str, window: Any, group_by: str) -> dict[str, Any]:
        query = real(name, window, group_by)
        query["operations"].append({"operation": "history", "column": "cost", "alias": "h"})  # the sandbox: 400
        return query

    expected = await _report(sandbox, since="7d", as_of=AS_OF, source="calls")
    monkeypatch.setattr(report_data, "analytics_query", rejected)
    result = await _report(sandbox, since="7d", as_of=AS_OF)
    assert result.source == "calls" and "analytics failed" in result.notes[0]
    pd.testing.assert_frame_equal(result.tables.summary, expected.tables.summary)
    with pytest.raises(UpstreamError):
        await _report(sandbox, since="7d", as_of=AS_OF, source="analytics")


def test_time_slices_cover_the_window_once_at_whole_seconds() -> None:
    from workflows.report.data import time_slices

    start = datetime(2025, 3, 30, 0, 0, 0, 250000, tzinfo=UTC)
    for length in (timedelta(days=7), timedelta(seconds=3), timedelta(seconds=1), timedelta(milliseconds=500)):
        slices = time_slices(start, start + length)
        assert slices[0][0] == start and slices[-1][1] == start + length
        assert all(a[1] == b[0] for a, b in itertools.pairwise(slices))  # contiguous: no gap, no overlap
        assert all(lo < hi for lo, hi in slices)
        assert all((hi - start).total_seconds() % 1 == 0 for _lo, hi in slices[:-1])
    assert len(time_slices(start, start + timedelta(days=7))) == 2
    assert len(time_slices(start, start + timedelta(milliseconds=500))) == 1


async def test_a_failing_slice_fails_the_report_with_its_error_and_stops_the_others(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """The slices are read at once; one failing (here the newest half) is the report's error, not a group of
    errors, and the other slices stop with it (nothing keeps paging after the report failed)."""
    from agent.errors import UpstreamError
    from agent.vapi import VapiFacade

    real = VapiFacade.iter_call_pages
    listed: list[str] = []
    finished: list[str] = []

    async def failing(self: VapiFacade, *, created_at_ge: Any = None, created_at_lt: Any = None) -> Any:
        listed.append(str(created_at_ge))
        if created_at_lt == ANCHOR:
            raise UpstreamError("calls.list answered 502")
        async for page in real(self, created_at_ge=created_at_ge, created_at_lt=created_at_lt):
            yield page
        finished.append(str(created_at_ge))

    monkeypatch.setattr(VapiFacade, "iter_call_pages", failing)
    with pytest.raises(UpstreamError, match="502"):
        await _report(sandbox, since="7d", as_of=AS_OF, source="calls")
    assert len(listed) == 4  # each period in halves, all four started
    assert len(finished) < 3


# ---------------------------------------------------------------- files
class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        self.tables += tag == "table"


def _png_ok(data: bytes) -> tuple[int, int]:
    from PIL import Image

    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()
    assert "Software" not in image.info  # no run-dependent metadata
    return image.size


async def test_every_format_is_written_and_reads_back(sandbox: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    result = await _report(sandbox, since="7d", as_of=AS_OF, tz="Europe/Berlin", out=str(out))
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"report-2025-04-06.{ext}" for ext in ("csv", "html", "json", "md", "png")]
    assert sorted(Path(f).name for f in result.files) == names
    summary = result.tables.summary

    csv = pd.read_csv(out / "report-2025-04-06.csv", keep_default_na=False, na_values=[""])
    assert list(csv.columns) == list(summary.columns)
    pd.testing.assert_frame_equal(csv[["key", "calls", "prev_calls"]], summary[["key", "calls", "prev_calls"]])
    for column in ("cost", "minutes", "success_rate", "cost_per_call_change_pct"):
        assert csv[column].to_numpy() == pytest.approx(summary[column].to_numpy(), nan_ok=True)

    data = json.loads((out / "report-2025-04-06.json").read_text())
    assert "files" not in data  # the file does not depend on where it was written
    assert data == {k: v for k, v in result.to_dict().items() if k != "files"}
    assert data["period"] == {"start": "2025-03-30T15:30:00.000Z", "end": AS_OF.replace("Z", ".000Z"),
                              "tz": "Europe/Berlin"}
    assert [r["calls"] for r in data["summary"]] == summary["calls"].tolist()
    assert len(data["daily"]) == len(result.tables.daily) and data["ended_reasons"] and data["success_evaluation"]

    markdown = (out / "report-2025-04-06.md").read_text()
    for row in summary.itertuples():
        line = next(x for x in markdown.splitlines() if x.startswith(f"| {row.group} | {row.calls:,} |"))
        assert f"${row.cost:,.4f}" in line
    assert "## Ended-reason mix" in markdown and "## Worse than before" in markdown

    page = (out / "report-2025-04-06.html").read_text()
    assert not re.search(r"(?i)\b(https?|ftp|wss?):", page), "the page must reference no URL"
    assert not re.search(r"(?i)url\(|@import", page)
    for attribute in re.findall(r"(?i)\b(?:src|href|srcset|action|poster)\s*=\s*[\"']?([^\"' >]*)", page):
        assert attribute.startswith("data:"), attribute
    parser = _Page()
    parser.feed(page)
    assert parser.tables == 5 and len(parser.images) == 2
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        width, height = _png_ok(base64.b64decode(src.split(",", 1)[1]))
        assert width >= 800 and height >= 200
    for row in summary.itertuples():
        assert f"<td>{row.group}</td>" in page

    width, height = _png_ok((out / "report-2025-04-06.png").read_bytes())
    assert width == 1100 and height > 500


async def test_as_of_reproduces_every_file_byte_for_byte(tmp_path: Path) -> None:
    runs = []
    for name in ("first", "second"):
        # a fresh sandbox and runtime each time: nothing is shared between the runs but the data
        sb = Sandbox(SandboxConfig(calls=400, seed=7, anchor=ANCHOR))
        result = await _report(sb, since="7d", as_of=AS_OF, tz="Europe/Berlin", out=str(tmp_path / name))
        runs.append({Path(f).name: Path(f).read_bytes() for f in result.files})
    assert len(runs[0]) == 5 and runs[0].keys() == runs[1].keys()
    for name, data in runs[0].items():
        assert data == runs[1][name], f"{name} differs between two runs with the same --as-of"
    later = await _report(Sandbox(SandboxConfig(calls=400, seed=7, anchor=ANCHOR)), since="7d",
                          as_of="2025-04-06T15:31:00Z", tz="Europe/Berlin", formats="json", out=str(tmp_path / "x"))
    assert Path(later.files[0]).read_bytes() != runs[0]["report-2025-04-06.json"]  # as-of is in the file


def test_write_all_leaves_no_partial_file(tmp_path: Path) -> None:
    from workflows.report.render import write_all

    (tmp_path / "report-2025-04-05.md").write_text("yesterday's report\n")
    with pytest.raises(TypeError):
        write_all(tmp_path, {"report-2025-04-06.md": b"# ok\n", "report-2025-04-06.csv": None})  # type: ignore[dict-item]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report-2025-04-05.md"]
    written = write_all(tmp_path, {"report-2025-04-06.md": b"# ok\n"})
    assert written == [tmp_path / "report-2025-04-06.md"] and written[0].read_bytes() == b"# ok\n"


# ---------------------------------------------------------------- flags
@pytest.mark.parametrize(("params", "message"), [
    ({"since": "7d", "start": "2025-01-01"}, "cannot be combined"),
    ({"start": "2025-02-01", "end": "2025-01-01"}, "window is empty"),
    ({"since": "soon"}, "is not a duration"),
    ({"tz": "Mars/Olympus"}, "not an IANA time zone"),
    ({"group_by": "customer"}, "--group-by"),
    ({"formats": "md,pdf"}, "unknown --format pdf"),
    ({"source": "magic"}, "--source"),
    ({"as_of": "yesterday"}, "not an ISO 8601"),
])
async def test_bad_flags_are_config_errors(sandbox: Sandbox, params: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        await _report(sandbox, **params)


def test_formats_and_out() -> None:
    assert report.ReportParams(out="r").output_formats() == ("md", "csv", "html", "json", "png")
    assert report.ReportParams(formats="png, MD").output_formats() == ("md", "png")
    assert report.ReportParams(formats=["json", "csv,md"]).output_formats() == ("md", "csv", "json")
    assert report.ReportParams().output_formats() == ()  # the terminal only


def test_window_resolution() -> None:
    from workflows.report.window import resolve_window

    as_of = datetime(2025, 4, 6, 15, 30, tzinfo=UTC)
    window = resolve_window(since="7d", start=None, end=None, tz="UTC", as_of=as_of)
    assert (window.start, window.end) == (as_of - timedelta(days=7), as_of)
    assert window.previous().end == window.start and window.previous().length == window.length
    berlin = resolve_window(since=None, start="2025-03-29", end="2025-03-31", tz="Europe/Berlin", as_of=as_of)
    # local midnights: 23:00Z before the DST switch, 22:00Z after it
    assert berlin.start == datetime(2025, 3, 28, 23, tzinfo=UTC) and berlin.end == datetime(2025, 3, 30, 22, tzinfo=UTC)
    assert berlin.days() == ["2025-03-29", "2025-03-30"]
    assert resolve_window(since=None, start="2025-04-01T00:00:00Z", end=None, tz="UTC", as_of=as_of).end == as_of


# ---------------------------------------------------------------- the command and the chat tool
def _command_envelope(sb: Sandbox, params: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    from cli.commands.report import report_body, report_render
    from cli.runner import run_command

    full = {"since": None, "start": None, "end": None, "tz": "UTC", "group_by": "assistant", "formats": None,
            "out": None, "as_of": None, "source": "auto", **params}
    code = run_command("report", Settings(json=True), report_body(full, sandbox=sb), report_render)
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_command_envelope_is_the_report(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    envelope = _command_envelope(sandbox, {"since": "7d", "as_of": AS_OF}, capsys)
    assert envelope["status"] == "ok" and envelope["workflow"] == "report"
    result = envelope["result"]
    assert result["source"] == "analytics" and result["as_of"] == "2025-04-06T15:30:00.000Z"
    assert {"summary", "daily", "ended_reasons", "success_evaluation", "files"} <= set(result)
    assert result["summary"][-1]["group"] == "All"


def test_ask_with_the_report_tool_returns_the_commands_table(sandbox: Sandbox,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from agent.model import ModelTurn, ToolCall
    from agent.model.scripted import ScriptedModel
    from cli.commands.ask import AskOptions, ask_body
    from cli.runner import run_command

    seen: list[dict[str, Any]] = []

    def answer(messages: list[dict[str, Any]]) -> ModelTurn:
        tool_message = next(m for m in messages if m.get("role") == "tool")
        data = json.loads(tool_message["content"])
        seen.append(data)
        top = data["summary"][0]
        return ModelTurn(content=f"{top['group']} cost ${top['cost']:.2f} over {top['calls']} calls.")

    args = {"from": "2025-03-30T15:30:00Z", "to": AS_OF, "tz": "UTC"}
    model = ScriptedModel([ModelTurn(tool_calls=[ToolCall("c1", "report", json.dumps(args))]), answer])
    code = run_command("ask", Settings(json=True), ask_body(AskOptions("weekly cost by assistant?"), model=model,
                                                              sandbox=sandbox))
    assert code == 0, capsys.readouterr()
    envelope = json.loads(capsys.readouterr().out)
    model.assert_all_used()
    assert any(t["function"]["name"] == "report" for t in model.requests[0]["tools"] or [])
    command = _command_envelope(sandbox, {"start": args["from"], "end": AS_OF}, capsys)["result"]
    assert seen and seen[0]["summary"] == command["summary"] and seen[0]["period"] == command["period"]
    assert command["summary"][-1]["calls"] > 0
    top = command["summary"][0]
    assert f"{top['group']} cost ${top['cost']:.2f}" in envelope["result"]["answer"]


@pytest.fixture(autouse=True)
def _no_stray_files(tmp_path: Path) -> Iterator[None]:
    """Reports in these tests never write outside the test's tmp folder."""
    before = set(Path.cwd().glob("report-*"))
    yield
    assert set(Path.cwd().glob("report-*")) == before
