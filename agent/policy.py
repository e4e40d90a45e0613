"""The write gate: classify every tool call as read, write or destructive, and decide at dispatch.

Names are judged after normalising (NFKC, control and format characters removed, stripped, case
folded) and by their own last segment: servers and aggregators prefix tools with namespaces
(``vapi.telephony.list_all_vapi_phone_numbers``, ``github__list_issues``, ``srv/get_x``,
``srv:list_y``), and the verb that says what a tool does is the first word of that last segment
(``listAssistants`` reads ``list``).

Classification of a call, strictest wins:
1. the verb (Truto: ``list_all_``/``get_single_`` read, ``create_a_``/``update_a_`` write,
   ``delete_a_`` destructive; Vapi's npm server: ``list_``/``get_`` read, ``create_``/``update_``
   write; generic ``delete``/``remove``/``cancel``/``end``/``release``... destructive); an unknown
   verb is a write. A destructive verb in *any* segment also counts (``delete.assistant``), so
   reading the last segment never loosens a name;
2. known reads by name that look like writes: Vapi's analytics query (``create_a_vapi_analytics``,
   ``POST /analytics``) and a discovery server's ``search_tools``/``get_tool_schema`` only read;
3. the effect: a write whose arguments make a change that cannot be undone is destructive whatever
   its name (``IRREVERSIBLE_EFFECTS``: a campaign or call set to ended/cancelled, a phone number
   released...), on every path (``tools call``, the model, workflows);
4. MCP annotations can only make a tool stricter: ``destructiveHint: true`` makes it destructive,
   ``readOnlyHint: false`` makes a read a write; ``readOnlyHint: true`` never loosens a write.
A discovery proxy (``call_tool``, also namespaced) is judged by the inner tool it runs (its
``tool_name``, normalised, with its own arguments; a proxy nested in a proxy by the innermost); a
proxy call whose inner tool cannot be read is destructive.

Decision (``WriteGate.check``): reads pass; ``--read-only`` refuses every write (nothing overrides
it); a write needs ``--yes``, ``--allow TOOL`` or an interactive yes; a destructive call needs
``--allow TOOL`` or an interactive yes (``--yes`` is not enough); with no way to ask, it is refused.
``--allow`` names the tool that really runs: approving the proxy (``--allow call_tool``) approves
nothing it calls.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agent.errors import ApprovalRequired
from agent.terminal import printable


class Access(StrEnum):
    """What a tool does to the account."""

    READ = "read"
    WRITE = "write"
    DESTRUCTIVE = "destructive"


_RANK = {Access.READ: 0, Access.WRITE: 1, Access.DESTRUCTIVE: 2}
_READ_NAMES = {"create_a_vapi_analytics", "search_tools", "get_tool_schema"}
_READ_VERBS = ("list", "get", "search", "find", "fetch", "read", "describe", "show", "query", "count", "download")
_DESTRUCTIVE_VERBS = ("delete", "remove", "destroy", "cancel", "purge", "drop", "end", "terminate", "archive",
                      "release", "revoke", "erase", "wipe", "kill")
_DISCOVERY_CALL = "call_tool"
_INNER_NAME_KEYS = ("tool_name", "toolName", "name")  # where proxies put the tool they run
_INNER_ARGS_KEYS = ("arguments", "args", "input", "params")
_MAX_PROXY_DEPTH = 4
# Namespace separators: "a.b", "a/b", "a:b" and the "<server>__" collision prefix.
_NAMESPACE = re.compile(r"__|[./:]")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9]+")


# ---------------------------------------------------------------- irreversible effects
@dataclass(frozen=True)
class Effect:
    """A change that cannot be undone: a write to ``resource`` that sets ``field`` to one of ``values``.

    ``resource`` is the words the tool's name holds (``("phone", "number")``); the field is found at
    any depth of the arguments (servers nest bodies under ``body``, ``data``...).
    """

    description: str
    resource: tuple[str, ...]
    field: str
    values: frozenset[str]

    def matches(self, words: tuple[str, ...], arguments: Mapping[str, Any]) -> bool:
        """True when a write named by ``words`` with these arguments has this effect."""
        if not _contains(words, self.resource):
            return False
        return any(isinstance(v, str) and v.strip().lower() in self.values
                   for v in _values_of(arguments, self.field))


_ENDED = frozenset({"ended", "cancelled", "canceled"})
# Every change the gate treats as destructive by effect, in one place (tests/test_policy.py covers each).
IRREVERSIBLE_EFFECTS: tuple[Effect, ...] = (
    Effect("ends a campaign (an ended campaign cannot be restarted)", ("campaign",), "status", _ENDED),
    Effect("ends a call (a call cannot be resumed)", ("call",), "status", _ENDED),
    Effect("releases a phone number (the number may not be got back)", ("phone", "number"), "status",
           frozenset({"released", "deleted"})),
    Effect("ends a session", ("session",), "status", _ENDED | {"completed"}),
)


def _contains(words: tuple[str, ...], run: tuple[str, ...]) -> bool:
    return any(words[i:i + len(run)] == run for i in range(len(words) - len(run) + 1))


def _values_of(value: Any, key: str, depth: int = 0) -> Iterator[Any]:
    """Every value stored under ``key`` in a JSON-like tree (bounded depth)."""
    if depth > 6:
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == key:
                yield v
            yield from _values_of(v, key, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _values_of(v, key, depth + 1)


# ---------------------------------------------------------------- names
def normalise_name(name: str) -> str:
    """A tool name as the gate compares it: NFKC, no control/format characters, stripped, lower case."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf"))
    return text.strip().lower()


def _segments(name: str) -> list[str]:
    """The namespace segments of a cleaned (not lower-cased) name, empty ones dropped."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf")).strip()
    return [s for s in _NAMESPACE.split(text) if s.strip()] or [""]


def _words(segment: str) -> tuple[str, ...]:
    """``listAllVapi_calls-x`` -> ("list", "all", "vapi", "calls", "x")."""
    return tuple(_WORD.findall(_CAMEL.sub("_", segment.strip()).lower()))


def tool_words(name: str) -> tuple[str, ...]:
    """The words of a tool's own name (its last namespace segment)."""
    return _words(_segments(name)[-1])


def _verb(segment: str) -> str:
    words = _words(segment)
    return words[0] if words else ""


def classify_name(name: str) -> Access:
    """Access from the name alone (see the module docstring); unknown verbs are writes."""
    segments = _segments(name)
    own = segments[-1]
    if "_".join(_words(own)) in _READ_NAMES:
        return Access.READ
    if any(_verb(segment) in _DESTRUCTIVE_VERBS for segment in segments):
        return Access.DESTRUCTIVE
    return Access.READ if _verb(own) in _READ_VERBS else Access.WRITE


def classify(name: str, annotations: Mapping[str, Any] | None = None,
             arguments: Mapping[str, Any] | None = None) -> Access:
    """Access from the name and the call's effect, made stricter (never looser) by MCP annotations."""
    access = classify_name(name)
    if access is Access.WRITE and effect_of(name, arguments or {}) is not None:
        access = Access.DESTRUCTIVE
    notes = annotations or {}
    hinted = access
    if notes.get("destructiveHint") is True and notes.get("readOnlyHint") is not True:
        hinted = Access.DESTRUCTIVE
    elif notes.get("readOnlyHint") is False:
        hinted = Access.WRITE
    return hinted if _RANK[hinted] > _RANK[access] else access


def effect_of(name: str, arguments: Mapping[str, Any]) -> Effect | None:
    """The irreversible effect a write named ``name`` has with these arguments, if any."""
    words = tool_words(name)
    return next((effect for effect in IRREVERSIBLE_EFFECTS if effect.matches(words, arguments)), None)


def is_discovery_call(name: str) -> bool:
    """True for a discovery proxy's ``call_tool`` (namespaced or not)."""
    return "_".join(tool_words(name)) == _DISCOVERY_CALL


def effective_call(name: str, arguments: Mapping[str, Any] | None) -> tuple[str, Mapping[str, Any]]:
    """The tool that will really run and its arguments: a discovery ``call_tool`` runs its inner tool.

    The inner name is returned cleaned for display (printable, stripped); proxies in proxies are
    followed. When a proxy's inner tool cannot be read, the proxy itself is returned.
    """
    args: Mapping[str, Any] = arguments or {}
    for _ in range(_MAX_PROXY_DEPTH):
        if not is_discovery_call(name):
            break
        inner = next((args[k] for k in _INNER_NAME_KEYS if isinstance(args.get(k), str)), None)
        if inner is None or not normalise_name(inner):
            break
        inner_args: Mapping[str, Any] = next(
            (args[k] for k in _INNER_ARGS_KEYS if isinstance(args.get(k), Mapping)), {})
        name, args = printable(inner, one_line=True).strip(), inner_args
    return name, args


def judge(name: str, arguments: Mapping[str, Any] | None,
          annotations_of: Callable[[str], Mapping[str, Any] | None] = lambda _n: None) -> tuple[str, Access]:
    """(the tool that really runs, its access) for one call; see the module docstring."""
    real, real_args = effective_call(name, arguments)
    if is_discovery_call(real):  # a proxy call we cannot see through: assume the worst
        return real, Access.DESTRUCTIVE
    return real, classify(real, annotations_of(real), real_args)


Prompt = Callable[[str, Access, Mapping[str, Any]], Awaitable[bool]]


@dataclass
class Approval:
    """The outcome of the gate: ``approved_by`` is read | yes | allow | prompt."""

    tool: str
    access: Access
    approved_by: str


@dataclass
class WriteGate:
    """Decides at dispatch whether a tool call may run.

    ``prompt`` asks a human (None when there is no TTY); ``annotations_of`` gives a tool's MCP
    annotations by name (so a discovery call's inner tool is judged by its own annotations).
    """

    read_only: bool = False
    yes: bool = False
    allow: tuple[str, ...] = ()
    prompt: Prompt | None = None
    annotations_of: Callable[[str], Mapping[str, Any] | None] = lambda _name: None

    def access_of(self, name: str, arguments: Mapping[str, Any] | None = None) -> Access:
        """Classify the call that will really run (discovery calls by their inner tool)."""
        return judge(name, arguments, self.annotations_of)[1]

    def visible(self, name: str) -> bool:
        """Whether the model may see this tool: under read-only, writes are removed from its view."""
        if not self.read_only or is_discovery_call(name):  # a proxy's calls are judged one by one
            return True
        return classify(name, self.annotations_of(name)) is Access.READ

    def allowed(self, tool: str) -> bool:
        """Whether ``--allow`` names this tool (compared normalised)."""
        wanted = normalise_name(tool)
        return any(normalise_name(name) == wanted for name in self.allow)

    async def check(self, name: str, arguments: Mapping[str, Any] | None = None, *,
                    at_least: Access | None = None) -> Approval:
        """Approve the call or raise ``ApprovalRequired`` (exit 5) naming what would have run.

        ``at_least`` lets a caller treat a call more strictly than its name and effect say; it can
        never loosen.
        """
        real, real_args = effective_call(name, arguments)
        _, access = judge(name, arguments, self.annotations_of)
        if at_least is not None and _RANK[at_least] > _RANK[access]:
            access = at_least
        if access is Access.READ:
            return Approval(real, access, "read")
        effect = effect_of(real, real_args)
        what = f"{access.value} tool {real}" + (f" ({effect.description})" if effect is not None else "")
        if self.read_only:
            raise ApprovalRequired(f"refused {what}: read-only mode", hint="run without --read-only to allow writes",
                                   tool=real)
        if self.allowed(real):  # the tool that really runs: --allow of a proxy covers nothing it calls
            return Approval(real, access, "allow")
        if access is Access.WRITE and self.yes:
            return Approval(real, access, "yes")
        if self.prompt is not None and await self.prompt(real, access, real_args):
            return Approval(real, access, "prompt")
        if self.prompt is not None:
            raise ApprovalRequired(f"{what} was declined", tool=real)
        how = f"--allow {real}" if access is Access.DESTRUCTIVE else f"--yes or --allow {real}"
        raise ApprovalRequired(f"{what} needs approval and there is no terminal to ask",
                               hint=f"pass {how} to approve it", tool=real)
