"""The seeded sandbox dataset: N calls over the 30 days before an anchor, generated on demand.

Only compact per-call numpy columns are computed up front (createdAt, assistant, status, ended
reason, template, failure, duration, structured-output values, costs: about 100 bytes a call, so
100,000 calls take well under a second and a few MB). The full Call JSON of call ``i`` is built
lazily from ``(seed, i)`` and those columns, and is the same every time.

Layout: calls are indexed in createdAt order (index 0 is the oldest) and createdAt values are
strictly increasing, so there are no ties. The newest few calls (within the last minutes before the
anchor) are still live (``in-progress``, ``queued``, ``ringing``); every other call has ended, at
least ten minutes before the anchor. Assistants, phone numbers, structured outputs and scorecards
come from ``sandbox.world.entities``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np

from sandbox.world.callgen import JOBS, STATUSES, CallSpec, Draw, Persona, draw, spec_from_draw
from sandbox.world.calljson import build_call, conversation, ms_of
from sandbox.world.config import HOSTILE_ASSISTANT_NAME, HOSTILE_CALL_ID
from sandbox.world.conversations import COMPANY, Conversation
from sandbox.world.entities import ASSISTANTS, OUTPUT_KEYS, PROMPTS, VOICEMAIL, Catalog, build_catalog
from sandbox.world.ids import stable_uuid

DAY_MS = 86_400_000
WINDOW_DAYS = 30
ENDED_BEFORE_MS = 10 * 60_000  # ended calls were created at least this long before the anchor
LIVE_WINDOW_MS = 4 * 60_000  # live calls were created within this long before the anchor
# (status, assistant key) of the newest calls, newest first: "newest N ended" must skip them.
LIVE_CALLS = (("in-progress", "support"), ("queued", "support"), ("ringing", "renewal"),
              ("in-progress", "billing"), ("in-progress", "support"), ("queued", "router"))
# Relative call volume by UTC hour (US business hours are busiest).
HOUR_WEIGHT = np.array([3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 2, 3, 5, 7, 9, 10, 10, 10, 9, 9, 8, 7, 5, 4], dtype=float)


def persona_for(catalog: Catalog, index: int) -> Persona:
    """The persona of generated assistant ``index`` (its position in ``ASSISTANTS``)."""
    spec = ASSISTANTS[index]
    assistant = catalog.assistants[index]
    cards = tuple(c for c in catalog.scorecards
                  if assistant["id"] in (c.get("assistantIds") or [])
                  or c["id"] in (assistant["artifactPlan"].get("scorecardIds") or []))
    return Persona(
        assistant_id=assistant["id"], name=spec.name, job=spec.job or "support", agent=spec.agent,
        greeting=assistant["firstMessage"],
        voicemail=VOICEMAIL.replace("{agent}", spec.agent).replace("{company}", COMPANY),
        prompt=PROMPTS[spec.job].format(company=COMPANY, agent=spec.agent), outputs=spec.outputs,
        outbound=spec.outbound, fail_rate=spec.fail_rate, scorecards=cards,
    )


def draw_for(rng: np.random.Generator, personas: list[Persona], **kwargs: Any) -> Draw:
    """Draw outcomes for one call per persona in ``personas``."""
    return draw(
        rng,
        job=np.array([JOBS.index(p.job) for p in personas], dtype=np.int16),
        outbound=np.array([p.outbound for p in personas]),
        fail_rate=np.array([p.fail_rate for p in personas]),
        output_mask={k: np.array([k in p.outputs for p in personas]) for k in OUTPUT_KEYS},
        **kwargs,
    )


def busy_hour_times(rng: np.random.Generator, start: int, end: int, n: int) -> np.ndarray:
    """``n`` strictly increasing epoch-ms times in ``[start, end)``, denser in busy UTC hours (``HOUR_WEIGHT``)."""
    # Rejection sampling by hour-of-day weight, vectorised: draw extra candidates, keep enough.
    picked = np.empty(0, dtype=np.int64)
    while len(picked) < n:
        cand = rng.integers(start, end, max(2 * (n - len(picked)), 16))
        hours = (cand // 3_600_000) % 24
        picked = np.concatenate([picked, cand[rng.random(len(cand)) < HOUR_WEIGHT[hours] / HOUR_WEIGHT.max()]])
    created = np.sort(picked[:n])
    # Strictly increasing: no ties to break anywhere.
    return np.maximum.accumulate(created - np.arange(n)) + np.arange(n)


def pick_assistants(rng: np.random.Generator, n: int) -> np.ndarray:
    """Which generated assistant (index into ``ASSISTANTS``) answers each of ``n`` calls, by call share."""
    shares = np.array([s.share for s in ASSISTANTS])
    return rng.choice(len(ASSISTANTS), size=n, p=shares / shares.sum()).astype(np.int8)


def draw_for_assistants(rng: np.random.Generator, assistant: np.ndarray) -> Draw:
    """Draw outcomes for calls answered by the generated assistants ``assistant`` (indices into ``ASSISTANTS``)."""
    return draw(
        rng,
        job=np.array([JOBS.index(s.job or "support") for s in ASSISTANTS], dtype=np.int16)[assistant],
        outbound=np.array([s.outbound for s in ASSISTANTS])[assistant],
        fail_rate=np.array([s.fail_rate for s in ASSISTANTS])[assistant],
        output_mask={k: np.array([k in s.outputs for s in ASSISTANTS])[assistant] for k in OUTPUT_KEYS},
    )


class Dataset:
    """The generated calls of one workspace, as columns plus lazy per-call JSON."""

    def __init__(self, seed: int, calls: int, anchor: datetime, *, hostile: bool = False) -> None:
        self.seed = seed
        self.n = calls
        self.anchor_ms = ms_of(anchor)
        self.catalog = build_catalog(seed, anchor)
        if hostile:  # SandboxConfig.hostile: a name full of terminal control codes
            keys = [s.key for s in ASSISTANTS]
            self.catalog.assistants[keys.index("onboarding")]["name"] = HOSTILE_ASSISTANT_NAME
        self.personas = [persona_for(self.catalog, i) for i in range(len(ASSISTANTS))]
        rng = np.random.default_rng([seed, 0xCA11])
        self.created_ms, self.assistant, self.status = self._layout(rng)
        self.draw = draw_for_assistants(rng, self.assistant)
        live = self.status != 0
        # Live calls have not ended: no reason, outputs, analysis or costs yet.
        self.ended = ~live
        self.assistant_phone = np.array([self._phone_index(s.phone) for s in ASSISTANTS], dtype=np.int8)
        self.phone = self.assistant_phone[self.assistant]
        ended_ms = self.created_ms + self.draw.start_delay_ms + self.draw.duration_ms
        self.updated_ms = np.where(live, self.created_ms, ended_ms + self.draw.update_delay_ms).astype(np.int64)
        self._ids: list[str] | None = None
        self._index: dict[str, int] | None = None
        self._hostile_index = self._newest_ended("support") if hostile else None

    def _newest_ended(self, key: str) -> int | None:
        """The index of the newest ended call of assistant ``key`` (where ``hostile`` plants its id)."""
        wanted = [s.key for s in ASSISTANTS].index(key)
        hits = np.flatnonzero((self.assistant == wanted) & self.ended)
        return int(hits[-1]) if len(hits) else None

    # ------------------------------------------------------------------ layout
    def _layout(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.n
        live_n = min(len(LIVE_CALLS), n // 40)
        old_n = n - live_n
        start = self.anchor_ms - WINDOW_DAYS * DAY_MS
        end = self.anchor_ms - ENDED_BEFORE_MS - 240_000  # an ended call also ended before the anchor
        created = busy_hour_times(rng, start, end, old_n)
        assistant = pick_assistants(rng, old_n)
        live_created = self.anchor_ms - np.sort(rng.integers(5_000, LIVE_WINDOW_MS, live_n))[::-1]
        keys = [s.key for s in ASSISTANTS]
        live_specs = list(reversed(LIVE_CALLS[:live_n]))  # oldest first
        live_assistant = np.array([keys.index(k) for _, k in live_specs], dtype=np.int8)
        live_status = np.array([STATUSES.index(s) for s, _ in live_specs], dtype=np.int8)
        return (np.concatenate([created, live_created]).astype(np.int64),
                np.concatenate([assistant, live_assistant]),
                np.concatenate([np.zeros(old_n, dtype=np.int8), live_status]))

    def _phone_index(self, key: str | None) -> int:
        return list(self.catalog.phone_ids).index(key) if key else -1

    # ------------------------------------------------------------------ ids
    def call_id(self, i: int) -> str:
        """The id of call ``i``."""
        if self._ids is not None:
            return self._ids[i]
        return HOSTILE_CALL_ID if i == self._hostile_index else stable_uuid(self.seed, "call", i)

    def ids(self) -> list[str]:
        """Every call id in index order (built once, on first use)."""
        if self._ids is None:
            self._ids = [self.call_id(i) for i in range(self.n)]
        return self._ids

    def index_of(self, call_id: str) -> int | None:
        """The index of a generated call id, or None."""
        if self._index is None:
            self._index = {cid: i for i, cid in enumerate(self.ids())}
        return self._index.get(call_id)

    # ------------------------------------------------------------------ calls
    def spec(self, i: int, **overrides: Any) -> CallSpec:
        """The generation parameters of call ``i`` (``overrides`` replace CallSpec fields)."""
        a = int(self.assistant[i])
        persona = self.personas[a]
        p = int(self.phone[i])
        phone = self.catalog.phone_numbers[p] if p >= 0 else None
        kwargs: dict[str, Any] = {
            "key": f"{self.seed}:{i}",
            "call_id": self.call_id(i),
            "persona": persona,
            "phone": phone,
            "call_type": "outboundPhoneCall" if persona.outbound else "inboundPhoneCall",
            "created_ms": int(self.created_ms[i]),
            "status": STATUSES[int(self.status[i])],
            "output_ids": self.catalog.output_ids,
            "updated_ms": int(self.updated_ms[i]),
        }
        kwargs.update(overrides)
        return spec_from_draw(self.draw, i, **kwargs)

    def call(self, i: int, **overrides: Any) -> dict[str, Any]:
        """The full Call JSON of call ``i``."""
        return build_call(self.spec(i, **overrides))

    def conversation(self, i: int) -> Conversation:
        """The rendered conversation of call ``i`` (what its JSON and recordings are built from)."""
        return conversation(self.spec(i))

    def iter_calls(self) -> Iterator[dict[str, Any]]:
        """Every call's JSON, in createdAt order (built one at a time)."""
        for i in range(self.n):
            yield self.call(i)
