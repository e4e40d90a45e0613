"""qa-grade: grade an assistant's latest ended calls on a metric, fetch recordings, explain failures.

A pipeline, not a chat: code does the data work (find the assistant, page its calls, read the metric,
download recordings), the model judges only the failing calls (``workflows.qa.analysis``), and its
findings are checked against the transcript before they are shown. Per-call results are checkpointed
in the run store, so a re-run reuses finished calls unless ``fresh``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, ToolError, UnsafeInput
from agent.files import copy_atomically, output_folder, path_inside
from agent.media import download_recording
from agent.runtime import Runtime
from agent.timeparse import parse_duration
from workflows.qa.analysis import analyse_call
from workflows.qa.metric import Metric, resolve_metric
from workflows.steps import ProgressBar, gather_limited

RECORDING_CHOICES = ("failing", "all", "none")


@dataclass
class QAParams:
    """Inputs of one qa-grade run (the CLI flags)."""

    assistant: str
    last: int = 5
    since: str | None = None
    metric: str | None = None
    threshold: float = 80.0
    recordings: str = "failing"
    recordings_dir: str = "./recordings"
    out: str | None = None
    fresh: bool = False

    def validate(self) -> None:
        """Bad values are exit 2 before anything is fetched."""
        if self.last < 1:
            raise ConfigError(f"--last must be at least 1 (got {self.last})")
        if not math.isfinite(self.threshold):
            raise ConfigError(f"--threshold must be a finite number (got {self.threshold})")
        if self.recordings not in RECORDING_CHOICES:
            raise ConfigError(f"--recordings {self.recordings!r} is not one of {', '.join(RECORDING_CHOICES)}")
        if self.since is not None:
            parse_duration(self.since, option="--since")
        if self.recordings != "none":
            output_folder(self.recordings_dir, option="--recordings-dir")


@dataclass
class QAResult:
    """The graded calls, the metric, prompt recommendations, and non-fatal errors (status partial)."""

    assistant: dict[str, str]
    metric: dict[str, str]
    threshold: float
    calls: list[dict[str, Any]]
    recommendations: list[dict[str, Any]]
    errors: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``partial`` when something was skipped or could not be done, else ``ok``.

        Some calls without a value for the metric are reported (``metric_missing``) but graded
        runs stay ``ok``; when no call had a value nothing was graded, so the run is ``partial``.
        """
        partial = any(e["code"] != "metric_missing" or e["calls"] == e["of"] for e in self.errors)
        return "partial" if partial else "ok"

    @property
    def failing(self) -> list[dict[str, Any]]:
        """The calls below the threshold."""
        return [c for c in self.calls if c["failed"]]

    def to_dict(self) -> dict[str, Any]:
        """The envelope's ``result``, in the issue's shape (plus the notes it asks for)."""
        return {
            "assistant": self.assistant,
            "metric": self.metric["name"],
            "threshold": self.threshold,
            "calls": [_public_call(c) for c in self.calls],
            "recommendations": self.recommendations,
            "notes": self.notes,
            **({"files": self.files} if self.files else {}),  # only with --out
        }

    @property
    def missing_values(self) -> int:
        """How many graded calls have no value for the metric (they were not graded)."""
        return sum(1 for c in self.calls if c["value"] is None)


def _public_call(entry: dict[str, Any]) -> dict[str, Any]:
    """A call as the JSON result shows it: the recording is exactly ``{path, bytes, sha256}``."""
    recording = entry.get("recording")
    if recording is None:
        return entry
    return {**entry, "recording": {k: recording[k] for k in ("path", "bytes", "sha256")}}


async def _latest_ended_calls(rt: Runtime, assistant_id: str, last: int, since: str | None) -> list[dict[str, Any]]:
    created_ge = None
    if since is not None:
        created_ge = datetime.fromtimestamp(rt.clock(), tz=UTC) - parse_duration(since, option="--since")
    calls: list[dict[str, Any]] = []
    # Pages no larger than what is kept: every call comes with its whole transcript, so a default
    # 100-call page for ``--last 20`` would make the server send (and us decode) five times too much.
    # More pages follow only when some of the newest calls have not ended.
    page = min(last, rt.vapi.page_size)
    async for call in rt.vapi.iter_calls(assistant_id=assistant_id, created_at_ge=created_ge, limit=page):
        if call.get("status") == "ended":
            calls.append(call)
            if len(calls) >= last:
                break
    return calls


def _job_key(assistant_id: str, metric: Metric, threshold: float) -> str:
    return f"qa-grade:{assistant_id}:{metric.kind}:{metric.id}:{threshold:g}"


async def _grade_one(rt: Runtime, params: QAParams, assistant: dict[str, Any], metric: Metric,
                     call: dict[str, Any], result: QAResult, job: str) -> dict[str, Any]:
    cached = None
    if rt.store is not None and not params.fresh:
        cached = rt.store.checkpoint_get(job, call["id"])
        if cached is not None and _checkpoint_usable(cached):
            reused: dict[str, Any] = dict(cached["entry"])
            recording = await _recording_for(rt, params, call, reused, result)
            if recording != reused.get("recording"):
                reused["recording"] = recording
                rt.store.checkpoint_put(job, call["id"], {**cached, "entry": reused})
            return reused
    if not (call.get("artifact") or {}).get("messages") and rt.vapi.supports("calls.get"):
        call = await rt.vapi.get_call(call["id"])  # some servers list calls without artifacts
    value = metric.value(call)
    failed = value is not None and value < params.threshold
    entry: dict[str, Any] = {
        "id": call["id"], "started_at": call.get("startedAt") or call.get("createdAt"), "value": value,
        "failed": failed, "recording": None, "findings": [], "notes": [],
    }
    if value is None:
        entry["notes"].append(f"the call has no {metric.name} value")
    earlier = ((cached or {}).get("entry") or {}).get("recording")  # graded again (now analysed): keep its file
    entry["recording"] = await _recording_for(rt, params, call, {**entry, "recording": earlier}, result)
    analysed = False
    if failed and rt.model is not None:
        analysis = await analyse_call(rt.model, call, assistant, metric.name, value, params.threshold)
        rt.usage.record_model(analysis.input_tokens, analysis.output_tokens, rt.price, calls=analysis.model_calls)
        entry["findings"] = analysis.findings
        entry["notes"].extend(analysis.notes)
        entry["_recommendations"] = analysis.recommendations
        analysed = analysis.ok
        if not analysis.ok:
            result.errors.append({"code": "analysis_failed", "message": f"call {call['id']}: {analysis.notes[-1]}",
                                  "call_id": call["id"]})
    if rt.store is not None and (not failed or analysed or rt.model is None):
        rt.store.checkpoint_put(job, call["id"], {"entry": entry, "analysed": analysed,
                                                  "recordings": params.recordings})
    return entry


def _checkpoint_usable(cached: dict[str, Any]) -> bool:
    """A finished call is reused, except a failing one that was not analysed (a model may be configured now)."""
    entry = cached.get("entry") or {}
    return not (entry.get("failed") and not cached.get("analysed"))


def _wants_recording(params: QAParams, failed: bool) -> bool:
    return params.recordings == "all" or (params.recordings == "failing" and failed)


async def _recording_for(rt: Runtime, params: QAParams, call: dict[str, Any], entry: dict[str, Any],
                         result: QAResult) -> dict[str, Any] | None:
    """The recording of a call; one an earlier run saved (``entry["recording"]``) counts only while intact.

    When this run wants it: kept where it is when that is the current ``--recordings-dir``, copied
    into a new one when the old file is intact (no download), downloaded again otherwise. A call id
    that cannot name a file refuses this call's recording (a note and an ``unsafe_input`` error); the
    run goes on.
    """
    try:
        return await _saved_recording(rt, params, call, entry)
    except UnsafeInput as exc:
        entry.setdefault("notes", []).append(f"recording not saved: {exc.message}")
        result.errors.append({"code": exc.code, "message": f"call {call['id']!r}: {exc.line()}",
                              "call_id": call["id"]})
        return None


async def _saved_recording(rt: Runtime, params: QAParams, call: dict[str, Any],
                           entry: dict[str, Any]) -> dict[str, Any] | None:
    recording: dict[str, Any] | None = entry.get("recording")
    if recording is not None and not _file_matches(Path(recording["path"]), recording["sha256"]):
        recording = None  # moved, deleted or changed since: never reported
    if not _wants_recording(params, bool(entry.get("failed"))):
        return recording
    dest = _recording_path(params, call)
    if recording is None:
        return await _fetch_recording(rt, params, call, entry)
    if Path(recording["path"]).resolve() != dest.resolve():
        copy_atomically(Path(recording["path"]), dest)
        return {**recording, "path": str(dest)}
    return recording


def _file_matches(path: Path, sha256: str) -> bool:
    """True when ``path`` is a file whose SHA-256 is ``sha256``."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return False
    return digest.hexdigest() == sha256


def _recording_path(params: QAParams, call: dict[str, Any]) -> Path:
    # The id comes from the server: it names a file only if it is a safe token inside the folder.
    return path_inside(Path(params.recordings_dir), f"{call['id']}-mono.wav", what=f"the call id {call['id']!r}")


async def _fetch_recording(rt: Runtime, params: QAParams, call: dict[str, Any],
                           entry: dict[str, Any]) -> dict[str, Any] | None:
    dest = _recording_path(params, call)
    try:
        saved = await download_recording(lambda: rt.vapi.recording_link(call["id"], "mono"), dest, rt.media_http,
                                         max_bytes=rt.settings.max_download_bytes)
    except ToolError as exc:
        if exc.status == 404:
            reason = call.get("endedReason") or "unknown"
            entry["notes"].append(f"no recording: the call has none (ended: {reason})")
            return None
        raise
    return {"path": saved.path, "bytes": saved.bytes, "sha256": saved.sha256,
            "duration_seconds": saved.duration_seconds}


def _merge_recommendations(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for entry in entries:
        for text in entry.pop("_recommendations", []) or []:
            key = " ".join(text.lower().split())
            slot = merged.setdefault(key, {"text": text, "based_on": []})
            if entry["id"] not in slot["based_on"]:
                slot["based_on"].append(entry["id"])
    return list(merged.values())


def _metric_missing(result: QAResult) -> dict[str, Any]:
    """The ``metric_missing`` error: calls without a value were not graded (so the run is partial)."""
    missing, total, name = result.missing_values, len(result.calls), result.metric["name"]
    message = (f"none of the {total} calls has a {name} value, so none was graded" if missing == total
               else f"{missing} of {total} calls have no {name} value, so they were not graded")
    return {"code": "metric_missing", "message": message, "calls": missing, "of": total, "metric": name}


async def run(rt: Runtime, params: QAParams) -> QAResult:
    """The whole pipeline (``vapi-agent qa-grade`` and the chat tool call this)."""
    params.validate()
    rt.vapi.require_workflow("qa-grade")
    assistant = await rt.vapi.resolve_assistant(params.assistant)
    calls = await _latest_ended_calls(rt, assistant["id"], params.last, params.since)
    scorecards = await rt.vapi.list_scorecards() if rt.vapi.supports("scorecards.list") else []
    metric = resolve_metric(params.metric, assistant=assistant, scorecards=scorecards, calls=calls)
    result = QAResult(
        assistant={"id": assistant["id"], "name": assistant.get("name") or ""},
        metric=metric.to_dict(), threshold=params.threshold, calls=[], recommendations=[],
    )
    if not calls:
        window = f" in the last {params.since}" if params.since else ""
        result.notes.append(f"no ended calls{window} for this assistant")
    job = _job_key(assistant["id"], metric, params.threshold)
    progress = ProgressBar(rt.show_progress and bool(calls), "grading calls", len(calls))
    entries: list[dict[str, Any]] = []

    async def grade(call: dict[str, Any]) -> dict[str, Any]:
        try:
            return await _grade_one(rt, params, assistant, metric, call, result, job)
        finally:
            progress.advance()

    with progress:
        entries = await gather_limited(calls, grade, limit=rt.concurrency)
    result.recommendations = _merge_recommendations(entries)
    result.calls = entries
    if result.missing_values:
        result.errors.append(_metric_missing(result))
    if rt.model is None and any(e["failed"] for e in entries):
        result.errors.append({
            "code": "analysis_skipped",
            "message": "no model is configured, so failing calls were not analysed "
                       "(set OPENAI_API_KEY, or OPENAI_BASE_URL for any OpenAI-compatible endpoint)",
        })
    return result
