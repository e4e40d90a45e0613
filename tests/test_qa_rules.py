"""qa-grade, rule by rule (the issue's steps 1-4 and 8, ``--out`` and the ``--json`` shape), on the sandbox.

Expected values come from the ground-truth file or from the sandbox's own REST API (assistants,
scorecards, structured output definitions), never from the code under test. Exit codes and
envelopes go through the command runner exactly as the CLI runs them.
"""

from __future__ import annotations

import asyncio
import math
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings
from agent.errors import ConfigError
from sandbox.app import Sandbox
from tests.test_qa_grade import (
    ANCHOR,
    LIST_CALLS_TOOL,
    RECORDING_TOOL,
    SANDBOX_OPTIONS,
    Truth,
    assert_matches_truth,
    command,
    expected_value,
    fails,
    grade,
    load_truth,
    qa_runtime,
    qa_sandbox,
    tool_calls,
)
from workflows.qa.grade import QAParams, run

SETTINGS = Settings(json=True, sandbox_options=SANDBOX_OPTIONS)


@pytest.fixture
def truth() -> Truth:
    """The ground truth of the test dataset (``tests.test_qa_grade`` writes the file once)."""
    return load_truth()


async def rest(sandbox: Sandbox, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call to the sandbox's REST API (how a user would change the workspace)."""
    async with sandbox.rest_client() as client:
        response = await client.request(method, path, json=body)
    assert response.status_code < 300, response.text
    data = response.json()
    return data["results"] if isinstance(data, dict) and "results" in data else data


# ---------------------------------------------------------------- step 1: the assistant
async def test_assistant_by_id(truth: Truth) -> None:
    legacy = truth.assistant_id("Support Legacy")
    result = await grade(qa_sandbox(), QAParams(legacy, last=5, metric="Empathy", recordings="none"))
    assert result.assistant == {"id": legacy, "name": "Support Legacy"}
    assert_matches_truth(result, truth, "Support Legacy", 5, ("output", "Empathy"), recordings="none")


async def test_name_is_exact_whole_and_case_sensitive(truth: Truth) -> None:
    """"Support" is the Support assistant, never "Support Legacy"."""
    result = await grade(qa_sandbox(), QAParams("Support", last=20, recordings="none"))
    assert result.assistant["id"] == truth.assistant_id("Support")
    legacy_calls = {cid for cid, _ in truth.calls("Support Legacy")}
    assert legacy_calls and not legacy_calls & {c["id"] for c in result.calls}
    with pytest.raises(ConfigError, match="no assistant has the id or exact name 'support'"):
        await grade(qa_sandbox(), QAParams("support", recordings="none"))


@pytest.mark.parametrize(("name", "suggested"), [("support", "Support"), ("Support Leg", "Support Legacy"),
                                                 ("Renewal", "Renewal Outreach"), ("Biling Specialist",
                                                                                   "Billing Specialist")])
def test_no_exact_match_is_exit_2_suggesting_close_names(name: str, suggested: str) -> None:
    code, envelope = command({"assistant": name}, SETTINGS)
    assert code == 2 and envelope["status"] == "error"
    [error] = envelope["errors"]
    assert error["code"] == "config"
    assert suggested in error["suggestions"]
    assert "did you mean" in error["message"] and repr(suggested) in error["message"]


def test_two_assistants_with_that_name_are_exit_2_listing_their_ids(
    serve_sandbox: Any, truth: Truth
) -> None:
    sandbox = serve_sandbox(**SANDBOX_OPTIONS)
    twin = asyncio.run(rest(sandbox, "POST", "/assistant", {"name": "Support", "firstMessage": "Hello."}))
    code, envelope = command({"assistant": "Support"}, Settings(json=True, mcp_url=sandbox.mcp_url))
    assert code == 2
    [error] = envelope["errors"]
    ids = {truth.assistant_id("Support"), twin["id"]}
    assert set(error["candidates"]) == ids
    assert all(i in error["message"] for i in ids) and "pass the id" in error["message"]
    # Its id picks the original one.
    original = truth.assistant_id("Support")
    code, envelope = command({"assistant": original, "recordings": "none"},
                             Settings(json=True, mcp_url=sandbox.mcp_url))
    assert code == 0 and envelope["result"]["assistant"] == {"id": original, "name": "Support"}


# ---------------------------------------------------------------- step 2: the calls
async def test_newest_ended_calls_whatever_the_ended_reason(truth: Truth) -> None:
    expected = truth.newest_ended("Support", 12)
    oldest = expected[-1][1]["createdAt"]
    skipped = [cid for cid, c in truth.calls("Support") if c["status"] != "ended" and c["createdAt"] > oldest]
    assert skipped, "dataset precondition: calls that have not ended are among the newest"
    assert len({c["endedReason"] for _, c in expected}) >= 3, "dataset precondition: several ended reasons"

    result = await grade(qa_sandbox(), QAParams("Support", last=12, recordings="none"))
    assert [c["id"] for c in result.calls] == [cid for cid, _ in expected]


async def test_since_narrows_the_window(truth: Truth) -> None:
    window = truth.newest_ended("Support", 50, since=timedelta(days=4))
    assert 0 < len(window) < 50 <= len(truth.newest_ended("Support", 50)), "dataset precondition"
    result = await grade(qa_sandbox(), QAParams("Support", last=50, since="4d", recordings="none"))
    assert [c["id"] for c in result.calls] == [cid for cid, _ in window]

    # Only calls still in progress were created in the last 5 minutes: nothing to grade, and it says so.
    live = [cid for cid, c in truth.calls("Support") if c["createdAt"] >= _iso(ANCHOR - timedelta(minutes=5))]
    assert live and not truth.newest_ended("Support", 5, since=timedelta(minutes=5)), "dataset precondition"
    empty = await grade(qa_sandbox(), QAParams("Support", since="5m", recordings="none"))
    assert empty.calls == [] and empty.notes == ["no ended calls in the last 5m for this assistant"]


def _iso(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


async def test_paging_follows_the_cursor_past_a_small_page_cap(truth: Truth) -> None:
    sandbox = qa_sandbox(page_cap=7)
    result = await grade(sandbox, QAParams("Support", last=20, recordings="none"))
    expected = truth.newest_ended("Support", 20)
    assert [c["id"] for c in result.calls] == [cid for cid, _ in expected]
    # Pages needed: up to the 20th ended call's position among all the assistant's calls.
    position = [cid for cid, _ in truth.calls("Support")].index(expected[-1][0]) + 1
    pages = tool_calls(sandbox, LIST_CALLS_TOOL)
    assert len(pages) == math.ceil(position / 7) >= 3
    assert "next_cursor" not in pages[0] and all(p.get("next_cursor") for p in pages[1:])


@pytest.mark.parametrize(("params", "message"), [
    ({"last": 0}, "--last must be at least 1"),
    ({"since": "yesterday"}, "--since 'yesterday' is not a duration"),
    ({"recordings": "some"}, "--recordings 'some' is not one of failing, all, none"),
])
def test_bad_values_are_exit_2(params: dict[str, Any], message: str) -> None:
    code, envelope = command(params, SETTINGS)
    assert code == 2 and message in envelope["errors"][0]["message"]


# ---------------------------------------------------------------- step 3: the metric
async def test_metric_names_match_case_insensitively(truth: Truth) -> None:
    card = truth.scorecard_ids("Support")[0]
    async with qa_runtime(qa_sandbox()) as rt:
        by_card = await run(rt, QAParams("Support", last=10, metric="support qa", recordings="none"))
        by_output = await run(rt, QAParams("Support", last=10, metric="eMPATHY", recordings="none"))
    assert by_card.metric == {"kind": "scorecard", "id": card, "name": "Support QA"}
    assert (by_output.metric["kind"], by_output.metric["name"]) == ("output", "Empathy")
    assert_matches_truth(by_card, truth, "Support", 10, ("scorecard", card), recordings="none")
    assert_matches_truth(by_output, truth, "Support", 10, ("output", "Empathy"), recordings="none")


async def test_scorecards_come_before_outputs_and_prefixes_force_one(truth: Truth) -> None:
    sandbox = qa_sandbox()
    outputs = await rest(sandbox, "GET", "/structured-output")
    empathy = next(o for o in outputs if o["name"] == "Empathy")
    metric = {"structuredOutputId": empathy["id"],
              "conditions": [{"type": "comparator", "comparator": ">=", "value": 90, "points": 100}]}
    card = await rest(sandbox, "POST", "/observability/scorecard", {"name": "Empathy", "metrics": [metric]})
    async with qa_runtime(sandbox) as rt:
        plain = await run(rt, QAParams("Support", last=10, metric="Empathy", recordings="none"))
        forced = await run(rt, QAParams("Support", last=10, metric="output:Empathy", recordings="none"))
        scorecard = await run(rt, QAParams("Support", last=10, metric="scorecard:SUPPORT QA", recordings="none"))
        with pytest.raises(ConfigError, match="no scorecard named 'CSAT'"):
            await run(rt, QAParams("Support", metric="scorecard:CSAT", recordings="none"))
        with pytest.raises(ConfigError, match="no metric named 'Support QA'"):
            await run(rt, QAParams("Support", metric="output:Support QA", recordings="none"))
    assert plain.metric == {"kind": "scorecard", "id": card["id"], "name": "Empathy"}
    assert (forced.metric["kind"], forced.metric["id"]) == ("output", empathy["id"])
    assert_matches_truth(forced, truth, "Support", 10, ("output", "Empathy"), recordings="none")
    assert scorecard.metric["name"] == "Support QA"


def test_a_boolean_output_is_refused_with_the_numeric_ones(truth: Truth) -> None:
    sandbox = qa_sandbox()
    outputs = asyncio.run(rest(sandbox, "GET", "/structured-output"))
    support = truth.assistant_id("Support")
    numeric = sorted(o["name"] for o in outputs
                     if support in o["assistantIds"] and o["schema"]["type"] in ("number", "integer"))
    assert numeric == ["CSAT", "Empathy"]
    for name in ("Resolved", "greeting compliance"):
        code, envelope = command({"metric": name, "last": 10}, SETTINGS)
        assert code == 2
        message = envelope["errors"][0]["message"]
        assert "is boolean, not a number" in message
        assert f"numeric outputs: {', '.join(numeric)}" in message


async def test_default_metric_rules(truth: Truth) -> None:
    sandbox = qa_sandbox()
    assistants = {a["name"]: a for a in await rest(sandbox, "GET", "/assistant")}
    cards = await rest(sandbox, "GET", "/observability/scorecard")
    renewal = assistants["Renewal Outreach"]
    assert not (renewal.get("artifactPlan") or {}).get("scorecardIds"), "precondition: no scorecardIds"
    renewal_card = next(c for c in cards if renewal["id"] in c.get("assistantIds", []))
    # A newer scorecard that also lists Support: artifactPlan.scorecardIds still comes first.
    await rest(sandbox, "POST", "/observability/scorecard", {
        "name": "Aardvark QA", "assistantIds": [assistants["Support"]["id"]],
        "metrics": [{"structuredOutputId": cards[0]["metrics"][0]["structuredOutputId"],
                     "conditions": [{"type": "comparator", "comparator": ">=", "value": 50, "points": 10}]}]})
    async with qa_runtime(sandbox) as rt:
        support = await run(rt, QAParams("Support", recordings="none"))
        outreach = await run(rt, QAParams("Renewal Outreach", last=10, recordings="none"))
        with pytest.raises(ConfigError) as refused:
            await run(rt, QAParams("Billing Specialist", recordings="none"))
    plan_ids = assistants["Support"]["artifactPlan"]["scorecardIds"]
    assert support.metric["id"] == plan_ids[0] and support.metric["name"] == "Support QA"
    assert outreach.metric == {"kind": "scorecard", "id": renewal_card["id"], "name": renewal_card["name"]}
    assert_matches_truth(outreach, truth, "Renewal Outreach", 10, ("scorecard", renewal_card["id"]),
                         recordings="none")
    assert "has no scorecard" in refused.value.message
    for choice in ("Support QA", "Renewal QA", "Aardvark QA", "CSAT", "Empathy"):
        assert choice in (refused.value.hint or "")


def test_no_default_metric_is_exit_2_listing_the_choices() -> None:
    code, envelope = command({"assistant": "Billing Specialist"}, SETTINGS)
    assert code == 2
    message = envelope["errors"][0]["message"]
    assert "--metric is needed" in message
    scorecards = message.split("scorecards: ", 1)[1].split(";", 1)[0]
    assert sorted(scorecards.split(", ")) == ["Renewal QA", "Support QA"]
    assert "numeric outputs: CSAT, Empathy" in message


async def test_threshold_is_on_the_metrics_own_scale(truth: Truth) -> None:
    expected = truth.newest_ended("Support", 10)
    csat = [c["metrics"]["CSAT"] for _, c in expected]
    assert any(fails(v, 7) for v in csat) and any(v is not None and v >= 7 for v in csat), "dataset precondition"
    result = await grade(qa_sandbox(), QAParams("Support", last=10, metric="csat", threshold=7, recordings="none"))
    assert_matches_truth(result, truth, "Support", 10, ("output", "CSAT"), threshold=7, recordings="none")


# ---------------------------------------------------------------- step 4: recordings
async def test_recordings_all_and_none(truth: Truth, tmp_path: Path) -> None:
    card = truth.scorecard_ids("Support")[0]
    sandbox = qa_sandbox()
    every = await grade(sandbox, QAParams("Support", last=8, recordings="all", recordings_dir=str(tmp_path / "all")))
    assert_matches_truth(every, truth, "Support", 8, ("scorecard", card), recordings="all")
    assert len(tool_calls(sandbox, RECORDING_TOOL)) == 8
    assert len(list((tmp_path / "all").iterdir())) == 8

    sandbox.log.clear()
    none = await grade(sandbox, QAParams("Support", last=8, recordings="none", recordings_dir=str(tmp_path / "no")))
    assert_matches_truth(none, truth, "Support", 8, ("scorecard", card), recordings="none")
    assert tool_calls(sandbox, RECORDING_TOOL) == [] and not (tmp_path / "no").exists()


async def test_a_call_without_a_recording_or_a_value_says_why(truth: Truth, tmp_path: Path) -> None:
    card = truth.scorecard_ids("Renewal Outreach")[0]
    expected = truth.newest_ended("Renewal Outreach", 10)
    unrecorded = {cid: c for cid, c in expected if not c["has_recording"]}
    valueless = {cid for cid, c in expected if expected_value(c, ("scorecard", card)) is None}
    assert unrecorded and valueless, "dataset precondition: unanswered calls among the newest"

    result = await grade(qa_sandbox(), QAParams("Renewal Outreach", last=10, recordings="all",
                                                recordings_dir=str(tmp_path)))
    assert_matches_truth(result, truth, "Renewal Outreach", 10, ("scorecard", card), recordings="all")
    for entry in result.calls:
        if entry["id"] in unrecorded:
            reason = unrecorded[entry["id"]]["endedReason"]
            assert entry["recording"] is None
            assert f"no recording: the call has none (ended: {reason})" in entry["notes"]
        if entry["id"] in valueless:
            assert entry["value"] is None and entry["failed"] is False
            assert "the call has no Renewal QA value" in entry["notes"]


# ---------------------------------------------------------------- step 8, --json and --out
def test_without_a_model_the_run_is_partial_with_exit_0_in_the_issues_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, truth: Truth
) -> None:
    monkeypatch.chdir(tmp_path)
    code, envelope = command({"last": 10}, SETTINGS)
    assert code == 0
    assert set(envelope) == {"workflow", "status", "result", "usage", "errors"}
    assert envelope["workflow"] == "qa-grade" and envelope["status"] == "partial"
    [error] = envelope["errors"]
    assert error["code"] == "analysis_skipped"
    assert "OPENAI_API_KEY" in error["message"] and "OPENAI_BASE_URL" in error["message"]
    assert envelope["usage"]["model_calls"] == 0

    result = envelope["result"]
    assert set(result) == {"assistant", "metric", "threshold", "calls", "recommendations", "notes"}
    assert result["assistant"] == {"id": truth.assistant_id("Support"), "name": "Support"}
    assert (result["metric"], result["threshold"], result["recommendations"]) == ("Support QA", 80.0, [])
    assert len(result["calls"]) == 10
    for call in result["calls"]:
        assert set(call) == {"id", "started_at", "value", "failed", "recording", "findings", "notes"}
        assert call["findings"] == []
        if call["failed"]:
            assert set(call["recording"]) == {"path", "bytes", "sha256"}
            assert (tmp_path / call["recording"]["path"]).is_file()
        else:
            assert call["recording"] is None

    # Nothing failing: nothing to analyse, so nothing was skipped.
    code, envelope = command({"last": 10, "threshold": 0}, SETTINGS)
    assert code == 0 and envelope["status"] == "ok" and envelope["errors"] == []


def test_out_writes_the_markdown_report_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    truth: Truth) -> None:
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "reports" / "report.md"
    report.parent.mkdir()
    report.write_text("an older report\n")
    code, envelope = command({"last": 10, "out": str(report)}, SETTINGS)
    assert code == 0
    text = report.read_text()
    assert text.startswith("# QA report: Support\n")
    for call in envelope["result"]["calls"]:
        assert f"`{call['id']}`" in text
        assert (f"## Call `{call['id']}`" in text) is call["failed"]
    assert "analysis_skipped" in text
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.md"]  # no temporary file left

    # A failure while the report is written leaves the older report whole and no partial file.
    report.write_text("an older report\n")
    real_replace = os.replace

    def failing_replace(src: Any, dst: Any) -> None:
        if str(dst).endswith("report.md"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    code, envelope = command({"last": 10, "out": str(report)}, SETTINGS)
    assert code != 0 and envelope["status"] == "error"
    assert report.read_text() == "an older report\n"
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.md"]
