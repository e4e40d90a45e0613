"""Table tests for rate-limit header parsing: every dialect, and garbage that must be ignored."""

from __future__ import annotations

import math
from email.utils import formatdate
from typing import Any

import httpx2
import pytest

from agent.ratelimit.headers import (
    MAX_RESET_SECONDS,
    RateLimitInfo,
    normalize_headers,
    parse_count,
    parse_go_duration,
    parse_limit_field,
    parse_number,
    parse_policy_field,
    parse_rate_limit,
    parse_ratelimit_field,
    parse_reset,
    parse_retry_after,
    parse_retry_after_ms,
)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the receipt time of every table row

GARBAGE = ["", "   ", "-1", "-0.5", "nan", "NaN", "inf", "-inf", "Infinity", "1e400", "1_0", "0x10", "abc",
           "7s7", "1" * 400, None, b"\xff\xfe", True, object(), [], {}]


def close(a: float | None, b: float | None) -> bool:
    """Equality for optional floats (seconds computed from dates may carry rounding noise)."""
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, abs_tol=1e-6))


# ---------------------------------------------------------------- scalars
@pytest.mark.parametrize(("value", "expected"), [
    ("7", 7.0), ("0", 0.0), ("1.5", 1.5), (".5", 0.5), ("  3 ", 3.0), (7, 7.0), (b"4", 4.0),
])
def test_parse_number_accepts_plain_decimals(value: Any, expected: float) -> None:
    assert parse_number(value) == expected


@pytest.mark.parametrize("value", GARBAGE)
def test_parse_number_rejects_garbage(value: Any) -> None:
    assert parse_number(value) is None


@pytest.mark.parametrize("value", [*GARBAGE, "10000000000000000"])
def test_every_parser_ignores_garbage(value: Any) -> None:
    assert parse_count(value) is None
    assert parse_retry_after(value, NOW) is None
    assert parse_retry_after_ms(value) is None
    assert parse_reset(value, NOW) is None
    assert parse_go_duration(value) is None
    assert parse_limit_field(value) == (None, None)
    assert parse_policy_field(value) == (None, None)
    assert parse_ratelimit_field(value) == (None, None, None, None)


@pytest.mark.parametrize(("value", "expected"), [
    ("7", 7.0), ("0", 0.0), ("1.5", 1.5), ("120", 120.0),
    (formatdate(NOW + 30, usegmt=True), 30.0),          # HTTP-date, 30 s after receipt
    (formatdate(NOW - 30, usegmt=True), 0.0),           # HTTP-date already past: retry now
    ("Thu, 01 Jan 2026 00:00:10", 10.0),                # zoneless date: read as GMT
    ("Fri, 31 Dec 9999 23:59:59 GMT", None),            # absurdly far: ignored
    ("Wed, 99 Foo 2026 00:00:00 GMT", None),            # not a date
    (str(MAX_RESET_SECONDS + 1), None),                 # longer than a week: ignored
])
def test_retry_after(value: str, expected: float | None) -> None:
    assert close(parse_retry_after(value, NOW), expected)


@pytest.mark.parametrize(("value", "expected"), [
    ("1500", 1.5), ("20", 0.02), ("0", 0.0), ("2.5", 0.0025), ("-5", None), ("1e3", None),
])
def test_retry_after_ms(value: str, expected: float | None) -> None:
    assert close(parse_retry_after_ms(value), expected)


@pytest.mark.parametrize(("value", "expected"), [
    ("7", 7.0),                                   # delta seconds
    ("0", 0.0),
    (str(int(NOW + 42)), 42.0),                   # epoch seconds
    (str(int((NOW + 42) * 1000)), 42.0),          # epoch milliseconds
    (str(int(NOW - 100)), 0.0),                   # epoch already past: lifted now
    (str(int(NOW + 30 * 86400)), None),           # a month away: garbage
    ("999999999", None),                          # a 31-year "delta": garbage
    ("100000000000000000000", None),              # absurd
])
def test_reset_reads_delta_epoch_and_ms_epoch(value: str, expected: float | None) -> None:
    assert close(parse_reset(value, NOW), expected)


@pytest.mark.parametrize(("value", "expected"), [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0s", 0.0), ("500us", 0.0005),
    ("250µs", 0.00025), ("7", 7.0), ("1.5s", 1.5),
    ("1x", None), ("s", None), ("1s junk", None), ("junk1s", None), ("-1s", None), ("1h1h1h" * 100, None),
])
def test_go_durations(value: str, expected: float | None) -> None:
    assert close(parse_go_duration(value), expected)


@pytest.mark.parametrize(("value", "expected"), [
    ("110", (110, None)), ("110;w=10", (110, 10.0)), ("10, 10;w=1, 50;w=60", (10, None)),
    ("100;w=60;comment=\"x\"", (100, 60.0)), ("x;w=5", (None, 5.0)), ("5;w=nan", (5, None)),
])
def test_ratelimit_limit_field(value: str, expected: tuple[int | None, float | None]) -> None:
    assert parse_limit_field(value) == expected


@pytest.mark.parametrize(("value", "prefer", "expected"), [
    ('"default";q=100;w=60', None, (100, 60.0)),
    ("100;w=60", None, (100, 60.0)),
    ('"burst";q=10;w=1, "day";q=1000;w=86400', None, (10, 1.0)),
    ('"burst";q=10;w=1, "day";q=1000;w=86400', "day", (1000, 86400.0)),
    ('"default";q=-3;w=60', None, (None, 60.0)),
])
def test_ratelimit_policy_field(value: str, prefer: str | None, expected: tuple[int | None, float | None]) -> None:
    assert parse_policy_field(value, prefer=prefer) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ('"default";r=0;t=7', (None, 0, 7.0, "default")),
    ('"default";r=50;t=30', (None, 50, 30.0, "default")),
    # several items: the exhausted one with the latest reset blocks
    ('"burst";r=0;t=1, "day";r=0;t=3600, "minute";r=5;t=30', (None, 0, 3600.0, "day")),
    ('"a";r=9;t=10, "b";r=3;t=50', (None, 3, 50.0, "b")),
    ("limit=10, remaining=0, reset=7", (10, 0, 7.0, None)),          # the older draft
    ("limit=10, remaining=4", (10, 4, None, None)),
    ('"default";r=x;t=y', (None, None, None, None)),
])
def test_ratelimit_structured_field(value: str, expected: tuple[Any, ...]) -> None:
    assert parse_ratelimit_field(value) == expected


# ---------------------------------------------------------------- whole responses
TABLE: list[tuple[str, dict[str, str], RateLimitInfo]] = [
    ("nothing", {"content-type": "application/json"}, RateLimitInfo()),
    ("retry-after seconds", {"Retry-After": "7"}, RateLimitInfo(reset_after=7.0, source="retry-after")),
    ("retry-after date", {"Retry-After": formatdate(NOW + 12, usegmt=True)},
     RateLimitInfo(reset_after=12.0, source="retry-after")),
    ("retry-after-ms beats retry-after", {"retry-after-ms": "1500", "retry-after": "2"},
     RateLimitInfo(reset_after=1.5, source="retry-after-ms")),
    ("truto trio", {"ratelimit-limit": "110;w=10", "ratelimit-remaining": "0", "ratelimit-reset": "7"},
     RateLimitInfo(reset_after=7.0, limit=110, remaining=0, window=10.0, source="ratelimit-reset")),
    ("ietf structured + policy", {"RateLimit": '"default";r=0;t=7', "RateLimit-Policy": '"default";q=100;w=60'},
     RateLimitInfo(reset_after=7.0, limit=100, remaining=0, window=60.0, source="ratelimit")),
    ("ietf policy without name", {"RateLimit-Policy": "100;w=60", "RateLimit-Remaining": "40"},
     RateLimitInfo(limit=100, remaining=40, window=60.0, source="ratelimit-policy")),
    ("old ratelimit field", {"RateLimit": "limit=10, remaining=0, reset=7"},
     RateLimitInfo(reset_after=7.0, limit=10, remaining=0, source="ratelimit")),
    ("vapi-style x-ratelimit epoch", {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0",
                                      "X-RateLimit-Reset": str(int(NOW + 9))},
     RateLimitInfo(reset_after=9.0, limit=60, remaining=0, source="x-ratelimit-reset")),
    ("x-ratelimit ms epoch", {"X-RateLimit-Reset": str(int((NOW + 2.5) * 1000))},
     RateLimitInfo(reset_after=2.5, source="x-ratelimit-reset")),
    ("x-ratelimit small delta", {"X-RateLimit-Reset": "5"}, RateLimitInfo(reset_after=5.0, source="x-ratelimit-reset")),
    ("openai requests exhausted", {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0",
                                   "x-ratelimit-reset-requests": "6m0s", "x-ratelimit-remaining-tokens": "9000",
                                   "x-ratelimit-reset-tokens": "20ms"},
     RateLimitInfo(reset_after=360.0, limit=500, remaining=0, source="x-ratelimit-reset-requests")),
    ("openai tokens exhausted", {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "12",
                                 "x-ratelimit-reset-requests": "1h2m3.5s", "x-ratelimit-remaining-tokens": "0",
                                 "x-ratelimit-reset-tokens": "1s"},
     RateLimitInfo(reset_after=1.0, limit=500, remaining=0, source="x-ratelimit-reset-tokens")),
    ("openai nothing exhausted: earliest reset", {"x-ratelimit-remaining-requests": "3",
                                                  "x-ratelimit-reset-requests": "2s",
                                                  "x-ratelimit-reset-tokens": "20ms"},
     RateLimitInfo(reset_after=0.02, remaining=3, source="x-ratelimit-reset-tokens")),
    ("openai 429 prefers retry-after-ms", {"retry-after-ms": "20", "x-ratelimit-reset-requests": "6m0s"},
     RateLimitInfo(reset_after=0.02, source="retry-after-ms")),
    ("garbage retry-after falls through", {"Retry-After": "soon", "ratelimit-reset": "3"},
     RateLimitInfo(reset_after=3.0, source="ratelimit-reset")),
    ("all garbage", {"Retry-After": "-1", "retry-after-ms": "nan", "ratelimit-reset": "inf",
                     "ratelimit-limit": "", "ratelimit-remaining": "-2", "x-ratelimit-reset": "1e999",
                     "RateLimit": ";;;", "RateLimit-Policy": ",,,", "x-ratelimit-reset-requests": "1x"},
     RateLimitInfo()),
    ("huge values ignored", {"Retry-After": "99999999999", "ratelimit-remaining": "1" * 30},
     RateLimitInfo()),
]


@pytest.mark.parametrize(("headers", "expected"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_parse_rate_limit_table(headers: dict[str, str], expected: RateLimitInfo) -> None:
    info = parse_rate_limit(headers, now=NOW)
    assert close(info.reset_after, expected.reset_after), info
    assert (info.limit, info.remaining, info.window, info.source) == (
        expected.limit, expected.remaining, expected.window, expected.source), info


def test_httpx2_headers_and_pairs_are_accepted() -> None:
    as_headers = httpx2.Headers([("RateLimit-Reset", "4"), ("ratelimit-remaining", "0")])
    as_pairs = [("ratelimit-reset", "4"), ("RATELIMIT-REMAINING", "0")]
    for source in (as_headers, as_pairs):
        info = parse_rate_limit(source, now=NOW)
        assert (info.reset_after, info.remaining, info.exhausted) == (4.0, 0, True)


@pytest.mark.parametrize("junk", [None, 42, "text", [1, 2, 3], [("only-one",)], object()])
def test_junk_header_containers_give_empty_info(junk: Any) -> None:
    assert parse_rate_limit(junk, now=NOW).empty


def test_broken_mapping_does_not_raise() -> None:
    class Hostile(dict[str, str]):
        def items(self) -> Any:
            raise RuntimeError("boom")

    assert normalize_headers(Hostile()) == {}
    assert parse_rate_limit(Hostile(), now=NOW).empty


def test_repeated_fields_combine_like_httpx2() -> None:
    assert normalize_headers([("RateLimit", '"a";r=5;t=9'), ("ratelimit", '"b";r=0;t=3')]) == {
        "ratelimit": '"a";r=5;t=9, "b";r=0;t=3'}
    assert parse_rate_limit([("RateLimit", '"a";r=5;t=9'), ("ratelimit", '"b";r=0;t=3')], now=NOW).reset_after == 3.0


def test_default_now_is_wall_clock() -> None:
    import time

    info = parse_rate_limit({"x-ratelimit-reset": str(int(time.time()) + 60)})
    assert info.reset_after is not None and 55 <= info.reset_after <= 61
