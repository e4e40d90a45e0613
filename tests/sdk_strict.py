"""Strict checks on top of the vapi-server-sdk models, which are lenient by design.

The SDK's generated models accept what Vapi would never send: unknown keys (``extra="allow"``),
snake_case field names (a validator rewrites them to the camelCase aliases), numbers as strings
(pydantic's lax mode turns ``"1.5"`` into 1.5), any enum value (enums are typed ``Literal[...] | Any``),
and whatever sits in ``artifact.scorecards`` / ``artifact.structuredOutputs`` (``Dict[str, Any]``).
``problems(parsed, raw)`` walks a validated model together with the JSON it came from and reports
each of those, with a JSON path:

* an entry in ``__pydantic_extra__`` at any depth (a key the SDK does not declare);
* a key that is a field's Python name rather than its camelCase alias;
* an enum value outside the SDK's literal set;
* a string (or a boolean) where a number is declared, a non-string where a date-time is declared,
  a string where a boolean is declared;
* a scorecard, structured-output or chat-message entry that does not have the documented shape.

The documented shapes (Vapi API reference, "Artifact" and "Observability: scorecards"): each call's
results are embedded in the call,

* ``artifact.scorecards[<scorecardId>] = {"name": str, "score": number, "scoreNormalized": number,
  "metricPoints": {"<structuredOutputId>": number}}``, where ``score`` is the sum of the points
  awarded, ``scoreNormalized = ceil(score / maxPoints x 100)`` (0 to 100) and ``metricPoints`` maps each
  structured output to the points it earned;
* ``artifact.structuredOutputs[<structuredOutputId>] = {"name": str, "result": any JSON value}``;

and a chat's ``messages[]`` and ``output[]`` are OpenAI-style ``{role, content}`` messages ("Chat").
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from typing import Annotated, Any, Literal

import pydantic


class ScorecardResult(pydantic.BaseModel):
    """One ``artifact.scorecards`` entry, as documented (no other key; numbers are numbers)."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    name: str
    score: float
    score_normalized: Annotated[float, pydantic.Field(alias="scoreNormalized", ge=0, le=100)]
    metric_points: Annotated[dict[str, float], pydantic.Field(alias="metricPoints")]


class StructuredOutputResult(pydantic.BaseModel):
    """One ``artifact.structuredOutputs`` entry, as documented."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    name: str
    result: pydantic.JsonValue


class ChatMessage(pydantic.BaseModel):
    """One ``Chat.messages`` / ``Chat.output`` item: an OpenAI-style ``{role, content}`` message, as the
    reference documents (the SDK's union only has call-transcript messages for ``user`` and ``system``)."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, pydantic.JsonValue]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, pydantic.JsonValue]] | None = None
    tool_call_id: str | None = None
    metadata: dict[str, pydantic.JsonValue] | None = None


# (model, key) -> the documented shape of each entry of that field, where the SDK types it loosely
_DOCUMENTED: dict[tuple[str, str], type[pydantic.BaseModel]] = {
    ("Artifact", "scorecards"): ScorecardResult, ("Artifact", "structuredOutputs"): StructuredOutputResult,
    ("Chat", "messages"): ChatMessage, ("Chat", "output"): ChatMessage,
}
_NUMBERS = (int, float)


def problems(parsed: Any, raw: Any, annotation: Any = Any, path: str = "$") -> list[str]:
    """Everything the SDK let through that Vapi would not send (empty when the body is strictly right)."""
    arms = _arms(annotation)
    if isinstance(parsed, pydantic.BaseModel):
        found = _model(parsed, raw, path)
        return found and _other_member(arms, type(parsed), raw, path, found)
    if raw is None:
        return []
    if isinstance(parsed, list) and isinstance(raw, list):
        item = next((typing.get_args(a)[0] for a in arms if typing.get_origin(a) is list and typing.get_args(a)),
                    Any)
        pairs = enumerate(zip(parsed, raw, strict=False))
        return [p for i, (x, r) in pairs for p in problems(x, r, item, f"{path}[{i}]")]
    if isinstance(parsed, dict) and isinstance(raw, dict):
        value = next((typing.get_args(a)[1] for a in arms if typing.get_origin(a) is dict and typing.get_args(a)),
                     Any)
        return [p for k, r in raw.items() if k in parsed for p in problems(parsed[k], r, value, f"{path}.{k}")]
    return _scalar(raw, arms, path)


def _other_member(arms: list[Any], picked: type, raw: Any, path: str, found: list[str]) -> list[str]:
    """In a union that is not discriminated (chat messages: every member's ``role`` is ``Literal | Any``),
    pydantic may pick a member the body does not match strictly: the body passes if another one does."""
    for arm in arms:
        if isinstance(arm, type) and issubclass(arm, pydantic.BaseModel) and arm is not picked:
            try:
                other = arm.model_validate(raw)
            except pydantic.ValidationError:
                continue
            if not _model(other, raw, path):
                return []
    return found


def _model(parsed: pydantic.BaseModel, raw: Any, path: str) -> list[str]:
    if not isinstance(raw, dict):
        return [f"{path}: an object was expected, got {type(raw).__name__}"]
    cls = type(parsed)
    fields = cls.model_fields
    alias_of = {name: field.alias or name for name, field in fields.items()}
    snake = {name: alias for name, alias in alias_of.items() if alias != name}
    extra = parsed.__pydantic_extra__ or {}
    out: list[str] = []
    for key in raw:
        if key in snake and key not in alias_of.values():
            out.append(f"{path}.{key}: snake_case key (the API's name is {snake[key]!r})")
        elif key in extra:
            out.append(f"{path}.{key}: a key {cls.__name__} does not declare")
    for name, field in fields.items():
        key = alias_of[name]
        value = getattr(parsed, name)
        if key not in raw:
            continue
        documented = _DOCUMENTED.get((cls.__name__, key))
        if documented is not None:
            out += _documented_entries(documented, raw[key], f"{path}.{key}")
        else:
            out += problems(value, raw[key], field.annotation, f"{path}.{key}")
    return out


def _documented_entries(model: type[pydantic.BaseModel], raw: Any, path: str) -> list[str]:
    """Each entry of an object keyed by id (scorecards, structured outputs) or of an array (messages)."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        entries = [(f"{path}.{key}", entry) for key, entry in raw.items()]
    elif isinstance(raw, list):
        entries = [(f"{path}[{i}]", entry) for i, entry in enumerate(raw)]
    else:
        return [f"{path}: an object or an array was expected, got {type(raw).__name__}"]
    out = []
    for where, entry in entries:
        try:
            model.model_validate(entry)
        except pydantic.ValidationError as exc:
            details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            out.append(f"{where}: not a documented {model.__name__} ({details})")
    return out


def _scalar(raw: Any, arms: list[Any], path: str) -> list[str]:
    literals = [v for a in arms if typing.get_origin(a) is Literal for v in typing.get_args(a)]
    others = [a for a in arms if a is not Any and typing.get_origin(a) is not Literal]
    # an SDK enum is exactly Literal[...] | Any (a declared ``str`` beside it, as for voice ids, allows any string)
    if literals and Any in arms and not others and raw not in literals:
        shown = ", ".join(map(repr, literals[:12])) + (", ..." if len(literals) > 12 else "")
        return [f"{path}: {raw!r} is not one of the SDK's values ({shown})"]
    concrete = [a for a in arms if a is not Any]
    if not concrete:
        return []
    if all(a in _NUMBERS for a in concrete) and (isinstance(raw, (str, bool))):
        return [f"{path}: {type(raw).__name__} {raw!r} where a number is declared"]
    if all(a is dt.datetime for a in concrete) and not isinstance(raw, str):
        return [f"{path}: {type(raw).__name__} {raw!r} where a date-time string is declared"]
    if all(a is bool for a in concrete) and not isinstance(raw, bool):
        return [f"{path}: {type(raw).__name__} {raw!r} where a boolean is declared"]
    return []


def _arms(annotation: Any) -> list[Any]:
    """The alternatives of an annotation: Optional, Union and Annotated unwrapped; None dropped."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _arms(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [arm for a in typing.get_args(annotation) for arm in _arms(a)]
    if annotation is type(None):
        return []
    return [annotation]
