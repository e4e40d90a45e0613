"""Which tools a request offers when there are too many: BM25 ranking plus a search tool.

OpenAI refuses a request with more than 128 tools, and every schema is paid for in tokens on every
turn. When the catalogue fits (count and token budget) it is offered whole: showing every schema
is both simplest and most accurate. When it does not fit, the request offers

1. the tools already used in this conversation (and those a search found: "pinned"), then
2. the rest ranked by BM25 over each tool's name, description and parameter names against the
   user's request, as many as fit, and
3. a ``search_tools`` function over everything, whose results are pinned for the next request.

No request is ever refused for its tools: a tool that fits nowhere is still reachable by search.
Offered tools keep catalogue order so consecutive requests share a prefix (prompt caching).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MAX_TOOLS = 128
DEFAULT_TOKEN_BUDGET = 24_000  # rough tokens of tool definitions per request
SEARCH_TOOL_NAME = "search_tools"
DEFAULT_SEARCH_LIMIT = 8
MAX_SEARCH_LIMIT = 20
_MAX_DESCRIPTION = 1024

_STOPWORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "give", "how", "i", "in", "is", "it", "me",
     "my", "of", "on", "or", "please", "show", "that", "the", "this", "to", "what", "which", "with", "you",
     "your", "all"}
)
_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def tokenize(text: str) -> list[str]:
    """Lower-case word stems: splits snake_case, kebab-case and camelCase; drops stopwords."""
    words = _SPLIT.split(_CAMEL.sub(" ", text).lower())
    return [_stem(w) for w in words if w and w not in _STOPWORDS]


def _stem(word: str) -> str:
    # Just enough stemming that "calls" finds "call" and "phone_numbers" finds "phone number".
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = tool.get("function")
    return inner if isinstance(inner, Mapping) else tool


def tool_name(tool: Mapping[str, Any]) -> str:
    """The function name of a chat-completions tool param."""
    return str(_function(tool).get("name", ""))


def tool_text(tool: Mapping[str, Any]) -> str:
    """What the ranking reads: name (twice: it is the strongest signal), description, parameter names."""
    fn = _function(tool)
    params = fn.get("parameters")
    props = params.get("properties") if isinstance(params, Mapping) else None
    names = " ".join(props) if isinstance(props, Mapping) else ""
    name = str(fn.get("name", ""))
    return f"{name} {name} {fn.get('description') or ''} {names}"


def estimate_tokens(tool: Mapping[str, Any]) -> int:
    """A rough token count of one tool definition (compact JSON, ~4 characters per token)."""
    return len(json.dumps(tool, separators=(",", ":"), ensure_ascii=False)) // 4 + 8


class BM25Index:
    """Okapi BM25 over a fixed list of documents (k1=1.2, b=0.75)."""

    def __init__(self, documents: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.docs = [Counter(tokenize(doc)) for doc in documents]
        self.lengths = [sum(doc.values()) for doc in self.docs]
        self.avg_length = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        frequency: Counter[str] = Counter()
        for doc in self.docs:
            frequency.update(doc.keys())
        n = len(self.docs)
        self.idf = {term: math.log(1 + (n - df + 0.5) / (df + 0.5)) for term, df in frequency.items()}

    def scores(self, query: str) -> list[float]:
        """One score per document, in document order (0 for no shared term)."""
        terms = tokenize(query)
        out = []
        for doc, length in zip(self.docs, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self.avg_length) if self.avg_length else self.k1
            score = 0.0
            for term in terms:
                tf = doc.get(term, 0)
                if tf:
                    score += self.idf[term] * tf * (self.k1 + 1) / (tf + norm)
            out.append(score)
        return out

    def rank(self, query: str) -> list[int]:
        """Document indices, best first; ties (and zero scores) keep document order."""
        scores = self.scores(query)
        return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def search_tool_param(name: str, hidden: Sequence[str], total: int) -> dict[str, Any]:
    """The ``search_tools`` function: strict, and its description lists hidden names that fit."""
    head = (
        f"Find more tools. {len(hidden)} of {total} tools are not offered right now; tools this search "
        "returns become callable on your next turn. Search by what you want to do (e.g. 'list calls', "
        "'update assistant'). Not yet offered:"
    )
    listed: list[str] = []
    for tool in hidden:
        if len(head) + sum(len(t) + 2 for t in listed) + len(tool) + 8 > _MAX_DESCRIPTION:
            listed.append("…")
            break
        listed.append(tool)
    description = f"{head} {', '.join(listed)}" if listed else head
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description[:_MAX_DESCRIPTION],
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Keywords describing the task."},
                    "limit": {
                        "type": ["integer", "null"],
                        "description": f"Results to return (default {DEFAULT_SEARCH_LIMIT}).",
                    },
                },
                "required": ["query", "limit"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }


def free_search_name(names: Iterable[str]) -> str:
    """``search_tools``, or a numbered variant when a real tool already has that name."""
    taken = set(names)
    candidate, n = SEARCH_TOOL_NAME, 1
    while candidate in taken:
        n += 1
        candidate = f"{SEARCH_TOOL_NAME}_{n}"
    return candidate


def select_tools(
    openai_tools: Sequence[Mapping[str, Any]],
    query: str,
    used: Iterable[str] = (),
    *,
    max_tools: int = MAX_TOOLS,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    index: BM25Index | None = None,
) -> tuple[list[Mapping[str, Any]], dict[str, Any] | None]:
    """The tools to offer for ``query`` and the search tool (``None`` when everything fits).

    ``used`` names tools the conversation already used or a search found, most recent last; they
    are offered first. ``index`` may be passed to reuse a ``BM25Index`` built over ``openai_tools``.
    """
    if max_tools < 2:
        raise ValueError("max_tools must leave room for at least one tool and the search tool")
    costs = [estimate_tokens(tool) for tool in openai_tools]
    if len(openai_tools) <= max_tools and sum(costs) <= token_budget:
        return list(openai_tools), None
    names = [tool_name(tool) for tool in openai_tools]
    position = {name: i for i, name in enumerate(names)}
    search_name = free_search_name(names)
    # Reserve room for the search tool as it will look when (at most) everything is hidden.
    room_tokens = token_budget - estimate_tokens(search_tool_param(search_name, names, len(names)))
    room_count = max_tools - 1
    chosen: list[int] = []
    spent = 0

    def take(i: int) -> None:
        nonlocal spent
        if i not in chosen and len(chosen) < room_count and spent + costs[i] <= room_tokens:
            chosen.append(i)
            spent += costs[i]

    for name in dict.fromkeys(reversed(list(used))):  # newest first, each once
        if name in position:
            take(position[name])
    for i in (index or BM25Index([tool_text(t) for t in openai_tools])).rank(query):
        take(i)
    chosen.sort()
    offered = set(chosen)
    hidden = [names[i] for i in range(len(names)) if i not in offered]
    if not hidden:
        return [openai_tools[i] for i in chosen], None
    return [openai_tools[i] for i in chosen], search_tool_param(search_name, hidden, len(names))


class ToolSelector:
    """Per-conversation selection state: pinned tools survive from one request to the next."""

    def __init__(
        self,
        openai_tools: Sequence[Mapping[str, Any]],
        *,
        max_tools: int = MAX_TOOLS,
        token_budget: int = DEFAULT_TOKEN_BUDGET,
    ) -> None:
        self.tools = list(openai_tools)
        self.max_tools = max_tools
        self.token_budget = token_budget
        self.names = [tool_name(tool) for tool in self.tools]
        self.index = BM25Index([tool_text(tool) for tool in self.tools])
        self.search_name = free_search_name(self.names)
        self.pinned: list[str] = []

    def offer(self, query: str) -> list[dict[str, Any]]:
        """The ``tools`` parameter for the next request (with the search tool when needed)."""
        offered, search = select_tools(
            self.tools, query, self.pinned, max_tools=self.max_tools, token_budget=self.token_budget, index=self.index
        )
        params = [dict(tool) for tool in offered]
        return [*params, search] if search else params

    def mark_used(self, name: str) -> None:
        """Remember that the model called ``name`` (it stays offered on later requests)."""
        if name in self.pinned:
            self.pinned.remove(name)
        if name in self.names:
            self.pinned.append(name)

    def is_search(self, name: str) -> bool:
        """True for the search tool's name (which is never an MCP tool)."""
        return name == self.search_name

    def search(self, query: str, limit: int = DEFAULT_SEARCH_LIMIT) -> list[dict[str, str]]:
        """The best matches for ``query`` (name + description); they are pinned for the next request."""
        limit = max(1, min(int(limit), MAX_SEARCH_LIMIT))
        scores = self.index.scores(query)
        ranked = [i for i in self.index.rank(query) if scores[i] > 0][:limit]
        for i in ranked:
            self.mark_used(self.names[i])
        return [
            {"name": self.names[i], "description": str(_function(self.tools[i]).get("description") or "")[:300]}
            for i in ranked
        ]

    def handle_search_call(self, arguments: str | Mapping[str, Any]) -> str:
        """Run a ``search_tools`` call from the model and return the tool-message text."""
        try:
            args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
        except json.JSONDecodeError:
            args = {}
        query = str(args.get("query") or "") if isinstance(args, dict) else ""
        limit = args.get("limit") if isinstance(args, dict) else None
        found = self.search(query, limit if isinstance(limit, int) else DEFAULT_SEARCH_LIMIT)
        if not found:
            return json.dumps({"tools": [], "note": f"No tool matches {query!r}; try other keywords."})
        note = "These tools are available on your next turn; call them directly."
        return json.dumps({"tools": found, "note": note}, ensure_ascii=False)
