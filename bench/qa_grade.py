"""Benchmark: qa-grade at scale, (a) under a rate limit and (b) in model input tokens.

Run (never run by CI)::

    .venv/bin/python -m bench.qa_grade [--json] [--quick] [--rounds 3] [--last 200]

Each metric (the Support assistant's scorecard, the default; ``Empathy``, a numeric structured
output) is graded on a dataset with a fixed anchor (the dataset depends on it, so runs compare).
What the task needs at the least is worked out from the dataset over REST (``bench.minimal.qa_plan``:
the graded calls, the failing ones, the list pages), never from our own run; our run must grade
exactly those calls or the benchmark fails.

(a) Rate limits. ``workflows.qa.grade.run`` grades the newest ``--last`` ended calls with
``--recordings failing`` against a sandbox served by ``python -m sandbox serve --rate-limit 10/2`` in
its own process (every POST on the MCP path counts). ``ideal = (ceil(minimal requests / 10) - 1) x 2 s``
with minimal requests = handshake (2) + assistant list + call pages + scorecard list + one recording
link per failing call. Wall runs from before the client connects until the result is back with every
recording downloaded (modules imported first). Requests sent and 429s come from the sandbox's log.

(b) Model input tokens per failing call, counted with the real o200k_base BPE (``bench.tokens``).
The floor is the tokens of the failing call's transcript alone (``artifact.transcript``): a model
cannot judge a call without reading it. Contenders:

* ``ours``: the pipeline, one request per failing call (its transcript with timestamps, the
  metric, the assistant's prompt), answered by a scripted model with one true finding;
* ``plain agent, batched``: our own ``ask`` loop (``agent.loop.run_agent``) given the task as its
  prompt, driven by a script that makes the minimal calls (list assistants, the pages of the
  assistant's calls following ``next_cursor``, get each graded call, each failing call's
  recording), each step's calls in one turn (parallel tool calls: the cheapest a chat model can do);
* ``plain agent, one call per turn``: the same calls, one per turn, as many chat agents work.

Tool results are capped by the loop as in ``ask`` (12,000 characters, head and tail). Token counts
are deterministic, so (b) is counted once per contender.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.model import ModelTurn, ToolCall
from bench import harness, minimal, tokens
from bench.served import served_sandbox
from bench.windows import Window, ideal_seconds, log_figures, rate

ASSISTANT = "Support"
TASK = ("Pull the last {n} completed calls of our Support assistant, check their scores, and for every call "
        "under {threshold} on {metric}, download the recording and tell me exactly where the assistant failed.")
_LINE = re.compile(r"^\[(\d+(?:\.\d+)?)s\] Assistant: (.*)$", re.M)
_CURSOR = re.compile(r'"next_cursor":\s*"([^"]+)"')


@dataclass
class CountingModel:
    """A scripted ``ChatModel`` that counts the input tokens of every request it gets (o200k_base)."""

    script: Any  # (messages, tools, response_format) -> ModelTurn
    name: str = "scripted-counting"
    requests: int = 0
    input_tokens: int = 0

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                       on_token: Any = None, response_format: dict[str, Any] | None = None) -> ModelTurn:
        """Count, then answer from the script."""
        count = tokens.request_tokens(messages, tools, response_format)
        self.requests += 1
        self.input_tokens += count
        turn: ModelTurn = self.script(messages, tools, response_format)
        turn.input_tokens = count
        return turn


def analysis_answer(messages: list[dict[str, Any]], tools: Any, response_format: Any) -> ModelTurn:
    """What the pipeline's model answers: one true finding (the last assistant line, at its time)."""
    lines = _LINE.findall(str(messages[1]["content"]))
    at, quote = lines[-1]
    answer = {"findings": [{"at_seconds": float(at), "quote": quote, "problem": "The call ended without a fix.",
                            "recommendation": "Confirm the fix before closing."}],
              "recommendations": ["Confirm the fix before closing the call."]}
    return ModelTurn(content=json.dumps(answer), output_tokens=80)


class PlainAgentScript:
    """The minimal calls a chat model needs for the task, then an answer.

    It knows what a perfect reader of the results would know (the graded and failing call ids, and
    how many list pages the task needs), and follows ``next_cursor`` from the page it just read.
    ``batched``: each step's calls go out in one turn (parallel tool calls); else one call per turn.
    """

    def __init__(self, plan: minimal.QAPlan, *, batched: bool) -> None:
        self.plan_of = plan
        gets = [("get", [cid]) for cid in plan.graded] if not batched else [("get", plan.graded)]
        recordings = [("recording", [cid]) for cid in plan.failing] if not batched else [("recording", plan.failing)]
        self.steps: list[tuple[str, list[str]]] = [("assistants", []), *[("calls", [])] * plan.pages, *gets,
                                                   *recordings, ("answer", [])]
        self._ids = iter(range(1_000_000))
        self._pages_listed = 0

    def _calls(self, name: str, argument_sets: list[dict[str, Any]]) -> ModelTurn:
        calls = [ToolCall(f"call_{next(self._ids):06d}", name, json.dumps(args)) for args in argument_sets]
        return ModelTurn(tool_calls=calls, output_tokens=20 * len(calls))

    def __call__(self, messages: list[dict[str, Any]], tools: Any, response_format: Any) -> ModelTurn:
        """The next turn."""
        step, ids = self.steps.pop(0)
        if step == "assistants":
            return self._calls("list_all_vapi_assistants", [{}])
        if step == "calls":
            args: dict[str, Any] = {"assistantId": self.plan_of.assistant_id, "limit": minimal.PAGE_CAP}
            if self._pages_listed:  # not the first page: pass the cursor of the page just read back
                found = _CURSOR.search(str(messages[-1].get("content") or ""))
                if found is None:
                    raise RuntimeError("the previous page shows no next_cursor")
                args["next_cursor"] = found.group(1)
            self._pages_listed += 1
            return self._calls("list_all_vapi_calls", [args])
        if step == "get":
            return self._calls("get_single_vapi_call_by_id", [{"id": cid} for cid in ids])
        if step == "recording":
            return self._calls("list_all_vapi_mono_recordings", [{"call_id": cid} for cid in ids])
        return ModelTurn(content=f"{len(self.plan_of.failing)} of {len(self.plan_of.graded)} calls scored under "
                                 "the threshold: ...", output_tokens=400)


def warm_imports() -> None:
    """Import what ``open_runtime`` imports lazily (the mcp SDK alone takes seconds): the wall time is
    about waiting on the rate limit, not about Python's start-up."""
    import importlib

    for name in ("httpx2", "mcp", "mcp.client.streamable_http", "agent.mcp.connection", "agent.mcp.servers",
                 "agent.policy", "agent.ratelimit.breaker", "agent.ratelimit.governor", "agent.ratelimit.policy",
                 "agent.ratelimit.transport", "agent.media", "workflows.qa.grade", "workflows.qa.analysis"):
        importlib.import_module(name)
    tokens.encoding()


async def run_pipeline(settings_flags: dict[str, Any], sandbox: Any, last: int, metric: str | None,
                       recordings_dir: str) -> tuple[Any, CountingModel]:
    """qa-grade through the product's stack (served: ``mcp_url`` in the flags; else the given sandbox)."""
    from agent.config import load_settings
    from agent.runtime import open_runtime
    from workflows.qa.grade import QAParams, run

    model = CountingModel(analysis_answer)
    async with open_runtime(load_settings(settings_flags, env={}), model=model, sandbox=sandbox, store=None,
                            prompt=None, notice=lambda _m: None) as rt:
        result = await run(rt, QAParams(ASSISTANT, last=last, metric=metric, recordings="failing",
                                        recordings_dir=recordings_dir))
    return result, model


def check_against_plan(result: Any, plan: minimal.QAPlan) -> None:
    """Our run graded exactly the plan's calls and found exactly its failing ones, or the bench fails."""
    graded = [c["id"] for c in result.calls]
    failing = [c["id"] for c in result.failing]
    if sorted(graded) != sorted(plan.graded) or sorted(failing) != sorted(plan.failing):
        raise RuntimeError(f"qa-grade graded {len(graded)} calls ({len(failing)} failing); the dataset says "
                           f"{len(plan.graded)} ({len(plan.failing)} failing)")


async def run_plain_agent(sandbox: Any, task: str, plan: minimal.QAPlan, *, batched: bool) -> CountingModel:
    """Our own ask loop with the task as its prompt, driven by the minimal-calls script."""
    from agent.config import Settings
    from agent.loop import Limits, run_agent
    from agent.runtime import open_runtime

    async with open_runtime(Settings(), sandbox=sandbox, store=None, prompt=None, notice=lambda _m: None) as rt:
        script = PlainAgentScript(plan, batched=batched)
        model = CountingModel(script)
        steps = len(script.steps)
        limits = Limits(max_turns=steps + 1, max_tool_calls=len(plan.graded) + len(plan.failing) + plan.pages + 10,
                        max_repeats=steps)
        outcome = await run_agent(rt, task, limits=limits, model=model)
    if outcome.stopped_by is not None:
        raise RuntimeError(f"the plain agent stopped early: {outcome.stopped_by}")
    failed = [c for c in outcome.tool_calls if not c["ok"]]
    if failed:
        raise RuntimeError(f"the plain agent's tool calls failed: {failed[:2]}")
    return model


# ---------------------------------------------------------------- the scenarios
@dataclass
class Setup:
    """The workload shared by the scenarios."""

    last: int
    calls: int
    seed: int
    anchor: datetime
    limit: str
    concurrency: int

    def sandbox(self) -> Any:
        """An in-process copy of the served dataset (same seed, size and anchor), without rate limit."""
        from sandbox.app import Sandbox
        from sandbox.world.config import SandboxConfig

        return Sandbox(SandboxConfig(seed=self.seed, calls=self.calls, anchor=self.anchor))

    def serve_options(self) -> list[str]:
        """``sandbox serve`` flags of the rate-limited copy."""
        return ["--rate-limit", self.limit, "--calls", str(self.calls), "--seed", str(self.seed),
                "--anchor", self.anchor.isoformat()]


def rate_scenario(setup: Setup, metric: str | None, rounds: int,
                  tmp: Path) -> tuple[harness.Scenario, minimal.QAPlan]:
    """(a): ours under the rate limit, ``rounds`` times; the ideal from the minimal requests (the plan)."""
    limit, seconds = rate(setup.limit)
    with served_sandbox(*setup.serve_options()) as (url, origin):
        plan = minimal.qa_plan(origin, ASSISTANT, setup.last, metric, setup.anchor.strftime("%Y-%m-%dT%H:%M:%SZ"))
        ideal = ideal_seconds(plan.requests, limit, seconds)
        scenario = harness.Scenario(
            f"(a) rate limit: {setup.last} calls graded on {plan.metric}",
            workload={"assistant": ASSISTANT, "last": setup.last, "metric": plan.metric, "graded": len(plan.graded),
                      "failing": len(plan.failing), "limit": setup.limit, "recordings": "failing"},
            ideal={"minimal_requests": plan.requests, "wall_s": ideal},
            contenders=["ours"],
            columns={"wall_over_ideal": "wall / ideal", "wall_s": "wall s", "requests_sent": "requests sent",
                     "requests_429": "429s"})
        flags = {"mcp_url": url, "mcp_kind": "sandbox", "concurrency": setup.concurrency}
        window = Window(origin, seconds)

        def measure(_name: str, index: int) -> dict[str, float]:
            epoch = window.fresh()
            began = time.monotonic()
            result, _model = asyncio.run(run_pipeline(flags, None, setup.last, metric, str(tmp / f"rec-{index}")))
            wall = time.monotonic() - began
            check_against_plan(result, plan)
            figures = log_figures(window.posts_since(epoch), wall, ideal, seconds)
            saved = sum(1 for c in result.calls if c["recording"])
            return {**{k: figures[k] for k in ("wall_s", "wall_over_ideal", "requests_sent", "requests_429")},
                    "recordings_saved": saved}

        return scenario.run(rounds, measure), plan


def token_scenario(setup: Setup, metric: str | None, plan: minimal.QAPlan, tmp: Path) -> harness.Scenario:
    """(b): input tokens per failing call, ours and the plain agent, against the transcript floor."""
    if not plan.failing:
        raise SystemExit(f"none of the {len(plan.graded)} graded calls fails on {plan.metric}: raise --last")
    failing = len(plan.failing)
    floor = sum(tokens.count(t) for t in plan.transcripts.values()) / failing
    task = TASK.format(n=len(plan.graded), metric=plan.metric, threshold=f"{minimal.THRESHOLD:g}")
    scenario = harness.Scenario(
        f"(b) model input tokens per failing call: {plan.metric}",
        workload={"graded": len(plan.graded), "failing": len(plan.failing), "metric": plan.metric,
                  "tokenizer": "o200k_base (tiktoken, file from bpe-openai, sha256 checked)"},
        ideal={"floor_tokens_per_failing_call": round(floor, 1),
               "floor": "the tokens of the failing call's transcript alone"},
        contenders=["ours", "plain agent, batched", "plain agent, one call per turn"],
        columns={"tokens_per_failing_call": "input tokens per failing call", "times_floor": "x the floor",
                 "requests": "model requests"})
    scenario.notes.append("token counts are deterministic: each contender is counted once")

    def measure(name: str, _round: int) -> dict[str, float]:
        if name == "ours":
            result, model = asyncio.run(run_pipeline({}, setup.sandbox(), setup.last, metric, str(tmp / "rec-b")))
            check_against_plan(result, plan)
        else:
            model = asyncio.run(run_plain_agent(setup.sandbox(), task, plan, batched=name.endswith("batched")))
        per_call = model.input_tokens / failing
        return {"tokens_per_failing_call": per_call, "times_floor": per_call / floor, "requests": model.requests,
                "input_tokens": model.input_tokens}

    scenario.run(1, measure)
    ours = scenario.median("ours", "tokens_per_failing_call")
    for name in scenario.contenders[1:]:
        scenario.notes.append(f"{name}: {scenario.median(name, 'tokens_per_failing_call') / ours:.1f}x ours")
    return scenario


def main(argv: list[str] | None = None) -> int:
    """Run (a) and (b) for each metric and print the figures (``--json``: one JSON document)."""
    parser = harness.parser(__doc__)
    parser.add_argument("--last", type=int, default=200, help="calls to grade (default 200)")
    parser.add_argument("--metric", action="append", help="metrics to grade on (default: the scorecard, Empathy)")
    parser.add_argument("--limit", default="10/2", help="sandbox MCP rate limit N/SECONDS (default 10/2)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--calls", type=int, default=800, help="dataset size (default 800: 250+ Support calls)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--anchor", default="2026-03-02T12:00:00+00:00",
                        help="the dataset's anchor (the dataset depends on it; fixed so runs compare)")
    args = parser.parse_args(argv)
    rounds = harness.check_rounds(args)
    setup = Setup(last=30 if args.quick else args.last, calls=400 if args.quick else args.calls, seed=args.seed,
                  anchor=datetime.fromisoformat(args.anchor).astimezone(UTC),
                  limit="5/1" if args.quick else args.limit, concurrency=args.concurrency)
    metrics: list[str | None] = list(args.metric) if args.metric else [None, "Empathy"]
    for name in ("VAPI_AGENT_MCP_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "VAPI_API_KEY"):
        os.environ.pop(name, None)
    warm_imports()
    result = harness.Result("qa_grade", args.quick, rounds)
    with tempfile.TemporaryDirectory(prefix="bench-qa-") as tmp:
        os.environ["VAPI_AGENT_DATA_DIR"] = str(Path(tmp) / "data")  # capped tool results land here
        plans = []
        for metric in metrics:
            scenario, plan = rate_scenario(setup, metric, rounds, Path(tmp))
            result.scenarios.append(scenario)
            plans.append(plan)
        for metric, plan in zip(metrics, plans, strict=True):
            result.scenarios.append(token_scenario(setup, metric, plan, Path(tmp)))
    return result.finish(args)


if __name__ == "__main__":
    raise SystemExit(main())
