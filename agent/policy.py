"""The write gate: classify every tool as read, write or destructive, and decide at dispatch.

Classification, strictest wins:
1. the verb in the tool name (Truto: ``list_all_``/``get_single_`` read, ``create_a_``/``update_a_``
   write, ``delete_a_`` destructive; Vapi's npm server: ``list_``/``get_`` read, ``create_``/``update_``
   write; generic ``delete``/``remove``/``cancel``/``end``... destructive); an unknown verb is a write;
2. known reads by name that look like writes: Vapi's analytics query (``create_a_vapi_analytics``,
   ``POST /analytics``) only reads;
3. MCP annotations can only make a tool stricter: ``destructiveHint: true`` makes it destructive,
   ``readOnlyHint: false`` makes a read a write; ``readOnlyHint: true`` never loosens a write.
A discovery-style ``call_tool`` is classified by its inner ``tool_name``.

Decision (``WriteGate.check``): reads pass; ``--read-only`` refuses every write (nothing overrides
it); a write needs ``--yes``, ``--allow TOOL`` or an interactive yes; a destructive tool needs
``--allow TOOL`` or an interactive yes (``--yes`` is not enough); with no way to ask, it is refused.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agent.errors import ApprovalRequired


class Access(StrEnum):
    """What a tool does to the account."""

    READ = "read"
    WRITE = "write"
    DESTRUCTIVE = "destructive"


_RANK = {Access.READ: 0, Access.WRITE: 1, Access.DESTRUCTIVE: 2}
_READ_NAMES = {"create_a_vapi_analytics", "search_tools", "get_tool_schema"}
_READ_VERBS = ("list", "get", "search", "find", "fetch", "read", "describe", "show", "query", "count", "download")
_DESTRUCTIVE_VERBS = ("delete", "remove", "destroy", "cancel", "purge", "drop", "end", "terminate", "archive")
_DISCOVERY_CALL = "call_tool"


def _verb(name: str) -> str:
    return re.split(r"[_.\-]", name.lower(), maxsplit=1)[0]


def classify_name(name: str) -> Access:
    """Access from the name alone (see the module docstring); unknown verbs are writes."""
    lowered = name.lower()
    if lowered in _READ_NAMES or lowered.endswith("__create_a_vapi_analytics"):
        return Access.READ
    base = lowered.split("__", 1)[-1]  # collision prefix "<server>__"
    verb = _verb(base)
    if verb in _DESTRUCTIVE_VERBS:
        return Access.DESTRUCTIVE
    if verb in _READ_VERBS:
        return Access.READ
    return Access.WRITE


def classify(name: str, annotations: Mapping[str, Any] | None = None) -> Access:
    """Access from the name, made stricter (never looser) by MCP annotations."""
    access = classify_name(name)
    notes = annotations or {}
    hinted = access
    if notes.get("destructiveHint") is True and notes.get("readOnlyHint") is not True:
        hinted = Access.DESTRUCTIVE
    elif notes.get("readOnlyHint") is False:
        hinted = Access.WRITE
    return hinted if _RANK[hinted] > _RANK[access] else access


def effective_call(name: str, arguments: Mapping[str, Any] | None) -> tuple[str, Mapping[str, Any]]:
    """The tool that will really run: a discovery ``call_tool`` runs its inner ``tool_name``."""
    args = arguments or {}
    if name.split("__", 1)[-1] == _DISCOVERY_CALL and isinstance(args.get("tool_name"), str):
        inner_args = args.get("arguments")
        return args["tool_name"], inner_args if isinstance(inner_args, Mapping) else {}
    return name, args


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
        real, _ = effective_call(name, arguments)
        return classify(real, self.annotations_of(real))

    def visible(self, name: str) -> bool:
        """Whether the model may see this tool: under read-only, writes are removed from its view."""
        return not self.read_only or self.access_of(name) is Access.READ

    async def check(self, name: str, arguments: Mapping[str, Any] | None = None, *,
                    at_least: Access | None = None) -> Approval:
        """Approve the call or raise ``ApprovalRequired`` (exit 5) naming what would have run.

        ``at_least`` lets a workflow treat a call more strictly than its name says (cancelling a
        campaign is an update by name but destructive in effect); it can never loosen.
        """
        real, real_args = effective_call(name, arguments)
        access = classify(real, self.annotations_of(real))
        if at_least is not None and _RANK[at_least] > _RANK[access]:
            access = at_least
        if access is Access.READ:
            return Approval(real, access, "read")
        if self.read_only:
            raise ApprovalRequired(
                f"refused {access.value} tool {real}: read-only mode", hint="run without --read-only to allow writes",
                tool=real,
            )
        if real in self.allow or name in self.allow:
            return Approval(real, access, "allow")
        if access is Access.WRITE and self.yes:
            return Approval(real, access, "yes")
        if self.prompt is not None and await self.prompt(real, access, real_args):
            return Approval(real, access, "prompt")
        if self.prompt is not None:
            raise ApprovalRequired(f"{access.value} tool {real} was declined", tool=real)
        how = f"--allow {real}" if access is Access.DESTRUCTIVE else f"--yes or --allow {real}"
        raise ApprovalRequired(
            f"{access.value} tool {real} needs approval and there is no terminal to ask",
            hint=f"pass {how} to approve it", tool=real,
        )
