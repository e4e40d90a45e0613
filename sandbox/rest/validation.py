"""Request validation with NestJS / class-validator semantics, and the NestJS error type.

Vapi is a NestJS service: a ``ValidationPipe`` with ``whitelist`` + ``forbidNonWhitelisted`` rejects
unknown properties ("property foo should not exist") and collects every class-validator message into
one 400 whose ``message`` is an array. Nested DTO errors are prefixed with their path
("members.0.assistantId must be a string"). This module reproduces that: a small spec language
(``Str``, ``Num``, ``Bool``, ``Obj``, ``Arr``, ``AnyOf``, ``Anything``) checked all at once, so a
write is refused before anything touches the workspace (all-or-nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.world.ids import parse_iso

REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class VapiHttpError(Exception):
    """An HTTP error answered with the NestJS body ``{message, error, statusCode}``."""

    def __init__(self, status: int, message: str | list[str], *, headers: Mapping[str, str] | None = None):
        super().__init__(message if isinstance(message, str) else "; ".join(message))
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body Vapi sends for this error."""
        return {"message": self.message, "error": REASONS.get(self.status, "Error"), "statusCode": self.status}


def bad_request(messages: list[str]) -> VapiHttpError:
    """A 400 whose ``message`` is the class-validator array."""
    return VapiHttpError(400, messages)


def not_found(message: str) -> VapiHttpError:
    """A 404 with a single-string message (what Nest's NotFoundException sends)."""
    return VapiHttpError(404, message)


# ---------------------------------------------------------------- body specs
class Spec:
    """A class-validator-like constraint on one value. ``check`` appends messages for ``prop``."""

    def check(self, value: Any, prop: str, prefix: str, errors: list[str]) -> None:
        """Append every message about ``value`` (property ``prop`` under ``prefix``) to ``errors``."""
        raise NotImplementedError


@dataclass
class Str(Spec):
    """``@IsString`` plus optional ``@IsIn``, ``@MaxLength``, ``@IsNotEmpty``, ``@IsISO8601``."""

    enum: tuple[str, ...] | None = None
    max_length: int | None = None
    not_empty: bool = False
    iso_date: bool = False

    def check(self, value: Any, prop: str, prefix: str, errors: list[str]) -> None:
        """See class docstring."""
        name = prefix + prop
        if not isinstance(value, str):
            errors.append(f"{name} must be a string")
            return
        if self.not_empty and not value.strip():
            errors.append(f"{name} should not be empty")
        if self.enum is not None and value not in self.enum:
            errors.append(f"{name} must be one of the following values: {', '.join(self.enum)}")
        if self.max_length is not None and len(value) > self.max_length:
            errors.append(f"{name} must be shorter than or equal to {self.max_length} characters")
        if self.iso_date:
            try:
                parse_iso(value)
            except ValueError:
                errors.append(f"{name} must be a valid ISO 8601 date string")


@dataclass
class Num(Spec):
    """``@IsNumber`` / ``@IsInt`` with optional ``@Min`` / ``@Max``. Booleans are not numbers."""

    integer: bool = False
    minimum: float | None = None
    maximum: float | None = None

    def check(self, value: Any, prop: str, prefix: str, errors: list[str]) -> None:
        """See class docstring."""
        name = prefix + prop
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(
                f"{name} must be an integer number"
                if self.integer
                else f"{name} must be a number conforming to the specified constraints"
            )
            return
        if self.integer and not float(value).is_integer():
            errors.append(f"{name} must be an integer number")
        if self.minimum is not None and value < self.minimum:
            errors.append(f"{name} must not be less than {_num(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            errors.append(f"{name} must not be greater than {_num(self.maximum)}")


@dataclass
class Bool(Spec):
    """``@IsBoolean``."""

    def check(self, value: Any, prop: str, prefix: str, errors: list[str]) -> None:
        """See class docstring."""
        if not isinstance(value, bool):
            errors.append(f"{prefix}{prop} must be a boolean value")


@dataclass
class Anything(Spec):
    """Any JSON value (free-form fields such as ``metadata`` values or a structured-output ``schema``)."""

    def check(self, value: Any, prop: str, prefix: str, errors: list[str]) -> None:
        """Accept everything."""


@dataclass
class Obj(Spec):
    """A nested DTO (``@ValidateNested``). ``fields=None`` means a free-form object (``@IsObject``).

    ``required`` names properties that must be present and not null. Unknown properties are refused
    when ``fields`` is given (whitelist + forbidNonWhitelisted applies to nested DTOs too).
    """

    fields: dict[str, Spec] | None = None
    required: frozenset[str] = frozenset()

    def check(self, value: Any, prop: str, prefix: str, errors: list[str]) -> None:
        """See class docstring."""
        name = prefix + prop
        if not isinstance(value, dict):
            if self.fields is None:
                errors.append(f"{name} must be an object")
            else:
                errors.append(f"nested property {name} must be either object or array")
            return
        if self.fields is not None:
            validate_object(value, self, errors, prefix=f"{name}.")


@dataclass
class Arr(Spec):
    """``@IsArray`` with an item spec (``@ValidateNested({each: true})``) and ``@ArrayMinSize``."""

    items: Spec | None = None
    min_size: int | None = None
    max_size: int | None = None

    def check(self, value: Any, prop: str, prefix: str, errors: list[str]) -> None:
        """See class docstring."""
        name = prefix + prop
        if not isinstance(value, list):
            errors.append(f"{name} must be an array")
            return
        if self.min_size is not None and len(value) < self.min_size:
            errors.append(f"{name} must contain at least {self.min_size} elements")
        if self.max_size is not None and len(value) > self.max_size:
            errors.append(f"{name} must contain no more than {self.max_size} elements")
        if self.items is None:
            return
        for index, item in enumerate(value):
            if isinstance(self.items, Obj | AnyOf):
                # nested DTO errors are reported under "<prop>.<index>."
                self.items.check(item, str(index), f"{name}.", errors)
            else:
                # class-validator's `each: true` reports a primitive item under the array's own name
                item_errors: list[str] = []
                self.items.check(item, prop, prefix, item_errors)
                errors.extend(m.replace(name + " ", f"each value in {name} ", 1) for m in item_errors)


@dataclass
class AnyOf(Spec):
    """A value allowed to have one of several shapes (e.g. chat ``input``: a string or messages)."""

    options: tuple[Spec, ...] = ()
    message: str = "has an invalid type"

    def check(self, value: Any, prop: str, prefix: str, errors: list[str]) -> None:
        """Pass when any option passes; otherwise report the best (fewest-message) option's errors."""
        best: list[str] | None = None
        for option in self.options:
            attempt: list[str] = []
            option.check(value, prop, prefix, attempt)
            if not attempt:
                return
            if best is None or len(attempt) < len(best):
                best = attempt
        errors.extend(best or [f"{prefix}{prop} {self.message}"])


def obj(required: Iterable[str] = (), **fields: Spec) -> Obj:
    """Shorthand for a nested DTO spec; Python-unfriendly keys go through ``obj(**{"a.b": ...})``."""
    return Obj(fields=dict(fields), required=frozenset(required))


def validate_object(body: Mapping[str, Any], spec: Obj, errors: list[str], *, prefix: str = "") -> None:
    """Check ``body`` against ``spec``: unknown keys first (as Nest lists them), then each field."""
    fields = spec.fields or {}
    for key in body:
        if key not in fields:
            errors.append(f"{prefix}property {key} should not exist")
    for key, field_spec in fields.items():
        value = body.get(key)
        if value is None:
            if key in spec.required:
                errors.append(f"{prefix}{key} should not be empty")
                missing: list[str] = []
                field_spec.check(None, key, prefix, missing)
                errors.extend(missing)
            continue  # @IsOptional(): null and undefined skip every other validator
        field_spec.check(value, key, prefix, errors)


def validate_body(body: Any, spec: Obj) -> dict[str, Any]:
    """The body as a dict, or a 400 listing every problem. A non-object body is refused outright."""
    if not isinstance(body, dict):
        raise bad_request(["request body must be a JSON object"])
    errors: list[str] = []
    validate_object(body, spec, errors)
    if errors:
        raise bad_request(errors)
    return body


# ---------------------------------------------------------------- query specs
@dataclass(frozen=True)
class Q:
    """One query parameter: ``kind`` is str | int | number | date | enum | bool | csv."""

    kind: str = "str"
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] = ()


TIMESTAMP_FILTERS = tuple(
    f"{col}{op}" for col in ("createdAt", "updatedAt") for op in ("Gt", "Lt", "Ge", "Le")
)


def timestamp_filters() -> dict[str, Q]:
    """The eight createdAt*/updatedAt* query filters every Vapi list accepts."""
    return {name: Q("date") for name in TIMESTAMP_FILTERS}


@dataclass
class Query:
    """Validated query parameters: typed values keyed by the Vapi (camelCase) name."""

    values: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        """The typed value of ``name`` or ``default``."""
        return self.values.get(name, default)

    def timestamps(self) -> dict[str, datetime]:
        """The timestamp filters that were given, keyed by their Vapi names."""
        return {k: v for k, v in self.values.items() if k in TIMESTAMP_FILTERS}


def validate_query(params: Iterable[tuple[str, str]], spec: Mapping[str, Q]) -> Query:
    """Type every parameter per ``spec``; unknown or malformed ones give one 400 with all messages."""
    errors: list[str] = []
    values: dict[str, Any] = {}
    for name, raw in params:
        q = spec.get(name)
        if q is None:
            errors.append(f"property {name} should not exist")
            continue
        value = _parse_query_value(name, raw, q, errors)
        if value is not None:
            values[name] = value
    if errors:
        raise bad_request(errors)
    return Query(values)


def _parse_query_value(name: str, raw: str, q: Q, errors: list[str]) -> Any:
    if q.kind == "date":
        try:
            return parse_iso(raw)
        except ValueError:
            errors.append(f"{name} must be a valid ISO 8601 date string")
            return None
    if q.kind in ("int", "number"):
        try:
            number = float(raw)
        except ValueError:
            number = float("nan")
        if number != number or number in (float("inf"), float("-inf")):
            errors.append(f"{name} must be a number conforming to the specified constraints")
            return None
        if q.kind == "int" and not number.is_integer():
            errors.append(f"{name} must be an integer number")
            return None
        if q.minimum is not None and number < q.minimum:
            errors.append(f"{name} must not be less than {_num(q.minimum)}")
        if q.maximum is not None and number > q.maximum:
            errors.append(f"{name} must not be greater than {_num(q.maximum)}")
        return int(number) if q.kind == "int" else number
    if q.kind == "enum":
        if raw not in q.enum:
            errors.append(f"{name} must be one of the following values: {', '.join(q.enum)}")
            return None
        return raw
    if q.kind == "bool":
        if raw not in ("true", "false"):
            errors.append(f"{name} must be a boolean value")
            return None
        return raw == "true"
    if q.kind == "csv":
        return [part for part in raw.split(",") if part]
    return raw


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
