"""The one step of qa-grade that needs judgement: where, in a failing call, did the assistant fail?

The model gets the timestamped transcript of one failing call and answers with structured findings
(``response_format`` with a strict JSON schema). One repair attempt if the answer is not valid, then
the call is reported as not analysed (status ``partial``). Findings are checked against the call
before anyone sees them: a quote that is not in the transcript, or an ``at_seconds`` more than 2 s from
the quoted message's ``secondsFromStart``, is dropped, and the drop is reported.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ModelError
from agent.model import ChatModel, ModelTurn
from workflows.steps import call_messages, timestamped_transcript

MAX_DRIFT_SECONDS = 2.0

FINDINGS_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "qa_findings",
        "strict": True,
        "schema": {
            "type": "object",
            "additionalProperties": False,
            "required": ["findings", "recommendations"],
            "properties": {
                "findings": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["at_seconds", "quote", "problem", "recommendation"],
                        "properties": {
                            # Field meanings are in the system prompt: descriptions here would be sent twice.
                            "at_seconds": {"type": "number"},
                            "quote": {"type": "string"},
                            "problem": {"type": "string"},
                            "recommendation": {"type": "string"},
                        },
                    },
                },
                "recommendations": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}

SYSTEM_PROMPT = (
    "You review a voice AI assistant's phone call that scored below threshold; transcript lines start "
    "with [seconds]. For each moment the assistant failed the caller (interrupting, ignoring a complaint, "
    "a wrong answer, curtness), give `quote` (exact words of one line), `at_seconds` (that line's "
    "seconds), `problem` and `recommendation` (what it should have done). Then `recommendations`: "
    "concrete changes to the assistant's system prompt. JSON only."
)


@dataclass
class Analysis:
    """Validated findings for one call, prompt recommendations, notes on what was dropped, usage."""

    findings: list[dict[str, Any]] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ok: bool = True
    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0


def build_messages(call: dict[str, Any], assistant: dict[str, Any], metric_name: str,
                   value: float | None, threshold: float) -> list[dict[str, Any]]:
    """The request for one call: only what is needed (no artifacts, no URLs, no other calls)."""
    prompt = ""
    for message in ((assistant.get("model") or {}).get("messages") or []):
        if message.get("role") == "system":
            prompt = str(message.get("content") or "")[:1500]
    user = (
        f"Assistant: {assistant.get('name')}\n"
        + (f"Its system prompt: {prompt}\n" if prompt else "")
        + f"Metric {metric_name}: {value} (threshold {threshold})\n"
        + f"Ended because: {call.get('endedReason')}\n\nTranscript:\n{timestamped_transcript(call)}"
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _normalise(text: str) -> str:
    text = re.sub(r"[\u2018\u2019]", "'", text)
    text = re.sub(r"[\u201c\u201d]", '"', text)
    return re.sub(r"\s+", " ", text).strip().strip("\"'").strip().lower()


def parse_answer(content: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Findings and recommendations from the model's JSON; raises ValueError naming what is wrong."""
    data = json.loads(content or "")
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise ValueError("expected an object with a findings array")
    findings = []
    for item in data["findings"]:
        if not isinstance(item, dict):
            raise ValueError("each finding must be an object")
        missing = [k for k in ("at_seconds", "quote", "problem", "recommendation") if k not in item]
        if missing:
            raise ValueError(f"a finding lacks {', '.join(missing)}")
        if isinstance(item["at_seconds"], bool) or not isinstance(item["at_seconds"], (int, float)):
            raise ValueError("at_seconds must be a number")
        findings.append({"at_seconds": float(item["at_seconds"]), "quote": str(item["quote"]),
                         "problem": str(item["problem"]), "recommendation": str(item["recommendation"])})
    recommendations = [str(r) for r in data.get("recommendations") or [] if str(r).strip()]
    return findings, recommendations


def check_findings(call: dict[str, Any], findings: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Keep findings whose quote is in the transcript and whose time is within 2 s of that line."""
    messages = call_messages(call)
    kept, notes = [], []
    for finding in findings:
        quote = _normalise(finding["quote"])
        lines = [m for m in messages if quote and quote in _normalise(str(m["message"]))]
        if not lines:
            notes.append(f"dropped a finding: quote {finding['quote'][:80]!r} is not in the transcript")
            continue
        nearest = min(lines, key=lambda m: abs(float(m["secondsFromStart"]) - finding["at_seconds"]))
        drift = abs(float(nearest["secondsFromStart"]) - finding["at_seconds"])
        if drift > MAX_DRIFT_SECONDS:
            notes.append(
                f"dropped a finding: at_seconds {finding['at_seconds']:.1f} is {drift:.1f} s from the quoted "
                f"line at {float(nearest['secondsFromStart']):.1f} s"
            )
            continue
        kept.append(finding)
    return kept, notes


async def analyse_call(model: ChatModel, call: dict[str, Any], assistant: dict[str, Any], metric_name: str,
                       value: float | None, threshold: float) -> Analysis:
    """Ask the model about one failing call; one repair attempt; validate the findings."""
    messages = build_messages(call, assistant, metric_name, value, threshold)
    analysis = Analysis()
    for attempt in (1, 2):
        turn: ModelTurn = await model.complete(messages, response_format=FINDINGS_FORMAT)
        analysis.model_calls += 1
        analysis.input_tokens += turn.input_tokens
        analysis.output_tokens += turn.output_tokens
        try:
            findings, recommendations = parse_answer(turn.content)
        except (ValueError, TypeError) as exc:
            if attempt == 2:
                analysis.ok = False
                analysis.notes.append(f"the model's answer was not valid after one repair attempt: {exc}")
                return analysis
            messages = [*messages, {"role": "assistant", "content": turn.content or ""},
                        {"role": "user", "content": f"That was not valid ({exc}). Answer again with the JSON only."}]
            continue
        analysis.findings, notes = check_findings(call, findings)
        analysis.notes.extend(notes)
        analysis.recommendations = recommendations
        return analysis
    raise ModelError("unreachable")  # pragma: no cover
