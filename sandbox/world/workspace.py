"""The stateful store behind the simulated Vapi REST API.

Interface (all results are JSON-ready dicts in Vapi's camelCase; errors are ``NotFound``,
``Conflict`` and ``ValidationFailed`` from this module, which the REST layer maps to NestJS 404 /
409 / 400 bodies; body *shape* validation is the REST layer's job):

Calls
    ``list_calls(id=, assistant_id=, phone_number_id=, limit=100, created_at_gt/lt/ge/le=,
    updated_at_gt/lt/ge/le=)`` newest first (createdAt desc, then id desc), ``get_call(id)``,
    ``create_call(body)``, ``update_call(id, {"name"})``, ``delete_call(id)``,
    ``call_recording(id, kind)`` (WAV bytes or None), ``all_calls_raw()``, ``calls_frame_columns()``,
    ``generated_specs()`` (the seeded calls as they stand now: what the ground truth describes).
Everything else, generically by ``kind`` in ``KINDS`` (``assistants``, ``squads``,
``phone_numbers``, ``campaigns``, ``scorecards``, ``structured_outputs``, ``tools``, ``chats``)
    ``list_objects(kind, limit=None, created_at_*/updated_at_*=, **equals)`` newest first, where
    ``equals`` are snake_case field filters (``assistant_id="..."``, ``status="ended"``, ``name=``;
    ``<field>_any`` = membership, e.g. ``id_any="a,b"``); ``get_object``, ``create_object``,
    ``update_object`` (partial, top-level keys; campaigns: status only ``ended``/``cancelled``),
    ``delete_object`` (returns the deleted object; ``Conflict`` while in use).
    ``page(items, page, limit, sort_order)`` shapes the ``{results, metadata}`` answer of the kinds
    Vapi paginates (``PAGINATED``). Generic CRUD and campaigns live in ``sandbox.world.objects``.

Generated calls (``sandbox.world.data``) are immutable columns plus an overlay (renamed, deleted); the
few generated live calls (newest, in-progress/queued/ringing) stay in that state, unless the
workspace is living (``config.living``, see ``sandbox.world.arrivals``): then they go on and end, and
new calls keep arriving after the anchor. Calls created through the API or by campaigns are
``sandbox.world.live.LiveCall`` objects whose status follows the sandbox clock. Campaign progress is
computed lazily from ``clock.now()`` on every read. Created objects get reproducible ids (seed +
creation order) and ``clock.now()`` timestamps. A re-entrant lock serialises access (the REST app
may be served from a thread).

With a ``state`` (``sandbox.world.state.WorkspaceState``) every write is journaled and the journal is
replayed on construction and before every read and write, so processes sharing a state see one
workspace. Each write runs at one pinned moment (``now_ms`` does not move inside it), which is what
makes a replay at the recorded moment give the same objects, timestamps and ids.
"""

from __future__ import annotations

import copy
import heapq
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np

from sandbox.world import audio
from sandbox.world.arrivals import Arrivals, release_live
from sandbox.world.callgen import CallSpec, Persona
from sandbox.world.calljson import build_call, conversation, ms_of
from sandbox.world.clock import SandboxClock
from sandbox.world.config import SandboxConfig
from sandbox.world.data import Dataset
from sandbox.world.frames import CallColumns, build_columns
from sandbox.world.ids import parse_iso
from sandbox.world.live import CampaignRun, LiveCall, live_call
from sandbox.world.objects import KINDS, PAGINATED, ObjectStore, bounds_ms, within
from sandbox.world.personas import persona_of
from sandbox.world.rules import LABELS, Conflict, NotFound, ValidationFailed
from sandbox.world.state import WorkspaceState, Write, journaled

__all__ = ["KINDS", "LABELS", "PAGINATED", "Conflict", "NotFound", "ValidationFailed", "Workspace"]

_AUDIO_CACHE = 6  # WAVs kept (up to ~8 MB each): a 302 then a download must not render twice
log = logging.getLogger(__name__)

class Workspace(ObjectStore):
    """One simulated Vapi org: generated calls plus everything created through the API."""

    def __init__(self, config: SandboxConfig, clock: SandboxClock, *, anchor: datetime,
                 state: WorkspaceState | None = None) -> None:
        self.config = config
        self.clock = clock
        self.anchor = anchor
        self.data = Dataset(config.seed, config.calls, anchor, hostile=config.hostile)
        self._lock = threading.RLock()
        catalog = copy.deepcopy(self.data.catalog)
        self._store: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        for kind, objs in (("assistants", catalog.assistants), ("squads", catalog.squads),
                           ("phone_numbers", catalog.phone_numbers), ("scorecards", catalog.scorecards),
                           ("structured_outputs", catalog.structured_outputs), ("tools", catalog.tools)):
            self._store[kind] = {o["id"]: o for o in objs}
        self._alive = np.ones(self.data.n, dtype=bool)
        self._updated_ms = self.data.updated_ms.copy()
        self._names: dict[int, str] = {}
        self._live: dict[str, LiveCall] = {}
        self._runs: dict[str, CampaignRun] = {}
        self._created = 0  # objects created so far (numbers their ids)
        self._audio: OrderedDict[tuple[str, str], bytes | None] = OrderedDict()
        self._assistant_index = {a["id"]: i for i, a in enumerate(self.data.catalog.assistants)}
        self._phone_index = {p["id"]: i for i, p in enumerate(self.data.catalog.phone_numbers)}
        # Time and the journal: the moment a write is pinned to, the moment world time never goes back
        # behind (a living workspace starts at its anchor), what a write minted, what a replay must mint.
        self._pinned: int | None = None
        self._floor = self.data.anchor_ms if config.living else 0
        self._state = state
        self._busy = False  # inside a write or a replay: nested writes are part of it
        self._minted: list[str] | None = None
        self._forced_ids: list[str] = []
        self._arrivals = Arrivals(self.data) if config.living else None
        if config.living:
            for call in release_live(self.data):
                self._alive[self.data.index_of(call.spec.id)] = False  # it lives on among the live calls
                self._live[call.spec.id] = call
        if state is not None:
            self._catch_up()

    def now_ms(self) -> int:
        """Sandbox time in epoch milliseconds (pinned inside a write; never behind a write already made)."""
        if self._pinned is not None:
            return self._pinned
        return max(round(self.clock.now() * 1000), self._floor)

    def advance(self) -> int:
        """Catch up with other processes' writes, let arrivals in and dial campaigns; returns sandbox now (ms)."""
        with self._lock:
            if not self._busy:
                self._catch_up()
            now = self.now_ms()
            if self._arrivals is not None:
                for call in self._arrivals.due(now):
                    self._live[call.spec.id] = call
            return super().advance()

    # ================================================================== the journal
    @contextmanager
    def _pinned_at(self, at_ms: int) -> Iterator[None]:
        previous, self._pinned = self._pinned, at_ms
        try:
            yield
        finally:
            self._pinned = previous
            self._floor = max(self._floor, at_ms)

    def _journal_write(self, op: str, method: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """Run write ``op`` at one pinned moment; with a state, under its lock, caught up, then journaled."""
        with self._lock:
            if self._busy:
                return method(self, *args)
            self._busy = True
            try:
                if self._state is None:
                    with self._pinned_at(self.now_ms()):
                        return method(self, *args)
                with self._state.exclusive():
                    self._catch_up()
                    at = self.now_ms()
                    recorded = copy.deepcopy(args)  # as asked, before the write keeps references to them
                    Write(at, op, recorded).to_line()  # not JSON: refused before anything changes
                    self._minted = []
                    with self._pinned_at(at):
                        result = method(self, *args)
                    self._state.append(Write(at, op, recorded, tuple(self._minted)))
                    return result
            finally:
                self._busy, self._minted = False, None

    def _catch_up(self) -> None:
        """Replay the writes appended to the journal since this workspace last read it."""
        if self._state is None:
            return
        for write in self._state.new_writes():
            self._replay(write)

    def _replay(self, write: Write) -> None:
        method = getattr(type(self), write.op, None)
        if not getattr(method, "journaled", False):
            log.warning("sandbox state: skipped an unknown write %r", write.op)
            return
        busy, self._busy, self._forced_ids = self._busy, True, list(write.ids)  # a write may be catching up
        try:
            with self._pinned_at(write.at):
                method.__wrapped__(self, *write.args)  # type: ignore[union-attr]
        except (NotFound, Conflict, ValidationFailed) as exc:
            # Written by another version of the sandbox whose rules or data differ: the rest still applies.
            log.warning("sandbox state: a stored %s no longer applies and was skipped (%s)", write.op, exc)
        finally:
            self._busy, self._forced_ids = busy, []

    def new_id(self, kind: str) -> str:
        """An id for a new object (see ``ObjectStore.new_id``); a replay mints the ids the write minted."""
        with self._lock:
            minted = super().new_id(kind)
            if self._forced_ids:
                minted = self._forced_ids.pop(0)
            if self._minted is not None:
                self._minted.append(minted)
            return minted

    # ================================================================== calls
    def _gen_spec(self, i: int) -> CallSpec:
        overrides: dict[str, Any] = {"updated_ms": int(self._updated_ms[i])}
        if i in self._names:
            overrides["extra"] = {"name": self._names[i]}
        return self.data.spec(i, **overrides)

    def _find(self, call_id: str) -> tuple[int | None, LiveCall | None]:
        i = self.data.index_of(call_id)
        if i is not None and self._alive[i]:
            return i, None
        if call_id in self._live:
            return None, self._live[call_id]
        raise NotFound("calls", call_id)

    def _spec_of(self, call_id: str, now: int) -> CallSpec:
        i, live = self._find(call_id)
        return self._gen_spec(i) if i is not None else live.at(now)  # type: ignore[union-attr]

    def list_calls(
        self,
        *,
        id: str | None = None,  # the Vapi query parameter is called id
        assistant_id: str | None = None,
        phone_number_id: str | None = None,
        limit: int | None = 100,
        created_at_gt: datetime | None = None,
        created_at_lt: datetime | None = None,
        created_at_ge: datetime | None = None,
        created_at_le: datetime | None = None,
        updated_at_gt: datetime | None = None,
        updated_at_lt: datetime | None = None,
        updated_at_ge: datetime | None = None,
        updated_at_le: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /call``: calls newest first, filtered; only the returned page is built."""
        c_lo, c_hi = bounds_ms(created_at_gt, created_at_lt, created_at_ge, created_at_le)
        u_lo, u_hi = bounds_ms(updated_at_gt, updated_at_lt, updated_at_ge, updated_at_le)
        with self._lock:
            now = self.advance()
            cap = self.data.n + len(self._live) if limit is None else max(0, int(limit))
            picked: list[tuple[int, str, int | None, LiveCall | None]] = []
            # Generated calls: a createdAt window by binary search, then vectorised masks.
            start = 0 if c_lo is None else int(np.searchsorted(self.data.created_ms, c_lo, "left"))
            stop = self.data.n if c_hi is None else int(np.searchsorted(self.data.created_ms, c_hi, "left"))
            mask = self._alive[start:stop].copy()
            if id is not None:
                i = self.data.index_of(id)
                mask &= np.arange(start, stop) == (i if i is not None else -1)
            if assistant_id is not None:
                mask &= self.data.assistant[start:stop] == self._assistant_index.get(assistant_id, -99)
            if phone_number_id is not None:
                mask &= self.data.phone[start:stop] == self._phone_index.get(phone_number_id, -99)
            if u_lo is not None:
                mask &= self._updated_ms[start:stop] >= u_lo
            if u_hi is not None:
                mask &= self._updated_ms[start:stop] < u_hi
            hits = np.flatnonzero(mask)[::-1][:cap] + start
            picked += [(int(self.data.created_ms[i]), self.data.call_id(int(i)), int(i), None) for i in hits]
            moving = u_lo is not None or u_hi is not None  # only updatedAt depends on the moment
            for call_id, live in self._live.items():
                spec = live.spec  # who, when created: fixed; ``at(now)`` (status, updatedAt) only when needed
                if ((id is None or call_id == id)
                        and (assistant_id is None or spec.persona.assistant_id == assistant_id)
                        and (phone_number_id is None or (spec.phone or {}).get("id") == phone_number_id)
                        and within(spec.created_ms, c_lo, c_hi)
                        and (not moving or within(live.at(now).updated_ms or 0, u_lo, u_hi))):
                    picked.append((spec.created_ms, call_id, None, live))
            picked.sort(key=lambda p: (p[0], p[1]), reverse=True)
            return [build_call(self._gen_spec(i) if i is not None else live.at(now))  # type: ignore[union-attr]
                    for _, _, i, live in picked[:cap]]

    def get_call(self, call_id: str) -> dict[str, Any]:
        """``GET /call/{id}``."""
        with self._lock:
            return build_call(self._spec_of(call_id, self.advance()))

    @journaled
    def create_call(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /call``: a new call, ``queued`` (or ``scheduled`` with a future ``schedulePlan``).

        With ``customers[]`` it answers Vapi's ``CallBatchResponse`` ``{results, errors}``.
        """
        with self._lock:
            now = self.advance()
            persona, extra = self._who(body)
            phone = self._ref("phone_numbers", body.get("phoneNumberId"), "phoneNumberId", "Phone Number")
            dial = now
            if body.get("schedulePlan"):
                try:
                    dial = max(now, ms_of(parse_iso(body["schedulePlan"]["earliestAt"])))
                except (KeyError, TypeError, ValueError, AttributeError):
                    raise ValidationFailed(["schedulePlan.earliestAt must be a valid ISO 8601 date string"]) from None
                extra["schedulePlan"] = body["schedulePlan"]
            if body.get("name") is not None:
                extra["name"] = body["name"]
            customers = body.get("customers") or [body.get("customer")]
            calls = []
            for customer in customers:
                call_id = self.new_id("calls")
                call = live_call(
                    seed_key=f"{self.config.seed}:api:{call_id}", call_id=call_id, persona=persona, phone=phone,
                    created_ms=now, dial_ms=dial, customer=customer, extra=dict(extra),
                    output_ids=self.data.catalog.output_ids,
                    call_type="outboundPhoneCall" if phone or customer else "webCall",
                )
                self._live[call_id] = call
                calls.append(build_call(call.at(now)))
            if body.get("customers"):
                return {"results": calls, "errors": []}
            return calls[0]

    def _who(self, body: dict[str, Any]) -> tuple[Persona, dict[str, Any]]:
        """The persona answering a call or campaign, and the JSON keys that say who it is."""
        extra: dict[str, Any] = {}
        assistant: dict[str, Any]
        if body.get("assistantId") is not None:
            assistant = self._must("assistants", body["assistantId"], "assistantId", "Assistant")
        elif isinstance(body.get("assistant"), dict):
            assistant = {"id": "", **body["assistant"]}
            extra["assistant"] = body["assistant"]
        elif body.get("squadId") is not None or isinstance(body.get("squad"), dict):
            squad = (self._must("squads", body["squadId"], "squadId", "Squad") if body.get("squadId") is not None
                     else body["squad"])
            if body.get("squadId") is not None:
                extra["squadId"] = body["squadId"]
            else:
                extra["squad"] = body["squad"]
            first = (squad.get("members") or [{}])[0]
            assistant = (self._store["assistants"].get(first.get("assistantId", "")) or
                         {"id": "", **(first.get("assistant") or {})})
        else:
            raise ValidationFailed(["Couldn't Get Assistant. Need assistantId, assistant, squadId or squad."])
        return persona_of(assistant, self._store, self.data.catalog), extra

    def _must(self, kind: str, obj_id: Any, where: str, label: str) -> dict[str, Any]:
        found = self._ref(kind, obj_id, where, label)
        if found is None:
            raise ValidationFailed([f"{where} must be a string"])
        return found

    def _ref(self, kind: str, obj_id: Any, where: str, label: str) -> dict[str, Any] | None:
        if obj_id is None:
            return None
        if not isinstance(obj_id, str) or obj_id not in self._store[kind]:
            raise ValidationFailed([f"Couldn't Get {label}. `{where}` {obj_id} Does Not Exist."])
        return self._store[kind][obj_id]

    @journaled
    def update_call(self, call_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /call/{id}``: only ``name`` can change."""
        unknown = sorted(set(patch) - {"name"})
        if unknown:
            raise ValidationFailed([f"property {k} should not exist" for k in unknown])
        with self._lock:
            now = self.advance()
            i, live = self._find(call_id)
            if "name" in patch:
                if i is not None:
                    self._names[i] = patch["name"]
                    self._updated_ms[i] = max(int(self._updated_ms[i]), now)
                else:
                    live.rename(patch["name"], now)  # type: ignore[union-attr]
            return build_call(self._spec_of(call_id, now))

    @journaled
    def delete_call(self, call_id: str) -> dict[str, Any]:
        """``DELETE /call/{id}``: returns the call as it was."""
        with self._lock:
            now = self.advance()
            deleted = build_call(self._spec_of(call_id, now))
            i, _ = self._find(call_id)
            if i is not None:
                self._alive[i] = False
            else:
                del self._live[call_id]
            for key in [k for k in self._audio if k[0] == call_id]:
                del self._audio[key]
            return deleted

    def call_recording(self, call_id: str, kind: str) -> bytes | None:
        """WAV bytes of recording ``kind`` (mono|stereo|customer|assistant|video); None if the call has none."""
        if kind not in audio.KINDS:
            raise ValueError(f"unknown recording kind {kind!r}")
        with self._lock:
            spec = self._spec_of(call_id, self.advance())
            if not spec.has_recording or kind == "video":
                return None
            key = (call_id, kind)
            if key in self._audio:
                self._audio.move_to_end(key)
                return self._audio[key]
        data = audio.render_wav(conversation(spec).turns, spec.duration_ms, kind)
        with self._lock:
            self._audio[key] = data
            while len(self._audio) > _AUDIO_CACHE:
                self._audio.popitem(last=False)
        return data

    def generated_specs(self) -> Iterator[CallSpec]:
        """Every generated call not deleted, as it stands now, newest first: the dataset's, then in a living
        workspace also those after the anchor (``sandbox.world.arrivals``). Calls made through the API are not
        generated."""
        with self._lock:
            now = self.advance()
            alive = np.flatnonzero(self._alive)
            moving = sorted((c.at(now) for c in self._live.values() if c.generated),
                            key=lambda spec: (spec.created_ms, spec.id), reverse=True)
        dataset = (self.data.spec(int(i)) for i in alive[::-1])
        return heapq.merge(moving, dataset, key=lambda spec: (spec.created_ms, spec.id), reverse=True)

    def recording_spec(self, call_id: str) -> CallSpec:
        """The generation spec of a call as it stands now (used by ground truth and tests)."""
        with self._lock:
            return self._spec_of(call_id, self.advance())

    def all_calls_raw(self) -> Iterator[dict[str, Any]]:
        """Every call's JSON in createdAt order (oldest first), built one at a time."""
        with self._lock:
            now = self.advance()
            live: list[tuple[int, str, int | CallSpec]] = sorted(
                ((c.spec.created_ms, cid, c.at(now)) for cid, c in self._live.items()), key=lambda t: (t[0], t[1]))
            alive = np.flatnonzero(self._alive)
        generated: Iterator[tuple[int, str, int | CallSpec]] = (
            (int(self.data.created_ms[i]), self.data.call_id(int(i)), int(i)) for i in alive)
        for _, _, item in heapq.merge(generated, live, key=lambda t: (t[0], t[1])):
            yield build_call(self._gen_spec(item) if isinstance(item, int) else item)

    def calls_frame_columns(self) -> CallColumns:
        """Columnar view of every call (generated alive ones, then live ones) for fast analytics."""
        with self._lock:
            now = self.advance()
            live = [c.at(now) for c in self._live.values()]
            return build_columns(self.data, self._alive, self._updated_ms, live,
                                 [a["id"] for a in self.data.catalog.assistants],
                                 [p["id"] for p in self.data.catalog.phone_numbers])
