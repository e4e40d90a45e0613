"""JSON parsing on the hot path (every MCP answer, every page of calls).

pydantic-core's parser (already installed: the mcp SDK validates with it) decodes a 100-call page in
about 0.6x the standard library's time. The standard library stays the judge of what is valid: where
pydantic-core refuses a document the standard library accepts (an escaped lone surrogate such as
``"\\ud800"``, a ``str`` holding one), the document is parsed again by ``json.loads``, so callers see
exactly the standard library's results and errors.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic_core


def loads(data: str | bytes) -> Any:
    """Parse a JSON document; raises ``ValueError`` (``json.JSONDecodeError``) as ``json.loads`` would."""
    try:
        return pydantic_core.from_json(data)
    except (ValueError, TypeError):
        return json.loads(data)  # rare: malformed, or valid JSON pydantic-core refuses
