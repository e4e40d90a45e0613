"""Outbound campaigns: plan (assistant, number, leads, window, estimate), confirm, create exactly once.

The confirmation is the write gate's: the plan is shown first, then creating the campaign goes
through ``Hub.call`` where an interactive prompt shows exactly what will be written (or ``--yes``
approves it; headless without it is exit 5). ``dry_run`` stops after the plan. A campaign of the same
name created in the last 24 h refuses the create (exit 2, naming it) unless ``allow_duplicate``: a
command run twice must not call every lead twice. An ambiguous failure
of the create is reconciled by name, creation time, assistant and number before anything could be
sent again (``VapiFacade.create``): a campaign is never created twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.errors import ConfigError
from agent.runtime import Runtime
from agent.timeparse import iso_ms, parse_duration
from workflows.campaign.leads import Leads, read_leads
from workflows.campaign.phone import resolve_phone_number

ESTIMATE_BASIS_CALLS = 50
DUPLICATE_WINDOW = timedelta(hours=24)  # a same-name campaign this recent refuses create (--allow-duplicate)
FINAL_STATUSES = ("ended", "cancelled", "archived")


@dataclass
class CampaignParams:
    """Flags of ``campaign create``."""

    name: str
    assistant: str
    phone_number: str
    leads: str
    region: str = "US"
    start: str | None = None
    max_duration: str | None = None
    dry_run: bool = False
    strict: bool = False
    allow_duplicate: bool = False


@dataclass
class CampaignPlan:
    """Everything shown before anything is created."""

    name: str
    assistant: dict[str, Any]
    phone_number: dict[str, Any]
    leads: Leads
    earliest_at: datetime
    latest_at: datetime | None
    estimate: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    existing_ids: list[str] = field(default_factory=list)  # campaigns of this name before we create one

    def body(self) -> dict[str, Any]:
        """The ``POST /campaign`` body."""
        schedule: dict[str, Any] = {"earliestAt": iso_ms(self.earliest_at)}
        if self.latest_at is not None:
            schedule["latestAt"] = iso_ms(self.latest_at)
        return {"name": self.name, "assistantId": self.assistant["id"], "phoneNumberId": self.phone_number["id"],
                "customers": self.leads.customers, "schedulePlan": schedule}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plan (also what the chat tool returns for a dry run)."""
        return {
            "name": self.name,
            "assistant": {"id": self.assistant["id"], "name": self.assistant.get("name")},
            "phone_number": {"id": self.phone_number["id"], "number": self.phone_number.get("number"),
                             "name": self.phone_number.get("name")},
            "leads": self.leads.summary(),
            "window": {"earliest_at": iso_ms(self.earliest_at),
                       "latest_at": iso_ms(self.latest_at) if self.latest_at else None},
            "estimate": self.estimate,
            "warnings": self.warnings,
        }


@dataclass
class CampaignResult:
    """The created campaign (None on a dry run), the plan, and the leads report."""

    plan: CampaignPlan
    campaign: dict[str, Any] | None
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        """The envelope's ``result`` (the issue's contract plus ``plan`` and ``dry_run``)."""
        campaign = None if self.campaign is None else {
            "id": self.campaign.get("id"), "name": self.campaign.get("name"), "status": self.campaign.get("status")}
        return {"campaign": campaign, "leads": self.plan.leads.summary(), "estimate": self.plan.estimate,
                "dry_run": self.dry_run, "plan": self.plan.to_dict()}


def _created_within(campaign: dict[str, Any], now: datetime, window: timedelta) -> bool:
    created = campaign.get("createdAt")
    try:
        when = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return True  # no readable creation time: treat as recent (refusing is the safe side)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return now - when <= window


def parse_start(text: str | None, now: datetime) -> datetime:
    """``--start`` as an aware datetime (naive values are local time); default now."""
    if not text:
        return now
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--start {text!r} is not an ISO date-time", hint="e.g. 2026-12-01T09:00:00-05:00") from None
    return value if value.tzinfo is not None else value.astimezone()


async def estimate_cost(rt: Runtime, assistant_id: str, leads: int) -> dict[str, Any]:
    """Average cost of the assistant's recent ended calls times the leads (null without history)."""
    costs: list[float] = []
    async for call in rt.vapi.iter_calls(assistant_id=assistant_id):
        if call.get("status") == "ended" and isinstance(call.get("cost"), (int, float)) and call["cost"] > 0:
            costs.append(float(call["cost"]))
            if len(costs) >= ESTIMATE_BASIS_CALLS:
                break
    if not costs:
        return {"per_call_usd": None, "total_usd": None, "basis_calls": 0}
    per_call = sum(costs) / len(costs)
    return {"per_call_usd": round(per_call, 4), "total_usd": round(per_call * leads, 2), "basis_calls": len(costs)}


def load_leads(params: CampaignParams) -> Leads:
    """The leads file read and checked (``--strict``, at least one valid row): local, before any request."""
    if not params.name.strip():
        raise ConfigError("--name must not be empty")
    parse_start(params.start, datetime.now(UTC))
    if params.max_duration:
        parse_duration(params.max_duration, option="--max-duration")
    leads = read_leads(params.leads, region=params.region)
    if params.strict and leads.rejected:
        lines = ", ".join(str(r["line"]) for r in leads.rejected)
        raise ConfigError(f"--strict: {len(leads.rejected)} invalid row(s) in {params.leads} (lines {lines})",
                          hint="fix them or run without --strict to skip them", rejected=leads.rejected)
    if not leads.customers:
        raise ConfigError(f"{params.leads} has no valid row", hint="each row needs a valid phone number",
                          rejected=leads.rejected)
    return leads


async def plan_campaign(rt: Runtime, params: CampaignParams, leads: Leads | None = None) -> CampaignPlan:
    """Resolve and validate everything (``leads``: already loaded by ``load_leads``); nothing is written."""
    if leads is None:
        leads = load_leads(params)
    rt.vapi.require_workflow("campaign")
    assistant = await rt.vapi.resolve_assistant(params.assistant)
    number = resolve_phone_number(params.phone_number, await rt.vapi.list_phone_numbers(), region=params.region)
    now = datetime.fromtimestamp(rt.clock(), tz=UTC)
    earliest = parse_start(params.start, now)
    latest = earliest + parse_duration(params.max_duration, option="--max-duration") if params.max_duration else None
    plan = CampaignPlan(params.name, assistant, number, leads, earliest, latest,
                        await estimate_cost(rt, assistant["id"], len(leads.customers)))
    existing = [c for c in await rt.vapi.list_campaigns() if c.get("name") == params.name]
    plan.existing_ids = [str(c.get("id")) for c in existing]
    recent = [c for c in existing if _created_within(c, now, DUPLICATE_WINDOW)]
    if recent and not params.allow_duplicate and not params.dry_run:
        # Every lead would be called twice: a second run of the same command is refused, not warned about.
        raise ConfigError(f"a campaign named {params.name!r} was created in the last 24 h (id {recent[0].get('id')})",
                          hint="check it with `vapi-agent campaign status ID`; pass --allow-duplicate to create "
                               "another one anyway", existing=[c.get("id") for c in recent])
    if existing:
        refused = " and was created in the last 24 h: creating it needs --allow-duplicate" if recent else ""
        plan.warnings.append(f"a campaign named {params.name!r} already exists (id {existing[0].get('id')}){refused}")
    if leads.rejected:
        plan.warnings.append(f"{len(leads.rejected)} invalid row(s) will be skipped")
    return plan


async def create(rt: Runtime, params: CampaignParams, *, show_plan: Any = None,
                 leads: Leads | None = None) -> CampaignResult:
    """``campaign create``: plan, show, then create once through the gate (unless ``dry_run``)."""
    plan = await plan_campaign(rt, params, leads)
    if show_plan is not None:
        show_plan(plan)
    if params.dry_run:
        return CampaignResult(plan, None, True)
    body = plan.body()

    def matches(candidate: dict[str, Any]) -> bool:
        return (candidate.get("name") == body["name"] and candidate.get("assistantId") == body["assistantId"]
                and candidate.get("phoneNumberId") == body["phoneNumberId"])

    campaign = await rt.vapi.create("campaigns.create", body, matches=matches, list_operation="campaigns.list",
                                    existing_ids=plan.existing_ids)
    return CampaignResult(plan, campaign, False)


async def status(rt: Runtime, campaign_id: str) -> dict[str, Any]:
    """A campaign with its counters (``campaign_id``: the id or a unique prefix of it)."""
    return await rt.vapi.resolve_id("campaign", campaign_id)


async def cancel(rt: Runtime, campaign_id: str) -> dict[str, Any]:
    """Cancel a campaign: destructive in effect (the gate's ``IRREVERSIBLE_EFFECTS``: calls stop for good), so
    it needs confirmation or ``--allow``."""
    binding = rt.vapi.binding("campaigns.update")
    if binding is None:
        rt.vapi.require_workflow("campaign")
        raise ConfigError("the server cannot update campaigns")
    campaign_id = str((await rt.vapi.resolve_id("campaign", campaign_id))["id"])
    output = await rt.hub.call(binding[1].name, {"id": campaign_id, "status": "cancelled"})
    output.raise_for_error()
    return output.data if isinstance(output.data, dict) else {"id": campaign_id, "status": "cancelled"}


def counters(campaign: dict[str, Any]) -> dict[str, int]:
    """The five ``callsCounter*`` fields plus the number of customers."""
    keys = ("callsCounterScheduled", "callsCounterQueued", "callsCounterInProgress", "callsCounterEndedVoicemail",
            "callsCounterEnded")
    out = {k: int(campaign.get(k) or 0) for k in keys}
    out["customers"] = len(campaign.get("customers") or [])
    return out


def is_final(campaign: dict[str, Any]) -> bool:
    """True once a campaign will not change any more."""
    return campaign.get("status") in FINAL_STATUSES

