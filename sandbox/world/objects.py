"""Generic CRUD over the workspace's configuration objects, and campaigns moving on the sandbox clock.

``ObjectStore`` is a mixin of ``sandbox.world.workspace.Workspace`` (see its docstring for the interface):
``list_objects`` / ``get_object`` / ``create_object`` / ``update_object`` / ``delete_object`` for
every kind in ``KINDS``, ``page`` for the ``{results, metadata}`` lists, and ``advance`` which dials
campaign contacts whose time has come (``sandbox.world.live.CampaignRun``). Cross-object rules live in
``sandbox.world.rules``; a write that breaks one raises before anything is stored.
"""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.world import rules
from sandbox.world.calljson import EPOCH, iso_from_ms, ms_of
from sandbox.world.ids import ORG_ID, parse_iso, stable_uuid
from sandbox.world.live import CampaignRun, LiveCall, live_call
from sandbox.world.rules import LABELS, Conflict, NotFound, ValidationFailed
from sandbox.world.state import journaled

if TYPE_CHECKING:
    from sandbox.world.callgen import Persona
    from sandbox.world.config import SandboxConfig
    from sandbox.world.data import Dataset

KINDS = ("assistants", "squads", "phone_numbers", "campaigns", "scorecards", "structured_outputs", "tools", "chats")
PAGINATED = ("campaigns", "scorecards", "structured_outputs", "chats")
TIME_KEYS = ("created_at_gt", "created_at_lt", "created_at_ge", "created_at_le",
             "updated_at_gt", "updated_at_lt", "updated_at_ge", "updated_at_le")


def bounds_ms(gt: datetime | None, lt: datetime | None, ge: datetime | None, le: datetime | None
               ) -> tuple[int | None, int | None]:
    """Inclusive-low / exclusive-high integer ms bounds equivalent to the four operators.

    Stored times are whole milliseconds; a bound may carry microseconds, so each operator is
    converted exactly (e.g. ``> 12.5 ms`` means ``>= 13 ms``, ``<= 12.5 ms`` means ``< 13 ms``).
    """
    lo: list[int] = []
    hi: list[int] = []
    for dt, op in ((gt, "gt"), (lt, "lt"), (ge, "ge"), (le, "le")):
        if dt is None:
            continue
        aware = dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)  # naive means UTC, as parse_iso does
        us = (aware - EPOCH) // timedelta(microseconds=1)
        floor, ceil = us // 1000, -(-us // 1000)
        if op == "gt":
            lo.append(floor + 1)
        elif op == "ge":
            lo.append(ceil)
        elif op == "lt":
            hi.append(ceil)
        else:
            hi.append(floor + 1)
    return (max(lo) if lo else None), (min(hi) if hi else None)


def within(value: int, lo: int | None, hi: int | None) -> bool:
    """Whether ``value`` lies in ``[lo, hi)`` (a missing bound is open)."""
    return (lo is None or value >= lo) and (hi is None or value < hi)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class ObjectStore:
    """Configuration objects and campaign progress (mixed into ``Workspace``)."""

    config: SandboxConfig
    data: Dataset
    _lock: threading.RLock
    _store: dict[str, dict[str, dict[str, Any]]]
    _live: dict[str, LiveCall]
    _runs: dict[str, CampaignRun]

    _created: int

    def now_ms(self) -> int:
        """Sandbox time in epoch milliseconds."""
        raise NotImplementedError

    def new_id(self, kind: str) -> str:
        """An id for a new object: UUID-shaped, and the same for the same seed and order of creation.

        Reproducible ids keep recorded traffic (cassettes, request logs) stable across runs.
        """
        with self._lock:
            self._created += 1
            return stable_uuid(self.config.seed, f"created:{kind}", self._created)

    def _who(self, body: dict[str, Any]) -> tuple[Persona, dict[str, Any]]:
        raise NotImplementedError

    # ================================================================== campaigns over time
    def advance(self) -> int:
        """Dial every campaign contact whose time has come; returns sandbox now (ms)."""
        now = self.now_ms()
        with self._lock:
            for campaign_id, run in self._runs.items():
                for k in run.due(now):
                    customer, phone = run.targets[k]
                    call_id = stable_uuid(self.config.seed, "campaign-call", f"{campaign_id}:{k}")
                    self._live[call_id] = live_call(
                        seed_key=f"campaign:{campaign_id}:{k}", call_id=call_id, persona=run.persona, phone=phone,
                        created_ms=run.dial_ms[k], dial_ms=run.dial_ms[k], customer=customer,
                        extra={"campaignId": campaign_id, **run.extra}, output_ids=self.data.catalog.output_ids,
                        drawn=run.drawn, index=k,
                    )
                    run.calls[k] = call_id
        return now

    def _campaign_view(self, obj: dict[str, Any], now: int) -> dict[str, Any]:
        run = self._runs.get(obj["id"])
        if run is None:
            return copy.deepcopy(obj)
        view = copy.deepcopy(obj)
        view.update(run.progress(now, self._live, obj["status"]))
        times = [ms_of(parse_iso(obj["updatedAt"]))]
        if now >= run.start_ms:
            times.append(run.start_ms)
        times += [self._live[cid].state(now)[1] for cid in run.calls.values() if cid in self._live]
        view["updatedAt"] = iso_from_ms(min(max(times), now))
        if view["status"] == "ended" and "endedReason" in view:  # remember a natural ending for good
            obj["status"], obj["endedReason"] = "ended", view["endedReason"]
        elif view["status"] != obj["status"]:
            obj["status"] = view["status"]  # delete rules read the stored status
        return view

    def _start_campaign(self, obj: dict[str, Any], now: int) -> None:
        plan = obj.get("schedulePlan") or {}
        start = ms_of(parse_iso(plan["earliestAt"])) if plan.get("earliestAt") else now
        latest = ms_of(parse_iso(plan["latestAt"])) if plan.get("latestAt") else None
        targets: list[tuple[dict[str, Any], dict[str, Any] | None]]
        if obj.get("dialPlan"):
            targets = [(c, self._store["phone_numbers"][e["phoneNumberId"]]) for e in obj["dialPlan"]
                       for c in e["customers"]]
        else:
            phone = self._store["phone_numbers"][obj["phoneNumberId"]]
            targets = [(c, phone) for c in obj.get("customers") or []]
        persona, extra = self._who(obj)
        extra = {k: v for k, v in extra.items() if k == "squadId"}
        self._runs[obj["id"]] = CampaignRun(
            campaign_id=obj["id"], targets=targets, persona=persona, start_ms=start, latest_ms=latest,
            max_concurrency=max(1, int(obj.get("maxConcurrency") or 10)), extra=extra,
        )

    # ================================================================== generic objects
    def list_objects(self, kind: str, *, limit: int | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Objects of ``kind`` newest first, filtered by time bounds and snake_case field equality.

        ``name="x"`` keeps objects whose ``name`` is ``"x"``; ``assistant_id_any="a,b"`` (or a list)
        keeps those whose ``assistantId`` is one of them; ``None`` values are ignored.
        """
        times = {k: filters.pop(k) for k in list(filters) if k in TIME_KEYS}
        c_lo, c_hi = bounds_ms(*(times.get(f"created_at_{op}") for op in ("gt", "lt", "ge", "le")))
        u_lo, u_hi = bounds_ms(*(times.get(f"updated_at_{op}") for op in ("gt", "lt", "ge", "le")))
        # ``<field>_any`` (idAny, assistantIdAny, ...) is membership in a list or a comma-separated string.
        any_of: dict[str, list[Any]] = {}
        for key in [k for k in filters if k.endswith("_any")]:
            value = filters.pop(key)
            if value is not None:
                values = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
                any_of[_camel(key[:-4])] = values
        with self._lock:
            objs = self._objects(kind)
        out = []
        for obj in objs:
            if not within(ms_of(parse_iso(obj["createdAt"])), c_lo, c_hi):
                continue
            if not within(ms_of(parse_iso(obj["updatedAt"])), u_lo, u_hi):
                continue
            if any(obj.get(field) not in values for field, values in any_of.items()):
                continue
            if any(value is not None and obj.get(_camel(key)) != value for key, value in filters.items()):
                continue
            out.append(obj)
        out.sort(key=lambda o: (o["createdAt"], o["id"]), reverse=True)
        return out if limit is None else out[: max(0, int(limit))]

    def _objects(self, kind: str) -> list[dict[str, Any]]:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        now = self.advance()
        if kind == "campaigns":
            return [self._campaign_view(o, now) for o in self._store[kind].values()]
        return [copy.deepcopy(o) for o in self._store[kind].values()]

    def get_object(self, kind: str, obj_id: str) -> dict[str, Any]:
        """One object of ``kind``."""
        with self._lock:
            now = self.advance()
            obj = self._store[kind].get(obj_id)
            if obj is None:
                raise NotFound(kind, obj_id)
            return self._campaign_view(obj, now) if kind == "campaigns" else copy.deepcopy(obj)

    @journaled
    def create_object(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create an object; cross-object rules are checked first, so a refused create stores nothing."""
        with self._lock:
            now = self.advance()
            obj = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("id", "orgId", "createdAt", "updatedAt")}
            problems = rules.CHECKS.get(kind, lambda s, o: [])(self._store, obj)
            if problems:
                raise ValidationFailed(problems)
            stamp = iso_from_ms(now)
            obj = {"id": self.new_id(kind), "orgId": ORG_ID, **obj, "createdAt": stamp, "updatedAt": stamp}
            if kind == "phone_numbers":
                obj.setdefault("status", "active")
            if kind == "campaigns":
                obj.update(status="scheduled", calls={}, callsCounterScheduled=0, callsCounterQueued=0,
                           callsCounterInProgress=0, callsCounterEndedVoicemail=0, callsCounterEnded=0)
                obj.setdefault("maxConcurrency", 10)
                self._start_campaign(obj, now)
            self._store[kind][obj["id"]] = obj
            return copy.deepcopy(obj)

    @journaled
    def update_object(self, kind: str, obj_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Partial update of top-level keys (``PATCH``); campaigns accept only status ended/cancelled."""
        with self._lock:
            now = self.advance()
            current = self._store[kind].get(obj_id)
            if current is None:
                raise NotFound(kind, obj_id)
            changes = {k: copy.deepcopy(v) for k, v in patch.items()
                       if k not in ("id", "orgId", "createdAt", "updatedAt")}
            if kind == "campaigns":
                return self._update_campaign(current, changes, now)
            merged = {**current, **changes}
            problems = rules.CHECKS.get(kind, lambda s, o: [])(self._store, merged)
            if problems:
                raise ValidationFailed(problems)
            merged["updatedAt"] = iso_from_ms(now)
            self._store[kind][obj_id] = merged
            return copy.deepcopy(merged)

    def _update_campaign(self, current: dict[str, Any], changes: dict[str, Any], now: int) -> dict[str, Any]:
        view = self._campaign_view(current, now)
        status = changes.pop("status", None)
        if status is not None and status not in ("ended", "cancelled"):
            raise ValidationFailed(["status must be one of the following values: ended, cancelled"])
        movable = {"name", "assistantId", "squadId", "workflowId", "phoneNumberId", "dialPlan", "schedulePlan"}
        unknown = sorted(set(changes) - movable)
        if unknown:
            raise ValidationFailed([f"property {k} should not exist" for k in unknown])
        problems = rules.check_campaigns(self._store, {**current, **changes}) if set(changes) - {"name"} else []
        if problems:
            raise ValidationFailed(problems)
        if status is not None:
            if view["status"] in ("ended", "cancelled"):
                raise Conflict(f"Campaign is already {view['status']}")
            run = self._runs.get(current["id"])
            if run is not None:
                run.stopped_ms = now
            if status == "ended":
                current["endedReason"] = ("campaign.scheduled.ended-by-user" if view["status"] == "scheduled"
                                          else "campaign.in-progress.ended-by-user")
            current["status"] = status
        current.update(changes)
        current["updatedAt"] = iso_from_ms(now)
        return self._campaign_view(current, now)

    @journaled
    def delete_object(self, kind: str, obj_id: str) -> dict[str, Any]:
        """Delete and return an object; ``Conflict`` while something still uses it."""
        with self._lock:
            before = self.get_object(kind, obj_id)  # also refreshes campaign statuses
            if kind in ("assistants", "squads", "phone_numbers"):
                for campaign in self._store["campaigns"].values():
                    self._campaign_view(campaign, self.now_ms())
            used_by = rules.blockers(self._store, kind, obj_id)
            if used_by:
                raise Conflict(f"{LABELS[kind]} is in use by {', '.join(used_by)}")
            del self._store[kind][obj_id]
            self._runs.pop(obj_id, None)
            return before

    @staticmethod
    def page(items: list[dict[str, Any]], page: int = 1, limit: int = 100, sort_order: str = "DESC"
             ) -> dict[str, Any]:
        """The ``{results, metadata}`` answer of a paginated list, sorted by createdAt."""
        ordered = sorted(items, key=lambda o: (o["createdAt"], o["id"]), reverse=sort_order.upper() != "ASC")
        page, limit = max(1, int(page)), max(1, int(limit))
        total = len(ordered)
        pages = max(1, -(-total // limit))
        return {"results": ordered[(page - 1) * limit: page * limit],
                "metadata": {"itemsPerPage": limit, "totalItems": total, "currentPage": page,
                             "totalPages": pages, "hasNextPage": page < pages, "sortOrder": sort_order.upper()}}
