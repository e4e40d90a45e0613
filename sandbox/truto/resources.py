"""The Vapi resources Truto documents, as one table (``RESOURCES``) the tool catalogue is generated from.

Each ``Resource`` names its REST path, paging style, list query parameters and create/update body
properties (flat JSON-schema fragments). Body keys follow vapi-server-sdk 3.0.0's request models,
so everything the proxy forwards is something the REST app (and Vapi) accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


# ---------------------------------------------------------------- property helpers
@dataclass(frozen=True)
class Prop:
    """One flat input property: its JSON-schema fragment (with description)."""

    name: str
    schema: dict[str, Any]


def prop(name: str, kind: str, description: str, **extra: Any) -> Prop:
    """A property of JSON type ``kind`` (arrays get ``items``: OpenAI rejects arrays without them)."""
    schema: dict[str, Any] = {"type": kind, "description": description, **extra}
    if kind == "array" and "items" not in schema:
        schema["items"] = {"type": "object"}
    return Prop(name, schema)


def string_prop(name: str, description: str, **extra: Any) -> Prop:
    """A string property."""
    return prop(name, "string", description, **extra)


def object_prop(name: str, description: str) -> Prop:
    """A free-form object property (Vapi configs are deep; Truto documents them as open objects)."""
    return prop(name, "object", description, additionalProperties=True)


def array_prop(name: str, description: str, items: dict[str, Any] | None = None) -> Prop:
    """An array property (items default to objects)."""
    return prop(name, "array", description, items=items or {"type": "object"})


TIME_FILTERS: tuple[Prop, ...] = tuple(
    string_prop(f"{field_}{op}", f"Only records whose {field_} is {text} this ISO-8601 timestamp.")
    for field_ in ("createdAt", "updatedAt")
    for op, text in (("Gt", "after"), ("Lt", "before"), ("Ge", "at or after"), ("Le", "at or before"))
)
SORT_PROPS: tuple[Prop, ...] = (
    string_prop("sortOrder", "Sort order, ASC or DESC (default DESC).", enum=["ASC", "DESC"]),
    string_prop("sortBy", "Sort key: createdAt, duration or cost.", enum=["createdAt", "duration", "cost"]),
)
ID_PROP = string_prop("id", "The id of the record.")


@dataclass(frozen=True)
class Resource:
    """One Vapi resource as Truto documents it.

    ``paging`` is ``time`` for Vapi's bare-array lists (paged by ``createdAt``) or ``page`` for
    ``{results, metadata}`` lists. ``create``/``update`` of ``None`` mean the method does not exist.
    """

    name: str
    singular: str
    path: str
    paging: str
    returns: tuple[str, ...]
    list_query: tuple[Prop, ...] = ()
    create: tuple[Prop, ...] | None = None
    create_required: tuple[str, ...] = ()
    update: tuple[Prop, ...] | None = None
    delete: bool = True
    fixed_body: dict[str, Any] = field(default_factory=dict)
    label: str = ""


# ---------------------------------------------------------------- the resource table
_ASSISTANT_BODY: tuple[Prop, ...] = (
    string_prop("name", "Name of the assistant (not unique)."),
    string_prop("firstMessage", "What the assistant says first."),
    string_prop(
        "firstMessageMode",
        "Who speaks first.",
        enum=[
            "assistant-speaks-first",
            "assistant-speaks-first-with-model-generated-message",
            "assistant-waits-for-user",
        ],
    ),
    object_prop("model", "LLM config: {provider, model, messages[{role, content}], temperature, toolIds}."),
    object_prop("voice", "Voice config: {provider, voiceId}."),
    object_prop("transcriber", "Transcriber config: {provider, model, language}."),
    string_prop("voicemailMessage", "Message left on voicemail."),
    string_prop("endCallMessage", "Message spoken before hanging up."),
    array_prop("endCallPhrases", "Phrases that end the call.", {"type": "string"}),
    prop("maxDurationSeconds", "number", "Maximum call duration in seconds."),
    object_prop("metadata", "Free-form metadata."),
    object_prop("server", "Server URL config for webhooks: {url, ...}."),
    object_prop("analysisPlan", "Post-call analysis plan."),
    object_prop("artifactPlan", "Artifact plan: {recordingEnabled, structuredOutputIds, scorecardIds, ...}."),
)
_CALL_CREATE: tuple[Prop, ...] = (
    string_prop("name", "Name of the call."),
    string_prop("assistantId", "Assistant that answers (one of assistantId, assistant, squadId, squad)."),
    object_prop("assistant", "Transient assistant config."),
    object_prop("assistantOverrides", "Overrides for the assistant, e.g. {variableValues: {...}}."),
    string_prop("squadId", "Squad that answers."),
    object_prop("squad", "Transient squad config."),
    object_prop("squadOverrides", "Overrides for the squad."),
    string_prop("phoneNumberId", "Phone number to call from."),
    object_prop("customer", "Customer to call: {number (E.164), name, ...}."),
    string_prop("customerId", "Existing customer id."),
    array_prop("customers", "Several customers: creates a batch of calls."),
    object_prop("schedulePlan", "When to place the call: {earliestAt, latestAt?}."),
)
_PHONE_BODY: tuple[Prop, ...] = (
    string_prop("provider", "Provider: twilio, vonage, vapi, telnyx or byo-phone-number."),
    string_prop("number", "The E.164 number."),
    string_prop("name", "Display name."),
    string_prop("assistantId", "Assistant for inbound calls."),
    string_prop("squadId", "Squad for inbound calls."),
    string_prop("twilioAccountSid", "Twilio account SID (provider twilio)."),
    string_prop("twilioAuthToken", "Twilio auth token (provider twilio)."),
    string_prop("credentialId", "Credential id (vonage, telnyx, byo-phone-number)."),
    string_prop("numberDesiredAreaCode", "Desired area code (provider vapi)."),
    object_prop("server", "Server URL config."),
    object_prop("fallbackDestination", "Where to forward when the assistant is unavailable."),
)
_CAMPAIGN_UPDATE: tuple[Prop, ...] = (
    string_prop("name", "Campaign name."),
    string_prop("assistantId", "Assistant placing the calls."),
    string_prop("squadId", "Squad placing the calls."),
    string_prop("phoneNumberId", "Phone number to call from (or dialPlan)."),
    array_prop("dialPlan", "Several phone numbers with their customers."),
    object_prop("schedulePlan", "{earliestAt (required), latestAt?}."),
)
_SCORECARD_BODY: tuple[Prop, ...] = (
    string_prop("name", "Scorecard name."),
    string_prop("description", "What it grades."),
    array_prop("metrics", "[{structuredOutputId, conditions[{type, comparator, value, points}]}]."),
    array_prop("assistantIds", "Assistants it grades.", {"type": "string"}),
)
_STRUCTURED_BODY: tuple[Prop, ...] = (
    string_prop("name", "Name of the structured output."),
    object_prop("schema", "JSON Schema of the extracted value."),
    string_prop("type", "ai or regex.", enum=["ai", "regex"]),
    string_prop("regex", "Regex (type regex)."),
    object_prop("model", "Extraction model config."),
    string_prop("description", "What it extracts."),
    array_prop("assistantIds", "Assistants it runs for.", {"type": "string"}),
)
_TOOL_BODY: tuple[Prop, ...] = (
    string_prop("type", "Tool type: function, apiRequest, transferCall, endCall, sms, query, handoff, mcp, ..."),
    object_prop("function", "Function definition {name, description, parameters} (type function)."),
    object_prop("server", "Server that executes the tool: {url, ...}."),
    array_prop("messages", "Messages spoken while the tool runs."),
    array_prop("destinations", "Transfer destinations (type transferCall)."),
    string_prop("url", "Endpoint URL (type apiRequest)."),
    string_prop("method", "HTTP method (type apiRequest)."),
    string_prop("name", "Tool name (type apiRequest)."),
    string_prop("description", "Tool description."),
)
CHAT_BODY: tuple[Prop, ...] = (
    Prop("input", {"type": ["string", "array"], "items": {"type": "object"},
                   "description": "The user message, or an array of {role, content} messages."}),
    string_prop("assistantId", "Assistant that replies (one of assistantId, assistant, squadId, squad)."),
    object_prop("assistant", "Transient assistant config."),
    object_prop("assistantOverrides", "Only variableValues apply in chat."),
    string_prop("squadId", "Squad that replies."),
    object_prop("squad", "Transient squad config."),
    string_prop("name", "Chat name."),
    string_prop("sessionId", "Session to continue (not with previousChatId)."),
    string_prop("previousChatId", "Chat to continue (not with sessionId)."),
)

RESOURCES: tuple[Resource, ...] = (
    Resource(
        "calls", "call", "/call", "time",
        returns=("id", "orgId", "type", "status", "endedReason", "createdAt", "updatedAt", "startedAt",
                 "endedAt", "assistantId", "phoneNumberId", "customer", "cost", "artifact", "analysis"),
        list_query=(ID_PROP, string_prop("assistantId", "Only calls of this assistant."),
                    string_prop("phoneNumberId", "Only calls on this phone number."), *TIME_FILTERS),
        create=_CALL_CREATE,
        update=(string_prop("name", "New name of the call."),),
        label="phone calls",
    ),
    Resource(
        "assistants", "assistant", "/assistant", "time",
        returns=("id", "orgId", "name", "firstMessage", "model", "voice", "transcriber", "artifactPlan",
                 "createdAt", "updatedAt"),
        list_query=TIME_FILTERS, create=_ASSISTANT_BODY, update=_ASSISTANT_BODY,
        label="voice assistants",
    ),
    Resource(
        "squads", "squad", "/squad", "time",
        returns=("id", "orgId", "name", "members", "createdAt", "updatedAt"),
        list_query=(string_prop("idAny", "Comma-separated squad ids."), *TIME_FILTERS),
        create=(string_prop("name", "Squad name."),
                array_prop("members", "[{assistantId | assistant, assistantDestinations[{type, assistantName, "
                              "message, description}]}]; the first member starts the call."),
                object_prop("membersOverrides", "Overrides applied to every member.")),
        create_required=("members",),
        update=(string_prop("name", "Squad name."), array_prop("members", "Squad members."),
                object_prop("membersOverrides", "Overrides applied to every member.")),
        label="multi-assistant squads",
    ),
    Resource(
        "phone_numbers", "phone_number", "/phone-number", "time",
        returns=("id", "orgId", "provider", "number", "name", "status", "assistantId", "squadId",
                 "createdAt", "updatedAt"),
        list_query=TIME_FILTERS, create=_PHONE_BODY, create_required=("provider",),
        update=tuple(p for p in _PHONE_BODY if p.name != "provider"),
        label="phone numbers",
    ),
    Resource(
        "campaigns", "campaign", "/campaign", "page",
        returns=("id", "orgId", "name", "status", "assistantId", "phoneNumberId", "schedulePlan",
                 "customers", "calls", "callsCounterEnded", "createdAt", "updatedAt"),
        list_query=(ID_PROP, string_prop("status", "Only campaigns in this status.",
                                enum=["scheduled", "in-progress", "ended", "cancelled", "archived"]),
                    *SORT_PROPS, *TIME_FILTERS),
        create=(*_CAMPAIGN_UPDATE,
                array_prop("customers", "Customers to call: [{number (E.164), name, ...}]."),
                prop("maxConcurrency", "integer", "Calls at once (default 10, max 500)."),
                object_prop("assistantOverrides", "Overrides for the assistant.")),
        create_required=("name",),
        update=(*_CAMPAIGN_UPDATE,
                string_prop("status", "Only ended or cancelled.", enum=["ended", "cancelled"])),
        label="outbound call campaigns",
    ),
    Resource(
        "observability_scorecards", "observability_scorecard", "/observability/scorecard", "page",
        returns=("id", "orgId", "name", "description", "metrics", "assistantIds", "createdAt", "updatedAt"),
        list_query=(ID_PROP, *SORT_PROPS, *TIME_FILTERS),
        create=_SCORECARD_BODY, create_required=("metrics",), update=_SCORECARD_BODY,
        label="QA scorecards that grade calls",
    ),
    Resource(
        "structured_outputs", "structured_output", "/structured-output", "page",
        returns=("id", "orgId", "name", "type", "schema", "description", "assistantIds", "createdAt",
                 "updatedAt"),
        list_query=(ID_PROP, string_prop("name", "Only structured outputs with this name."), *SORT_PROPS,
                    *TIME_FILTERS),
        create=_STRUCTURED_BODY, create_required=("name", "schema"), update=_STRUCTURED_BODY,
        label="structured outputs extracted from calls",
    ),
    Resource(
        "tools", "tool", "/tool", "time",
        returns=("id", "orgId", "type", "function", "server", "createdAt", "updatedAt"),
        list_query=TIME_FILTERS, create=_TOOL_BODY, create_required=("type",),
        update=tuple(p for p in _TOOL_BODY if p.name != "type"),
        label="assistant tools",
    ),
    Resource(
        "chats", "chat", "/chat", "page",
        returns=("id", "orgId", "assistantId", "sessionId", "input", "messages", "output", "cost",
                 "createdAt", "updatedAt"),
        list_query=(ID_PROP, string_prop("assistantId", "Only chats with this assistant."),
                    string_prop("squadId", "Only chats with this squad."),
                    string_prop("sessionId", "Only this session."),
                    string_prop("previousChatId", "Only chats continuing this chat."),
                    string_prop("idAny", "Comma-separated chat ids."), *SORT_PROPS, *TIME_FILTERS),
        create=CHAT_BODY, create_required=("input",),
        # An MCP result cannot carry an SSE stream: chats are always created non-streaming.
        fixed_body={"stream": False},
        label="text chats",
    ),
)
