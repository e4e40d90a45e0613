"""Benchmark: qa-grade at scale, side by side in one run.

Run (never run by CI; about a minute)::

    .venv/bin/python bench/qa_grade.py                  # 200 calls, limit 10/2
    .venv/bin/python bench/qa_grade.py --last 100 --json

(a) Rate limits. ``qa_grade.run`` grades the Support assistant's newest ``--last`` ended calls with
``--recordings failing`` against a sandbox served by ``python -m sandbox serve`` in its own process
(so the server never competes with the client for the GIL), limited on the MCP path to ``--limit``
(every POST counts: ``initialize``, ``tools/list``, the notification, every tool call). Figures
come from the sandbox's own request log: requests sent, 429s, and ``wall / ideal`` with
``ideal = (ceil((requests sent - 429s) / N) - 1) x W`` for a limit of N per W seconds (the earliest
the last window can open). Wall is measured from before the client connects until the result is
back, recordings downloaded (modules are imported before the clock starts: the mcp SDK alone takes
seconds to import, which is start-up, not rate limiting).

(b) Model input tokens per failing call. Both sides talk to a scripted model that counts every
request with the same function (``request_tokens``: the JSON of messages + tools + response
format, over 4 characters per token; tiktoken needs to download its tables, which this machine
cannot). "Ours" is run (a) itself: the pipeline sends each failing call's timestamped transcript,
and the model answers with one true finding. "Plain agent" is our own ``ask`` loop
(``agent.loop.run_agent``) given the task as its prompt, driven by a script that makes the minimal
calls: list assistants, list the assistant's calls (following the cursor), get each graded call,
get the failing calls' recordings, then answer. The script batches each step's calls into one
turn (parallel tool calls), the cheapest way a chat model can do it, so the ratio is a lower bound.
It runs on an in-process copy of the same dataset (same seed, count and anchor), without the rate
limit, which does not change what the model reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import httpx2  # noqa: E402
from served import auth, served_sandbox  # noqa: E402 - bench/ is on sys.path as the script's folder

from agent.model import ModelTurn, ToolCall  # noqa: E402

ASSISTANT = "Support"
TASK = ("Pull the last {n} completed calls of our Support assistant, check their scores, and for every call "
        "under {threshold} on {metric}, download the recording and tell me exactly where the assistant failed.")
_LINE = re.compile(r"^\[(\d+(?:\.\d+)?)s\] Assistant: (.*)$", re.M)
_CURSOR = re.compile(r'"next_cursor":\s*"([^"]+)"')


# ---------------------------------------------------------------- one token count for both sides
def request_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                   response_format: dict[str, Any] | None) -> int:
    """Input tokens of one chat request, estimated the same way for both sides (4 characters a token)."""
    payload = {"messages": messages, "tools": tools or [], "response_format": response_format}
    return math.ceil(len(json.dumps(payload, ensure_ascii=False)) / 4)


@dataclass
class CountingModel:
    """A scripted ``ChatModel`` that counts the input tokens of every request it gets."""

    script: Any  # (messages, tools, response_format) -> ModelTurn
    name: str = "scripted-counting"
    requests: int = 0
    input_tokens: int = 0
    per_request: list[int] = field(default_factory=list)

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                       on_token: Any = None, response_format: dict[str, Any] | None = None) -> ModelTurn:
        """Count, then answer from the script."""
        tokens = request_tokens(messages, tools, response_format)
        self.requests += 1
        self.input_tokens += tokens
        self.per_request.append(tokens)
        turn: ModelTurn = self.script(messages, tools, response_format)
        turn.input_tokens = tokens
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
    how many list pages the pipeline needed), and follows ``next_cursor`` from the page it just read.
    ``batched``: each step's calls go out in one turn (parallel tool calls, the cheapest way); else
    one call per turn, as many chat agents work.
    """

    def __init__(self, assistant_id: str, pages: int, graded: list[str], failing: list[str], *,
                 batched: bool) -> None:
        self.assistant_id, self.graded, self.failing = assistant_id, graded, failing
        gets = [("get", [cid]) for cid in graded] if not batched else [("get", graded)]
        recordings = [("recording", [cid]) for cid in failing] if not batched else [("recording", failing)]
        self.plan: list[tuple[str, list[str]]] = [("assistants", []), *[("calls", [])] * pages, *gets,
                                                  *recordings, ("answer", [])]
        self._ids = iter(range(1_000_000))
        self._pages_listed = 0

    def _calls(self, name: str, argument_sets: list[dict[str, Any]]) -> ModelTurn:
        calls = [ToolCall(f"call_{next(self._ids):06d}", name, json.dumps(args)) for args in argument_sets]
        return ModelTurn(tool_calls=calls, output_tokens=20 * len(calls))

    def __call__(self, messages: list[dict[str, Any]], tools: Any, response_format: Any) -> ModelTurn:
        """The next turn."""
        step, ids = self.plan.pop(0)
        if step == "assistants":
            return self._calls("list_all_vapi_assistants", [{}])
        if step == "calls":
            args: dict[str, Any] = {"assistantId": self.assistant_id, "limit": 100}
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
        return ModelTurn(content=f"{len(self.failing)} of {len(self.graded)} calls scored under the threshold: ...",
                         output_tokens=400)


def mcp_posts(origin: str) -> list[dict[str, Any]]:
    """Every POST on the MCP path, from the sandbox's own request log."""
    response = httpx2.get(f"{origin}/_sandbox/log", params={"transport": "mcp"}, headers=auth(), timeout=30)
    response.raise_for_status()
    return [e for e in response.json() if e["method"] == "POST"]


# ---------------------------------------------------------------- (a) + ours
def _preload() -> None:
    """Import what ``open_runtime`` imports lazily (the mcp SDK alone takes seconds): wall time is
    about waiting on the rate limit, not about Python's start-up."""
    import importlib

    for name in ("httpx2", "mcp", "mcp.client.streamable_http", "agent.mcp.connection", "agent.mcp.servers",
                 "agent.policy", "agent.ratelimit.breaker", "agent.ratelimit.governor", "agent.ratelimit.policy",
                 "agent.ratelimit.transport", "agent.media", "workflows.qa_analysis"):
        importlib.import_module(name)


async def run_pipeline(url: str, last: int, metric: str | None, concurrency: int,
                       recordings_dir: str) -> tuple[Any, CountingModel, float]:
    """qa-grade through the product's stack; returns (result, the counting model, wall seconds)."""
    from agent.config import load_settings
    from agent.runtime import open_runtime
    from workflows.qa.grade import QAParams, run

    _preload()
    model = CountingModel(analysis_answer)
    settings = load_settings({"mcp_url": url, "mcp_kind": "sandbox", "concurrency": concurrency}, env={})
    started = time.monotonic()
    async with open_runtime(settings, model=model, store=None, prompt=None, notice=lambda _m: None) as rt:
        result = await run(rt, QAParams(ASSISTANT, last=last, metric=metric, recordings="failing",
                                        recordings_dir=recordings_dir))
    return result, model, time.monotonic() - started


# ---------------------------------------------------------------- (b) the plain agent
async def run_plain_agent(sandbox: Any, task: str, pages: int, graded: list[str], failing: list[str], *,
                          batched: bool) -> tuple[CountingModel, Any]:
    """Our own ask loop with the task as its prompt, driven by the minimal-calls script."""
    from agent.config import Settings
    from agent.loop import Limits, run_agent
    from agent.runtime import open_runtime

    async with open_runtime(Settings(), sandbox=sandbox, store=None, prompt=None, notice=lambda _m: None) as rt:
        assistant = await rt.vapi.resolve_assistant(ASSISTANT)
        model = CountingModel(PlainAgentScript(assistant["id"], pages, graded, failing, batched=batched))
        steps = len(model.script.plan)
        limits = Limits(max_turns=steps + 1, max_tool_calls=len(graded) + len(failing) + pages + 10,
                        max_repeats=steps)
        outcome = await run_agent(rt, task, limits=limits, model=model)
    if outcome.stopped_by is not None:
        raise RuntimeError(f"the plain agent stopped early: {outcome.stopped_by}")
    return model, outcome


# ---------------------------------------------------------------- figures
def rate_figures(posts: list[dict[str, Any]], wall: float, limit: int, window: float) -> dict[str, Any]:
    """Requests sent, 429s, the ideal and wall / ideal."""
    sent = len(posts)
    refused = sum(1 for e in posts if e["status"] == 429)
    ideal = (math.ceil((sent - refused) / limit) - 1) * window
    return {"requests_sent": sent, "requests_429": refused, "wall_s": round(wall, 2), "ideal_s": round(ideal, 2),
            "wall_over_ideal": round(wall / ideal, 3) if ideal else None}


def main(argv: list[str] | None = None) -> int:
    """Run (a) and (b) and print the figures (and JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--last", type=int, default=200, help="calls to grade (default 200)")
    parser.add_argument("--metric", default=None, help="as qa-grade --metric (default: the assistant's scorecard)")
    parser.add_argument("--limit", default="10/2", help="sandbox MCP rate limit N/SECONDS (default 10/2)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--calls", type=int, default=800, help="dataset size (default 800: 250+ Support calls)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--anchor", default="2026-03-02T12:00:00+00:00",
                        help="the dataset's anchor (the dataset depends on it; fixed so runs compare)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    count, _, seconds = args.limit.partition("/")
    limit, window = int(count), float(seconds)
    anchor = datetime.fromisoformat(args.anchor).astimezone(UTC)
    for name in ("VAPI_AGENT_MCP_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "VAPI_API_KEY"):
        os.environ.pop(name, None)

    with tempfile.TemporaryDirectory(prefix="bench-qa-") as tmp:
        os.environ["VAPI_AGENT_DATA_DIR"] = str(Path(tmp) / "data")  # capped tool results land here
        with served_sandbox("--rate-limit", args.limit, "--calls", str(args.calls), "--seed", str(args.seed),
                            "--anchor", anchor.isoformat()) as (url, origin):
            result, ours, wall = asyncio.run(run_pipeline(url, args.last, args.metric, args.concurrency,
                                                          str(Path(tmp) / "rec")))
            posts = mcp_posts(origin)
        graded = [c["id"] for c in result.calls]
        failing = [c["id"] for c in result.failing]
        if len(graded) < args.last:
            raise SystemExit(f"only {len(graded)} ended calls to grade; raise --calls")
        pages = sum(1 for e in posts if e.get("tool") == "list_all_vapi_calls" and e["status"] == 200)
        metric = result.metric["name"]
        task = TASK.format(n=len(graded), metric=metric, threshold=f"{result.threshold:g}")
        plain = {}
        for batched in (True, False):
            from sandbox.app import Sandbox
            from sandbox.world.config import SandboxConfig

            sandbox = Sandbox(SandboxConfig(seed=args.seed, calls=args.calls, anchor=anchor))
            plain[batched] = asyncio.run(run_plain_agent(sandbox, task, pages, graded, failing, batched=batched))

    rate = rate_figures(posts, wall, limit, window)
    n_failing = max(1, len(failing))
    ours_per_call = ours.input_tokens / n_failing
    figures: dict[str, Any] = {
        "a": {"calls_graded": len(graded), "metric": metric, "failing": len(failing),
              "recordings_saved": sum(1 for c in result.calls if c["recording"]), "limit": args.limit, **rate},
        "b": {"failing_calls": len(failing), "calls_analysed": sum(1 for c in result.failing if c["findings"]),
              "ours": {"requests": ours.requests, "input_tokens": ours.input_tokens,
                       "per_failing_call": round(ours_per_call)}},
    }
    for batched, (model, outcome) in plain.items():
        per_call = model.input_tokens / n_failing
        figures["b"]["plain_batched" if batched else "plain_one_call_per_turn"] = {
            "requests": model.requests, "tool_calls": len(outcome.tool_calls),
            "tool_calls_ok": sum(1 for c in outcome.tool_calls if c["ok"]), "input_tokens": model.input_tokens,
            "per_failing_call": round(per_call), "times_ours": round(per_call / ours_per_call, 1)}
    a, b = figures["a"], figures["b"]
    print(f"(a) {a['calls_graded']} calls graded on {metric} ({a['failing']} failing, {a['recordings_saved']} "
          f"recordings saved) under {a['limit']}: wall {a['wall_s']} s, ideal {a['ideal_s']} s -> "
          f"{a['wall_over_ideal']}x the ideal (target <= 1.20); {a['requests_sent']} requests sent, "
          f"{a['requests_429']} answered 429")
    print(f"(b) model input tokens per failing call: ours {b['ours']['per_failing_call']} "
          f"({b['ours']['requests']} requests)")
    for key, label in (("plain_batched", "plain agent, each step's calls in one turn"),
                       ("plain_one_call_per_turn", "plain agent, one call per turn")):
        row = b[key]
        print(f"    {label}: {row['per_failing_call']} ({row['requests']} requests, {row['tool_calls']} tool calls) "
              f"-> ours is {row['times_ours']}x fewer (target >= 20x)")
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
