"""The generator's ground truth: what every generated call *is*, from its generation parameters.

Nothing here reads a built Call JSON back: metric values come from the dataset's drawn columns,
the failure (turn, kind, exact quote, time) from the rendered ``Conversation`` that the JSON and
the audio are both built from, and scores from the scorecard rules. Tests and benchmarks compare
what the API serves (or what an agent concludes) against this.

``message_index`` is the failing message's index in ``artifact.messages`` (which starts with the
system message, then the greeting); ``at_seconds`` is that message's ``secondsFromStart``.
Recording hashes are expensive for big datasets, so ``recordings`` selects whose to hash:
``"failing"`` (failing calls plus the newest 20 ended calls per assistant), an int N (failing plus
the newest N ended per assistant), ``"all"`` or ``"none"``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sandbox.world import audio
from sandbox.world.callgen import REASONS, CallSpec
from sandbox.world.calljson import conversation, iso_from_ms
from sandbox.world.entities import CSAT, EMPATHY, GREETING, RESOLVED, score
from sandbox.world.workspace import Workspace

METRIC_NAMES = {EMPATHY: "Empathy", RESOLVED: "Resolved", CSAT: "CSAT", GREETING: "Greeting Compliance"}
RECORDED_KINDS = ("mono", "stereo", "customer", "assistant")


def _call_truth(spec: CallSpec) -> dict[str, Any]:
    ended = spec.status == "ended"
    by_id = {spec.output_ids[k]: v for k, v in spec.values.items() if v is not None}
    entry: dict[str, Any] = {
        "createdAt": iso_from_ms(spec.created_ms),
        "status": spec.status,
        "endedReason": REASONS[spec.reason][0] if ended else None,
        "duration_seconds": spec.duration_ms / 1000 if ended else None,
        "metrics": {METRIC_NAMES[k]: (spec.values[k] if ended else None) for k in METRIC_NAMES},
        "scores": {card["id"]: score(card, by_id)["scoreNormalized"]
                   for card in spec.persona.scorecards} if ended and by_id else {},
        "successEvaluation": None if not ended or spec.success is None else ("true" if spec.success else "false"),
        "failing": ended and spec.failure is not None,
        "has_recording": spec.has_recording,
    }
    return entry


def _failure(spec: CallSpec) -> dict[str, Any]:
    conv = conversation(spec)
    assert conv.failure is not None  # only called for calls drawn with a failure
    turn = conv.turns[conv.failure.turn]
    return {
        "call_id": spec.id,
        "assistant_id": spec.persona.assistant_id,
        "assistant": spec.persona.name,
        "createdAt": iso_from_ms(spec.created_ms),
        "kind": conv.failure.kind,
        "message_index": conv.failure.turn + 1,  # artifact.messages[0] is the system message
        "at_seconds": turn.start_ms / 1000,
        "quote": conv.failure.quote,
        "empathy": spec.values.get(EMPATHY),
    }


def _recording(spec: CallSpec) -> dict[str, Any]:
    wavs = audio.render_all(conversation(spec).turns, spec.duration_ms)
    return {kind: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                   "duration": audio.wav_duration(data)} for kind, data in wavs.items()}


def ground_truth(workspace: Workspace, *, recordings: str | int = "failing") -> dict[str, Any]:
    """The ground truth of the workspace's generated calls as they stand now (deleted ones excluded)."""
    if not (recordings in ("failing", "all", "none") or isinstance(recordings, int)):
        raise ValueError("recordings must be 'failing', 'all', 'none' or an int")
    data = workspace.data
    assistants: dict[str, Any] = {}
    failing: list[dict[str, Any]] = []
    newest_ended: dict[str, list[CallSpec]] = {}
    selected: dict[str, CallSpec] = {}
    per_assistant = 20 if recordings == "failing" else (recordings if isinstance(recordings, int) else 0)
    calls = ended = 0
    for spec in workspace.generated_specs():  # newest first
        calls += 1
        ended += spec.status == "ended"
        persona = spec.persona
        group = assistants.setdefault(persona.assistant_id, {
            "name": persona.name, "scorecard_ids": [c["id"] for c in persona.scorecards], "calls": {}})
        group["calls"][spec.id] = _call_truth(spec)
        if spec.status == "ended" and spec.failure is not None:
            failing.append(_failure(spec))
            selected[spec.id] = spec
        if spec.status == "ended":
            bucket = newest_ended.setdefault(persona.assistant_id, [])
            if len(bucket) < per_assistant:
                bucket.append(spec)
                selected[spec.id] = spec
        if recordings == "all":
            selected[spec.id] = spec
    if recordings == "none":
        selected = {}
    return {
        "seed": data.seed,
        "calls": calls,
        "anchor": iso_from_ms(data.anchor_ms),
        "assistants": assistants,
        "failing": failing,
        "newest_ended": {aid: [s.id for s in specs] for aid, specs in newest_ended.items()},
        "recordings": {cid: (_recording(spec) if spec.has_recording else None) for cid, spec in selected.items()},
        "counts": {
            "ended": ended,
            "failing": len(failing),
        },
    }


def write_ground_truth(path: str | Path, workspace: Workspace, **kwargs: Any) -> dict[str, Any]:
    """Compute the ground truth and write it as JSON to ``path``; returns it too."""
    truth = ground_truth(workspace, **kwargs)
    Path(path).write_text(json.dumps(truth, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return truth
