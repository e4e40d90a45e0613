"""The configuration objects of the sandbox workspace: assistants, phone numbers, structured outputs,
scorecards, a squad and tools, all for one fictional ISP ("Brightline").

Everything is a plain JSON-ready dict in Vapi's camelCase shape, with ids from
``stable_uuid(seed, kind, key)`` and timestamps a few months before the dataset's anchor, so the same
seed and anchor always give the same objects. ``Catalog`` also carries the per-assistant generation
parameters (job, call share, failure rate, which structured outputs apply) that ``sandbox.world.data`` uses
to generate calls, and ``score`` computes a scorecard result from structured-output values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox.world.conversations import COMPANY
from sandbox.world.ids import ORG_ID, iso_ms, stable_uuid

EMPATHY, RESOLVED, CSAT, GREETING = "empathy", "resolved", "csat", "greeting"
OUTPUT_KEYS = (EMPATHY, RESOLVED, CSAT, GREETING)
EMPATHY_MIN_CALL_SECONDS = 45  # the Empathy output's minCallDuration gate: shorter calls skip it


@dataclass(frozen=True)
class AssistantSpec:
    """Generation parameters of one assistant."""

    key: str
    name: str
    job: str | None  # template family; None = an assistant with no calls
    outbound: bool
    agent: str  # the persona name the assistant speaks as
    share: float  # share of generated calls
    fail_rate: float  # share of conversational calls with an injected failure
    outputs: tuple[str, ...]  # OUTPUT_KEYS that apply to it
    phone: str | None  # key of the phone number its calls use
    voice_id: str
    created_days_ago: int


ASSISTANTS: tuple[AssistantSpec, ...] = (
    AssistantSpec("support", "Support", "support", False, "Maya", 0.33, 0.18,
                  (EMPATHY, RESOLVED, CSAT, GREETING), "primary", "sarah", 95),
    AssistantSpec("support_legacy", "Support Legacy", "support", False, "Sam", 0.08, 0.10,
                  (EMPATHY, RESOLVED, GREETING), "primary", "burt", 210),
    AssistantSpec("renewal", "Renewal Outreach", "renewal", True, "Riley", 0.20, 0.06,
                  (EMPATHY, CSAT, GREETING), "renewals", "andrew", 80),
    AssistantSpec("router", "Front Desk Router", "router", False, "Alex", 0.15, 0.05,
                  (EMPATHY, RESOLVED, GREETING), "local", "lily", 120),
    AssistantSpec("technical", "Technical Fallback", "technical", False, "Jordan", 0.11, 0.06,
                  (EMPATHY, RESOLVED, GREETING), "sip", "ryan", 120),
    AssistantSpec("billing", "Billing Specialist", "billing", False, "Morgan", 0.13, 0.06,
                  (EMPATHY, RESOLVED, CSAT, GREETING), "secondary", "paula", 110),
    AssistantSpec("onboarding", "Onboarding Draft", None, False, "Casey", 0.0, 0.0, (), None, "jennifer", 6),
)

# key, name, provider, number, assistant key, provider-specific extras
PHONES: tuple[tuple[str, str, str, str, str | None], ...] = (
    ("primary", "Primary US Toll-Free", "twilio", "+18885550123", "support"),
    ("secondary", "Secondary US Toll-Free", "vonage", "+18335550188", "billing"),
    ("local", "Support Local Line", "twilio", "+14155550100", "router"),
    ("renewals", "Renewals Caller ID", "telnyx", "+12125550142", None),
    ("sip", "SIP Trunk Overflow", "byo-phone-number", "+16465550177", "technical"),
)
# What each phone provider shows as the call's phoneCallProvider / phoneCallTransport.
CALL_PROVIDER = {"twilio": ("twilio", "pstn"), "vonage": ("vonage", "pstn"), "telnyx": ("telnyx", "pstn"),
                 "byo-phone-number": ("vapi", "sip"), "vapi": ("vapi", "pstn")}

GREETINGS = {
    "support": "Thanks for calling {company} support, this is {agent}. How can I help you today?",
    "billing": "Hi, you've reached {company} billing, this is {agent}. What can I do for you?",
    "technical": "Hi, this is {agent} from {company} technical support. What seems to be the problem?",
    "router": "Thanks for calling {company}, this is {agent}. How can I direct your call?",
    "renewal": "Hi, this is {agent} calling from {company} about your internet plan renewal. Am I speaking "
               "with {{{{customer.name}}}}?",
}
BAD_GREETINGS = {False: ("Yeah, hello?", "Hi. What do you need?"), True: ("Hi, is {customer} there?",)}
PROMPTS = {
    "support": "You are {agent}, a warm and patient customer-support agent for {company}, a fiber internet "
               "provider. Verify the account, diagnose the issue step by step, and confirm the fix.",
    "billing": "You are {agent}, a billing specialist at {company}. Explain charges clearly, never take card "
               "numbers by voice, and apply credits within policy.",
    "technical": "You are {agent}, a senior technician at {company}. Handle escalated technical issues: "
                 "diagnostics, router configuration, replacements.",
    "router": "You are {agent}, the front desk of {company}. Answer simple questions and transfer callers to "
              "billing, technical support or sales.",
    "renewal": "You are {agent}, calling {company} customers whose plan is up for renewal. Be brief and "
               "respectful, offer renewal options, and accept a no gracefully.",
    None: "You are {agent}, helping new {company} customers get started. (Draft, not yet live.)",
}
VOICEMAIL = ("Hi {customer}, this is {agent} from {company} about your internet plan renewal. Please call us "
             "back at 1 888 555 0123 at your convenience. Thank you!")


@dataclass(frozen=True)
class Catalog:
    """All configuration objects of one workspace, keyed for the generator."""

    assistants: list[dict[str, Any]]
    phone_numbers: list[dict[str, Any]]
    structured_outputs: list[dict[str, Any]]
    scorecards: list[dict[str, Any]]
    squads: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    assistant_ids: dict[str, str]  # spec key -> id
    phone_ids: dict[str, str]
    output_ids: dict[str, str]  # output key -> id
    scorecard_ids: dict[str, str]

    def spec(self, index: int) -> AssistantSpec:
        """The generation parameters of assistant ``index`` (position in ``ASSISTANTS``)."""
        return ASSISTANTS[index]


def _stamp(anchor: datetime, days_ago: float, later_days: float = 0.0) -> dict[str, str]:
    created = anchor - timedelta(days=days_ago)
    return {"createdAt": iso_ms(created), "updatedAt": iso_ms(created + timedelta(days=later_days))}


def greeting_text(spec: AssistantSpec) -> str:
    """The assistant's firstMessage (with a Liquid ``{{customer.name}}`` for outbound calls)."""
    job = spec.job or "support"
    return GREETINGS[job].format(company=COMPANY, agent=spec.agent)


def _output(seed: int, anchor: datetime, key: str, assistant_ids: list[str]) -> dict[str, Any]:
    names = {EMPATHY: "Empathy", RESOLVED: "Resolved", CSAT: "CSAT", GREETING: "Greeting Compliance"}
    schemas: dict[str, dict[str, Any]] = {
        # the ranges are in the descriptions: Vapi's JsonSchema has no minimum/maximum (vapi-server-sdk 3.x)
        EMPATHY: {"type": "number",
                  "description": "How empathetic the assistant was, 0-100: acknowledging feelings, not "
                                 "interrupting, not dismissing complaints, courteous tone."},
        RESOLVED: {"type": "boolean", "description": "Whether the customer's issue was resolved on the call."},
        CSAT: {"type": "integer",
               "description": "Predicted customer satisfaction, 1 (very unhappy) to 10 (delighted)."},
        GREETING: {"type": "boolean",
                   "description": "Whether the assistant's first message named the company and the agent."},
    }
    obj: dict[str, Any] = {
        "id": stable_uuid(seed, "structured-output", key),
        "orgId": ORG_ID,
        "name": names[key],
        "type": "ai",
        "description": schemas[key]["description"],
        "schema": schemas[key],
        "model": {"provider": "openai", "model": "gpt-4.1-mini", "temperature": 0},
        "assistantIds": assistant_ids,
        **_stamp(anchor, 100, 12),
    }
    if key == EMPATHY:
        obj["conditions"] = [{"type": "minCallDuration", "seconds": EMPATHY_MIN_CALL_SECONDS}]
    return obj


def _assistant(seed: int, anchor: datetime, spec: AssistantSpec, output_ids: list[str],
               scorecard_ids: list[str], tool_ids: list[str]) -> dict[str, Any]:
    prompt = PROMPTS[spec.job].format(company=COMPANY, agent=spec.agent)
    obj: dict[str, Any] = {
        "id": stable_uuid(seed, "assistant", spec.key),
        "orgId": ORG_ID,
        "name": spec.name,
        "firstMessage": greeting_text(spec),
        "firstMessageMode": "assistant-speaks-first",
        "model": {"provider": "openai", "model": "gpt-4o", "temperature": 0.3, "maxTokens": 250,
                  "messages": [{"role": "system", "content": prompt}], "toolIds": tool_ids},
        "voice": {"provider": "11labs", "voiceId": spec.voice_id, "model": "eleven_turbo_v2_5",
                  "stability": 0.5, "similarityBoost": 0.75},
        "transcriber": {"provider": "deepgram", "model": "nova-2", "language": "en"},
        "voicemailMessage": VOICEMAIL.format(customer="there", agent=spec.agent, company=COMPANY),
        "endCallMessage": "Thanks for calling. Goodbye!",
        "endCallPhrases": ["goodbye", "have a great day"],
        "maxDurationSeconds": 240,
        "analysisPlan": {"summaryPlan": {"enabled": True},
                         "successEvaluationPlan": {"enabled": True, "rubric": "PassFail"}},
        "artifactPlan": {"recordingEnabled": True, "recordingFormat": "wav;l16", "videoRecordingEnabled": False,
                         "transcriptPlan": {"enabled": True, "assistantName": "AI", "userName": "User"},
                         "structuredOutputIds": output_ids},
        "metadata": {"team": spec.job or "onboarding", "direction": "outbound" if spec.outbound else "inbound"},
        **_stamp(anchor, spec.created_days_ago, spec.created_days_ago / 3),
    }
    if scorecard_ids:
        obj["artifactPlan"]["scorecardIds"] = scorecard_ids
    return obj


def _phone(seed: int, anchor: datetime, entry: tuple[str, str, str, str, str | None],
           assistant_ids: dict[str, str]) -> dict[str, Any]:
    key, name, provider, number, assistant = entry
    obj: dict[str, Any] = {
        "id": stable_uuid(seed, "phone-number", key),
        "orgId": ORG_ID,
        "provider": provider,
        "name": name,
        "number": number,
        "status": "active",
        **_stamp(anchor, 150, 30),
    }
    if assistant:
        obj["assistantId"] = assistant_ids[assistant]
    if provider == "twilio":  # the SDK union requires the account SID for Twilio numbers
        obj["twilioAccountSid"] = "AC" + stable_uuid(seed, "twilio-account", 0).replace("-", "")
    else:  # vonage / telnyx / byo-phone-number need the credential that imported them
        obj["credentialId"] = stable_uuid(seed, "credential", provider)
    if provider == "byo-phone-number":
        obj["numberE164CheckEnabled"] = True
    return obj


def _tools(seed: int, anchor: datetime) -> list[dict[str, Any]]:
    base = {"orgId": ORG_ID, **_stamp(anchor, 130, 20)}
    return [
        {"id": stable_uuid(seed, "tool", "lookup_account"), "type": "function", "async": False, **base,
         "function": {"name": "lookup_account", "description": "Look up a customer account by account number "
                      "or phone number.", "parameters": {"type": "object", "properties": {
                          "account": {"type": "string", "description": "Account number, e.g. BL-123456"}},
                          "required": ["account"]}},
         "server": {"url": "https://hooks.brightline.example/vapi/lookup"}},
        {"id": stable_uuid(seed, "tool", "transfer"), "type": "transferCall", **base,
         "destinations": [{"type": "number", "number": "+18335550188", "message": "Transferring you to billing.",
                           "description": "Billing questions"}]},
        {"id": stable_uuid(seed, "tool", "end_call"), "type": "endCall", **base},
    ]


def build_catalog(seed: int, anchor: datetime) -> Catalog:
    """Every configuration object of the workspace for ``seed`` and ``anchor``."""
    assistant_ids = {spec.key: stable_uuid(seed, "assistant", spec.key) for spec in ASSISTANTS}
    users: dict[str, list[str]] = {key: [] for key in OUTPUT_KEYS}
    for spec in ASSISTANTS:
        for key in spec.outputs:
            users[key].append(assistant_ids[spec.key])
    outputs = [_output(seed, anchor, key, users[key]) for key in OUTPUT_KEYS]
    output_ids = {key: o["id"] for key, o in zip(OUTPUT_KEYS, outputs, strict=True)}
    scorecard_ids = {"support": stable_uuid(seed, "scorecard", "support"),
                     "renewal": stable_uuid(seed, "scorecard", "renewal")}
    scorecards = [
        {"id": scorecard_ids["support"], "orgId": ORG_ID, "name": "Support QA",
         "description": "Grades support calls on empathy and resolution.",
         "metrics": [
             {"structuredOutputId": output_ids[EMPATHY],
              "conditions": [{"type": "comparator", "comparator": ">=", "value": 80, "points": 60}]},
             {"structuredOutputId": output_ids[RESOLVED],
              "conditions": [{"type": "comparator", "comparator": "=", "value": True, "points": 40}]}],
         "assistantIds": [assistant_ids["support"]], **_stamp(anchor, 90, 5)},
        {"id": scorecard_ids["renewal"], "orgId": ORG_ID, "name": "Renewal QA",
         "description": "Grades renewal calls on predicted satisfaction.",
         "metrics": [{"structuredOutputId": output_ids[CSAT],
                      "conditions": [{"type": "comparator", "comparator": ">=", "value": 7, "points": 100}]}],
         "assistantIds": [assistant_ids["renewal"]], **_stamp(anchor, 75, 2)},
    ]
    tools = _tools(seed, anchor)
    assistants = []
    for spec in ASSISTANTS:
        mine = [output_ids[k] for k in spec.outputs]
        cards = [scorecard_ids["support"]] if spec.key == "support" else []
        tool_ids = [tools[0]["id"], tools[2]["id"]] + ([tools[1]["id"]] if spec.key == "router" else [])
        assistants.append(_assistant(seed, anchor, spec, mine, cards, tool_ids))
    phones = [_phone(seed, anchor, entry, assistant_ids) for entry in PHONES]
    squad = {
        "id": stable_uuid(seed, "squad", "front-desk"), "orgId": ORG_ID, "name": "Front Desk Squad",
        "members": [
            {"assistantId": assistant_ids["router"], "assistantDestinations": [
                {"type": "assistant", "assistantName": "Billing Specialist",
                 "message": "One moment, connecting you to billing.",
                 "description": "Transfer when the caller asks about invoices, payments or credits."},
                {"type": "assistant", "assistantName": "Technical Fallback",
                 "message": "Let me get you to a technician.",
                 "description": "Transfer when the caller has a connection or equipment problem."}]},
            {"assistantId": assistant_ids["billing"], "assistantDestinations": [
                {"type": "assistant", "assistantName": "Front Desk Router",
                 "description": "Transfer back for anything that is not billing."}]},
            {"assistantId": assistant_ids["technical"], "assistantDestinations": [
                {"type": "assistant", "assistantName": "Front Desk Router",
                 "description": "Transfer back for anything that is not technical."}]},
        ],
        **_stamp(anchor, 60, 3),
    }
    return Catalog(
        assistants=assistants, phone_numbers=phones, structured_outputs=outputs, scorecards=scorecards,
        squads=[squad], tools=tools, assistant_ids=assistant_ids,
        phone_ids={entry[0]: p["id"] for entry, p in zip(PHONES, phones, strict=True)},
        output_ids=output_ids, scorecard_ids=scorecard_ids,
    )


def _condition_met(condition: dict[str, Any], value: Any) -> bool:
    target = condition["value"]
    op = condition["comparator"]
    if isinstance(target, bool) or isinstance(value, bool):
        return (op == "=" and value is target) or (op == "!=" and value is not target)
    checks = {"=": value == target, "!=": value != target, ">": value > target, "<": value < target,
              ">=": value >= target, "<=": value <= target}
    return bool(checks[op])


def score(scorecard: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A call's result for ``scorecard``, from its structured-output values (``{outputId: result}``).

    Each metric earns the points of every condition its value meets; a missing value earns 0.
    ``scoreNormalized = ceil(score / maxPoints * 100)`` as Vapi documents it.
    """
    points: dict[str, float] = {}
    max_points = 0.0
    for metric in scorecard["metrics"]:
        sid = metric["structuredOutputId"]
        max_points += sum(c["points"] for c in metric["conditions"])
        value = values.get(sid)
        earned = 0.0
        if value is not None:
            earned = sum(c["points"] for c in metric["conditions"] if _condition_met(c, value))
        points[sid] = int(earned) if float(earned).is_integer() else earned
    total = sum(points.values())
    normalized = math.ceil(total / max_points * 100) if max_points else 0
    return {"name": scorecard.get("name"), "score": int(total) if float(total).is_integer() else total,
            "scoreNormalized": normalized, "metricPoints": points}
