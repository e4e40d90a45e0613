"""The write gate: classification table and decisions."""

from __future__ import annotations

import pytest

from agent.errors import ApprovalRequired
from agent.policy import Access, WriteGate, classify


@pytest.mark.parametrize(
    ("name", "annotations", "expected"),
    [
        ("list_all_vapi_calls", None, Access.READ),
        ("get_single_vapi_call_by_id", None, Access.READ),
        ("create_a_vapi_squad", None, Access.WRITE),
        ("update_a_vapi_assistant_by_id", None, Access.WRITE),
        ("delete_a_vapi_assistant_by_id", None, Access.DESTRUCTIVE),
        ("create_a_vapi_analytics", None, Access.READ),
        ("list_assistants", None, Access.READ),
        ("create_call", None, Access.WRITE),
        ("frobnicate_widgets", None, Access.WRITE),  # unknown verb
        ("list_all_vapi_calls", {"readOnlyHint": True}, Access.READ),
        ("create_a_vapi_squad", {"readOnlyHint": True}, Access.WRITE),  # annotations never loosen
        ("list_all_vapi_calls", {"readOnlyHint": False}, Access.WRITE),  # ...but may tighten
        ("update_a_vapi_campaign_by_id", {"destructiveHint": True}, Access.DESTRUCTIVE),
        ("server__delete_a_vapi_call_by_id", None, Access.DESTRUCTIVE),
    ],
)
def test_classification(name: str, annotations: dict | None, expected: Access) -> None:
    assert classify(name, annotations) is expected


async def test_read_only_refuses_writes_and_discovery_writes() -> None:
    gate = WriteGate(read_only=True, yes=True, allow=("delete_a_vapi_assistant_by_id",))
    assert (await gate.check("list_all_vapi_calls")).approved_by == "read"
    with pytest.raises(ApprovalRequired, match="read-only"):
        await gate.check("create_a_vapi_squad", {})
    with pytest.raises(ApprovalRequired, match="read-only"):
        await gate.check("call_tool", {"tool_name": "delete_a_vapi_assistant_by_id", "arguments": {"id": "x"}})
    assert (await gate.check("call_tool", {"tool_name": "list_all_vapi_calls", "arguments": {}})).access is Access.READ
    assert not gate.visible("create_a_vapi_squad") and gate.visible("list_all_vapi_calls")


async def test_yes_does_not_cover_destructive() -> None:
    gate = WriteGate(yes=True)
    assert (await gate.check("create_a_vapi_squad")).approved_by == "yes"
    with pytest.raises(ApprovalRequired) as info:
        await gate.check("delete_a_vapi_assistant_by_id", {"id": "a"})
    assert "--allow delete_a_vapi_assistant_by_id" in info.value.line()
    allowed = WriteGate(yes=True, allow=("delete_a_vapi_assistant_by_id",))
    assert (await allowed.check("delete_a_vapi_assistant_by_id")).approved_by == "allow"


async def test_headless_write_refused_and_prompt_answers() -> None:
    with pytest.raises(ApprovalRequired) as info:
        await WriteGate().check("create_a_vapi_campaign", {"name": "x"})
    assert info.value.exit_code == 5

    asked: list[str] = []

    async def no(tool: str, access: Access, args: object) -> bool:
        asked.append(tool)
        return False

    async def yes(tool: str, access: Access, args: object) -> bool:
        return True

    with pytest.raises(ApprovalRequired, match="declined"):
        await WriteGate(prompt=no).check("delete_a_vapi_call_by_id")
    assert asked == ["delete_a_vapi_call_by_id"]
    assert (await WriteGate(prompt=yes).check("delete_a_vapi_call_by_id")).approved_by == "prompt"
