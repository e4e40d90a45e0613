"""Parse rate-limit response headers into one small ``RateLimitInfo``.

Servers announce limits in many dialects; every one of these is understood:

==============================  ==========================================================  ===========
header                          example                                                     meaning
==============================  ==========================================================  ===========
``retry-after-ms``              ``1500``                                                    reset (ms)
``retry-after``                 ``7``, ``1.5``, ``Wed, 21 Oct 2015 07:28:00 GMT``           reset
``ratelimit`` (IETF, new)       ``"default";r=0;t=7`` (several items: most restrictive)     rem, reset
``ratelimit`` (IETF, old)       ``limit=10, remaining=0, reset=7``                          all three
``ratelimit-policy``            ``"default";q=100;w=60`` or ``100;w=60``                    limit, win
``ratelimit-limit``             ``110`` or ``110;w=10`` (Truto)                             limit, win
``ratelimit-remaining``         ``0``                                                       remaining
``ratelimit-reset``             ``7`` (delta seconds)                                       reset
``x-ratelimit-limit/-remaining``  ``100`` / ``0``                                           limit, rem
``x-ratelimit-reset``           ``1767225600`` (epoch s), ``1767225600000`` (epoch ms), ``7``  reset
``x-ratelimit-*-requests``      OpenAI: ``x-ratelimit-reset-requests: 6m0s``                 all three
``x-ratelimit-*-tokens``        OpenAI: ``x-ratelimit-reset-tokens: 20ms``                   rem, reset
==============================  ==========================================================  ===========

Precedence for the reset (the first that parses wins): ``retry-after-ms``, ``retry-after``,
``ratelimit``, ``ratelimit-reset``, ``x-ratelimit-reset``, the OpenAI pair. ``Retry-After`` comes
first because on a refusal it is the server's explicit instruction; the window headers describe the
window, which is the same moment or later.

Garbage never raises: negative, NaN, ``inf``, empty, non-numeric, underscored (``1_0``) or absurd
values (a reset beyond ``MAX_RESET_SECONDS``, a count beyond ``MAX_COUNT``) are ignored as if the
header were absent, and the next header in the precedence list is tried.

Reset-style values that could be epochs (``x-ratelimit-reset``, and defensively ``ratelimit-reset``)
are read by size: ``>= 1e12`` is epoch milliseconds, ``>= 1e9`` is epoch seconds (both made relative
to the receipt time ``now``; a moment already past means "reset now", 0), anything smaller is a delta
in seconds. 1e9 seconds is ~31 years, far beyond any sane delta, and 1e12 ms is September 2001, so the
ranges cannot be confused for real traffic.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

MAX_RESET_SECONDS = 7 * 24 * 3600.0  # a week: longer "resets" are garbage, not a plan to wait
MAX_COUNT = 10**12  # a count of requests/tokens beyond this is garbage
_EPOCH_MS = 1e12
_EPOCH_S = 1e9

# Plain non-negative decimals only: float() would also accept "nan", "inf", "1_0", "1e3", " 0x" ...
_DECIMAL = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)$")
# Go's time.Duration.String() as OpenAI sends it: "1s", "6m0s", "20ms", "1h2m3.5s".
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|μs|ns)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9}
_OLD_STYLE_KEYS = ("limit", "remaining", "reset")


@dataclass(frozen=True)
class RateLimitInfo:
    """What one response said about its rate limit; every field is ``None`` when not announced.

    ``reset_after`` is seconds from the response's receipt until the window resets (or until a
    retry is allowed); ``window`` is the window length in seconds; ``source`` names the header the
    reset came from (or the first header that told anything, when there is no reset).
    """

    reset_after: float | None = None
    limit: int | None = None
    remaining: int | None = None
    window: float | None = None
    source: str | None = None

    @property
    def empty(self) -> bool:
        """True when no rate-limit header was understood."""
        return self.reset_after is None and self.limit is None and self.remaining is None and self.window is None

    @property
    def exhausted(self) -> bool:
        """True when the server said nothing is left in the current window."""
        return self.remaining == 0


# ---------------------------------------------------------------- scalar parsers (public: table-tested)
def parse_number(value: Any) -> float | None:
    """A finite non-negative decimal, or ``None`` for anything else (never raises)."""
    text = _text(value)
    if text is None or not _DECIMAL.match(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def parse_count(value: Any) -> int | None:
    """A non-negative whole count (``"10"``, tolerating ``"10.0"``), or ``None``."""
    number = parse_number(value)
    if number is None or number > MAX_COUNT:
        return None
    return int(number)


def parse_retry_after(value: Any, now: float | None = None) -> float | None:
    """``Retry-After``: delta seconds (``"7"``, tolerating ``"1.5"``) or an HTTP-date relative to ``now``."""
    text = _text(value)
    if text is None:
        return None
    seconds = parse_number(text)
    if seconds is None and not _DECIMAL.match(text) and any(c.isalpha() for c in text):
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if moment.tzinfo is None:  # RFC 9110 dates are GMT; a zoneless one is read as UTC
            moment = moment.replace(tzinfo=UTC)
        seconds = max(0.0, moment.timestamp() - (time.time() if now is None else now))
    return _bounded(seconds)


def parse_retry_after_ms(value: Any) -> float | None:
    """``retry-after-ms``: milliseconds, returned as seconds."""
    ms = parse_number(value)
    return None if ms is None else _bounded(ms / 1000.0)


def parse_reset(value: Any, now: float | None = None) -> float | None:
    """A reset that may be a delta, epoch seconds or epoch milliseconds (see the module docstring)."""
    number = parse_number(value)
    if number is None:
        return None
    if number >= _EPOCH_S:
        epoch = number / 1000.0 if number >= _EPOCH_MS else number
        # A moment already past (clock skew, or the window reset while the response travelled)
        # means the limit is lifted now.
        number = max(0.0, epoch - (time.time() if now is None else now))
    return _bounded(number)


def parse_go_duration(value: Any) -> float | None:
    """OpenAI's Go-style durations (``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``); a bare number is seconds."""
    text = _text(value)
    if text is None:
        return None
    if _DECIMAL.match(text):
        return _bounded(float(text))
    position, total = 0, 0.0
    for match in _GO_PART.finditer(text):
        if match.start() != position:  # junk between parts: the whole value is garbage
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text):
        return None
    return _bounded(total)


def parse_limit_field(value: Any) -> tuple[int | None, float | None]:
    """``ratelimit-limit``: ``"110"`` or ``"110;w=10"`` (older drafts list policies: first item wins)."""
    text = _text(value)
    if text is None:
        return None, None
    first = text.split(",")[0]
    name, params = _split_item(first)
    return parse_count(name), _bounded(parse_number(params.get("w")))


def parse_policy_field(value: Any, prefer: str | None = None) -> tuple[int | None, float | None]:
    """``RateLimit-Policy``: ``"default";q=100;w=60`` or ``100;w=60`` → (limit, window).

    With several policies, the one named ``prefer`` (the exhausted ``RateLimit`` item) wins, else the first.
    """
    text = _text(value)
    if text is None:
        return None, None
    chosen: tuple[int | None, float | None] | None = None
    for part in _split_list(text):
        name, params = _split_item(part)
        limit = parse_count(params["q"]) if "q" in params else parse_count(name)
        entry = (limit, _bounded(parse_number(params.get("w"))))
        if chosen is None or (prefer is not None and _unquote(name) == prefer):
            chosen = entry
    return chosen or (None, None)


def parse_ratelimit_field(value: Any) -> tuple[int | None, int | None, float | None, str | None]:
    """The ``RateLimit`` field → (limit, remaining, reset, item name).

    New form ``"default";r=0;t=7`` (several items: the most restrictive one, i.e. an exhausted item
    with the latest reset, else the item with the fewest remaining); old form
    ``limit=10, remaining=0, reset=7``.
    """
    text = _text(value)
    if text is None:
        return None, None, None, None
    parts = _split_list(text)
    old = {}
    for part in parts:
        key, sep, raw = part.partition("=")
        if sep and key.strip().lower() in _OLD_STYLE_KEYS and ";" not in part:
            old[key.strip().lower()] = raw.strip()
    if old:
        return (parse_count(old.get("limit")), parse_count(old.get("remaining")),
                _bounded(parse_number(old.get("reset"))), None)
    best: tuple[int | None, int | None, float | None, str | None] | None = None
    for part in parts:
        name, params = _split_item(part)
        remaining, reset = parse_count(params.get("r")), _bounded(parse_number(params.get("t")))
        if remaining is None and reset is None:
            continue
        item = (parse_count(params.get("q")), remaining, reset, _unquote(name) or None)
        if best is None or _more_restrictive(item, best):
            best = item
    return best or (None, None, None, None)


# ---------------------------------------------------------------- the whole response
def parse_rate_limit(headers: Any, now: float | None = None) -> RateLimitInfo:
    """Read every known rate-limit header from ``headers`` (any mapping, ``httpx2.Headers``, or pairs).

    ``now`` is the wall-clock epoch at receipt, used for HTTP-dates and epoch resets (default: now).
    """
    h = normalize_headers(headers)
    if not h:
        return RateLimitInfo()
    now = time.time() if now is None else now
    rl_limit, rl_remaining, rl_reset, rl_name = parse_ratelimit_field(h.get("ratelimit"))
    policy_limit, policy_window = parse_policy_field(h.get("ratelimit-policy"), prefer=rl_name)
    field_limit, field_window = parse_limit_field(h.get("ratelimit-limit"))
    oa = _openai(h)

    resets: list[tuple[str, float | None]] = [
        ("retry-after-ms", parse_retry_after_ms(h.get("retry-after-ms"))),
        ("retry-after", parse_retry_after(h.get("retry-after"), now)),
        ("ratelimit", rl_reset),
        ("ratelimit-reset", parse_reset(h.get("ratelimit-reset"), now)),
        ("x-ratelimit-reset", parse_reset(h.get("x-ratelimit-reset"), now)),
        (oa[3] or "x-ratelimit-reset-requests", oa[2]),
    ]
    source, reset_after = next(((name, v) for name, v in resets if v is not None), (None, None))
    limit = _first(field_limit, policy_limit, rl_limit, parse_count(h.get("x-ratelimit-limit")), oa[0])
    remaining = _first(rl_remaining, parse_count(h.get("ratelimit-remaining")),
                       parse_count(h.get("x-ratelimit-remaining")), oa[1])
    window = _first(field_window, policy_window)
    if source is None and (limit is not None or remaining is not None or window is not None):
        source = next((name for name in _INFO_HEADERS if name in h), None)
    return RateLimitInfo(reset_after=reset_after, limit=limit, remaining=remaining, window=window, source=source)


_INFO_HEADERS = ("ratelimit", "ratelimit-limit", "ratelimit-policy", "ratelimit-remaining", "x-ratelimit-limit",
                 "x-ratelimit-remaining", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                 "x-ratelimit-remaining-tokens")


def normalize_headers(headers: Any) -> dict[str, str]:
    """Lower-cased ``name → value`` from a mapping, ``httpx2.Headers`` or (name, value) pairs; junk → ``{}``."""
    if headers is None:
        return {}
    items: Iterable[Any]
    if isinstance(headers, Mapping) or hasattr(headers, "items"):
        try:
            items = list(headers.items())
        except Exception:  # a hostile or broken mapping must not break error handling
            return {}
    elif isinstance(headers, (list, tuple)):
        items = headers
    else:
        return {}
    out: dict[str, str] = {}
    for pair in items:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            continue
        name, value = _text(pair[0]), _text(pair[1])
        if name is None or value is None:
            continue
        name = name.lower()
        # Repeated fields combine with ", " (RFC 9110 §5.3), as httpx2.Headers does.
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


# ---------------------------------------------------------------- helpers
def _openai(h: Mapping[str, str]) -> tuple[int | None, int | None, float | None, str | None]:
    """OpenAI's two windows → (request limit, remaining, reset, reset header name).

    Remaining is the request count, forced to 0 when the token window is exhausted. The reset is that
    of the exhausted window(s) (the latest, since both must reset), else the earliest of the two.
    """
    req_rem = parse_count(h.get("x-ratelimit-remaining-requests"))
    tok_rem = parse_count(h.get("x-ratelimit-remaining-tokens"))
    resets = {"x-ratelimit-reset-requests": (parse_go_duration(h.get("x-ratelimit-reset-requests")), req_rem),
              "x-ratelimit-reset-tokens": (parse_go_duration(h.get("x-ratelimit-reset-tokens")), tok_rem)}
    known = {name: r for name, (r, _) in resets.items() if r is not None}
    exhausted = {name: r for name, (r, rem) in resets.items() if r is not None and rem == 0}
    pick: tuple[str, float] | None = None
    if exhausted:
        pick = max(exhausted.items(), key=lambda kv: kv[1])
    elif known:
        pick = min(known.items(), key=lambda kv: kv[1])
    remaining = 0 if tok_rem == 0 else req_rem
    return (parse_count(h.get("x-ratelimit-limit-requests")), remaining,
            pick[1] if pick else None, pick[0] if pick else None)


_Item = tuple[Any, int | None, float | None, Any]


def _more_restrictive(a: _Item, b: _Item) -> bool:
    a_out, b_out = a[1] == 0, b[1] == 0
    if a_out != b_out:
        return a_out
    if a_out:  # both exhausted: the later reset is the one that really blocks
        return (a[2] or 0.0) > (b[2] or 0.0)
    return (a[1] if a[1] is not None else MAX_COUNT) < (b[1] if b[1] is not None else MAX_COUNT)


def _split_list(text: str) -> list[str]:
    """Split a structured-field list on commas outside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _split_item(item: str) -> tuple[str, dict[str, str]]:
    """``name;k=v;k2=v2`` → (name, {k: v}) with lower-cased keys."""
    name, *raw_params = item.split(";")
    params: dict[str, str] = {}
    for raw in raw_params:
        key, _, value = raw.partition("=")
        if key.strip():
            params[key.strip().lower()] = value.strip()
    return name.strip(), params


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value).strip()
    return text if text else None


def _bounded(seconds: float | None) -> float | None:
    if seconds is None or not math.isfinite(seconds) or seconds < 0 or seconds > MAX_RESET_SECONDS:
        return None
    return seconds


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
