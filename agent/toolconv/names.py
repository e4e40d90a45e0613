"""Tool names OpenAI accepts: ``^[a-zA-Z0-9_-]{1,64}$``.

MCP allows 1-128 characters of ``[A-Za-z0-9_.-]`` (and servers send worse: slashes, spaces, unicode).
OpenAI rejects the whole request when one name breaks its pattern or is longer than 64 characters,
so every name is fitted here. A cut or rewritten name carries a short hash of the original, which
keeps two long names with a shared 60-character prefix distinct, and the result is stable: the
same input name always gives the same output name (the model sees the same tool across turns).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container

MAX_NAME = 64
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_INVALID = re.compile(r"[^a-zA-Z0-9_-]+")
_HASH_LEN = 8


def name_hash(name: str, salt: str = "") -> str:
    """A short, stable hex digest of ``name`` (with an optional ``salt`` for second tries)."""
    return hashlib.sha256(f"{salt}\x00{name}".encode()).hexdigest()[:_HASH_LEN]


def clean_name(name: str) -> str:
    """Replace every run of characters outside ``[a-zA-Z0-9_-]`` by one underscore."""
    return _INVALID.sub("_", name).strip("_") or "tool"


def _with_suffix(base: str, suffix: str) -> str:
    room = MAX_NAME - len(suffix) - 1
    return f"{base[:room].rstrip('_-') or 'tool'}_{suffix}"


def fit_name(name: str, taken: Container[str] = frozenset()) -> str:
    """Return a name matching ``^[a-zA-Z0-9_-]{1,64}$`` that is not in ``taken``.

    A valid, free name is returned unchanged. Otherwise invalid characters become ``_``; if the
    result is too long, was rewritten, or collides, it is cut and suffixed with a hash of the
    original name (re-salted until it is free). ``taken`` is only read.
    """
    if NAME_PATTERN.match(name) and name not in taken:
        return name
    cleaned = clean_name(name)
    # Why a hash even for short rewritten names: "a.b" and "a/b" both clean to "a_b"; the suffix
    # keeps them apart without depending on the order tools were listed in.
    salt = ""
    for attempt in range(1000):
        candidate = _with_suffix(cleaned, name_hash(name, salt))
        if candidate not in taken:
            return candidate
        salt = str(attempt)
    raise ValueError(f"could not find a free tool name for {name[:80]!r}")  # pragma: no cover


def is_valid_name(name: str) -> bool:
    """True when OpenAI accepts ``name`` as a function name."""
    return bool(NAME_PATTERN.match(name))
