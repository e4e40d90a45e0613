"""Which number a QA run grades on, and how to read it from a call.

``--metric NAME`` is matched case-insensitively, first against scorecard names, then against the
numeric structured outputs seen on the assistant's calls; ``scorecard:NAME`` / ``output:NAME``
force one. A boolean output is refused with the list of numeric ones. Without ``--metric``: the
first id in the assistant's ``artifactPlan.scorecardIds``, else the first scorecard whose
``assistantIds`` holds it, else exit 2 listing the choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.errors import ConfigError


@dataclass(frozen=True)
class Metric:
    """A scorecard (``scoreNormalized``, 0-100) or a numeric structured output (its own scale)."""

    kind: str  # "scorecard" | "output"
    id: str
    name: str

    def value(self, call: dict[str, Any]) -> float | None:
        """The call's value on this metric, or None when the call has none."""
        artifact = call.get("artifact") or {}
        if self.kind == "scorecard":
            entry = (artifact.get("scorecards") or {}).get(self.id) or {}
            raw = entry.get("scoreNormalized")
        else:
            entry = (artifact.get("structuredOutputs") or {}).get(self.id) or {}
            raw = entry.get("result")
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            return None
        return float(raw)

    def to_dict(self) -> dict[str, str]:
        """JSON-ready."""
        return {"kind": self.kind, "id": self.id, "name": self.name}


def outputs_seen(calls: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Structured outputs on these calls: lower name -> (id, "number" | "boolean" | "other")."""
    seen: dict[str, tuple[str, str]] = {}
    for call in calls:
        for output_id, entry in ((call.get("artifact") or {}).get("structuredOutputs") or {}).items():
            name = str(entry.get("name") or output_id)
            result = entry.get("result")
            kind = "boolean" if isinstance(result, bool) else "number" if isinstance(result, (int, float)) else "other"
            previous = seen.get(name.lower())
            if previous is None or previous[1] == "other":
                seen[name.lower()] = (output_id, kind)
    return seen


def _display_names(calls: list[dict[str, Any]]) -> dict[str, str]:
    names: dict[str, str] = {}
    for call in calls:
        for entry in ((call.get("artifact") or {}).get("structuredOutputs") or {}).values():
            if entry.get("name"):
                names.setdefault(str(entry["name"]).lower(), str(entry["name"]))
    return names


def resolve_metric(
    requested: str | None,
    *,
    assistant: dict[str, Any],
    scorecards: list[dict[str, Any]],
    calls: list[dict[str, Any]],
) -> Metric:
    """Pick the metric (see the module docstring); ambiguity or absence is a ConfigError (exit 2)."""
    seen = outputs_seen(calls)
    display = _display_names(calls)
    numeric = sorted(display.get(k, k) for k, (_, kind) in seen.items() if kind == "number")
    card_names = [str(s.get("name") or s.get("id")) for s in scorecards]
    choices = f"scorecards: {', '.join(card_names) or 'none'}; numeric outputs: {', '.join(numeric) or 'none'}"

    if requested is None:
        plan_ids = ((assistant.get("artifactPlan") or {}).get("scorecardIds")) or []
        by_id = {s.get("id"): s for s in scorecards}
        for scorecard_id in plan_ids:
            card = by_id.get(scorecard_id)
            return Metric("scorecard", scorecard_id, str((card or {}).get("name") or scorecard_id))
        for card in scorecards:
            if assistant.get("id") in (card.get("assistantIds") or []):
                return Metric("scorecard", str(card["id"]), str(card.get("name") or card["id"]))
        raise ConfigError("the assistant has no scorecard, so --metric is needed", hint=f"choose one: {choices}")

    kind, _, name = requested.partition(":")
    if kind not in ("scorecard", "output") or not name:
        kind, name = "any", requested
    wanted = name.strip().lower()
    if kind in ("any", "scorecard"):
        for card in scorecards:
            if str(card.get("name") or "").lower() == wanted:
                return Metric("scorecard", str(card["id"]), str(card["name"]))
        if kind == "scorecard":
            raise ConfigError(f"no scorecard named {name!r}", hint=f"scorecards: {', '.join(card_names) or 'none'}")
    if wanted in seen:
        output_id, output_kind = seen[wanted]
        if output_kind != "number":
            raise ConfigError(
                f"structured output {display.get(wanted, name)!r} is {output_kind}, not a number",
                hint=f"numeric outputs: {', '.join(numeric) or 'none'}",
            )
        return Metric("output", output_id, display.get(wanted, name))
    raise ConfigError(f"no metric named {name!r} on this assistant's calls", hint=f"choose one: {choices}")
