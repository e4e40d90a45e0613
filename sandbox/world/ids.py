"""Deterministic ids and Vapi-style timestamps."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

ORG_ID = "0b9f7d2e-1a2b-4c3d-8e9f-a1b2c3d4e5f6"


def stable_uuid(seed: int, kind: str, index: int | str) -> str:
    """A UUID (version 4 layout) derived from (seed, kind, index): same inputs, same id."""
    digest = hashlib.sha256(f"{seed}:{kind}:{index}".encode()).digest()[:16]
    return str(uuid.UUID(bytes=digest, version=4))


def iso_ms(ts: float | datetime) -> str:
    """Epoch seconds or a datetime as Vapi writes it: ``2025-06-02T14:03:11.482Z``."""
    dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, tz=UTC)
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    """Parse an ISO-8601 timestamp with ``Z`` or an offset, with or without fractional seconds.

    Naive values are taken as UTC. Raises ``ValueError`` on anything else.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)
