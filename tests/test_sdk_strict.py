"""The strict SDK validator (tests/sdk_validation.py + tests/sdk_strict.py) rejects what the lenient
vapi-server-sdk models let through, and sees what sandboxes in other processes serve."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sandbox.rest.observe import RESPONSE_LOG_ENV, ServedResponse
from tests.sdk_validation import check, take_logged_failures

ROOT = Path(__file__).resolve().parents[1]
SCORECARD = "8a0567db-1394-4bbc-9bfc-429ec030788f"
OUTPUT = "bb7aa50b-b563-498d-9a3c-19cba170c5c4"
CALL: dict[str, Any] = {
    "id": "5f0c1e2a-8b7d-4c1e-9a51-3e2b7c9d4f10", "orgId": "0b9f7d2e-1a2b-4c3d-8e9f-a1b2c3d4e5f6",
    "type": "outboundPhoneCall", "status": "ended", "endedReason": "customer-ended-call",
    "createdAt": "2025-06-02T14:03:11.482Z", "updatedAt": "2025-06-02T14:07:40.115Z",
    "assistantId": "a3c1f7e0-2d4b-4b8e-9c0a-6f1e2d3c4b5a", "cost": 0.2137,
    "costBreakdown": {"transport": 0.0213, "total": 0.2137, "llmPromptTokens": 5120},
    "artifact": {
        "transcript": "AI: Hi.\nUser: Hello.\n",
        "structuredOutputs": {OUTPUT: {"name": "Empathy", "result": 94}},
        "scorecards": {SCORECARD: {"name": "Support QA", "score": 60, "scoreNormalized": 60,
                                   "metricPoints": {OUTPUT: 60}}},
    },
}


def call_failure(body: dict[str, Any]) -> str | None:
    return check(ServedResponse("GET", "/call/{id}", 200, body))


def changed(path: str, value: Any, *, rename: str | None = None) -> dict[str, Any]:
    """A copy of CALL with the value at ``path`` (dots) set, or that key renamed."""
    body = copy.deepcopy(CALL)
    *parents, key = path.split(".")
    target = body
    for part in parents:
        target = target[part]
    if rename is not None:
        target[rename] = target.pop(key)
    else:
        target[key] = value
    return body


def test_a_call_as_vapi_documents_it_passes() -> None:
    assert call_failure(CALL) is None


@pytest.mark.parametrize(("body", "expected"), [
    (changed("bogus", 1), "$.bogus: a key Call does not declare"),
    (changed("artifact.bogus", 1), "$.artifact.bogus: a key Artifact does not declare"),
    (changed("assistantId", None, rename="assistant_id"), "$.assistant_id: snake_case key (the API's name is "
                                                           "'assistantId')"),
    (changed("endedReason", None, rename="ended_reason"), "$.ended_reason: snake_case key"),
    (changed("cost", "0.2137"), "$.cost: str '0.2137' where a number is declared"),
    (changed("costBreakdown.total", "0.2137"), "$.costBreakdown.total: str '0.2137' where a number is declared"),
    (changed("status", "finished"), "$.status: 'finished' is not one of the SDK's values"),
    (changed("type", "carrierPigeon"), "$.type: 'carrierPigeon' is not one of the SDK's values"),
    (changed(f"artifact.scorecards.{SCORECARD}.score", "60"), f"$.artifact.scorecards.{SCORECARD}: not a "
                                                              "documented ScorecardResult (score: Input should be"),
    (changed(f"artifact.scorecards.{SCORECARD}.scoreNormalized", 160), "less than or equal to 100"),
    (changed(f"artifact.scorecards.{SCORECARD}", {"name": "Support QA", "points": 60}), "metricPoints"),
    (changed(f"artifact.scorecards.{SCORECARD}.extra", True), "(extra: Extra inputs are not permitted)"),
    (changed(f"artifact.structuredOutputs.{OUTPUT}", {"result": 94}), f"$.artifact.structuredOutputs.{OUTPUT}: not "
                                                                      "a documented StructuredOutputResult (name"),
])
def test_the_strict_validator_rejects(body: dict[str, Any], expected: str) -> None:
    failure = call_failure(body)
    assert failure is not None and expected in failure, failure


def test_an_enum_beside_a_declared_string_accepts_any_string() -> None:
    # voice ids are Literal[...] | Any | str in the SDK: a provider's own voice id is not an SDK enum value
    assistant = {"id": "a1", "orgId": "o1", "createdAt": "2025-06-02T14:03:11.482Z",
                 "updatedAt": "2025-06-02T14:03:11.482Z", "voice": {"provider": "azure", "voiceId": "andrew"}}
    assert check(ServedResponse("GET", "/assistant/{id}", 200, assistant)) is None


def test_chat_messages_are_openai_style() -> None:
    chat = {"id": "c1", "orgId": "o1", "createdAt": "2025-06-02T14:03:11.482Z",
            "updatedAt": "2025-06-02T14:03:11.482Z", "messages": [{"role": "user", "content": "hi"}],
            "output": [{"role": "assistant", "content": "Hello."}]}
    assert check(ServedResponse("GET", "/chat/{id}", 200, chat)) is None
    chat["messages"] = [{"role": "customer", "content": "hi"}]
    failure = check(ServedResponse("GET", "/chat/{id}", 200, chat))
    assert failure is not None and "$.messages[0]: not a documented ChatMessage (role" in failure


def test_responses_of_other_processes_are_read_back_and_checked(tmp_path: Path) -> None:
    log = tmp_path / "served.jsonl"
    lines = [{"pid": os.getpid(), "method": "GET", "route": "/call/{id}", "status": 200, "body": {"bogus": 1},
              "sse": False},  # this process: already seen by the in-memory observer, skipped here
             {"pid": 1, "method": "GET", "route": "/call/{id}", "status": 200, "body": CALL, "sse": False},
             {"pid": 2, "method": "GET", "route": "/call/{id}", "status": 200, "body": changed("cost", "1"),
              "sse": False}]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines) + "not json\n")
    failures = take_logged_failures(log)
    assert len(failures) == 2, failures
    assert failures[0].startswith("(served by process 2) GET /call/{id} (200): $.cost: str '1'")
    assert "line 4 is not a served response" in failures[1]


def test_a_sandbox_served_by_another_process_writes_what_it_serves(tmp_path: Path) -> None:
    log = tmp_path / "served.jsonl"
    env = {**os.environ, RESPONSE_LOG_ENV: str(log)}
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "serve", "--port", "0", "--calls", "20",
                             "--no-access-log"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        origin = ""
        for line in proc.stdout:
            if "MCP (Truto-style" in line:
                origin = line.split(": ", 1)[1].strip().split("/mcp/", 1)[0]
                break
        assert origin, "the sandbox printed no URL"
        response = httpx2.get(f"{origin}/assistant", headers={"Authorization": "Bearer sandbox-key"}, timeout=30)
        assert response.status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["method"], r["route"], r["status"]) for r in records] == [("GET", "/assistant", 200)]
    assert records[0]["pid"] == proc.pid and records[0]["body"] == response.json()
    assert take_logged_failures(log) == []
