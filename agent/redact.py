"""Secret redaction for everything that leaves the process: logs, errors, stores, reports, model input.

Two mechanisms work together:
- a registry of *known* secret values (API keys, the MCP URL path token, bearer tokens) that are
  replaced wherever they appear, and
- patterns for secrets we cannot know in advance: in absolute URLs the userinfo
  (``https://user:pass@host``) and every query value (``?k=***``: links carry keys and signatures in
  their queries); in relative ones presigned-URL signatures and credentials (``X-Amz-Signature=...``,
  ``Signature=...``, ``sig=...``); bearer tokens in header dumps; the path token of ``/mcp/<token>``.

``StreamRedactor`` does the same for text shown as it arrives (streamed tokens).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

MASK = "***"

# Query parameters that carry a signature or a credential in presigned URLs (S3, GCS, Azure, ours).
_SIGNED_PARAMS = (
    "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "X-Goog-Signature", "X-Goog-Credential",
    "Signature", "sig", "signature", "token", "access_token", "api_key", "apikey", "key",
)
# A value ends at a backslash too: in JSON-escaped text (a URL inside a JSON string inside JSON) the
# closing quote is \", and masking the backslash with the value would break the escaping.
_SIGNED_QUERY = re.compile(r"(?i)([?&](?:" + "|".join(map(re.escape, _SIGNED_PARAMS)) + r")=)[^&#\s\"'<>\\]+")
# An absolute URL: scheme, authority, path, query. A part ends at whitespace, quotes, angle brackets
# and backslashes (see above). The query loses its values, the authority its userinfo.
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/?#\"'<>\\]*)([^\s?#\"'<>\\]*)(\?[^\s#\"'<>\\]*)?")
_QUERY_VALUE = re.compile(r"([?&;][^=&;]*=)[^&;]+|([?&;])(?![^&;]*=)[^&;]+")
_MCP_PATH_TOKEN = re.compile(r"(/mcp/)(?!\*\*\*)[A-Za-z0-9_\-.~%]{6,}")
_BEARER = re.compile(r"(?i)(\bbearer\s+)(?!\*\*\*)[A-Za-z0-9_\-.~+/=]{6,}")

_known: set[str] = set()
# _known longest first (a secret containing another is masked whole), sorted when one is added rather
# than on every redact: a fleet run registers one token per minted server and redacts every stored string.
_longest_first: tuple[str, ...] = ()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that ``redact`` masks it wherever it appears (values < 6 chars are ignored)."""
    global _longest_first
    if value and len(value) >= 6:
        with _lock:
            if value not in _known:
                _known.add(value)
                _longest_first = tuple(sorted(_known, key=len, reverse=True))


def known_secrets() -> frozenset[str]:
    """The registered secret values (for tests and for cassette scrubbing)."""
    with _lock:
        return frozenset(_known)


def redact(text: str) -> str:
    """Mask known secrets, presigned signatures, bearer tokens and MCP path tokens in ``text``."""
    if not text:
        return text
    for secret in _longest_first:  # a tuple swapped whole by register_secret: no lock needed to read it
        if secret in text:
            text = text.replace(secret, MASK)
    # Each pattern runs only when the literal it cannot match without is present: most strings (a
    # transcript line, a name) hold none, and the substring tests cost a fraction of the regex scans.
    if "://" in text:
        text = _URL.sub(_mask_url, text)
    if "=" in text:
        text = _SIGNED_QUERY.sub(lambda m: m.group(1) + MASK, text)
    if "/mcp/" in text:
        text = _MCP_PATH_TOKEN.sub(lambda m: m.group(1) + MASK, text)
    if "bearer" in text.lower():  # _BEARER is case-insensitive
        text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    return text


def _mask_url(match: re.Match[str]) -> str:
    scheme, authority, path, query = match.group(1), match.group(2), match.group(3), match.group(4) or ""
    if "@" in authority:
        authority = MASK + "@" + authority.rsplit("@", 1)[1]
    if query:
        query = _QUERY_VALUE.sub(lambda m: (m.group(1) or m.group(2)) + MASK, query)
    return scheme + authority + path + query


def redact_data(value: Any) -> Any:
    """Redact every string inside a JSON-like structure (dicts, lists, tuples); returns a copy."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the message and its arguments (httpx2 and mcp log full URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place with secrets masked; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        return True


def install_logging_redaction(*logger_names: str) -> None:
    """Attach ``RedactingFilter`` to the root handlers and to the named loggers (idempotent)."""
    names = logger_names or ("", "httpx2", "httpcore", "mcp", "openai", "uvicorn", "uvicorn.access")
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


_WHITESPACE = re.compile(r"\s+")
_ENDS_WITH_BEARER = re.compile(r"(?i)\bbearer$")


class StreamRedactor:
    """Redacts text that arrives in pieces (streamed model tokens, chat deltas) before it is shown.

    A secret can be split across pieces, so text is held back until a whitespace boundary: what is
    released ends just before a run of whitespace, never between ``Bearer`` and its token. Every
    pattern ``redact`` knows (known values, URLs, tokens) holds no whitespace, so redacting the
    released parts one by one masks exactly what redacting the whole text would.
    """

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, piece: str) -> str:
        """Add ``piece``; returns the redacted text that is now safe to show (maybe empty)."""
        self._pending += piece
        cut = 0
        for run in reversed(list(_WHITESPACE.finditer(self._pending))):
            if not _ENDS_WITH_BEARER.search(self._pending, 0, run.start()):
                cut = run.start()
                break
        ready, self._pending = self._pending[:cut], self._pending[cut:]
        return redact(ready)

    def flush(self) -> str:
        """The rest, redacted (at the end of the stream)."""
        ready, self._pending = self._pending, ""
        return redact(ready)
