"""The generated dataset: strict SDK validity, internal consistency, determinism, scale, recordings."""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import time
import tracemalloc
import typing
import wave
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
import phonenumbers
import pydantic
import pytest

from sandbox.world import audio
from sandbox.world.callgen import REASON_NAMES
from sandbox.world.calljson import conversation
from sandbox.world.clock import SandboxClock
from sandbox.world.config import SandboxConfig
from sandbox.world.conversation_templates import Script
from sandbox.world.conversations import JOB_TEMPLATES, TEMPLATES, customer_name, placeholders, variables
from sandbox.world.data import LIVE_CALLS, Dataset
from sandbox.world.entities import ASSISTANTS
from sandbox.world.ids import ORG_ID, parse_iso
from sandbox.world.workspace import Workspace

ANCHOR = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ws() -> Workspace:
    """A 1,200-call workspace, never mutated by this module."""
    return Workspace(SandboxConfig(seed=11, calls=1200), SandboxClock(), anchor=ANCHOR)


@pytest.fixture(scope="module")
def sample(ws: Workspace) -> list[dict[str, Any]]:
    """~300 calls covering every status, assistant and ended reason (plus an even spread)."""
    data = ws.data
    chosen: set[int] = set(range(data.n - 10, data.n))  # the live calls and the newest ended ones
    for a in range(len(ASSISTANTS)):
        chosen.update(np.flatnonzero(data.assistant == a)[:3].tolist())
    for r in range(len(REASON_NAMES)):
        chosen.update(np.flatnonzero((data.draw.reason == r) & (data.status == 0))[:4].tolist())
    chosen.update(np.flatnonzero(data.draw.failure >= 0)[:25].tolist())
    chosen.update(range(0, data.n, 6))
    return [ws.get_call(data.call_id(i)) for i in sorted(chosen)][:320]


def by_name(ws: Workspace, kind: str) -> dict[str, dict[str, Any]]:
    """The objects of ``kind`` keyed by name."""
    return {o["name"]: o for o in ws.list_objects(kind)}


# ------------------------------------------------------------------ templates
def test_every_job_has_eight_wellformed_templates() -> None:
    """Each job has >= 8 alternating scripts with known placeholders and a valid failure turn."""
    probe = variables(__import__("random").Random(1), ANCHOR, "Dana", "Lee", "Maya")
    for job, ids in JOB_TEMPLATES.items():
        assert len(ids) >= 8, job
        for t in (TEMPLATES[i] for i in ids):
            texts = [text for _, text in t.turns] + [t.wrong, t.summary]
            unknown = set().union(*(placeholders(x) for x in texts)) - set(probe)
            assert not unknown, (t.key, unknown)
            assert t.turns[t.fail][0] == "bot" and t.fail < len(t.turns) - 1
            assert [r for r, _ in t.turns] == ["user", "bot"] * (len(t.turns) // 2)
    assert typing.get_args(Script)  # the script tuple type is importable for other modules


def test_customer_names_are_deterministic() -> None:
    """Customer names depend only on the random stream."""
    import random

    assert customer_name(random.Random(5)) == customer_name(random.Random(5))


# ------------------------------------------------------------------ configuration objects
def test_configuration_objects_validate_strictly(ws: Workspace) -> None:
    """Every configuration object validates strictly and unions resolve to the right variant."""
    import vapi.types as T
    from vapi.phone_numbers.types import ListPhoneNumbersResponseItem
    from vapi.tools.types import ListToolsResponseItem

    for a in ws.list_objects("assistants"):
        model = T.Assistant.model_validate(a)
        assert type(model.model).__name__ == "AssistantModel_Openai"
        assert type(model.voice).__name__ == "AssistantVoice_11Labs"
        assert type(model.transcriber).__name__ == "AssistantTranscriber_Deepgram"
    phones = pydantic.TypeAdapter(list[ListPhoneNumbersResponseItem]).validate_python(ws.list_objects("phone_numbers"))
    for raw, parsed in zip(ws.list_objects("phone_numbers"), phones, strict=True):
        suffix = {"byo-phone-number": "ByoPhoneNumber"}.get(raw["provider"], raw["provider"].capitalize())
        assert type(parsed).__name__ == f"ListPhoneNumbersResponseItem_{suffix}"
    for o in ws.list_objects("structured_outputs"):
        T.StructuredOutput.model_validate(o)
    for s in ws.list_objects("scorecards"):
        T.Scorecard.model_validate(s)
    for s in ws.list_objects("squads"):
        T.Squad.model_validate(s)
    tools = pydantic.TypeAdapter(list[ListToolsResponseItem]).validate_python(ws.list_objects("tools"))
    for raw_tool, tool in zip(ws.list_objects("tools"), tools, strict=True):
        assert tool.type == raw_tool["type"]
    for kind in ("scorecards", "structured_outputs"):
        paged = Workspace.page(ws.list_objects(kind), 1, 100)
        (T.ScorecardPaginatedResponse if kind == "scorecards" else T.StructuredOutputPaginatedResponse
         ).model_validate(paged)


def test_catalog_shapes_the_workflows_rely_on(ws: Workspace) -> None:
    """Names, scorecard attachments, outputs and phone-number types the workflows depend on."""
    assistants = by_name(ws, "assistants")
    outputs = by_name(ws, "structured_outputs")
    cards = by_name(ws, "scorecards")
    assert {"Support", "Support Legacy", "Renewal Outreach", "Front Desk Router", "Technical Fallback",
            "Billing Specialist"} <= set(assistants)
    support = assistants["Support"]
    assert support["artifactPlan"]["scorecardIds"] == [cards["Support QA"]["id"]]
    assert set(support["artifactPlan"]["structuredOutputIds"]) == {o["id"] for o in outputs.values()}
    renewal = assistants["Renewal Outreach"]
    assert cards["Renewal QA"]["assistantIds"] == [renewal["id"]]
    assert "scorecardIds" not in renewal["artifactPlan"]
    qa = cards["Support QA"]["metrics"]
    assert [(m["structuredOutputId"], m["conditions"][0]["comparator"], m["conditions"][0]["value"],
             m["conditions"][0]["points"]) for m in qa] == [
        (outputs["Empathy"]["id"], ">=", 80, 60), (outputs["Resolved"]["id"], "=", True, 40)]
    assert outputs["Empathy"]["schema"]["type"] == "number" and outputs["CSAT"]["schema"]["type"] == "integer"
    phones = by_name(ws, "phone_numbers")
    toll_free = phonenumbers.PhoneNumberType.TOLL_FREE
    for name in ("Primary US Toll-Free", "Secondary US Toll-Free"):
        assert phonenumbers.number_type(phonenumbers.parse(phones[name]["number"])) == toll_free
    assert phonenumbers.number_type(phonenumbers.parse(phones["Support Local Line"]["number"])) != toll_free
    assert phones["Support Local Line"]["provider"] == "twilio"
    assert "byo-phone-number" in {p["provider"] for p in phones.values()}
    with_calls = {ws.data.personas[a].name for a in set(ws.data.assistant.tolist())}
    assert len(set(assistants) - with_calls) <= 1


# ------------------------------------------------------------------ calls
def _check_messages(call: dict[str, Any]) -> None:
    import vapi.types as T

    classes: dict[str, Any] = {"system": T.SystemMessage, "bot": T.BotMessage, "user": T.UserMessage}
    started = parse_iso(call["startedAt"]).timestamp() * 1000
    ended = parse_iso(call["endedAt"]).timestamp() * 1000
    messages = call["artifact"]["messages"]
    assert messages == call["messages"]
    assert messages[0]["role"] == "system"
    for m in messages:
        classes[m["role"]].model_validate(m)  # the union resolves by shape, so check the role's own class
        assert abs((m["time"] - started) / 1000 - m["secondsFromStart"]) < 1e-6
        if m["role"] != "system":
            assert m["duration"] == m["endTime"] - m["time"] > 0
            assert started <= m["time"] and m["endTime"] <= ended
    spoken = [m for m in messages if m["role"] != "system"]
    expected = "".join(f"{'AI' if m['role'] == 'bot' else 'User'}: {m['message']}\n" for m in spoken)
    assert call["artifact"]["transcript"] == expected
    openai = call["artifact"]["messagesOpenAIFormatted"]
    assert [(o["role"], o["content"]) for o in openai[1:]] == [
        ("assistant" if m["role"] == "bot" else "user", m["message"]) for m in spoken]


def _expected_scores(call: dict[str, Any], cards: list[dict[str, Any]]) -> dict[str, int]:
    values = {sid: r["result"] for sid, r in call["artifact"]["structuredOutputs"].items()}
    out = {}
    for card in cards:
        if call["assistantId"] not in card["assistantIds"]:
            continue
        earned = total = 0.0
        for metric in card["metrics"]:
            cond = metric["conditions"][0]
            total += cond["points"]
            v = values.get(metric["structuredOutputId"])
            ok = v is not None and (v == cond["value"] if cond["comparator"] == "=" else v >= cond["value"])
            earned += cond["points"] if ok else 0
        out[card["id"]] = math.ceil(earned / total * 100)
    return out


def test_calls_validate_strictly_and_are_consistent(ws: Workspace, sample: list[dict[str, Any]]) -> None:
    """~300 calls: strict SDK validation plus costs, timing, transcript and score consistency."""
    import vapi.types as T

    cards = ws.list_objects("scorecards")
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for call in sample:
        model = T.Call.model_validate(call)
        assert call["orgId"] == ORG_ID
        statuses[call["status"]] += 1
        if call["status"] != "ended":
            assert "endedAt" not in call and "artifact" not in call and "endedReason" not in call
            continue
        reasons[call["endedReason"]] += 1
        for item, raw in zip(model.costs or [], call["costs"], strict=True):
            assert type(item).__name__.lower().endswith(raw["type"].replace("-", ""))
        breakdown = call["costBreakdown"]
        parts = sum(breakdown[k] for k in ("transport", "stt", "llm", "tts", "vapi"))
        assert math.isclose(breakdown["total"], parts, abs_tol=1e-9) and call["cost"] == breakdown["total"]
        seconds = (parse_iso(call["endedAt"]) - parse_iso(call["startedAt"])).total_seconds()
        if call["endedReason"] in ("customer-did-not-answer", "customer-busy"):
            assert "artifact" not in call and "messages" not in call and seconds < 35
            continue
        minutes = next(c["minutes"] for c in call["costs"] if c["type"] == "vapi")
        assert math.isclose(minutes, seconds / 60, abs_tol=1e-3)
        recording = T.Artifact.model_validate(call["artifact"]).recording
        assert recording and recording.mono and (recording.mono.combined_url or "").endswith("-mono.wav")
        _check_messages(call)
        if call["endedReason"] == "voicemail":
            continue
        assert 30 <= seconds <= 240
        assert call["analysis"]["successEvaluation"] in ("true", "false")
        if "scorecards" in call["artifact"]:
            got = {k: v["scoreNormalized"] for k, v in call["artifact"]["scorecards"].items()}
            assert got == _expected_scores(call, cards)
    assert set(statuses) == {"ended", "in-progress", "queued", "ringing"}
    assert set(reasons) >= {"customer-ended-call", "assistant-ended-call", "silence-timed-out",
                            "customer-did-not-answer", "customer-busy", "voicemail", "exceeded-max-duration",
                            "pipeline-error-openai-llm-failed"}
    assert len({c["assistantId"] for c in sample}) == 6


def test_newest_calls_are_live_and_the_rest_ended_before_the_anchor(ws: Workspace) -> None:
    """The newest calls are live; every ended call ended inside the 30-day window."""
    newest = ws.list_calls(limit=12)
    assert [c["status"] for c in newest[:6]] == [status for status, _ in LIVE_CALLS]
    assert all(c["status"] == "ended" for c in newest[6:])
    assert all("artifact" not in c and "endedAt" not in c for c in newest[:6])
    support = by_name(ws, "assistants")["Support"]["id"]
    assert any(c["status"] != "ended" for c in ws.list_calls(assistant_id=support, limit=3))
    anchor_ms = ANCHOR.timestamp() * 1000
    ended_ms = ws.data.created_ms[ws.data.status == 0] + ws.data.draw.duration_ms[ws.data.status == 0]
    assert ended_ms.max() < anchor_ms and ws.data.created_ms.min() >= anchor_ms - 30 * 86_400_000
    assert np.all(np.diff(ws.data.created_ms) > 0)


def test_failures_structured_outputs_and_skips() -> None:
    """Failure rates, Empathy ranges and skipped outputs match the generation rules."""
    data = Dataset(3, 20_000, ANCHOR)
    ended = data.status == 0
    support = (data.assistant == 0) & ended
    rate = float(np.mean(data.draw.failure[support] >= 0))
    assert 0.15 <= rate <= 0.20
    elsewhere = ~support & ended & (data.assistant != 1)
    assert float(np.mean(data.draw.failure[elsewhere] >= 0)) < 0.08
    empathy = data.draw.outputs["empathy"]
    failing = (data.draw.failure >= 0) & ended
    assert np.all((empathy[failing] >= 20) & (empathy[failing] < 80))
    good = ended & ~failing & (empathy >= 0)
    assert np.all((empathy[good] >= 80) & (empathy[good] <= 100))
    assert np.any(support & (empathy < 0))  # some Support calls lack Empathy: value null is testable
    spec = data.spec(int(np.flatnonzero(support & data.draw.skipped_empathy)[0]))
    call = data.call(int(np.flatnonzero(support & data.draw.skipped_empathy)[0]))
    assert spec.values["empathy"] is None and "skippedStructuredOutputs" in call["artifact"]
    no_answer = int(np.flatnonzero(data.draw.reason == REASON_NAMES.index("customer-did-not-answer"))[0])
    assert "artifact" not in data.call(no_answer)


def test_generation_is_deterministic() -> None:
    """Same seed, same JSON; another seed, other ids."""
    a, b, c = Dataset(5, 300, ANCHOR), Dataset(5, 300, ANCHOR), Dataset(6, 300, ANCHOR)
    for i in (0, 17, 150, 299):
        assert a.call(i) == b.call(i)
    assert [a.call(i)["id"] for i in range(5)] != [c.call(i)["id"] for i in range(5)]
    assert a.catalog.assistants == b.catalog.assistants


def test_100k_calls_init_fast_and_small() -> None:
    """100,000 calls: init under 10 s, under 1 GB traced, a page is quick."""
    tracemalloc.start()
    t0 = time.perf_counter()
    big = Workspace(SandboxConfig(seed=1, calls=100_000), SandboxClock(), anchor=ANCHOR)
    init_s = time.perf_counter() - t0
    page = big.list_calls(limit=100, created_at_lt=datetime(2025, 6, 20, tzinfo=UTC))
    page_s = time.perf_counter() - t0 - init_s
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert init_s < 10 and page_s < 2
    assert peak < 1024**3, f"peak {peak / 2**20:.0f} MiB"
    assert len(page) == 100 and page[0]["createdAt"] < "2025-06-20T00:00:00.000Z"
    assert big.get_call(page[-1]["id"]) == page[-1]


# ------------------------------------------------------------------ recordings
def _wav(data: bytes) -> tuple[np.ndarray, int, int]:
    with wave.open(io.BytesIO(data)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return frames.reshape(-1, w.getnchannels()).astype(float), w.getframerate(), w.getnchannels()


def _band(window: np.ndarray, hz: float, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
    freqs = np.fft.rfftfreq(len(window), 1 / rate)
    return float(spectrum[np.abs(freqs - hz) <= 6].sum())


def test_recordings_follow_the_turns(ws: Workspace) -> None:
    """The mono WAV lasts the call, has the bot pitch in bot turns, the user pitch in user turns, silence between."""
    data = ws.data
    i = int(np.flatnonzero((data.status == 0) & (data.draw.reason == 1) & (data.draw.failure < 0))[0])
    call = ws.get_call(data.call_id(i))
    mono = ws.call_recording(call["id"], "mono")
    assert mono is not None
    samples, rate, channels = _wav(mono)
    assert (rate, channels) == (8000, 1)
    seconds = (parse_iso(call["endedAt"]) - parse_iso(call["startedAt"])).total_seconds()
    assert math.isclose(audio.wav_duration(mono), seconds, abs_tol=1 / rate)
    track = samples[:, 0]
    turns = [m for m in call["artifact"]["messages"] if m["role"] != "system"]
    start_ms = turns[0]["time"] - turns[0]["secondsFromStart"] * 1000
    for m in turns:
        mid = int(((m["time"] + m["endTime"]) / 2 - start_ms) * rate / 1000)
        window = track[mid - 1000: mid + 1000]
        bot, user = _band(window, audio.BOT_HZ, rate), _band(window, audio.USER_HZ, rate)
        assert (bot > 20 * user) if m["role"] == "bot" else (user > 20 * bot), m["message"]
    for a, b in itertools.pairwise(turns):
        gap = (b["time"] - a["endTime"]) / 1000
        if gap > 0.3:
            mid = int(((a["endTime"] + b["time"]) / 2 - start_ms) * rate / 1000)
            assert np.abs(track[mid - 200: mid + 200]).max() == 0
    stereo, _, stereo_channels = _wav(ws.call_recording(call["id"], "stereo") or b"")
    customer, _, _ = _wav(ws.call_recording(call["id"], "customer") or b"")
    assistant, _, _ = _wav(ws.call_recording(call["id"], "assistant") or b"")
    assert stereo_channels == 2
    assert np.array_equal(stereo[:, 0], customer[:, 0]) and np.array_equal(stereo[:, 1], assistant[:, 0])
    assert ws.call_recording(call["id"], "video") is None


def test_recordings_are_deterministic_and_absent_without_a_conversation(ws: Workspace) -> None:
    """Same bytes every time; no recording for busy or live calls; unknown kinds are refused."""
    data = ws.data
    i = int(np.flatnonzero((data.status == 0) & (data.draw.reason == REASON_NAMES.index("voicemail")))[0])
    cid = data.call_id(i)
    first = hashlib.sha256(ws.call_recording(cid, "mono") or b"").hexdigest()
    other = Workspace(SandboxConfig(seed=11, calls=1200), SandboxClock(), anchor=ANCHOR)
    assert hashlib.sha256(other.call_recording(cid, "mono") or b"").hexdigest() == first
    spec = data.spec(i)
    assert audio.render_wav(conversation(spec).turns, spec.duration_ms, "mono") == other.call_recording(cid, "mono")
    busy = int(np.flatnonzero((data.status == 0) & (data.draw.reason == REASON_NAMES.index("customer-busy")))[0])
    assert ws.call_recording(data.call_id(busy), "mono") is None
    assert ws.call_recording(data.call_id(data.n - 1), "mono") is None  # still in progress
    with pytest.raises(ValueError):
        ws.call_recording(cid, "pcap")
