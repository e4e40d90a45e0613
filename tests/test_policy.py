"""The write gate: classification table and decisions."""

from __future__ import annotations

from typing import Any

import pytest

from agent.errors import ApprovalRequired
from agent.policy import IRREVERSIBLE_EFFECTS, Access, Effect, WriteGate, classify, effect_of, normalise_name


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


# ---------------------------------------------------------------- namespaced and disguised names (issue 13, item 7)
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vapi.telephony.list_all_vapi_phone_numbers", Access.READ),
        ("github__list_issues", Access.READ),
        ("srv/get_x", Access.READ),
        ("srv:list_y", Access.READ),
        ("a.b/c:d__describe_thing", Access.READ),
        ("srv.create_a_vapi_analytics", Access.READ),  # the known reads keep their rule under a namespace
        ("srv/create_a_vapi_squad", Access.WRITE),
        ("srv:delete_a_vapi_call_by_id", Access.DESTRUCTIVE),
        ("delete.assistant", Access.DESTRUCTIVE),  # a destructive verb in any segment still counts
        ("listAssistants", Access.READ),  # camelCase: the first word is the verb
        ("deleteCall", Access.DESTRUCTIVE),
        ("LIST_ALL_VAPI_CALLS", Access.READ),
        (" delete_a_vapi_assistant_by_id", Access.DESTRUCTIVE),  # leading space
        ("\u200bdelete_a_vapi_assistant_by_id", Access.DESTRUCTIVE),  # zero-width space
        ("\uff44\uff45\uff4c\uff45\uff54\uff45_x", Access.DESTRUCTIVE),  # fullwidth "delete"
        ("release_phone_number", Access.DESTRUCTIVE),
        ("revoke_credential", Access.DESTRUCTIVE),
        ("srv.", Access.WRITE),  # no verb at all: fail closed
    ],
)
def test_namespaced_and_disguised_names(name: str, expected: Access) -> None:
    assert classify(name) is expected


async def test_a_namespaced_read_runs_headless_and_namespaced_writes_still_ask() -> None:
    gate = WriteGate()
    for name in ("vapi.telephony.list_all_vapi_phone_numbers", "github__list_issues", "srv/get_x", "srv:list_y"):
        assert (await gate.check(name, {})).approved_by == "read"
    with pytest.raises(ApprovalRequired, match="needs approval"):
        await gate.check("srv:create_a_vapi_squad", {})


# ---------------------------------------------------------------- destructive by effect (issue 13, item 4)
@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("update_a_vapi_campaign_by_id", {"id": "c", "status": "ended"}, Access.DESTRUCTIVE),
        ("update_a_vapi_campaign_by_id", {"id": "c", "status": " Cancelled "}, Access.DESTRUCTIVE),
        ("update_campaign", {"campaignId": "c", "body": {"status": "ended"}}, Access.DESTRUCTIVE),  # nested
        ("srv__updateCampaign", {"status": "canceled"}, Access.DESTRUCTIVE),
        ("update_a_vapi_call_by_id", {"id": "x", "status": "ended"}, Access.DESTRUCTIVE),
        ("update_phone_number", {"phoneNumberId": "p", "status": "released"}, Access.DESTRUCTIVE),
        ("update_session", {"id": "s", "status": "completed"}, Access.DESTRUCTIVE),
        # near misses: the same tools with changes that can be undone stay writes
        ("update_a_vapi_campaign_by_id", {"id": "c", "name": "ended"}, Access.WRITE),
        ("update_a_vapi_campaign_by_id", {"id": "c", "status": "scheduled"}, Access.WRITE),
        ("update_a_vapi_assistant_by_id", {"id": "a", "status": "ended"}, Access.WRITE),  # not a listed effect
        ("list_all_vapi_campaigns", {"status": "ended"}, Access.READ),  # a filter on a read changes nothing
    ],
)
def test_destructive_by_effect(name: str, arguments: dict, expected: Access) -> None:
    assert classify(name, None, arguments) is expected


@pytest.mark.parametrize("effect", IRREVERSIBLE_EFFECTS, ids=lambda e: e.description)
def test_every_listed_effect_is_destructive_on_the_gate(effect: Effect) -> None:
    name = "update_" + "_".join(effect.resource) + "_by_id"
    for value in effect.values:
        args = {"id": "x", effect.field: value.upper()}
        assert WriteGate().access_of(name, args) is Access.DESTRUCTIVE, (name, value)
        assert effect_of(name, args) == effect
    assert WriteGate().access_of(name, {"id": "x", effect.field: "something else"}) is Access.WRITE


async def test_yes_does_not_cover_an_irreversible_effect() -> None:
    with pytest.raises(ApprovalRequired) as info:
        await WriteGate(yes=True).check("update_a_vapi_campaign_by_id", {"id": "c", "status": "ended"})
    line = info.value.line()
    assert "destructive tool update_a_vapi_campaign_by_id (ends a campaign" in line
    assert "--allow update_a_vapi_campaign_by_id" in line
    assert (await WriteGate(yes=True).check("update_a_vapi_campaign_by_id", {"id": "c", "name": "x"})).access \
        is Access.WRITE
    allowed = WriteGate(allow=("update_a_vapi_campaign_by_id",))
    assert (await allowed.check("update_a_vapi_campaign_by_id", {"id": "c", "status": "ended"})).approved_by \
        == "allow"


# ---------------------------------------------------------------- the discovery proxy (issue 13, item 6)
@pytest.mark.parametrize("inner", [" delete_a_vapi_assistant_by_id", "DELETE_A_VAPI_ASSISTANT_BY_ID\n",
                                   "\u202edelete_a_vapi_assistant_by_id", "srv.delete_a_vapi_assistant_by_id"])
async def test_discovery_inner_tool_is_judged_normalised(inner: str) -> None:
    call = {"tool_name": inner, "arguments": {"id": "a"}}
    gate = WriteGate(yes=True, allow=("call_tool",))  # neither --yes nor an approval of the proxy covers it
    assert gate.access_of("call_tool", call) is Access.DESTRUCTIVE
    with pytest.raises(ApprovalRequired) as info:
        await gate.check("call_tool", call)
    hint = info.value.line().split("--allow", 1)[1]
    assert "call_tool" not in hint and "delete_a_vapi_assistant_by_id" in hint.lower()
    approved = await WriteGate(allow=(normalise_name(inner),)).check("call_tool", call)
    assert approved.approved_by == "allow" and approved.access is Access.DESTRUCTIVE


async def test_approving_the_proxy_approves_nothing_it_calls() -> None:
    write = {"tool_name": "create_a_vapi_squad", "arguments": {"name": "x"}}
    with pytest.raises(ApprovalRequired):
        await WriteGate(allow=("call_tool",)).check("call_tool", write)
    with pytest.raises(ApprovalRequired):
        await WriteGate(allow=("srv__call_tool",)).check("srv__call_tool", write)
    assert (await WriteGate(yes=True).check("call_tool", write)).approved_by == "yes"  # --yes is for writes
    ended = {"tool_name": "update_a_vapi_campaign_by_id", "arguments": {"id": "c", "status": "ended"}}
    assert WriteGate().access_of("call_tool", ended) is Access.DESTRUCTIVE  # effects are read through the proxy


@pytest.mark.parametrize("arguments", [
    {}, {"tool_name": 3}, {"tool_name": "  "},
    {"tool_name": "call_tool", "arguments": {"tool_name": "call_tool", "arguments": {}}},
])
async def test_a_proxy_call_it_cannot_see_through_is_destructive(arguments: dict) -> None:
    assert WriteGate().access_of("call_tool", arguments) is Access.DESTRUCTIVE
    with pytest.raises(ApprovalRequired):
        await WriteGate(yes=True).check("call_tool", arguments)


def test_nested_proxies_are_followed_to_the_innermost_tool() -> None:
    nested = {"tool_name": "srv__call_tool", "arguments": {"tool_name": "list_all_vapi_calls", "arguments": {}}}
    assert WriteGate().access_of("call_tool", nested) is Access.READ
    under_read_only = WriteGate(read_only=True)
    assert under_read_only.visible("call_tool")  # the proxy stays usable for reads; each call is judged
    assert not under_read_only.visible("srv.create_a_vapi_squad")


# ---------------------------------------------------------------- through the loop, headless (issue 13, item 7)
NAMESPACED_READS = ["vapi.telephony.list_all_vapi_phone_numbers", "github__list_issues", "srv/get_x", "srv:list_y"]


async def test_namespaced_reads_run_headless_and_a_namespaced_write_still_stops(endpoint: Any, fake: Any) -> None:
    from agent.loop import run_agent
    from agent.toolconv.convert import to_openai_tools
    from tests.openai_fake import ToolCall, Turn
    from tests.test_conversion_catalogues import CatalogueServer, open_loop_runtime

    wire = [{"name": name, "description": f"tool {name}", "inputSchema": {"type": "object", "properties": {}}}
            for name in [*NAMESPACED_READS, "srv:create_thing"]]
    server = CatalogueServer(wire)
    params, tool_map = to_openai_tools(wire, strict=True)
    model_name = {tool_map.resolve(p["function"]["name"])[1]: p["function"]["name"] for p in params}
    fake.add(Turn.calls(*[ToolCall(model_name[n], {}) for n in NAMESPACED_READS]), Turn.text("Listed."),
             Turn.calls(ToolCall(model_name["srv:create_thing"], {})))
    async with open_loop_runtime({"agg": server}, endpoint) as rt:
        assert rt.hub.gate.prompt is None  # headless: nobody to ask
        listed = await run_agent(rt, "list everything")
        refused = await run_agent(rt, "create a thing")
    assert listed.stopped_by is None and listed.answer == "Listed."
    assert [(c["name"], c["approved_by"]) for c in listed.tool_calls] == [(n, "read") for n in NAMESPACED_READS]
    assert sorted(name for name, _ in server.calls) == sorted(NAMESPACED_READS)  # the write never arrived
    assert refused.stopped_by == "approval" and refused.stop_error is not None
    assert refused.stop_error.exit_code == 5 and "srv:create_thing" in refused.stop_error.line()
