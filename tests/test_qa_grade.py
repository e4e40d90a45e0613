"""qa-grade end to end on the sandbox, checked against the dataset's ground-truth file.

Expected values never come from the code under test: the ground-truth file
(``sandbox.world.groundtruth.write_ground_truth``) says which calls are the newest ended ones, their metric
values, which ones carry an injected failure (its exact quote and time) and the sha256 of every
recording. Covered here: the default metric and ``--metric Empathy`` against that file; a model
answering one true and two invented findings (only the true one survives, the drops are noted);
invalid JSON, one repair, then ``partial``; resume after an interruption (checkpoints reused,
``--fresh`` recomputes); ``ask`` running the pipeline as one tool with the command's result; and
the README's first command on a fresh machine. The per-rule tests are in ``test_qa_rules.py``,
which imports the helpers below.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings
from agent.errors import ModelError
from agent.model import ModelTurn, ToolCall
from agent.model.scripted import ScriptedModel
from agent.runtime import Runtime, open_runtime
from agent.store import RunStore
from cli.commands.qa import qa_grade_body
from cli.runner import CommandContext, Outcome, run_command
from sandbox.app import Sandbox
from sandbox.world.config import SandboxConfig
from sandbox.world.groundtruth import write_ground_truth
from workflows.qa.grade import QAParams, QAResult, run

ROOT = Path(__file__).resolve().parents[1]

# Seed 33 puts, among the newest 10 ended Support calls, both failing and passing calls on the
# Support QA scorecard, two Empathy failures (each with an injected failure) and one call without
# an Empathy value. The tests assert these preconditions from the ground truth, so a change to
# the generator that breaks them fails loudly instead of making a test vacuous.
SEED = 33
CALLS = 400
ANCHOR = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RECORDING_TOOL = "list_all_vapi_mono_recordings"
LIST_CALLS_TOOL = "list_all_vapi_calls"
SANDBOX_OPTIONS: dict[str, Any] = {"seed": SEED, "calls": CALLS, "anchor": ANCHOR}


# ---------------------------------------------------------------- the ground truth
def qa_sandbox(**overrides: Any) -> Sandbox:
    """A fresh in-process sandbox with the dataset the ground-truth file describes."""
    return Sandbox(SandboxConfig(**{**SANDBOX_OPTIONS, **overrides}))


_TRUTH_DIR = tempfile.TemporaryDirectory(prefix="qa-ground-truth-")


@functools.cache
def truth_file() -> Path:
    """The ground-truth file of the test dataset, written once per session (hashing audio takes seconds)."""
    path = Path(_TRUTH_DIR.name) / "ground-truth.json"
    write_ground_truth(path, qa_sandbox().workspace, recordings="failing")
    return path


@dataclass
class Truth:
    """Read access to the ground-truth file."""

    data: dict[str, Any]

    def assistant_id(self, name: str) -> str:
        """The id of the (generated) assistant called ``name``."""
        ids = [aid for aid, a in self.data["assistants"].items() if a["name"] == name]
        assert len(ids) == 1, f"ground truth has {len(ids)} assistants named {name!r}"
        return ids[0]

    def scorecard_ids(self, name: str) -> list[str]:
        """The scorecards the generator scores this assistant's calls on."""
        return list(self.data["assistants"][self.assistant_id(name)]["scorecard_ids"])

    def calls(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        """Every call of the assistant, newest first (createdAt, then id, as Vapi orders them)."""
        calls = self.data["assistants"][self.assistant_id(name)]["calls"].items()
        return sorted(calls, key=lambda kv: (kv[1]["createdAt"], kv[0]), reverse=True)

    def newest_ended(self, name: str, n: int, *, since: timedelta | None = None) -> list[tuple[str, dict[str, Any]]]:
        """The newest ``n`` ended calls (created within ``since`` of the anchor clock, when given)."""
        floor = None if since is None else ANCHOR - since
        out = []
        for cid, call in self.calls(name):
            if floor is not None and datetime.fromisoformat(call["createdAt"].replace("Z", "+00:00")) < floor:
                continue
            if call["status"] == "ended":
                out.append((cid, call))
        return out[:n]

    def mono(self, call_id: str) -> dict[str, Any] | None:
        """sha256 / bytes / duration of the call's mono recording (None: the call has no recording)."""
        assert call_id in self.data["recordings"], f"the ground truth did not hash {call_id}'s recording"
        entry = self.data["recordings"][call_id]
        return None if entry is None else dict(entry["mono"])

    def failure(self, call_id: str) -> dict[str, Any] | None:
        """The injected failure of a call (kind, quote, at_seconds), or None."""
        found = [f for f in self.data["failing"] if f["call_id"] == call_id]
        return found[0] if found else None


def load_truth() -> Truth:
    """The ground truth, read from its file."""
    return Truth(json.loads(truth_file().read_text(encoding="utf-8")))


@pytest.fixture
def truth() -> Truth:
    """The ground truth (a fresh copy per test: tests may not change what others read)."""
    return load_truth()


def expected_value(call: dict[str, Any], metric: tuple[str, str]) -> float | None:
    """The ground-truth value of ``metric`` (("scorecard", id) or ("output", name)) on a call."""
    kind, key = metric
    raw = call["scores"].get(key) if kind == "scorecard" else call["metrics"].get(key)
    return None if raw is None else float(raw)


def fails(value: float | None, threshold: float = 80.0) -> bool:
    """The issue's rule, applied to a ground-truth value: below the threshold; no value never fails."""
    return value is not None and value < threshold


def sha256_of(path: str | Path) -> str:
    """The sha256 of a file on disk."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def assert_matches_truth(result: QAResult, truth: Truth, assistant: str, n: int, metric: tuple[str, str],
                         threshold: float = 80.0, *, recordings: str = "failing") -> None:
    """Calls, values, failed flags and recordings (sha256 on disk and reported) equal the ground truth."""
    expected = truth.newest_ended(assistant, n)
    assert [c["id"] for c in result.calls] == [cid for cid, _ in expected]
    for entry, (cid, call) in zip(result.calls, expected, strict=True):
        value = expected_value(call, metric)
        assert entry["value"] == value, cid
        assert entry["failed"] is fails(value, threshold), cid
        wanted = recordings == "all" or (recordings == "failing" and entry["failed"])
        if not wanted:
            assert entry["recording"] is None, cid
            continue
        mono = truth.mono(cid)
        if mono is None:
            assert entry["recording"] is None and any("no recording" in note for note in entry["notes"]), cid
            continue
        assert entry["recording"]["sha256"] == mono["sha256"], cid
        assert entry["recording"]["bytes"] == mono["bytes"], cid
        assert sha256_of(entry["recording"]["path"]) == mono["sha256"], cid


# ---------------------------------------------------------------- runtime helpers
@asynccontextmanager
async def qa_runtime(sandbox: Sandbox, *, settings: Settings | None = None, model: Any = None,
                     store: Any = None) -> AsyncIterator[Runtime]:
    """A runtime on ``sandbox`` whose clock stands at the dataset's anchor (so ``--since`` is exact)."""
    async with open_runtime(settings or Settings(), sandbox=sandbox, model=model, store=store, prompt=None) as rt:
        rt.clock = ANCHOR.timestamp
        yield rt


async def grade(sandbox: Sandbox, params: QAParams, **kwargs: Any) -> QAResult:
    """One pipeline run."""
    async with qa_runtime(sandbox, **kwargs) as rt:
        return await run(rt, params)


def tool_calls(sandbox: Sandbox, tool: str) -> list[dict[str, Any]]:
    """Arguments of every ``tool`` call the sandbox received over MCP."""
    return [e.arguments or {} for e in sandbox.log.entries("mcp") if e.tool == tool]


TRANSCRIPT_LINE = re.compile(r"^\[(\d+(?:\.\d+)?)s\] (Assistant|Customer): (.*)$")


def transcript_lines(messages: list[dict[str, Any]]) -> list[tuple[float, str, str]]:
    """(seconds, speaker, text) of the transcript in an analysis request."""
    lines = []
    request = next(m for m in messages if m["role"] == "user")  # a repair request appends more messages
    for line in str(request["content"]).splitlines():
        match = TRANSCRIPT_LINE.match(line)
        if match:
            lines.append((float(match.group(1)), match.group(2), match.group(3)))
    return lines


def answer_from_request(messages: list[dict[str, Any]]) -> str:
    """A valid, true answer for whatever call was sent: the last assistant line, quoted at its time."""
    at, _, text = [line for line in transcript_lines(messages) if line[1] == "Assistant"][-1]
    finding = {"at_seconds": at, "quote": text, "problem": "The closing was abrupt.",
               "recommendation": "Summarise the next steps before ending the call."}
    return json.dumps({"findings": [finding], "recommendations": ["Close every call with a summary."]})


def command(params: dict[str, Any], settings: Settings) -> tuple[int, dict[str, Any]]:
    """``vapi-agent qa-grade --json`` through the command runner; (exit code, envelope)."""
    out = io.StringIO()
    full = {"assistant": "Support", "last": 5, "since": None, "metric": None, "threshold": 80.0,
            "recordings": "failing", "recordings_dir": "./recordings", "out": None, "fresh": False, **params}
    code = run_command("qa-grade", settings, qa_grade_body(full), stdout=out)
    return code, json.loads(out.getvalue())


# ---------------------------------------------------------------- against the ground truth
async def test_default_metric_is_the_support_scorecard_and_matches_ground_truth(truth: Truth, tmp_path: Path) -> None:
    card = truth.scorecard_ids("Support")[0]
    expected = truth.newest_ended("Support", 10)
    values = [expected_value(c, ("scorecard", card)) for _, c in expected]
    assert any(fails(v) for v in values) and any(v is not None and not fails(v) for v in values), \
        "dataset precondition: failing and passing Support QA calls among the newest 10"

    result = await grade(qa_sandbox(), QAParams("Support", last=10, recordings_dir=str(tmp_path / "rec")))

    assert result.assistant == {"id": truth.assistant_id("Support"), "name": "Support"}
    assert result.metric == {"kind": "scorecard", "id": card, "name": "Support QA"}
    assert_matches_truth(result, truth, "Support", 10, ("scorecard", card))
    saved = sorted(p.name for p in (tmp_path / "rec").iterdir())
    assert saved == sorted(f"{c['id']}-mono.wav" for c in result.failing)
    # No model: everything but the analysis ran, and the result says how to enable it.
    assert result.status == "partial"
    assert [e["code"] for e in result.errors] == ["analysis_skipped"]
    assert all(c["findings"] == [] for c in result.calls)


async def test_empathy_metric_matches_ground_truth(truth: Truth, tmp_path: Path) -> None:
    expected = truth.newest_ended("Support", 10)
    empathy = [c["metrics"]["Empathy"] for _, c in expected]
    failing = [cid for cid, c in expected if fails(c["metrics"]["Empathy"])]
    assert failing and None in empathy, "dataset precondition: Empathy failures and a call without Empathy"
    assert all(truth.failure(cid) for cid in failing), "dataset precondition: Empathy failures are injected ones"

    result = await grade(qa_sandbox(), QAParams("Support", last=10, metric="Empathy",
                                                recordings_dir=str(tmp_path / "rec")))

    assert result.metric["kind"] == "output" and result.metric["name"] == "Empathy"
    assert_matches_truth(result, truth, "Support", 10, ("output", "Empathy"))
    assert [c["id"] for c in result.failing] == failing
    for entry in result.calls:
        if entry["value"] is None:  # listed, not failed, with a note saying why
            assert entry["failed"] is False and entry["recording"] is None
            assert entry["notes"] == ["the call has no Empathy value"]


# ---------------------------------------------------------------- the model's findings are checked
async def test_only_the_true_finding_survives(truth: Truth, tmp_path: Path) -> None:
    """The real openai SDK against the scripted server: one true finding, two invented ones."""
    from tests.openai_fake import ScriptedOpenAI, Turn

    expected = truth.newest_ended("Support", 10)
    failing = [cid for cid, c in expected if fails(c["metrics"]["Empathy"])]
    target = failing[0]
    injected = truth.failure(target)
    assert injected is not None
    true = {"at_seconds": injected["at_seconds"], "quote": injected["quote"],
            "problem": f"The assistant {injected['kind'].replace('_', ' ')} the caller.",
            "recommendation": "Acknowledge the caller's frustration before moving on."}
    invented = {"at_seconds": injected["at_seconds"], "quote": "I will personally refund every month you paid.",
                "problem": "Promised an unauthorised refund.", "recommendation": "Follow the refund policy."}
    drifted = {**true, "at_seconds": injected["at_seconds"] + 5.0}
    recommendation = "Tell the assistant to acknowledge complaints before troubleshooting."
    turns = []
    for cid in failing:  # concurrency 1: the calls reach the model newest first
        findings = [true, invented, drifted] if cid == target else []
        recs = [recommendation] if cid == target else []
        turns.append(Turn.text(json.dumps({"findings": findings, "recommendations": recs}),
                               prompt_tokens=900, completion_tokens=120))
    fake = ScriptedOpenAI(turns)
    with fake.serve() as base_url:
        settings = Settings(openai_base_url=base_url, openai_api_key="sk-test-qa", concurrency=1)
        result = await grade(qa_sandbox(), QAParams("Support", last=10, metric="Empathy",
                                                    recordings_dir=str(tmp_path)), settings=settings)
    fake.assert_all_used()
    assert fake.rejections == []  # the strict response_format schema is one OpenAI accepts

    by_id = {c["id"]: c for c in result.calls}
    assert by_id[target]["findings"] == [true]
    dropped = [n for n in by_id[target]["notes"] if n.startswith("dropped a finding")]
    assert len(dropped) == 2
    assert any("not in the transcript" in n for n in dropped)
    assert any("5.0 s from the quoted line" in n for n in dropped)
    assert all(not by_id[cid]["findings"] for cid in failing[1:])
    assert result.recommendations == [{"text": recommendation, "based_on": [target]}]
    assert result.status == "ok" and [e for e in result.errors if e["code"] != "metric_missing"] == []

    # Only failing calls went to the model: their transcript with timestamps, nothing else.
    bodies = fake.bodies()
    assert len(bodies) == len(failing)
    first = bodies[0]
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["strict"] is True
    user = first["messages"][-1]["content"]
    assert f"[{injected['at_seconds']:.1f}s]" in user and injected["quote"] in user
    assert "http" not in user and target not in user  # no links, no ids: only what needs judging


async def test_invalid_json_gets_one_repair_then_partial(truth: Truth, tmp_path: Path) -> None:
    expected = truth.newest_ended("Support", 10)
    first_fail = next(i for i, (_, c) in enumerate(expected) if fails(c["metrics"]["Empathy"]))
    params = QAParams("Support", last=first_fail + 1, metric="Empathy", recordings_dir=str(tmp_path))

    # Two invalid answers: the call is reported, not analysed, and the run is partial.
    model = ScriptedModel([ModelTurn(content="Sure! Here are the findings: ..."),
                           ModelTurn(content='{"findings": [{"quote": "x"}]}')])
    result = await grade(qa_sandbox(), params, model=model)
    model.assert_all_used()
    assert result.status == "partial"
    assert [e["code"] for e in result.errors] == ["analysis_failed"]
    failing = result.failing
    assert len(failing) == 1 and failing[0]["findings"] == []
    assert any("not valid after one repair attempt" in n for n in failing[0]["notes"])
    repair = model.requests[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": "Sure! Here are the findings: ..."}
    assert repair[-1]["role"] == "user" and "not valid" in repair[-1]["content"]

    # Invalid, then valid after the repair: analysed, status ok.
    model = ScriptedModel([ModelTurn(content="not json"), answer_turn])
    result = await grade(qa_sandbox(), params, model=model)
    model.assert_all_used()
    assert result.status == "ok" and len(result.failing[0]["findings"]) == 1


def answer_turn(messages: list[dict[str, Any]]) -> ModelTurn:
    """A scripted turn answering truthfully about the call in the request."""
    return ModelTurn(content=answer_from_request(messages), input_tokens=800, output_tokens=100)


# ---------------------------------------------------------------- resume after an interruption
class GatedModel:
    """Answers the first ``answers`` requests truthfully; the next one raises (mode ``raise``), and
    every later one hangs until cancelled (work still in flight when the run is interrupted)."""

    name = "gated"

    def __init__(self, answers: int | None, *, mode: str = "raise") -> None:
        self.answers, self.mode = answers, mode
        self.requests = 0

    async def complete(self, messages: list[dict[str, Any]], tools: Any = None, *, on_token: Any = None,
                       response_format: Any = None) -> ModelTurn:
        """One analysis request."""
        self.requests += 1
        if self.answers is not None and self.requests > self.answers:
            if self.mode == "raise" and self.requests == self.answers + 1:
                await asyncio.sleep(0.05)  # let the other failing calls reach the model first
                raise ModelError("the model endpoint went away")
            await asyncio.Event().wait()  # never returns: cancelled with the run
        return answer_turn(messages)


@pytest.mark.parametrize("interruption", ["model-error", "cancelled"])
async def test_resume_reuses_finished_calls_and_fresh_recomputes(truth: Truth, tmp_path: Path,
                                                                 interruption: str) -> None:
    card = truth.scorecard_ids("Support")[0]
    expected = truth.newest_ended("Support", 10)
    n_failing = sum(1 for _, c in expected if fails(expected_value(c, ("scorecard", card))))
    assert n_failing >= 3, "dataset precondition: several failing calls"
    sandbox = qa_sandbox()
    store = RunStore(tmp_path / "runs.sqlite3")
    params = QAParams("Support", last=10, recordings_dir=str(tmp_path / "rec"))

    # Run 1: the first analysis succeeds, then the run is interrupted.
    first = GatedModel(1, mode="raise" if interruption == "model-error" else "hang")
    if interruption == "model-error":
        with pytest.raises(ModelError):
            await grade(sandbox, params, model=first, store=store)
    else:
        task = asyncio.create_task(grade(sandbox, params, model=first, store=store))
        async with asyncio.timeout(30):
            while first.requests < n_failing:  # every failing call reached the model; one was answered
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    ours = [t for t in asyncio.all_tasks() if not t.done() and t is not asyncio.current_task()
            and any(f"{os.sep}workflows{os.sep}" in frame.f_code.co_filename for frame in t.get_stack())]
    assert ours == [], "an interrupted run must not leave per-call work running"
    assert len(tool_calls(sandbox, RECORDING_TOOL)) >= 1

    # Run 2: the analysed call comes from its checkpoint; only the others are fetched and analysed.
    sandbox.log.clear()
    second = GatedModel(None)
    resumed = await grade(sandbox, params, model=second, store=store)
    assert second.requests == n_failing - 1
    assert len(tool_calls(sandbox, RECORDING_TOOL)) == n_failing - 1
    # One listing: pages are as large as --last, so a call still in progress among the newest costs a
    # second page (next_cursor) of the same listing, never a listing per call.
    listings = [args for args in tool_calls(sandbox, LIST_CALLS_TOOL) if "next_cursor" not in args]
    assert len(listings) == 1
    assert resumed.status == "ok"

    # Run 3 with --fresh: everything again, and the same result.
    sandbox.log.clear()
    third = GatedModel(None)
    fresh = await grade(sandbox, QAParams(**{**params.__dict__, "fresh": True}), model=third, store=store)
    assert third.requests == n_failing
    assert len(tool_calls(sandbox, RECORDING_TOOL)) == n_failing
    assert fresh.to_dict() == resumed.to_dict()
    assert_matches_truth(fresh, truth, "Support", 10, ("scorecard", card))
    assert all(len(c["findings"]) == 1 for c in fresh.failing)
    store.close()


# ---------------------------------------------------------------- ask runs the same pipeline
async def test_ask_with_the_qa_grade_tool_returns_the_commands_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, truth: Truth
) -> None:
    from cli.commands.ask import AskOptions, ask_body
    from tests.openai_fake import ScriptedOpenAI, Turn
    from tests.openai_fake import ToolCall as FakeToolCall

    monkeypatch.chdir(tmp_path)  # both write ./recordings here
    card = truth.scorecard_ids("Support")[0]
    n_failing = sum(1 for _, c in truth.newest_ended("Support", 10) if fails(expected_value(c, ("scorecard", card))))
    analysis = json.dumps({"findings": [], "recommendations": ["Acknowledge complaints before troubleshooting."]})
    fake = ScriptedOpenAI()
    with fake.serve() as base_url:
        settings = Settings(openai_base_url=base_url, openai_api_key="sk-test-ask", json=True,
                            sandbox_options=SANDBOX_OPTIONS)

        # The command.
        fake.reset([Turn.text(analysis)] * n_failing)
        ctx = CommandContext("qa-grade", settings)
        params = {"assistant": "Support", "last": 10, "since": None, "metric": None, "threshold": 80.0,
                  "recordings": "failing", "recordings_dir": "./recordings", "out": None, "fresh": False}
        outcome: Outcome = await qa_grade_body(params)(ctx)
        fake.assert_all_used()
        from_command = {**outcome.result.to_dict(), "status": outcome.status, "errors": outcome.errors}

        # ask, in a fresh data dir (no checkpoints to reuse): the model calls the tool, then answers.
        monkeypatch.setenv("VAPI_AGENT_DATA_DIR", str(tmp_path / "second-data-dir"))
        call = FakeToolCall("qa_grade", {"assistant": "Support", "last": 10, "recordings": "failing"})
        fake.reset([Turn.calls(call), *[Turn.text(analysis)] * n_failing,
                    Turn.text("5 of the last 10 calls failed the Support QA scorecard.")])
        # Saving recordings is a local write: approved here with --yes (headless, nobody to ask).
        ask_outcome = await ask_body(AskOptions("Grade the last 10 Support calls"))(
            CommandContext("ask", replace(settings, yes=True)))
        fake.assert_all_used()
    assert fake.rejections == []
    result = ask_outcome.result
    assert [c["name"] for c in result.tool_calls] == ["qa_grade"] and result.tool_calls[0]["ok"]
    tool_messages = [m for m in result.messages if m["role"] == "tool"]
    assert len(tool_messages) == 1
    from_tool = json.loads(tool_messages[0]["content"])
    assert from_tool == from_command
    assert len([c for c in from_tool["calls"] if c["failed"]]) == n_failing


# ---------------------------------------------------------------- the README's first command
def test_readme_first_command_on_a_fresh_machine(tmp_path: Path) -> None:
    """The README's ``vapi-agent qa-grade --assistant Support --last 10`` with nothing configured shows
    the ground truth's failing calls with their recordings saved.

    The embedded sandbox is anchored at the moment of its first command and its dataset depends on the
    anchor, so the child process runs with its wall clock (``time.time``) pinned to ``ANCHOR``: the
    sandbox it creates is the default dataset at that anchor; nothing else is set up.
    """
    from sandbox.world.groundtruth import ground_truth

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VAPI_API", "TRUTO_"))}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "XDG_CONFIG_HOME": str(tmp_path / "config"),
                "PYTHONPATH": str(ROOT)})
    pinned = f"import time\ntime.time = lambda: {ANCHOR.timestamp()!r}\nimport sys, cli\nsys.exit(cli.main())\n"
    argv = ["qa-grade", "--assistant", "Support", "--last", "10"]
    proc = subprocess.run([sys.executable, "-c", pinned, *argv], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "using the embedded sandbox" in proc.stderr
    assert "OPENAI_API_KEY" in proc.stderr  # how to enable the analysis

    # The ground truth of the default dataset at that anchor.
    gt = ground_truth(Sandbox(SandboxConfig(anchor=ANCHOR)).workspace, recordings="none")
    support = next(a for a in gt["assistants"].values() if a["name"] == "Support")
    card = support["scorecard_ids"][0]
    newest = sorted(((cid, c) for cid, c in support["calls"].items() if c["status"] == "ended"),
                    key=lambda kv: (kv[1]["createdAt"], kv[0]), reverse=True)[:10]
    failing = [cid for cid, c in newest if fails(c["scores"].get(card))]
    assert failing, "the first command must show failing calls"
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in proc.stdout.splitlines()
            if line.startswith("│")]
    assert [row[0] for row in rows] == [cid for cid, _ in newest]  # 200 columns: whole ids
    for row, (cid, call) in zip(rows, newest, strict=True):
        value = call["scores"].get(card)
        assert row[2] == ("—" if value is None else f"{value:g}")
        assert row[3] == ("yes" if cid in failing else "no")
    saved = sorted((tmp_path / "recordings").iterdir())
    assert [p.name for p in saved] == sorted(f"{cid}-mono.wav" for cid in failing)
    for path in saved:
        assert f"recordings/{path.name}" in proc.stdout
        with wave.open(str(path)) as wav:
            seconds = wav.getnframes() / wav.getframerate()
        assert abs(seconds - support["calls"][path.name[:36]]["duration_seconds"]) < 0.05


async def test_a_large_qa_grade_result_reaches_the_model_capped_with_a_note(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A result over the loop's cap is cut like an MCP result (head, tail, a note), never silently."""
    from agent.loop import Limits, run_agent
    from workflows.chat_tools import workflow_tools

    monkeypatch.chdir(tmp_path)
    call = ToolCall("call_qa_1", "qa_grade", json.dumps({"assistant": "Support", "last": 20, "recordings": "none"}))
    model = ScriptedModel([ModelTurn(tool_calls=[call]), ModelTurn(content="Graded.")])
    async with qa_runtime(qa_sandbox()) as rt:
        result = await run_agent(rt, "grade the last 20 Support calls", model=model, limits=Limits(result_cap=3000),
                                 local_tools=workflow_tools(rt))
    model.assert_all_used()
    [tool_message] = [m for m in result.messages if m["role"] == "tool"]
    content = tool_message["content"]
    assert len(content) < 3400 and "characters omitted; the full result was saved to" in content
    saved = Path(content.split("the full result was saved to ", 1)[1].split(". Narrow", 1)[0])
    full = json.loads(saved.read_text(encoding="utf-8"))
    assert len(full["calls"]) == 20 and content.startswith(saved.read_text(encoding="utf-8")[:1000])
