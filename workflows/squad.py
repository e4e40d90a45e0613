"""Squads: several assistants on one call; the first member starts it, transfers route by name.

``--route "FROM -> TO: when ..."``: names may contain spaces; the first ``:`` after the arrow starts
the description (the condition the model transfers on). Every name must resolve to a member before
anything is sent; routes become ``assistantDestinations`` of the FROM member, addressed by the TO
assistant's name (Vapi routes transfers by assistant name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.errors import ConfigError
from agent.runtime import Runtime


@dataclass(frozen=True)
class Route:
    """One transfer: from a member, to a member, when (the description the model reads)."""

    source: str
    target: str
    description: str


def parse_route(text: str) -> Route:
    """``"FROM -> TO: when ..."`` -> Route; anything else is exit 2 with the expected shape."""
    source, arrow, rest = text.partition("->")
    if not arrow:
        raise ConfigError(f"--route {text!r} has no '->'", hint='use --route "Front Desk -> Billing: when ..."')
    target, colon, description = rest.partition(":")
    source, target, description = source.strip(), target.strip(), description.strip()
    if not source or not target:
        raise ConfigError(f"--route {text!r} needs a name on both sides of '->'")
    if colon and not description:
        raise ConfigError(f"--route {text!r} has an empty description after ':'")
    return Route(source, target, description)


@dataclass
class SquadParams:
    """Flags of ``squad create``."""

    name: str
    members: list[str]
    routes: list[str] = field(default_factory=list)
    dry_run: bool = False


@dataclass
class SquadResult:
    """The body that was (or would be) sent and the created squad."""

    body: dict[str, Any]
    squad: dict[str, Any] | None
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        """The envelope's ``result``."""
        squad = None if self.squad is None else {"id": self.squad.get("id"), "name": self.squad.get("name")}
        return {"squad": squad, "body": self.body, "dry_run": self.dry_run}


async def resolve_members(rt: Runtime, params: SquadParams) -> list[dict[str, Any]]:
    """The member assistants, in ``--member`` order (by id, exact name or id prefix)."""
    if not params.members:
        raise ConfigError("a squad needs at least one --member")
    return [await rt.vapi.resolve_assistant(m) for m in params.members]


def build_body(params: SquadParams, members: list[dict[str, Any]]) -> dict[str, Any]:
    """Members and routes as a ``POST /squad`` body; a route naming a non-member fails before sending."""
    ids = [m["id"] for m in members]
    if len(set(ids)) != len(ids):
        raise ConfigError("the same assistant is listed twice as a member")
    by_key: dict[str, dict[str, Any]] = {}
    for query, member in zip(params.members, members, strict=True):
        by_key[query] = member
        by_key[member["id"]] = member
        if member.get("name"):
            by_key.setdefault(member["name"], member)
    body_members: list[dict[str, Any]] = [{"assistantId": m["id"]} for m in members]
    for text in params.routes:
        route = parse_route(text)
        source, target = by_key.get(route.source), by_key.get(route.target)
        for label, found in ((route.source, source), (route.target, target)):
            if found is None:
                names = ", ".join(str(m.get("name")) for m in members)
                raise ConfigError(f"--route names {label!r}, which is not a member", hint=f"members: {names}")
        assert source is not None and target is not None
        if not target.get("name"):
            raise ConfigError(f"assistant {target['id']} has no name, so a transfer cannot address it")
        destination: dict[str, Any] = {"type": "assistant", "assistantName": target["name"]}
        if route.description:
            destination["description"] = route.description
        body_members[ids.index(source["id"])].setdefault("assistantDestinations", []).append(destination)
    return {"name": params.name, "members": body_members}


async def create(rt: Runtime, params: SquadParams, *, show_plan: Any = None) -> SquadResult:
    """``squad create``: resolve, show, create once through the gate (reconciled on ambiguity)."""
    rt.vapi.require_workflow("squad")
    members = await resolve_members(rt, params)
    body = build_body(params, members)
    if show_plan is not None:
        show_plan(body, {str(m["id"]): str(m.get("name") or "") for m in members})
    if params.dry_run:
        return SquadResult(body, None, True)

    def matches(candidate: dict[str, Any]) -> bool:
        members = [m.get("assistantId") for m in candidate.get("members") or []]
        return candidate.get("name") == body["name"] and members == [m["assistantId"] for m in body["members"]]

    squad = await rt.vapi.create("squads.create", body, matches=matches, list_operation="squads.list")
    return SquadResult(body, squad, False)
