"""A scripted ``ChatModel`` for tests and offline demos: a queue of turns that records every request.

A request with no turn left fails loudly (``ModelError``), and ``assert_all_used`` fails a test that
scripted turns it never consumed. A turn may be a ``ModelTurn``, an exception to raise, or a
function of the request messages (to answer from what the code under test actually sent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ModelError
from agent.model import ModelTurn, TokenCallback

ScriptedTurn = ModelTurn | Exception | Callable[[list[dict[str, Any]]], ModelTurn]


@dataclass
class ScriptedModel:
    """Answers each ``complete`` with the next scripted turn."""

    turns: list[ScriptedTurn]
    name: str = "scripted"
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        on_token: TokenCallback | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ModelTurn:
        """Record the request and play the next turn (streaming its text through ``on_token``)."""
        import copy

        self.requests.append({"messages": copy.deepcopy(messages), "tools": tools,
                              "response_format": response_format})
        if not self.turns:
            raise ModelError(f"scripted model: no turn left for request #{len(self.requests)}")
        turn = self.turns.pop(0)
        if isinstance(turn, Exception):
            raise turn
        result = turn(messages) if callable(turn) else turn
        if on_token is not None and result.content:
            for word in result.content.split(" "):
                on_token(word + " ")
        return result

    def assert_all_used(self) -> None:
        """Fail when scripted turns were never requested."""
        if self.turns:
            raise AssertionError(f"scripted model: {len(self.turns)} turn(s) never used")
