"""Vectorised draws of call outcomes, and the per-call generation parameters (``CallSpec``).

``draw`` decides, for many calls at once with one numpy generator, everything that analytics or the
ground truth need without text: ended reason, conversation template and cut, injected failure,
duration, structured-output values, success, and costs. ``sandbox.world.data`` keeps those arrays for the
whole dataset (a few bytes per call); live calls (``POST /call``, campaigns) draw a batch of one.
``CallSpec`` gathers one call's parameters; ``sandbox.world.calljson`` turns it into the Call JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sandbox.world.conversations import (
    FAILURE_KINDS,
    JOB_TEMPLATES,
    MAX_TURNS,
    STILL_THERE,
    TEMPLATES,
    natural_seconds,
    speech_seconds,
)
from sandbox.world.entities import CSAT, EMPATHY, EMPATHY_MIN_CALL_SECONDS, GREETING, OUTPUT_KEYS, RESOLVED

STATUSES = ("ended", "in-progress", "queued", "ringing", "scheduled")
# (endedReason, conversation ending); codes are positions in this tuple.
REASONS: tuple[tuple[str, str], ...] = (
    ("customer-ended-call", "customer_hangup"),
    ("assistant-ended-call", "full"),
    ("assistant-forwarded-call", "full"),
    ("silence-timed-out", "silence"),
    ("customer-did-not-answer", "none"),
    ("customer-busy", "none"),
    ("voicemail", "voicemail"),
    ("exceeded-max-duration", "full"),
    ("pipeline-error-openai-llm-failed", "pipeline"),
)
REASON_NAMES = tuple(name for name, _ in REASONS)
R_CUSTOMER, R_ASSISTANT, R_FORWARDED, R_SILENCE, R_NO_ANSWER, R_BUSY, R_VOICEMAIL, R_EXCEEDED, R_PIPELINE = range(9)
_ENDING_CODE = {"full": 0, "customer_hangup": 1, "silence": 2, "pipeline": 3, "voicemail": 4, "none": 5}
ENDINGS = tuple(_ENDING_CODE)
REASON_ENDING = np.array([_ENDING_CODE[ending] for _, ending in REASONS], dtype=np.int8)
CONVERSATIONAL = (0, 1, 2, 3)  # endings that have a customer conversation (and structured outputs)

# Probabilities over REASONS for calls that did not get an injected failure.
P_INBOUND = np.array([0.47, 0.37, 0.0, 0.07, 0.0, 0.0, 0.0, 0.03, 0.06])
P_OUTBOUND = np.array([0.33, 0.28, 0.0, 0.03, 0.16, 0.05, 0.12, 0.0, 0.03])
JOBS = tuple(JOB_TEMPLATES)
JOB_TABLE = np.array([JOB_TEMPLATES[j] for j in JOBS], dtype=np.int16)  # job x 8 template ids
TEMPLATE_TURNS = np.array([len(t.turns) for t in TEMPLATES], dtype=np.int16)
TEMPLATE_FORWARDS = np.array([t.forwards for t in TEMPLATES])
TEMPLATE_RESOLVED = np.array([t.resolved for t in TEMPLATES])
GREETING_WORDS = 16
# Natural length (s) of each template cut after k script turns, greeting included; k = 0..MAX_TURNS.
NATURAL = np.array(
    [[natural_seconds(t, GREETING_WORDS, min(k, len(t.turns))) for k in range(MAX_TURNS + 1)] for t in TEMPLATES]
)
STILL_THERE_S = speech_seconds("bot", len(STILL_THERE.split())) + 0.8

# Unit prices (USD): per minute for transport/stt/vapi, per token for the LLM, per character for TTS.
PRICE = {"transport_in": 0.0085, "transport_out": 0.014, "stt": 0.0095, "prompt": 2.5e-6,
         "completion": 1.0e-5, "tts_char": 8.0e-5, "vapi": 0.05}
COST_PARTS = ("transport", "stt", "llm", "tts", "vapi")


@dataclass
class Draw:
    """Column arrays for a batch of calls (one entry per call). Missing values are -1."""

    reason: np.ndarray  # int8 code into REASONS
    ending: np.ndarray  # int8 code into ENDINGS
    template: np.ndarray  # int16 index into TEMPLATES
    keep: np.ndarray  # int8 script turns kept by silence/pipeline endings
    failure: np.ndarray  # int8 code into FAILURE_KINDS, -1 = none
    duration_ms: np.ndarray  # int32 startedAt -> endedAt
    tail_ms: np.ndarray  # int32 quiet time after the last turn
    start_delay_ms: np.ndarray  # int32 createdAt -> startedAt
    update_delay_ms: np.ndarray  # int32 endedAt -> updatedAt
    outputs: dict[str, np.ndarray]  # OUTPUT_KEYS -> int16 value (bools as 0/1), -1 = absent
    skipped_empathy: np.ndarray  # bool: Empathy applied but its minCallDuration gate skipped it
    outcome: np.ndarray  # bool: the customer's issue was resolved (drives successEvaluation)
    success: np.ndarray  # int8 1/0, -1 = no analysis
    cost: dict[str, np.ndarray]  # COST_PARTS + "total" -> float64 USD (4 decimals)
    prompt_tokens: np.ndarray
    completion_tokens: np.ndarray
    tts_characters: np.ndarray

    def take(self, index: np.ndarray) -> Draw:
        """A sub-batch."""
        parts: dict[str, Any] = {name: ({k: v[index] for k, v in value.items()} if isinstance(value, dict)
                                        else value[index]) for name, value in self.__dict__.items()}
        return Draw(**parts)


def draw(
    rng: np.random.Generator,
    *,
    job: np.ndarray,
    outbound: np.ndarray,
    fail_rate: np.ndarray,
    output_mask: dict[str, np.ndarray],
    duration_override: tuple[float, float] | None = None,
) -> Draw:
    """Draw outcomes for ``len(job)`` calls; ``job`` indexes ``JOBS``, the other arrays are per call.

    ``output_mask[key]`` says whether the structured output ``key`` applies to each call's assistant.
    ``duration_override`` (seconds) squeezes conversational calls into a range (campaign calls).
    """
    n = len(job)
    u = rng.random((8, n))
    template = JOB_TABLE[job, rng.integers(0, JOB_TABLE.shape[1], n)]
    turns = TEMPLATE_TURNS[template]
    reason = np.where(outbound, np.searchsorted(np.cumsum(P_OUTBOUND), u[0] * 0.999999),
                      np.searchsorted(np.cumsum(P_INBOUND), u[0] * 0.999999)).astype(np.int8)
    # Failures go into calls that play the script through (the failure turn must survive the cut).
    failing = u[1] < fail_rate
    reason = np.where(failing, np.where(u[2] < 0.7, R_CUSTOMER, R_ASSISTANT), reason).astype(np.int8)
    reason = np.where(TEMPLATE_FORWARDS[template] & (reason == R_ASSISTANT), R_FORWARDED, reason).astype(np.int8)
    failure = np.where(failing, rng.integers(0, len(FAILURE_KINDS), n), -1).astype(np.int8)
    ending = REASON_ENDING[reason]
    half = turns // 2
    keep = np.zeros(n, dtype=np.int8)
    silence = ending == _ENDING_CODE["silence"]
    pipeline = ending == _ENDING_CODE["pipeline"]
    keep[silence] = (2 * (1 + np.floor(u[3] * np.maximum(half - 1, 1)))).astype(np.int8)[silence]
    keep[pipeline] = (2 * np.floor(u[3] * half) + 1).astype(np.int8)[pipeline]
    kept = np.select([ending == 0, ending == 1, silence | pipeline], [turns, turns - 1, keep], 0)

    factor = rng.uniform(0.9, 1.15, n)
    tail = np.select([silence, pipeline, ending == 1], [rng.uniform(20, 30, n), rng.uniform(2, 4, n), 0.8], 1.5)
    seconds = NATURAL[template, kept] * factor + np.where(silence, STILL_THERE_S, 0) + tail
    seconds = np.clip(seconds, 30, 240)
    if duration_override is not None:
        seconds = rng.uniform(*duration_override, n)
    seconds = np.where(reason == R_EXCEEDED, 240.0, seconds)
    seconds = np.where(failing, np.maximum(seconds, EMPATHY_MIN_CALL_SECONDS + 5), seconds)
    seconds = np.select([reason == R_VOICEMAIL, reason == R_NO_ANSWER, reason == R_BUSY],
                        [rng.uniform(30, 45, n), rng.uniform(18, 32, n), rng.uniform(2, 6, n)], seconds)
    duration_ms = np.round(seconds * 1000).astype(np.int32)
    tail_ms = np.round(np.where(ending == _ENDING_CODE["voicemail"], 1200, tail * 1000)).astype(np.int32)

    conversational = ending <= 3
    outcome = np.where(failing, u[4] < 0.25, np.where(TEMPLATE_RESOLVED[template], u[4] < 0.93, u[4] < 0.1))
    outcome = outcome & ~silence & ~pipeline & conversational
    values = {
        EMPATHY: np.where(failing, rng.integers(20, 66, n), rng.integers(80, 101, n)),
        RESOLVED: outcome.astype(np.int16),
        CSAT: np.select([failing, outcome], [rng.integers(1, 6, n), rng.integers(7, 11, n)], rng.integers(3, 8, n)),
        GREETING: (u[5] < 0.94).astype(np.int16),
    }
    skipped_empathy = output_mask[EMPATHY] & conversational & (duration_ms < EMPATHY_MIN_CALL_SECONDS * 1000)
    outputs = {}
    for key in OUTPUT_KEYS:
        present = output_mask[key] & conversational
        if key == EMPATHY:
            present &= ~skipped_empathy
        outputs[key] = np.where(present, values[key], -1).astype(np.int16)
    # The greeting is only a compliance question when the assistant greets at all.
    success = np.where(conversational | (ending == _ENDING_CODE["voicemail"]), outcome & ~failing, -1)

    minutes = duration_ms / 60000.0
    talk = conversational | (ending == _ENDING_CODE["voicemail"])
    prompt = np.where(talk, np.round(duration_ms / 1000 * rng.uniform(38, 55, n)), 0).astype(np.int64)
    completion = np.where(talk, np.round(duration_ms / 1000 * rng.uniform(1.6, 2.6, n)), 0).astype(np.int64)
    chars = np.where(talk, np.round(duration_ms / 1000 * rng.uniform(6, 9, n)), 0).astype(np.int64)
    cost: dict[str, np.ndarray] = {
        "transport": np.round(minutes * np.where(outbound, PRICE["transport_out"], PRICE["transport_in"]), 4),
        "stt": np.round(np.where(talk, minutes * PRICE["stt"], 0.0), 4),
        "llm": np.round(prompt * PRICE["prompt"] + completion * PRICE["completion"], 4),
        "tts": np.round(chars * PRICE["tts_char"], 4),
        "vapi": np.round(minutes * PRICE["vapi"], 4),
    }
    cost["total"] = np.round(np.sum([cost[p] for p in COST_PARTS], axis=0), 4)
    return Draw(
        reason=reason, ending=ending.astype(np.int8), template=template.astype(np.int16), keep=keep,
        failure=failure, duration_ms=duration_ms, tail_ms=tail_ms,
        start_delay_ms=np.round(np.where(outbound, rng.uniform(3, 12, n), rng.uniform(0.3, 1.5, n)) * 1000
                                ).astype(np.int32),
        update_delay_ms=np.round(np.where(success >= 0, rng.uniform(2, 9, n), rng.uniform(0.1, 0.6, n)) * 1000
                                 ).astype(np.int32),
        outputs=outputs, skipped_empathy=skipped_empathy, outcome=outcome, success=success.astype(np.int8),
        cost=cost, prompt_tokens=prompt, completion_tokens=completion, tts_characters=chars,
    )


@dataclass(frozen=True)
class Persona:
    """Who answers a call: an assistant's identity plus its generation parameters."""

    assistant_id: str
    name: str
    job: str
    agent: str
    greeting: str
    voicemail: str
    prompt: str
    outputs: tuple[str, ...]
    outbound: bool
    fail_rate: float
    scorecards: tuple[dict[str, Any], ...]  # scorecards that grade its calls


@dataclass(frozen=True)
class CallSpec:
    """Everything needed to build one call's JSON, conversation and recordings, deterministically."""

    key: str  # seeds the call's random stream (names, variables, timings)
    id: str
    persona: Persona
    phone: dict[str, Any] | None
    call_type: str
    created_ms: int
    status: str
    reason: int  # code into REASONS (meaningful once ended)
    template: int
    keep: int
    failure: str | None
    duration_ms: int
    tail_ms: int
    start_delay_ms: int
    update_delay_ms: int
    values: dict[str, Any]  # output key -> value (None = absent)
    skipped_empathy: bool
    outcome: bool
    success: bool | None
    cost: dict[str, float]
    tokens: tuple[int, int, int]  # prompt, completion, tts characters
    output_ids: dict[str, str]
    customer: dict[str, Any] | None = None  # given by the creator (POST /call, campaigns)
    extra: dict[str, Any] = field(default_factory=dict)  # campaignId, squadId, name, ...
    updated_ms: int | None = None  # overrides the computed updatedAt (patched or live calls)

    @property
    def ending(self) -> str:
        """How the conversation ends (see ``sandbox.world.conversations.ENDINGS``)."""
        return REASONS[self.reason][1]

    @property
    def started_ms(self) -> int:
        """Epoch ms the call was answered (startedAt)."""
        return self.created_ms + self.start_delay_ms

    @property
    def ended_ms(self) -> int:
        """Epoch ms the call ended (endedAt)."""
        return self.started_ms + self.duration_ms

    @property
    def has_recording(self) -> bool:
        """Ended calls with something spoken have recordings; unanswered and live calls do not."""
        return self.status == "ended" and self.ending != "none"


def spec_from_draw(d: Draw, i: int, *, key: str, call_id: str, persona: Persona, phone: dict[str, Any] | None,
                   call_type: str, created_ms: int, status: str, output_ids: dict[str, str],
                   **kwargs: Any) -> CallSpec:
    """The ``CallSpec`` of entry ``i`` of a draw."""
    values: dict[str, Any] = {}
    for k in OUTPUT_KEYS:
        v = int(d.outputs[k][i])
        values[k] = None if v < 0 else (bool(v) if k in (RESOLVED, GREETING) else v)
    fcode = int(d.failure[i])
    succ = int(d.success[i])
    return CallSpec(
        key=key, id=call_id, persona=persona, phone=phone, call_type=call_type, created_ms=created_ms,
        status=status, reason=int(d.reason[i]), template=int(d.template[i]), keep=int(d.keep[i]),
        failure=FAILURE_KINDS[fcode] if fcode >= 0 else None, duration_ms=int(d.duration_ms[i]),
        tail_ms=int(d.tail_ms[i]), start_delay_ms=int(d.start_delay_ms[i]),
        update_delay_ms=int(d.update_delay_ms[i]), values=values, skipped_empathy=bool(d.skipped_empathy[i]),
        outcome=bool(d.outcome[i]), success=None if succ < 0 else bool(succ),
        cost={k: float(v[i]) for k, v in d.cost.items()},
        tokens=(int(d.prompt_tokens[i]), int(d.completion_tokens[i]), int(d.tts_characters[i])),
        output_ids=output_ids, **kwargs,
    )
