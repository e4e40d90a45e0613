"""An independent, scripted OpenAI-compatible server for tests (see ``server.py`` and ``rules.py``).

Typical use::

    fake = ScriptedOpenAI([Turn.calls(ToolCall("list_calls", {})), Turn.text("Done.")])
    with fake.serve() as base_url:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        ...
    fake.assert_all_used()
"""

from tests.openai_fake.rules import RULES, Rule, Violation, validate_request
from tests.openai_fake.server import (
    ErrorReply,
    RawReply,
    RecordedRequest,
    ScriptedOpenAI,
    ToolCall,
    Turn,
    Usage,
    serve_app,
)

__all__ = [
    "RULES",
    "ErrorReply",
    "RawReply",
    "RecordedRequest",
    "Rule",
    "ScriptedOpenAI",
    "ToolCall",
    "Turn",
    "Usage",
    "Violation",
    "serve_app",
    "validate_request",
]
