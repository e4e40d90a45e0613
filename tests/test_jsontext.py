"""agent/jsontext.py: pydantic-core's parser on the hot path, the standard library's results and errors."""

from __future__ import annotations

import json

import pytest

from agent import jsontext

DOCUMENTS = [
    '{"result": [{"id": "c1", "cost": 0.1234}], "next_cursor": null}', "[1, 2.5, -0, 1e400, true, null]",
    '"\\ud800"',  # an escaped lone surrogate: pydantic-core refuses it, the standard library accepts it
    '"\ud800"',  # a str holding a lone surrogate (cannot be encoded to UTF-8)
    '{"a": 1, "a": 2}', "12345678901234567890123456789", '  {"x": "caf\\u00e9"}\n',
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_results_equal_the_standard_librarys(text: str) -> None:
    assert jsontext.loads(text) == json.loads(text)
    if "\ud800" not in text:
        assert jsontext.loads(text.encode()) == json.loads(text.encode())


@pytest.mark.parametrize("text", ['{"a": 1', "{} x", "[1,]", '"\x01"', "", "NaN-", b"\xff"])
def test_what_the_standard_library_refuses_is_refused_with_its_error(text: str | bytes) -> None:
    with pytest.raises(ValueError) as ours:
        jsontext.loads(text)
    with pytest.raises(ValueError) as stdlib:
        json.loads(text)
    assert type(ours.value) is type(stdlib.value) and str(ours.value) == str(stdlib.value)
