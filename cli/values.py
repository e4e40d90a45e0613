"""Parsers for command options whose Python type alone lets bad values through.

typer reads ``float`` options with pydantic, which takes ``nan`` and ``inf``; a duration is text the
workflow parses later. These run while typer parses the line, so a bad value is a usage error
(exit 2, one line naming the option) before any settings are read or anything connects. Use them
as ``typer.Option(..., parser=finite(ge=0))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def _invalid(reason: str) -> Exception:
    # A pydantic custom error shows as typer's "Invalid value for '--x': <reason>" with no prefix.
    from pydantic_core import PydanticCustomError

    return PydanticCustomError("invalid_value", "{reason}", {"reason": reason})


def finite(*, ge: float | None = None, gt: float | None = None, le: float | None = None) -> Callable[[Any], float]:
    """A parser for a finite number within the given bounds."""

    def parse(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _invalid(f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise _invalid(f"{value!r} is not a finite number")
        if ge is not None and number < ge:
            raise _invalid(f"{value!r} is below {ge:g}")
        if gt is not None and number <= gt:
            raise _invalid(f"{value!r} must be above {gt:g}")
        if le is not None and number > le:
            raise _invalid(f"{value!r} is above {le:g}")
        return number

    return parse


def duration(value: Any) -> str:
    """A parser for a duration (``90s``, ``7d``, ``1h30m``, at most 100 years); returns the text unchanged."""
    from agent.errors import ConfigError
    from agent.timeparse import parse_duration

    try:
        parse_duration(str(value), option="")
    except ConfigError as exc:
        raise _invalid(exc.line().strip()) from None
    return str(value)
