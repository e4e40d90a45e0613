"""What a task needs at the least, worked out from the dataset itself (read over REST, which is not
rate limited), never from what a contender sent: the ideals of the rate-limit figures rest on it.

MCP requests every client pays: ``initialize`` and the ``initialized`` notification (``HANDSHAKE``).
``tools/list`` is not counted: a client that knows the tool names need not list them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.served import rest_get

HANDSHAKE = 2
PAGE_CAP = 100  # the largest list page of the sandbox (and of Vapi)
THRESHOLD = 80.0  # qa-grade's default


def calls_between(origin: str, start: str, end: str, **filters: Any) -> list[dict[str, Any]]:
    """Every call created in [start, end), newest first, over REST (pages of 1,000 by createdAt)."""
    out: list[dict[str, Any]] = []
    upper = end
    while True:
        page = rest_get(origin, "/call", limit=1000, createdAtGe=start, createdAtLt=upper, **filters)
        out.extend(page)
        if len(page) < 1000:
            return out
        upper = page[-1]["createdAt"]


def report_requests(origin: str, start: str, end: str) -> int:
    """``report --source calls`` over [start, end): its calls and the previous period's, in pages, plus
    the assistant list that names the rows."""
    return HANDSHAKE + max(1, math.ceil(len(calls_between(origin, start, end)) / PAGE_CAP)) + 1


@dataclass
class QAPlan:
    """The least a qa-grade run needs: which calls it grades, which fail, and the requests for that."""

    assistant_id: str
    metric: str
    pages: int  # list pages up to the last graded call
    graded: list[str]
    failing: list[str]
    transcripts: dict[str, str]  # failing call id -> its transcript (the floor of what a model must read)

    @property
    def requests(self) -> int:
        """Handshake, the assistant list, the call pages, the scorecard list, one recording link per
        failing call (a call without a recording still costs the request that finds out)."""
        return HANDSHAKE + 1 + self.pages + 1 + len(self.failing)


def qa_plan(origin: str, assistant: str, last: int, metric: str | None, end: str,
            threshold: float = THRESHOLD) -> QAPlan:
    """Grade ``assistant``'s newest ``last`` ended calls created before ``end`` on ``metric`` (a scorecard
    or numeric structured output by name; None: the assistant's scorecard)."""
    found = next(a for a in rest_get(origin, "/assistant") if a.get("name") == assistant)
    cards = rest_get(origin, "/observability/scorecard", limit=100)["results"]
    mine = calls_between(origin, "2000-01-01T00:00:00Z", end, assistantId=found["id"])
    positions = [i for i, c in enumerate(mine) if c.get("status") == "ended"][:last]
    graded = [mine[i] for i in positions]
    if metric is None:
        card_id = ((found.get("artifactPlan") or {}).get("scorecardIds") or [None])[0]
        card = next(c for c in cards if c["id"] == card_id)
        name, value = card["name"], _scorecard(card["id"])
    elif any(c["name"].lower() == metric.lower() for c in cards):
        card = next(c for c in cards if c["name"].lower() == metric.lower())
        name, value = card["name"], _scorecard(card["id"])
    else:
        name, value = metric, _output(metric)
    failing = [c for c in graded if (v := value(c)) is not None and v < threshold]
    return QAPlan(found["id"], name, math.ceil((positions[-1] + 1) / PAGE_CAP) if positions else 1,
                  [c["id"] for c in graded], [c["id"] for c in failing],
                  {c["id"]: str((c.get("artifact") or {}).get("transcript") or "") for c in failing})


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _scorecard(card_id: str) -> Any:
    return lambda call: _number((((call.get("artifact") or {}).get("scorecards") or {}).get(card_id) or {})
                                .get("scoreNormalized"))


def _output(name: str) -> Any:
    def value(call: dict[str, Any]) -> float | None:
        outputs = (call.get("artifact") or {}).get("structuredOutputs") or {}
        return next((_number(o.get("result")) for o in outputs.values() if str(o.get("name")).lower() == name.lower()),
                    None)

    return value
