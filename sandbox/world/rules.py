"""Cross-object rules of the workspace: references that must resolve, and what blocks a delete.

Body *shape* (types, unknown keys) is the REST layer's job (``sandbox.rest.validation``). These checks
need the workspace's state: an ``assistantId`` that names no assistant, a squad destination whose
``assistantName`` matches no member, a campaign that has both a phone number and a dial plan. Each
``check_<kind>`` returns the list of problems (empty = fine) without touching anything, so a write is
all-or-nothing: the workspace raises before it stores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sandbox.world.ids import parse_iso

Store = Mapping[str, Mapping[str, dict[str, Any]]]  # kind -> id -> object
LABELS = {"assistants": "Assistant", "squads": "Squad", "phone_numbers": "Phone Number", "campaigns": "Campaign",
          "scorecards": "Scorecard", "structured_outputs": "Structured Output", "tools": "Tool", "chats": "Chat",
          "calls": "Call"}


class NotFound(Exception):
    """``kind`` (e.g. "calls", "assistants") has no object ``id`` (HTTP 404)."""

    def __init__(self, kind: str, obj_id: str) -> None:
        self.kind, self.id = kind, obj_id
        super().__init__(f"{LABELS.get(kind, kind)} not found")


class Conflict(Exception):
    """The operation clashes with the workspace's state, e.g. deleting an assistant in use (HTTP 409)."""


class ValidationFailed(Exception):
    """A body refers to things that do not exist or breaks a cross-field rule (HTTP 400, message array)."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__("; ".join(messages))

CheckFn = Callable[[Store, dict[str, Any]], list[str]]


def _exists(store: Store, kind: str, value: Any, where: str, label: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str) or value not in store[kind]:
        return [f"Couldn't Get {label}. `{where}` {value} Does Not Exist."]
    return []


def _each_exists(store: Store, kind: str, values: Any, where: str, label: str) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list):
        return [f"{where} must be an array"]
    out: list[str] = []
    for i, value in enumerate(values):
        out += _exists(store, kind, value, f"{where}.{i}", label)
    return out


def check_assistants(store: Store, obj: dict[str, Any]) -> list[str]:
    """An assistant's artifactPlan may only name existing structured outputs and scorecards."""
    plan = obj.get("artifactPlan") or {}
    return (_each_exists(store, "structured_outputs", plan.get("structuredOutputIds"),
                         "artifactPlan.structuredOutputIds", "Structured Output")
            + _each_exists(store, "scorecards", plan.get("scorecardIds"), "artifactPlan.scorecardIds", "Scorecard"))


def member_names(store: Store, members: list[Any]) -> list[str | None]:
    """The assistant name of each squad member (from its assistantId, or its transient assistant)."""
    names: list[str | None] = []
    for member in members:
        if not isinstance(member, dict):
            names.append(None)
        elif member.get("assistantId") in store["assistants"]:
            names.append(store["assistants"][member["assistantId"]].get("name"))
        elif isinstance(member.get("assistant"), dict):
            names.append(member["assistant"].get("name"))
        else:
            names.append(None)
    return names


def check_squads(store: Store, obj: dict[str, Any]) -> list[str]:
    """Members need an existing assistantId or a transient assistant; destinations must name a member.

    Vapi routes squad transfers by assistant *name*, so a destination whose ``assistantName`` matches
    no member's assistant would strand the caller.
    """
    members = obj.get("members")
    if not isinstance(members, list) or not members:
        return ["members must contain at least 1 elements"]
    problems: list[str] = []
    names = member_names(store, members)
    for i, member in enumerate(members):
        if not isinstance(member, dict):
            problems.append(f"members.{i} must be an object")
            continue
        if member.get("assistantId") is None and not isinstance(member.get("assistant"), dict):
            problems.append(f"members.{i} must have either assistantId or assistant")
        problems += _exists(store, "assistants", member.get("assistantId"), f"members.{i}.assistantId", "Assistant")
        for j, dest in enumerate(member.get("assistantDestinations") or []):
            where = f"members.{i}.assistantDestinations.{j}"
            if not isinstance(dest, dict):
                problems.append(f"{where} must be an object")
                continue
            name = dest.get("assistantName")
            if name is None and dest.get("assistantId") is not None:
                problems += _exists(store, "assistants", dest["assistantId"], f"{where}.assistantId", "Assistant")
            elif name not in [n for n in names if n is not None]:
                problems.append(f"{where}.assistantName {name!r} does not match the name of any squad member's "
                                f"assistant ({', '.join(repr(n) for n in names if n is not None) or 'none'})")
    return problems


def check_phone_numbers(store: Store, obj: dict[str, Any]) -> list[str]:
    """Inbound routing must point at an existing assistant or squad."""
    return (_exists(store, "assistants", obj.get("assistantId"), "assistantId", "Assistant")
            + _exists(store, "squads", obj.get("squadId"), "squadId", "Squad"))


def check_campaigns(store: Store, obj: dict[str, Any]) -> list[str]:
    """Name; exactly one of assistantId/squadId/workflowId; phoneNumberId xor dialPlan; a sane schedule."""
    problems: list[str] = []
    if not isinstance(obj.get("name"), str) or not obj["name"]:
        problems.append("name must be a string")
    who = [k for k in ("assistantId", "squadId", "workflowId") if obj.get(k) is not None]
    if len(who) != 1:
        problems.append("Exactly one of assistantId, squadId or workflowId must be provided")
    problems += _exists(store, "assistants", obj.get("assistantId"), "assistantId", "Assistant")
    problems += _exists(store, "squads", obj.get("squadId"), "squadId", "Squad")
    if obj.get("workflowId") is not None:  # the sandbox has no workflows
        problems.append(f"Couldn't Get Workflow. `workflowId` {obj['workflowId']} Does Not Exist.")
    has_phone, has_plan = obj.get("phoneNumberId") is not None, obj.get("dialPlan") is not None
    if has_phone == has_plan:
        problems.append("Exactly one of phoneNumberId or dialPlan must be provided")
    problems += _exists(store, "phone_numbers", obj.get("phoneNumberId"), "phoneNumberId", "Phone Number")
    if has_phone and not obj.get("customers"):
        problems.append("customers must contain at least 1 elements")
    for i, entry in enumerate(obj.get("dialPlan") or []):
        if not isinstance(entry, dict) or not entry.get("customers"):
            problems.append(f"dialPlan.{i}.customers must contain at least 1 elements")
            continue
        problems += _exists(store, "phone_numbers", entry.get("phoneNumberId"), f"dialPlan.{i}.phoneNumberId",
                            "Phone Number")
    plan = obj.get("schedulePlan")
    if plan is not None:
        try:
            earliest = parse_iso(plan["earliestAt"])
            if plan.get("latestAt") is not None and parse_iso(plan["latestAt"]) <= earliest:
                problems.append("schedulePlan.latestAt must be after schedulePlan.earliestAt")
        except (KeyError, TypeError, ValueError, AttributeError):
            problems.append("schedulePlan.earliestAt must be a valid ISO 8601 date string")
    return problems


def check_scorecards(store: Store, obj: dict[str, Any]) -> list[str]:
    """Metrics must grade existing structured outputs; assistantIds must exist."""
    problems: list[str] = []
    metrics = obj.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        problems.append("metrics must contain at least 1 elements")
    for i, metric in enumerate(metrics or []):
        if isinstance(metric, dict):
            problems += _exists(store, "structured_outputs", metric.get("structuredOutputId"),
                                f"metrics.{i}.structuredOutputId", "Structured Output")
    return problems + _each_exists(store, "assistants", obj.get("assistantIds"), "assistantIds", "Assistant")


def check_structured_outputs(store: Store, obj: dict[str, Any]) -> list[str]:
    """assistantIds must exist."""
    return _each_exists(store, "assistants", obj.get("assistantIds"), "assistantIds", "Assistant")


def check_chats(store: Store, obj: dict[str, Any]) -> list[str]:
    """The assistant/squad and the previous chat must exist."""
    return (_exists(store, "assistants", obj.get("assistantId"), "assistantId", "Assistant")
            + _exists(store, "squads", obj.get("squadId"), "squadId", "Squad")
            + _exists(store, "chats", obj.get("previousChatId"), "previousChatId", "Chat"))


CHECKS: dict[str, CheckFn] = {
    "assistants": check_assistants, "squads": check_squads, "phone_numbers": check_phone_numbers,
    "campaigns": check_campaigns, "scorecards": check_scorecards,
    "structured_outputs": check_structured_outputs, "chats": check_chats,
}


def blockers(store: Store, kind: str, obj_id: str) -> list[str]:
    """Why ``obj_id`` cannot be deleted (Vapi answers 409 when an object is still in use)."""
    found: list[str] = []
    active = [c for c in store["campaigns"].values() if c.get("status") not in ("ended", "cancelled")]
    if kind == "assistants":
        for squad in store["squads"].values():
            if any(isinstance(m, dict) and m.get("assistantId") == obj_id for m in squad.get("members") or []):
                found.append(f"squad {squad['id']}")
        found += [f"phone number {p['id']}" for p in store["phone_numbers"].values() if p.get("assistantId") == obj_id]
        found += [f"campaign {c['id']}" for c in active if c.get("assistantId") == obj_id]
    elif kind == "squads":
        found += [f"phone number {p['id']}" for p in store["phone_numbers"].values() if p.get("squadId") == obj_id]
        found += [f"campaign {c['id']}" for c in active if c.get("squadId") == obj_id]
    elif kind == "structured_outputs":
        for card in store["scorecards"].values():
            if any(isinstance(m, dict) and m.get("structuredOutputId") == obj_id for m in card.get("metrics") or []):
                found.append(f"scorecard {card['id']}")
    elif kind == "phone_numbers":
        found += [f"campaign {c['id']}" for c in active if c.get("phoneNumberId") == obj_id
                  or any(isinstance(e, dict) and e.get("phoneNumberId") == obj_id for e in c.get("dialPlan") or [])]
    return found
