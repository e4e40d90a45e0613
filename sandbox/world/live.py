"""Calls that happen on the sandbox clock: ``POST /call`` calls and campaign calls.

A ``LiveCall`` has a fixed timeline decided when it is created (dial, answer, end), drawn with the
same outcome model as the generated dataset; its status at any sandbox moment is read off that
timeline: ``scheduled`` (before the dial time), ``queued`` (the first second), ``ringing``,
``in-progress`` (answered), then ``ended``. Nothing ticks in the background: state is computed
lazily from ``SandboxClock.now()`` whenever a call or campaign is read.

A ``CampaignRun`` turns a campaign's customers into a dial schedule: one customer every
``DIAL_INTERVAL_S`` sandbox seconds from ``schedulePlan.earliestAt``, never more than
``maxConcurrency`` calls live at once, nothing dialled at or after ``latestAt`` or after the
campaign was ended/cancelled by PATCH. Calls materialise (get an id and appear in ``GET /call``)
at their dial time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sandbox.world.callgen import JOBS as _JOBS
from sandbox.world.callgen import REASONS, CallSpec, Persona, draw, spec_from_draw
from sandbox.world.entities import OUTPUT_KEYS

DIAL_INTERVAL_S = 20.0
QUEUED_MS = 1000  # a new call is "queued" for its first second, then "ringing" until answered
CAMPAIGN_CALL_SECONDS = (45.0, 75.0)  # campaign and POST /call conversations last about a minute


def draw_live(seed_key: str, personas: list[Persona]) -> Any:
    """Draw outcomes for live calls, one per persona, seeded by ``seed_key`` (stable across runs)."""
    digest = hashlib.sha256(seed_key.encode()).digest()
    rng = np.random.default_rng([int.from_bytes(digest[i:i + 4], "little") for i in range(0, 32, 4)])
    return draw(
        rng,
        job=np.array([_JOBS.index(p.job) for p in personas], dtype=np.int16),
        # Campaign and API calls are placed to a customer: the outbound outcome mix applies.
        outbound=np.ones(len(personas), dtype=bool),
        fail_rate=np.array([p.fail_rate for p in personas]),
        output_mask={k: np.array([k in p.outputs for p in personas]) for k in OUTPUT_KEYS},
        duration_override=CAMPAIGN_CALL_SECONDS,
    )


@dataclass
class LiveCall:
    """A call created at ``spec.created_ms`` and dialled at ``dial_ms`` (sandbox epoch ms)."""

    spec: CallSpec  # status/updated are placeholders; ``at`` fills them in
    dial_ms: int
    patched_ms: int | None = None  # sandbox time of the last PATCH (name)
    generated: bool = False  # part of the seeded history (a living workspace's), not made through the API

    @property
    def answered_ms(self) -> int:
        """When the customer picked up (``startedAt``)."""
        return self.spec.started_ms

    @property
    def ended_ms(self) -> int:
        """When the call ended."""
        return self.spec.ended_ms

    def state(self, now_ms: int) -> tuple[str, int]:
        """(status, updatedAt ms) at sandbox time ``now_ms``."""
        spec = self.spec
        if now_ms >= self.ended_ms:
            status, updated = "ended", self.ended_ms + spec.update_delay_ms
        elif now_ms < self.dial_ms:
            status, updated = "scheduled", spec.created_ms
        elif now_ms < self.dial_ms + QUEUED_MS:
            status, updated = "queued", max(spec.created_ms, self.dial_ms)
        elif now_ms < self.answered_ms or spec.ending == "none":
            status, updated = "ringing", self.dial_ms + QUEUED_MS
        else:
            status, updated = "in-progress", self.answered_ms
        if status == "ended" and updated > now_ms:
            updated = self.ended_ms  # analysis still running: updatedAt is the hang-up
        if self.patched_ms is not None:
            updated = max(updated, self.patched_ms)
        return status, updated

    def at(self, now_ms: int) -> CallSpec:
        """The call's spec as it stands at ``now_ms``."""
        status, updated = self.state(now_ms)
        return dataclasses.replace(self.spec, status=status, updated_ms=updated)

    def rename(self, name: str, now_ms: int) -> None:
        """Apply ``PATCH /call/{id} {name}``."""
        self.spec = dataclasses.replace(self.spec, extra={**self.spec.extra, "name": name})
        self.patched_ms = now_ms


def live_call(
    *, seed_key: str, call_id: str, persona: Persona, phone: dict[str, Any] | None, created_ms: int, dial_ms: int,
    customer: dict[str, Any] | None, extra: dict[str, Any], output_ids: dict[str, str], drawn: Any = None,
    index: int = 0, call_type: str = "outboundPhoneCall",
) -> LiveCall:
    """A new live call; ``drawn``/``index`` reuse a batch draw (campaigns), else one is drawn for it."""
    d = drawn if drawn is not None else draw_live(seed_key, [persona])
    spec = spec_from_draw(
        d, index, key=seed_key, call_id=call_id, persona=persona, phone=phone, call_type=call_type,
        created_ms=created_ms, status="queued", output_ids=output_ids, customer=customer, extra=extra,
    )
    # The drawn start delay is the ringing time; it starts at the dial time, which may be later.
    spec = dataclasses.replace(spec, start_delay_ms=(dial_ms - created_ms) + QUEUED_MS + spec.start_delay_ms)
    return LiveCall(spec, dial_ms)


@dataclass
class CampaignRun:
    """The dial plan and progress of one campaign."""

    campaign_id: str
    targets: list[tuple[dict[str, Any], dict[str, Any] | None]]  # (customer, phone number) per contact
    persona: Persona
    start_ms: int
    latest_ms: int | None
    max_concurrency: int
    extra: dict[str, Any]
    drawn: Any = None
    dial_ms: list[int] = field(default_factory=list)
    stopped_ms: int | None = None  # PATCH status ended/cancelled
    calls: dict[int, str] = field(default_factory=dict)  # contact index -> call id, once dialled

    def __post_init__(self) -> None:
        self.drawn = draw_live(f"campaign:{self.campaign_id}", [self.persona] * len(self.targets))
        self.dial_ms = self._schedule()

    def _schedule(self) -> list[int]:
        busy: list[int] = []  # end times of calls live at the moment being scheduled
        times: list[int] = []
        interval = int(DIAL_INTERVAL_S * 1000)
        previous = self.start_ms - interval
        for k in range(len(self.targets)):
            # One dial per interval at most, even when several calls end while waiting for a free line.
            t = max(self.start_ms + k * interval, previous + interval)
            while busy and busy[0] <= t:
                heapq.heappop(busy)
            if len(busy) >= self.max_concurrency:
                t = max(t, heapq.heappop(busy))  # wait for the first live call to end
                while busy and busy[0] <= t:
                    heapq.heappop(busy)
            length = QUEUED_MS + int(self.drawn.start_delay_ms[k]) + int(self.drawn.duration_ms[k])
            heapq.heappush(busy, t + length)
            times.append(t)
            previous = t
        return times

    def dialable(self, k: int) -> bool:
        """Whether contact ``k`` is ever dialled (before ``latestAt`` and before a stop)."""
        t = self.dial_ms[k]
        return (self.latest_ms is None or t < self.latest_ms) and (self.stopped_ms is None or t < self.stopped_ms)

    def due(self, now_ms: int) -> list[int]:
        """Contacts whose dial time has come and that have no call yet."""
        return [k for k in range(len(self.targets))
                if k not in self.calls and self.dial_ms[k] <= now_ms and self.dialable(k)]

    def progress(self, now_ms: int, live: dict[str, LiveCall], status: str) -> dict[str, Any]:
        """The campaign's moving fields at ``now_ms``: status, endedReason, calls, the five counters."""
        counters = {"callsCounterScheduled": 0, "callsCounterQueued": 0, "callsCounterInProgress": 0,
                    "callsCounterEndedVoicemail": 0, "callsCounterEnded": 0}
        calls: dict[str, Any] = {}
        for k in range(len(self.targets)):
            call_id = self.calls.get(k)
            if call_id is None or call_id not in live:
                if call_id is None and self.dialable(k):
                    counters["callsCounterScheduled"] += 1
                continue
            call = live[call_id]
            state, _ = call.state(now_ms)
            entry: dict[str, Any] = {"status": state, "customer": self.targets[k][0]}
            if state == "ended":
                reason = REASONS[call.spec.reason][0]
                entry["endedReason"] = reason
                counters["callsCounterEnded"] += 1
                if reason == "voicemail":
                    counters["callsCounterEndedVoicemail"] += 1
            elif state == "in-progress":
                counters["callsCounterInProgress"] += 1
            else:
                counters["callsCounterQueued"] += 1
            calls[call_id] = entry
        out: dict[str, Any] = {"calls": calls, **counters}
        pending = sum(counters[k] for k in ("callsCounterScheduled", "callsCounterQueued", "callsCounterInProgress"))
        if status in ("ended", "cancelled"):  # stopped by PATCH: keeps the status it was given
            out["status"] = status
        elif now_ms < self.start_ms:
            out["status"] = "scheduled"
        elif pending == 0:
            out["status"] = "ended"
            out["endedReason"] = "campaign.ended.success"
        else:
            out["status"] = "in-progress"
        return out
