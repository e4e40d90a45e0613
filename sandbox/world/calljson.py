"""Build a Vapi ``Call`` JSON object (and its conversation) from a ``CallSpec``.

Deterministic: the same spec gives byte-identical JSON. Presigned recording URLs are *not* added
here: the REST layer adds fresh ``presigned*Url`` / ``presignedUrlsExpiresAt`` on every response, as
Vapi does; the stored ``recordingUrl``-style links point at private storage and are never fetched.

Message units follow real payloads: ``time``/``endTime`` epoch milliseconds, ``secondsFromStart``
seconds, ``duration`` milliseconds. ``messages`` appears both top-level and in ``artifact``.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.world.callgen import REASONS, CallSpec
from sandbox.world.conversations import (
    TEMPLATES,
    Conversation,
    customer_name,
    fill_liquid,
    render,
    variables,
)
from sandbox.world.entities import BAD_GREETINGS, CSAT, EMPATHY, EMPATHY_MIN_CALL_SECONDS, GREETING, RESOLVED, score
from sandbox.world.ids import ORG_ID, iso_ms

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OUTPUT_NAMES = {EMPATHY: "Empathy", RESOLVED: "Resolved", CSAT: "CSAT", GREETING: "Greeting Compliance"}
AREA_CODES = ("212", "305", "312", "415", "503", "512", "617", "646", "702", "720", "773", "818", "917")


def iso_from_ms(ms: int) -> str:
    """Epoch milliseconds as Vapi's ISO string, exactly (no float rounding)."""
    return iso_ms(EPOCH + timedelta(milliseconds=ms))


def ms_of(dt: datetime) -> int:
    """An aware datetime as epoch milliseconds, truncated toward the past."""
    return (dt - EPOCH) // timedelta(milliseconds=1)


def _rng(spec: CallSpec) -> random.Random:
    # String seeds are hashed with SHA-512 by random.Random, so this is stable across processes.
    return random.Random(f"call:{spec.key}")


def _customer(spec: CallSpec, rng: random.Random) -> tuple[dict[str, Any], str, str]:
    first, last = customer_name(rng)
    number = f"+1{rng.choice(AREA_CODES)}5550{rng.randint(100, 199)}"  # 555-01XX: reserved fictional
    if spec.customer:
        given = dict(spec.customer)
        name = str(given.get("name") or f"{first} {last}")
        first, _, rest = name.partition(" ")
        last = rest or last
        return given, first, last
    return {"number": number, "name": f"{first} {last}"}, first, last


def conversation(spec: CallSpec) -> Conversation:
    """The call's rendered conversation (empty turns for unanswered calls)."""
    rng = _rng(spec)
    _, first, last = _customer(spec, rng)
    when = EPOCH + timedelta(milliseconds=spec.created_ms)
    values = variables(rng, when, first, last, spec.persona.agent)
    greeting = fill_liquid(spec.persona.greeting, values)
    if spec.values.get(GREETING) is False:  # a non-compliant greeting: no company, no name
        greeting = rng.choice(BAD_GREETINGS[spec.persona.outbound]).format(customer=first)
    return render(
        TEMPLATES[spec.template], rng=rng, values=values, greeting=greeting, voicemail=spec.persona.voicemail,
        ending=spec.ending, keep=spec.keep, failure_kind=spec.failure, duration_ms=spec.duration_ms,
        tail_ms=spec.tail_ms,
    )


def _messages(spec: CallSpec, conv: Conversation) -> list[dict[str, Any]]:
    start = spec.started_ms
    out: list[dict[str, Any]] = [
        {"role": "system", "message": spec.persona.prompt, "time": start, "secondsFromStart": 0}
    ]
    for turn in conv.turns:
        out.append({
            "role": turn.role, "message": turn.text, "time": start + turn.start_ms, "endTime": start + turn.end_ms,
            "secondsFromStart": turn.start_ms / 1000, "duration": turn.end_ms - turn.start_ms,
        })
    return out


def _summary(spec: CallSpec, conv: Conversation) -> str:
    topic = conv.topic[0].lower() + conv.topic[1:]
    who = conv.variables.get("customer", "The customer")
    if spec.ending == "voicemail":
        return f"No answer; the assistant left a voicemail for {who} about the plan renewal."
    if spec.ending == "silence":
        return f"{who} called about {topic}; the line went silent and the call timed out before it was resolved."
    if spec.ending == "pipeline":
        return f"{who} called about {topic}; the call dropped on a technical error before it was resolved."
    text = conv.summary
    if spec.failure:
        text += " The customer was unhappy with how the assistant handled part of the call."
    return text


def _costs(spec: CallSpec) -> list[dict[str, Any]]:
    minutes = round(spec.duration_ms / 60000, 4)
    prompt, completion, chars = spec.tokens
    provider = (spec.phone or {}).get("provider", "twilio")
    items: list[dict[str, Any]] = [
        {"type": "transport", "provider": provider if provider != "byo-phone-number" else "vapi.sip",
         "minutes": minutes, "cost": spec.cost["transport"]},
    ]
    if spec.ending != "none":
        items += [
            {"type": "transcriber", "transcriber": {"provider": "deepgram", "model": "nova-2"},
             "minutes": minutes, "cost": spec.cost["stt"]},
            {"type": "model", "model": {"provider": "openai", "model": "gpt-4o"}, "promptTokens": prompt,
             "completionTokens": completion, "cost": spec.cost["llm"]},
            {"type": "voice", "voice": {"provider": "11labs", "voiceId": "sarah"}, "characters": chars,
             "cost": spec.cost["tts"]},
        ]
    items.append({"type": "vapi", "subType": "normal", "minutes": minutes, "cost": spec.cost["vapi"]})
    return items


def _artifact(spec: CallSpec, conv: Conversation, messages: list[dict[str, Any]]) -> dict[str, Any]:
    art: dict[str, Any] = {
        "messages": messages,
        "messagesOpenAIFormatted": [{"role": "system", "content": spec.persona.prompt}] + [
            {"role": "assistant" if t.role == "bot" else "user", "content": t.text} for t in conv.turns],
        "transcript": "".join(f"{'AI' if t.role == 'bot' else 'User'}: {t.text}\n" for t in conv.turns),
    }
    if spec.has_recording:
        base = f"https://storage.vapi.ai/{spec.id}-{spec.ended_ms}"
        art["recordingUrl"] = f"{base}-mono.wav"
        art["stereoRecordingUrl"] = f"{base}-stereo.wav"
        art["recording"] = {"stereoUrl": f"{base}-stereo.wav", "mono": {
            "combinedUrl": f"{base}-mono.wav", "assistantUrl": f"{base}-assistant.wav",
            "customerUrl": f"{base}-customer.wav"}}
    results = {spec.output_ids[k]: {"name": OUTPUT_NAMES[k], "result": v}
               for k, v in spec.values.items() if v is not None}
    if results or spec.skipped_empathy:
        art["structuredOutputs"] = results
        art["structuredOutputsLastUpdatedAt"] = iso_from_ms(spec.ended_ms + spec.update_delay_ms)
    if spec.skipped_empathy:
        art["skippedStructuredOutputs"] = {spec.output_ids[EMPATHY]: {
            "name": "Empathy", "unmetCondition": {"type": "minCallDuration", "seconds": EMPATHY_MIN_CALL_SECONDS}}}
    if results:
        by_id = {sid: r["result"] for sid, r in results.items()}
        art["scorecards"] = {card["id"]: score(card, by_id) for card in spec.persona.scorecards}
    return art


def provider_call_id(spec: CallSpec) -> str:
    """The telephony provider's id for the call (a Twilio CallSid for Twilio numbers)."""
    digest = hashlib.sha256(f"provider:{spec.key}".encode()).hexdigest()
    if (spec.phone or {}).get("provider") == "twilio":
        return "CA" + digest[:32]
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def build_call(spec: CallSpec) -> dict[str, Any]:
    """The full Call JSON of ``spec`` in its current ``status``."""
    rng = _rng(spec)
    customer, _, _ = _customer(spec, rng)
    ended = spec.status == "ended"
    updated = spec.updated_ms
    if updated is None:
        updated = spec.ended_ms + spec.update_delay_ms if ended else spec.created_ms
    call: dict[str, Any] = {
        "id": spec.id,
        "orgId": ORG_ID,
        "type": spec.call_type,
        "status": spec.status,
        "createdAt": iso_from_ms(spec.created_ms),
        "updatedAt": iso_from_ms(updated),
        **spec.extra,
    }
    if spec.persona.assistant_id:  # a transient assistant has no id
        call["assistantId"] = spec.persona.assistant_id
    if spec.phone:
        provider, transport = {"twilio": ("twilio", "pstn"), "vonage": ("vonage", "pstn"),
                               "telnyx": ("telnyx", "pstn")}.get(spec.phone["provider"], ("vapi", "sip"))
        call.update(phoneNumberId=spec.phone["id"], phoneCallProvider=provider, phoneCallTransport=transport,
                    phoneCallProviderId=provider_call_id(spec))
    call["customer"] = customer
    if spec.status in ("in-progress", "ended") and spec.ending != "none":
        call["startedAt"] = iso_from_ms(spec.started_ms)
    if spec.status == "in-progress":
        call["monitor"] = {"listenUrl": f"wss://phone-call-websocket.aws-us-west-2-backend-production.vapi.ai/"
                                        f"{spec.id}/listen",
                           "controlUrl": f"https://phone-call-websocket.aws-us-west-2-backend-production.vapi.ai/"
                                         f"{spec.id}/control"}
    if not ended:
        call.update(cost=0, costs=[])
        return call
    if spec.ending == "none":  # never answered: Vapi still stamps both ends of the ringing
        call["startedAt"] = iso_from_ms(spec.started_ms)
    call["endedAt"] = iso_from_ms(spec.ended_ms)
    call["endedReason"] = REASONS[spec.reason][0]
    call["cost"] = spec.cost["total"]
    prompt, completion, chars = spec.tokens
    call["costBreakdown"] = {**{k: spec.cost[k] for k in ("transport", "stt", "llm", "tts", "vapi")},
                             "total": spec.cost["total"], "llmPromptTokens": prompt,
                             "llmCompletionTokens": completion, "ttsCharacters": chars}
    call["costs"] = _costs(spec)
    if spec.ending == "none":
        return call
    conv = conversation(spec)
    messages = _messages(spec, conv)
    call["messages"] = messages
    call["artifact"] = _artifact(spec, conv, messages)
    if spec.success is not None:
        structured = {"topic": conv.topic, "resolved": spec.outcome}
        call["analysis"] = {"summary": _summary(spec, conv), "structuredData": structured,
                            "successEvaluation": "true" if spec.success else "false"}
    return call
