"""A columnar view of every call, for analytics that must not build 100,000 dicts.

``CallColumns`` holds one numpy array per field, aligned row by row; coded columns index the label
tuples (``assistant_ids``, ``phone_ids``, ``types``, ``statuses``, ``ended_reasons``). It already
merges the overlay (deleted generated calls are gone, renamed ones have their new updatedAt) and the
live calls (``POST /call`` and campaign calls, in their state at the moment it was taken), so
analytics needs nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from sandbox.world.callgen import REASON_NAMES, STATUSES, CallSpec

if TYPE_CHECKING:
    from sandbox.world.data import Dataset

TYPES = ("inboundPhoneCall", "outboundPhoneCall", "webCall")
COST_COLUMNS = ("transport", "stt", "llm", "tts", "vapi")


@dataclass(frozen=True)
class CallColumns:
    """Aligned per-call arrays. Missing codes are -1; ``duration_s`` is NaN until a call has ended."""

    created_ms: np.ndarray  # int64 epoch ms
    updated_ms: np.ndarray  # int64 epoch ms
    assistant: np.ndarray  # int32 index into assistant_ids (-1: no assistant id, e.g. transient)
    phone: np.ndarray  # int32 index into phone_ids (-1: none)
    type: np.ndarray  # int8 index into types
    status: np.ndarray  # int8 index into statuses
    ended_reason: np.ndarray  # int16 index into ended_reasons (-1: not ended)
    success: np.ndarray  # int8 analysis.successEvaluation: 1 "true", 0 "false", -1 none
    duration_s: np.ndarray  # float64 endedAt - startedAt in seconds
    cost: np.ndarray  # float64 USD (0 until ended)
    cost_transport: np.ndarray
    cost_stt: np.ndarray
    cost_llm: np.ndarray
    cost_tts: np.ndarray
    cost_vapi: np.ndarray
    llm_prompt_tokens: np.ndarray  # int64
    llm_completion_tokens: np.ndarray  # int64
    tts_characters: np.ndarray  # int64
    assistant_ids: tuple[str, ...]
    phone_ids: tuple[str, ...]
    types: tuple[str, ...] = TYPES
    statuses: tuple[str, ...] = STATUSES
    ended_reasons: tuple[str, ...] = REASON_NAMES

    def __len__(self) -> int:
        return len(self.created_ms)

    def arrays(self) -> dict[str, np.ndarray]:
        """The array columns by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}


def build_columns(data: Dataset, alive: np.ndarray, updated_ms: np.ndarray, live: Sequence[CallSpec],
                  assistant_ids: Sequence[str], phone_ids: Sequence[str]) -> CallColumns:
    """Columns for the alive generated calls followed by the live calls."""
    idx = np.flatnonzero(alive)
    d = data.draw
    ended = data.status[idx] == 0
    outbound = np.array([p.outbound for p in data.personas])[data.assistant[idx]]
    cols: dict[str, list[np.ndarray]] = {
        "created_ms": [data.created_ms[idx]],
        "updated_ms": [updated_ms[idx]],
        "assistant": [data.assistant[idx].astype(np.int32)],
        "phone": [data.phone[idx].astype(np.int32)],
        "type": [outbound.astype(np.int8)],
        "status": [data.status[idx].astype(np.int8)],
        "ended_reason": [np.where(ended, d.reason[idx], -1).astype(np.int16)],
        "success": [np.where(ended, d.success[idx], -1).astype(np.int8)],
        "duration_s": [np.where(ended, d.duration_ms[idx] / 1000.0, np.nan)],
        "cost": [np.where(ended, d.cost["total"][idx], 0.0)],
        **{f"cost_{k}": [np.where(ended, d.cost[k][idx], 0.0)] for k in COST_COLUMNS},
        "llm_prompt_tokens": [np.where(ended, d.prompt_tokens[idx], 0)],
        "llm_completion_tokens": [np.where(ended, d.completion_tokens[idx], 0)],
        "tts_characters": [np.where(ended, d.tts_characters[idx], 0)],
    }
    labels = list(assistant_ids)
    rows: dict[str, list[Any]] = {key: [] for key in cols}
    for spec in live:
        done = spec.status == "ended"
        aid = spec.persona.assistant_id
        if aid and aid not in labels:
            labels.append(aid)
        row = {
            "created_ms": spec.created_ms, "updated_ms": spec.updated_ms or spec.created_ms,
            "assistant": labels.index(aid) if aid else -1,
            "phone": list(phone_ids).index(spec.phone["id"]) if spec.phone and spec.phone["id"] in phone_ids else -1,
            "type": TYPES.index(spec.call_type), "status": STATUSES.index(spec.status),
            "ended_reason": spec.reason if done else -1,
            "success": (-1 if spec.success is None else int(spec.success)) if done else -1,
            "duration_s": spec.duration_ms / 1000.0 if done else np.nan,
            "cost": spec.cost["total"] if done else 0.0,
            **{f"cost_{k}": spec.cost[k] if done else 0.0 for k in COST_COLUMNS},
            "llm_prompt_tokens": spec.tokens[0] if done else 0,
            "llm_completion_tokens": spec.tokens[1] if done else 0,
            "tts_characters": spec.tokens[2] if done else 0,
        }
        for key, value in row.items():
            rows[key].append(value)
    for key, values in rows.items():
        cols[key].append(np.array(values, dtype=np.float64 if key == "duration_s" else None))
    dtypes = {"created_ms": np.int64, "updated_ms": np.int64, "assistant": np.int32, "phone": np.int32,
              "type": np.int8, "status": np.int8, "ended_reason": np.int16, "success": np.int8,
              "llm_prompt_tokens": np.int64, "llm_completion_tokens": np.int64, "tts_characters": np.int64}
    arrays: dict[str, Any] = {k: np.concatenate(v).astype(dtypes.get(k, np.float64)) for k, v in cols.items()}
    return CallColumns(**arrays, assistant_ids=tuple(labels), phone_ids=tuple(phone_ids))
