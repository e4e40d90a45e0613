"""A living workspace's history after its anchor: a function of (seed, anchor, time), never of when a process started.

The seeded dataset (``sandbox.world.data``) ends at the anchor. In a living workspace
(``SandboxConfig.living``) time goes on from there:

- the calls live at the anchor (in progress, queued, ringing) follow a timeline that matches their
  state at the anchor, and end (``release_live``);
- new calls keep arriving at the dataset's rate (``calls`` per ``WINDOW_DAYS``), busiest in the same
  UTC hours (``Arrivals``). They are drawn one day at a time: day ``d`` covers
  ``(anchor + d days, anchor + d + 1 days]`` and comes from its own generator seeded by ``(seed, d)``,
  so every process that reaches a moment agrees on every call up to it, whenever it started.

Both kinds are ``LiveCall``s marked ``generated``: a call appears at its ``createdAt``, moves through
queued, ringing and in progress, and once ended it never changes again. Observed at the anchor
itself, a living workspace is exactly the frozen dataset (nothing has arrived yet).
"""

from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np

from sandbox.world.data import (
    DAY_MS,
    WINDOW_DAYS,
    Dataset,
    busy_hour_times,
    draw_for_assistants,
    pick_assistants,
)
from sandbox.world.ids import stable_uuid
from sandbox.world.live import QUEUED_MS, LiveCall, live_call

ARRIVAL_STREAM = 0xA441  # seeds the arrival generators, apart from the dataset's own stream


def release_live(data: Dataset) -> list[LiveCall]:
    """The dataset's calls that are live at the anchor, as calls that go on from there and end."""
    anchor = data.anchor_ms
    released = []
    for i in np.flatnonzero(data.status != 0):
        spec = data.spec(int(i))
        created, ringing = spec.created_ms, spec.start_delay_ms  # the drawn time until pick-up
        if spec.status == "queued":  # dialled at the anchor: queued for a second, then ringing
            dial, answered = anchor, anchor + QUEUED_MS + ringing
        elif spec.status == "ringing":  # dialled when created, picked up after the anchor
            dial, answered = created, anchor + ringing
        else:  # in progress: picked up by the anchor, and still talking at it
            dial = created
            answered = max(min(created + QUEUED_MS + ringing, anchor), anchor - spec.duration_ms + 1000)
        spec = dataclasses.replace(spec, start_delay_ms=answered - created)
        released.append(LiveCall(spec, dial, generated=True))
    return released


class Arrivals:
    """New calls after the anchor, each handed out once when sandbox time reaches its ``createdAt``."""

    def __init__(self, data: Dataset) -> None:
        self.data = data
        self.per_day = data.n / WINDOW_DAYS
        self._next_day = 0
        self._pending: deque[LiveCall] = deque()  # drawn, not yet created: oldest first

    def due(self, now_ms: int) -> list[LiveCall]:
        """The calls created after the previous ``due`` and at or before ``now_ms``, oldest first."""
        while self.data.anchor_ms + self._next_day * DAY_MS < now_ms:
            self._pending.extend(self._draw_day(self._next_day))
            self._next_day += 1
        out = []
        while self._pending and self._pending[0].spec.created_ms <= now_ms:
            out.append(self._pending.popleft())
        return out

    def _draw_day(self, day: int) -> list[LiveCall]:
        data = self.data
        rng = np.random.default_rng([data.seed, ARRIVAL_STREAM, day])
        n = int(rng.poisson(self.per_day))
        start = data.anchor_ms + day * DAY_MS + 1  # nothing arrives at the anchor itself
        created = busy_hour_times(rng, start, start + DAY_MS, n)
        assistant = pick_assistants(rng, n)
        drawn = draw_for_assistants(rng, assistant)
        calls = []
        for j in range(n):
            a = int(assistant[j])
            persona = data.personas[a]
            phone = int(data.assistant_phone[a])
            call = live_call(
                seed_key=f"{data.seed}:arrival:{day}:{j}", call_id=stable_uuid(data.seed, "arrival", f"{day}:{j}"),
                persona=persona, phone=data.catalog.phone_numbers[phone] if phone >= 0 else None,
                created_ms=int(created[j]), dial_ms=int(created[j]), customer=None, extra={},
                output_ids=data.catalog.output_ids, drawn=drawn, index=j,
                call_type="outboundPhoneCall" if persona.outbound else "inboundPhoneCall",
            )
            calls.append(dataclasses.replace(call, generated=True))
        return calls
