"""Per-route allow-lists: which query parameters and body keys each Vapi route accepts, and their types.

Taken from the request builders of vapi-server-sdk 3.0.0 (``vapi/*/raw_client.py``) and the DTO
models they reference (``vapi/types``); that SDK is a test dependency only, so the lists live here.
Big provider-discriminated sub-objects (an assistant's ``model``/``voice``/``transcriber``, plans,
``server``) are checked for their type and discriminator only; everything the sandbox itself reads
(names, ids, members, destinations, customers, schedule, metrics) is checked in depth.
"""

from __future__ import annotations

from sandbox.rest.validation import AnyOf, Anything, Arr, Bool, Num, Obj, Q, Spec, Str, obj, timestamp_filters

FREE = Obj()  # a free-form object (@IsObject)
SORT_ORDER = ("ASC", "DESC")

# ---------------------------------------------------------------- query parameters
LIMIT = Q("number", minimum=0, maximum=1000)
PAGED = {
    "page": Q("number", minimum=1),
    "sortOrder": Q("enum", enum=SORT_ORDER),
    "sortBy": Q("enum", enum=("createdAt", "duration", "cost")),
    "limit": LIMIT,
}
CALL_LIST_QUERY = {"id": Q(), "assistantId": Q(), "phoneNumberId": Q(), "limit": LIMIT, **timestamp_filters()}
BARE_LIST_QUERY = {"limit": LIMIT, **timestamp_filters()}
SQUAD_LIST_QUERY = {"idAny": Q("csv"), **BARE_LIST_QUERY}
CAMPAIGN_LIST_QUERY = {
    "id": Q(),
    "status": Q("enum", enum=("scheduled", "in-progress", "ended", "cancelled", "archived")),
    **PAGED,
    **timestamp_filters(),
}
SCORECARD_LIST_QUERY = {"id": Q(), **PAGED, **timestamp_filters()}
STRUCTURED_OUTPUT_LIST_QUERY = {"id": Q(), "name": Q(), **PAGED, **timestamp_filters()}
CHAT_LIST_QUERY = {
    "id": Q(),
    "assistantId": Q(),
    "assistantIdAny": Q("csv"),
    "squadId": Q(),
    "sessionId": Q(),
    "previousChatId": Q(),
    "idAny": Q("csv"),
    **PAGED,
    **timestamp_filters(),
}
STRUCTURED_OUTPUT_PATCH_QUERY = {"schemaOverride": Q()}
NO_QUERY: dict[str, Q] = {}

# ---------------------------------------------------------------- shared pieces
def provider_union(*required: str) -> Obj:
    """A provider-discriminated config: ``provider`` (string) + ``required`` keys; other keys free.

    class-validator's discriminated unions validate each provider's DTO; the sandbox only needs
    the discriminator and the keys every variant requires.
    """
    fields: dict[str, Spec] = {"provider": Str(), **{key: Str() for key in required}}
    return _Loose(fields, frozenset({"provider", *required}))


class _Loose(Obj):
    """An object whose listed keys are typed and required; unlisted keys pass (open DTO unions)."""

    def __init__(self, fields: dict[str, Spec], required: frozenset[str]) -> None:
        super().__init__(fields=fields, required=required)

    def check(self, value: object, prop: str, prefix: str, errors: list[str]) -> None:
        """Type-check the listed keys only."""
        name = prefix + prop
        if not isinstance(value, dict):
            errors.append(f"nested property {name} must be either object or array")
            return
        for key, spec in (self.fields or {}).items():
            if value.get(key) is None:
                if key in self.required:
                    errors.append(f"{name}.{key} should not be empty")
                continue
            spec.check(value[key], key, f"{name}.", errors)


CUSTOMER = obj(
    numberE164CheckEnabled=Bool(),
    extension=Str(),
    assistantOverrides=FREE,
    squadOverrides=FREE,
    number=Str(),
    sipUri=Str(),
    name=Str(max_length=40),
    email=Str(),
    externalId=Str(),
)
SCHEDULE_PLAN = obj(("earliestAt",), earliestAt=Str(iso_date=True), latestAt=Str(iso_date=True))
DESTINATION = obj(
    ("type",),
    type=Str(enum=("assistant",)),
    assistantName=Str(),
    assistantId=Str(),
    assistant=FREE,
    message=AnyOf((Str(), FREE), "must be a string or an object"),
    description=Str(),
    transferMode=Str(),
    name=Str(),
    contextEngineeringPlan=FREE,
    variableExtractionPlan=FREE,
    assistantOverrides=FREE,
)
SQUAD_MEMBER = obj(
    assistantVersion=Num(),
    assistantDestinations=Arr(items=DESTINATION),
    assistantId=Str(),
    assistant=FREE,
    assistantOverrides=FREE,
)

# ---------------------------------------------------------------- assistants
ASSISTANT_BODY = obj(
    transcriber=provider_union(),
    model=provider_union("model"),
    voice=provider_union(),
    firstMessage=Str(),
    firstMessageInterruptionsEnabled=Bool(),
    firstMessageMode=Str(
        enum=(
            "assistant-speaks-first",
            "assistant-speaks-first-with-model-generated-message",
            "assistant-waits-for-user",
        )
    ),
    voicemailDetection=AnyOf((Str(), FREE), "must be a string or an object"),
    clientMessages=Arr(items=Str()),
    serverMessages=Arr(items=Str()),
    maxDurationSeconds=Num(minimum=10, maximum=43200),
    backgroundSound=AnyOf((Str(), FREE), "must be a string or an object"),
    modelOutputInMessagesEnabled=Bool(),
    transportConfigurations=Arr(items=FREE),
    observabilityPlan=FREE,
    credentials=Arr(items=FREE),
    hooks=Arr(items=FREE),
    name=Str(max_length=40),
    voicemailMessage=Str(),
    endCallMessage=Str(),
    endCallPhrases=Arr(items=Str()),
    compliancePlan=FREE,
    metadata=FREE,
    backgroundSpeechDenoisingPlan=FREE,
    analysisPlan=FREE,
    artifactPlan=FREE,
    startSpeakingPlan=FREE,
    stopSpeakingPlan=FREE,
    monitorPlan=FREE,
    credentialIds=Arr(items=Str()),
    server=FREE,
    keypadInputPlan=FREE,
)

# ---------------------------------------------------------------- squads
SQUAD_BODY = obj(("members",), name=Str(), members=Arr(items=SQUAD_MEMBER, min_size=1), membersOverrides=FREE)
SQUAD_PATCH = obj(name=Str(), members=Arr(items=SQUAD_MEMBER, min_size=1), membersOverrides=FREE)

# ---------------------------------------------------------------- calls
CALL_BODY = obj(
    assistantVersion=Num(),
    squadVersion=Num(),
    transport=FREE,
    customers=Arr(items=CUSTOMER),
    name=Str(max_length=40),
    schedulePlan=SCHEDULE_PLAN,
    assistantId=Str(),
    assistant=FREE,
    assistantOverrides=FREE,
    squadId=Str(),
    squad=FREE,
    squadOverrides=FREE,
    workflowId=Str(),
    workflow=FREE,
    workflowOverrides=FREE,
    phoneNumberId=Str(),
    phoneNumber=FREE,
    customerId=Str(),
    customer=CUSTOMER,
)
CALL_PATCH = obj(name=Str(max_length=40))
CALL_DELETE = obj(ids=Arr(items=Str()))

# ---------------------------------------------------------------- phone numbers (provider union)
_PHONE_COMMON: dict[str, Spec] = {
    "fallbackDestination": FREE,
    "hooks": Arr(items=FREE),
    "name": Str(max_length=40),
    "assistantId": Str(),
    "workflowId": Str(),
    "squadId": Str(),
    "server": FREE,
}
PHONE_PROVIDERS = ("twilio", "vonage", "vapi", "telnyx", "byo-phone-number")
_PHONE_EXTRA: dict[str, tuple[dict[str, Spec], tuple[str, ...]]] = {
    "twilio": (
        {"smsEnabled": Bool(), "number": Str(), "twilioAccountSid": Str(), "twilioAuthToken": Str(),
         "twilioApiKey": Str(), "twilioApiSecret": Str()},
        ("number", "twilioAccountSid"),
    ),
    "vonage": ({"number": Str(), "credentialId": Str()}, ("number", "credentialId")),
    "telnyx": ({"number": Str(), "credentialId": Str()}, ("number", "credentialId")),
    "byo-phone-number": (
        {"numberE164CheckEnabled": Bool(), "number": Str(), "credentialId": Str()},
        ("credentialId",),
    ),
    "vapi": (
        {"numberDesiredAreaCode": Str(), "sipUri": Str(), "authentication": FREE, "number": Str()},
        (),
    ),
}


def phone_body(provider: str, *, create: bool) -> Obj:
    """The DTO for ``provider`` (create: its required keys; update: everything optional)."""
    extra, required = _PHONE_EXTRA[provider]
    fields: dict[str, Spec] = {"provider": Str(enum=PHONE_PROVIDERS), **_PHONE_COMMON, **extra}
    return Obj(fields=fields, required=frozenset(("provider", *required)) if create else frozenset())


# ---------------------------------------------------------------- campaigns
DIAL_PLAN_ENTRY = obj(("phoneNumberId", "customers"), phoneNumberId=Str(), customers=Arr(items=CUSTOMER))
_CAMPAIGN_TARGETS: dict[str, Spec] = {
    "assistantId": Str(),
    "workflowId": Str(),
    "squadId": Str(),
    "phoneNumberId": Str(),
    "dialPlan": Arr(items=DIAL_PLAN_ENTRY),
    "schedulePlan": SCHEDULE_PLAN,
}
CAMPAIGN_BODY = obj(
    ("name",),
    name=Str(),
    **_CAMPAIGN_TARGETS,
    customers=Arr(items=CUSTOMER),
    maxConcurrency=Num(integer=True, minimum=1, maximum=500),
    assistantOverrides=FREE,
    squadOverrides=FREE,
    server=FREE,
    serverMessages=Arr(items=Str()),
    predialPlan=FREE,
    duplicateFromCampaignId=Str(),
)
CAMPAIGN_PATCH = Obj(fields={"name": Str(), **_CAMPAIGN_TARGETS, "status": Str(enum=("ended", "cancelled"))})

# ---------------------------------------------------------------- observability
CONDITION = obj(
    ("type", "comparator", "value", "points"),
    type=Str(enum=("comparator",)),
    comparator=Str(enum=("=", "!=", ">", "<", ">=", "<=")),
    value=AnyOf((Num(), Bool()), "must be a number or a boolean"),
    points=Num(minimum=0, maximum=100),
)
METRIC = obj(("structuredOutputId", "conditions"), structuredOutputId=Str(), conditions=Arr(items=CONDITION))
_SCORECARD_FIELDS: dict[str, Spec] = {
    "name": Str(max_length=80),
    "description": Str(),
    "metrics": Arr(items=METRIC),
    "assistantIds": Arr(items=Str()),
}
SCORECARD_BODY = Obj(fields=dict(_SCORECARD_FIELDS), required=frozenset({"metrics"}))
SCORECARD_PATCH = Obj(fields=dict(_SCORECARD_FIELDS))
_STRUCTURED_OUTPUT_FIELDS = {
    "type": Str(enum=("ai", "regex")),
    "regex": Str(),
    "model": FREE,
    "compliancePlan": FREE,
    "conditions": Arr(items=FREE),
    "name": Str(max_length=40),
    "schema": FREE,
    "description": Str(),
    "assistantIds": Arr(items=Str()),
    "workflowIds": Arr(items=Str()),
}
STRUCTURED_OUTPUT_BODY = Obj(fields=dict(_STRUCTURED_OUTPUT_FIELDS), required=frozenset({"name", "schema"}))
STRUCTURED_OUTPUT_PATCH = Obj(fields=dict(_STRUCTURED_OUTPUT_FIELDS))

# ---------------------------------------------------------------- tools (discriminated by type)
TOOL_TYPES = (
    "apiRequest", "code", "dtmf", "endCall", "function", "knowledgeBase", "transferCall", "handoff", "bash",
    "computer", "textEditor", "query", "google.calendar.event.create", "google.sheets.row.append",
    "google.calendar.availability.check", "slack.message.send", "sms", "mcp",
    "gohighlevel.calendar.availability.check", "gohighlevel.calendar.event.create",
    "gohighlevel.contact.create", "gohighlevel.contact.get", "sipRequest", "voicemail", "ghl",
)
_TOOL_FIELDS = {
    "type": Str(enum=TOOL_TYPES),
    "messages": Arr(items=FREE),
    "async": Bool(),
    "server": FREE,
    "function": FREE,
    "parameters": Anything(),
    "rejectionPlan": FREE,
    "variableExtractionPlan": FREE,
    "destinations": Arr(items=FREE),
    "name": Str(),
    "description": Str(),
    "method": Str(),
    "url": Str(),
    "body": FREE,
    "headers": FREE,
    "timeoutSeconds": Num(),
    "credentialId": Str(),
    "encryptedPaths": Arr(items=Str()),
    "backoffPlan": FREE,
    "metadata": FREE,
    "knowledgeBases": Arr(items=FREE),
    "knowledgeBaseId": Str(),
    "code": Str(),
    "environmentVariables": Arr(items=FREE),
    "sipUri": Str(),
    "verb": Str(),
}
# Only these tool DTOs declare ``name`` / ``description`` (vapi-server-sdk 3.x); a function tool's name is
# ``function.name``, and Nest refuses the key on the others ("property name should not exist").
_TOOL_LABELS = {"apiRequest": ("name", "description"), "bash": ("name",), "computer": ("name",),
                "textEditor": ("name",)}


def tool_body(tool_type: str | None, *, create: bool) -> Obj:
    """The create (or patch) DTO of one tool type."""
    labels = _TOOL_LABELS.get(tool_type or "", ())
    fields = {k: v for k, v in _TOOL_FIELDS.items()
              if (k not in ("name", "description") or k in labels) and (create or k != "type")}
    return Obj(fields=fields, required=frozenset({"type"}) if create else frozenset())

# ---------------------------------------------------------------- chat
CHAT_MESSAGE = obj(("role",), role=Str(), content=AnyOf((Str(), Arr()), "must be a string or an array"),
                   name=Str(), tool_calls=Arr(items=FREE), toolCalls=Arr(items=FREE), tool_call_id=Str(),
                   message=Str(), metadata=FREE, refusal=Str())
CHAT_BODY = obj(
    ("input",),
    assistantId=Str(),
    assistant=FREE,
    assistantOverrides=obj(variableValues=FREE),
    squadId=Str(),
    squad=FREE,
    name=Str(max_length=40),
    sessionId=Str(),
    input=AnyOf((Str(not_empty=True), Arr(items=CHAT_MESSAGE, min_size=1)), "must be a string or an array"),
    stream=Bool(),
    previousChatId=Str(),
    transport=FREE,
)
