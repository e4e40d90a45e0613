"""The real vapi-server-sdk 3.x client against a sandbox served on loopback.

If the sandbox answers something the official client cannot parse, or sends requests it does not
accept, these tests fail: the simulator is held to the SDK's own wire contract, end to end.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from sandbox.app import Sandbox
from sandbox.world.ids import parse_iso

vapi = pytest.importorskip("vapi")
# the SDK itself uses pydantic v1-style `__fields__` when it parses unions: not our concern here
pytestmark = pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated")


def _client(sandbox: Sandbox, **kwargs: Any) -> Any:
    return vapi.Vapi(token=sandbox.config.api_key, base_url=sandbox.public_url, timeout=20, **kwargs)


def test_sdk_lists_calls_with_filters(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=150)
    client = _client(sandbox)
    everything = sandbox.workspace.list_calls(limit=1000)
    assistant_id = everything[10]["assistantId"]
    since = parse_iso(everything[80]["createdAt"])
    until = parse_iso(everything[20]["createdAt"])
    calls = client.calls.list(assistant_id=assistant_id, created_at_ge=since, created_at_lt=until, limit=1000)
    expected = [c["id"] for c in everything
                if c.get("assistantId") == assistant_id and since <= parse_iso(c["createdAt"]) < until]
    assert [c.id for c in calls] == expected and expected
    assert all(isinstance(c, vapi.types.Call) for c in calls)
    one = client.calls.get(expected[0])
    assert one.id == expected[0] and one.org_id == everything[0]["orgId"]
    with pytest.raises(vapi.core.api_error.ApiError) as missing:
        client.calls.get("no-such-call")
    assert missing.value.status_code == 404 and missing.value.body["error"] == "Not Found"
    with pytest.raises(vapi.core.api_error.ApiError) as unauthorised:
        vapi.Vapi(token="wrong", base_url=sandbox.public_url).assistants.list()
    assert unauthorised.value.status_code == 401


def test_sdk_creates_a_squad_and_a_campaign(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=60)
    client = _client(sandbox)
    first, second = client.assistants.list()[:2]
    squad = client.squads.create(
        name="SDK squad",
        members=[
            vapi.types.SquadMemberDto(
                assistant_id=first.id,
                assistant_destinations=[
                    vapi.types.TransferDestinationAssistant(type="assistant", assistant_name=second.name,
                                                            description="hand billing questions over")
                ],
            ),
            vapi.types.SquadMemberDto(assistant_id=second.id),
        ],
    )
    assert isinstance(squad, vapi.types.Squad) and [m.assistant_id for m in squad.members] == [first.id, second.id]
    assert squad.id in [s.id for s in client.squads.list()]
    phone = client.phone_numbers.list()[0]
    campaign = client.campaigns.campaign_controller_create(
        name="SDK campaign",
        squad_id=squad.id,
        phone_number_id=phone.id,
        customers=[vapi.types.CreateCustomerDto(number="+14155550123", name="Dana Lee")],
    )
    assert campaign.status == "scheduled" and campaign.calls == {} and campaign.calls_counter_ended == 0
    page = client.campaigns.campaign_controller_find_all(id=campaign.id)
    assert [c.id for c in page.results] == [campaign.id] and page.metadata.total_items == 1
    with pytest.raises(vapi.core.api_error.ApiError) as refused:
        client.campaigns.campaign_controller_create(name="no target", phone_number_id=phone.id,
                                                    customers=[vapi.types.CreateCustomerDto(number="+14155550123")])
    assert refused.value.status_code == 400 and isinstance(refused.value.body["message"], list)


def test_sdk_runs_an_analytics_query(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=120)
    client = _client(sandbox)
    end = sandbox.anchor
    results = client.analytics.get(
        queries=[
            vapi.types.AnalyticsQuery(
                table="call",
                name="by_assistant",
                operations=[vapi.types.AnalyticsOperation(operation="count", column="id", alias="calls"),
                            vapi.types.AnalyticsOperation(operation="sum", column="cost", alias="spend")],
                group_by=["assistantId"],
                time_range=vapi.types.TimeRange(start=end - timedelta(days=31), end=end + timedelta(seconds=1),
                                                step="week", timezone="Europe/Berlin"),
            )
        ]
    )
    assert len(results) == 1 and results[0].name == "by_assistant"
    assert results[0].time_range.timezone == "Europe/Berlin" and results[0].time_range.step == "week"
    assert sum(row["calls"] for row in results[0].result) == 120
    total = sum(c.get("cost") or 0 for c in sandbox.workspace.list_calls(limit=1000))
    assert sum(row["spend"] for row in results[0].result) == pytest.approx(total)


def test_sdk_downloads_a_recording_through_the_302(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=40)
    client = _client(sandbox)
    call = next(c for c in client.calls.list(limit=40) if c.artifact and c.artifact.recording)
    raw = client.calls.with_raw_response.call_artifact_controller_mono_recording_download(call.id)
    response = raw._response  # the SDK exposes the bytes only on the raw httpx response
    assert [r.status_code for r in response.history] == [302]
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    assert response.content == sandbox.workspace.call_recording(call.id, "mono")
    # without redirects the SDK raises with the signed URL in Location (needs no key)
    with pytest.raises(vapi.core.api_error.ApiError) as redirect:
        _client(sandbox, follow_redirects=False).calls.call_artifact_controller_stereo_recording_download(call.id)
    assert redirect.value.status_code == 302
    assert "X-Amz-Signature=" in redirect.value.headers["location"]
