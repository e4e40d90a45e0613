"""The stateful workspace: list filters, call and object CRUD, campaigns on a fake clock, ground truth."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sandbox.world.calljson import ms_of
from sandbox.world.clock import SandboxClock
from sandbox.world.config import SandboxConfig
from sandbox.world.groundtruth import ground_truth, write_ground_truth
from sandbox.world.ids import iso_ms, parse_iso
from sandbox.world.workspace import Conflict, NotFound, ValidationFailed, Workspace

ANCHOR = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)


class FakeTime:
    """A settable real-time source for ``SandboxClock`` (seconds since the epoch)."""

    def __init__(self, start: float) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def fake() -> FakeTime:
    """A fake time source one hour after the anchor."""
    return FakeTime(ANCHOR.timestamp() + 3600)


@pytest.fixture
def make_ws(fake: FakeTime) -> Callable[..., Workspace]:
    """Factory for a workspace on the fake clock."""
    def factory(calls: int = 400, seed: int = 7, time_scale: float = 1.0) -> Workspace:
        """A workspace with ``calls`` generated calls."""
        return Workspace(SandboxConfig(seed=seed, calls=calls), SandboxClock(time_scale, real=fake), anchor=ANCHOR)

    return factory


def named(ws: Workspace, kind: str, name: str) -> dict[str, Any]:
    """The object of ``kind`` called ``name``."""
    return next(o for o in ws.list_objects(kind) if o["name"] == name)


# ------------------------------------------------------------------ GET /call filters
OPERATORS = {
    "gt": lambda v, b: v > b, "ge": lambda v, b: v >= b, "lt": lambda v, b: v < b, "le": lambda v, b: v <= b,
}


@pytest.mark.parametrize("field", ["created", "updated"])
@pytest.mark.parametrize("op", sorted(OPERATORS))
def test_list_calls_time_operators_are_exact(make_ws: Callable[..., Workspace], field: str, op: str) -> None:
    """Each createdAt/updatedAt operator is exact at a stored value, with assistantId and limit."""
    ws = make_ws()
    support = named(ws, "assistants", "Support")["id"]
    everything = ws.list_calls(assistant_id=support, limit=None)
    key = f"{field}At"
    pivot = parse_iso(everything[len(everything) // 2][key])  # an exact stored value: strict vs inclusive
    bound: dict[str, Any] = {f"{field}_at_{op}": pivot}
    got = ws.list_calls(assistant_id=support, limit=1000, **bound)
    want = [c for c in everything if OPERATORS[op](parse_iso(c[key]), pivot)]
    assert [c["id"] for c in got] == [c["id"] for c in want] and got
    assert all(c["assistantId"] == support for c in got)
    limited = ws.list_calls(assistant_id=support, limit=7, **bound)
    assert [c["id"] for c in limited] == [c["id"] for c in want[:7]]
    # A bound between two milliseconds: > and >= (and < and <=) agree.
    half = pivot + timedelta(microseconds=500)
    strict_bound: dict[str, Any] = {f"{field}_at_{op[0]}t": half}
    inclusive_bound: dict[str, Any] = {f"{field}_at_{op[0]}e": half}
    strict = ws.list_calls(assistant_id=support, limit=None, **strict_bound)
    inclusive = ws.list_calls(assistant_id=support, limit=None, **inclusive_bound)
    assert [c["id"] for c in strict] == [c["id"] for c in inclusive]


def test_list_calls_order_window_and_filters(make_ws: Callable[..., Workspace]) -> None:
    """Newest first without ties; a createdAt window; id, phone number and limit filters."""
    ws = make_ws()
    page = ws.list_calls(limit=50)
    stamps = [c["createdAt"] for c in page]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == 50
    lo, hi = parse_iso(page[40]["createdAt"]), parse_iso(page[10]["createdAt"])
    window = ws.list_calls(created_at_ge=lo, created_at_lt=hi, limit=100)
    assert [c["id"] for c in window] == [c["id"] for c in page[11:41]]
    one = ws.list_calls(id=page[3]["id"])
    assert [c["id"] for c in one] == [page[3]["id"]]
    phone = named(ws, "phone_numbers", "Secondary US Toll-Free")["id"]
    by_phone = ws.list_calls(phone_number_id=phone, limit=None)
    assert by_phone and all(c["phoneNumberId"] == phone for c in by_phone)
    assert ws.list_calls(assistant_id="no-such-assistant") == []
    assert ws.list_calls(limit=0) == []


def test_call_update_delete_and_not_found(make_ws: Callable[..., Workspace], fake: FakeTime) -> None:
    """PATCH name bumps updatedAt; DELETE removes the call everywhere; unknown ids are NotFound."""
    ws = make_ws()
    call = ws.list_calls(limit=20)[15]
    renamed = ws.update_call(call["id"], {"name": "escalate"})
    assert renamed["name"] == "escalate" and renamed["updatedAt"] > call["updatedAt"]
    assert ws.list_calls(updated_at_ge=parse_iso(renamed["updatedAt"]), limit=5)[0]["id"] == call["id"]
    with pytest.raises(ValidationFailed):
        ws.update_call(call["id"], {"status": "ended"})
    deleted = ws.delete_call(call["id"])
    assert deleted["id"] == call["id"]
    assert call["id"] not in {c["id"] for c in ws.list_calls(limit=None)}
    for action in (lambda: ws.get_call(call["id"]), lambda: ws.call_recording(call["id"], "mono"),
                   lambda: ws.delete_call(call["id"])):
        with pytest.raises(NotFound):
            action()
    assert len(ws.calls_frame_columns()) == 399


# ------------------------------------------------------------------ POST /call on the clock
def test_created_call_moves_through_its_states(make_ws: Callable[..., Workspace], fake: FakeTime) -> None:
    """POST /call: refused without a real assistant; else queued, ringing, in progress, ended."""
    import vapi.types as T

    ws = make_ws()
    before = len(ws.calls_frame_columns())
    support = named(ws, "assistants", "Support")
    with pytest.raises(ValidationFailed) as refused:
        ws.create_call({"assistantId": "missing", "customer": {"number": "+14155550111"}})
    assert "Does Not Exist" in refused.value.messages[0]
    assert len(ws.calls_frame_columns()) == before  # a refused create leaves nothing
    phone = named(ws, "phone_numbers", "Primary US Toll-Free")
    call = ws.create_call({"assistantId": support["id"], "phoneNumberId": phone["id"],
                           "customer": {"number": "+14155550111", "name": "Pat Doe"}})
    T.Call.model_validate(call)
    assert call["status"] == "queued" and call["createdAt"] == iso_ms(fake.t)
    assert ws.list_calls(limit=1)[0]["id"] == call["id"]
    seen = []
    for _ in range(200):
        fake.t += 2
        now = ws.get_call(call["id"])
        seen.append(now["status"])
        if now["status"] == "ended":
            break
    assert seen[-1] == "ended" and "ringing" in seen
    T.Call.model_validate(now)
    assert now["customer"]["name"] == "Pat Doe" and now["updatedAt"] >= now["endedAt"]
    if now["endedReason"] not in ("customer-did-not-answer", "customer-busy"):
        assert "in-progress" in seen
        assert ws.call_recording(call["id"], "mono") is not None
    batch = ws.create_call({"assistantId": support["id"], "phoneNumberId": phone["id"],
                            "customers": [{"number": "+14155550112"}, {"number": "+14155550113"}]})
    T.CallBatchResponse.model_validate(batch)
    assert len(batch["results"]) == 2 and batch["errors"] == []


# ------------------------------------------------------------------ campaigns
def test_campaign_progresses_on_a_fast_clock(make_ws: Callable[..., Workspace], fake: FakeTime) -> None:
    """A campaign dials on schedule within maxConcurrency, counters move, and it ends with success."""
    import vapi.types as T

    ws = make_ws(time_scale=20.0)  # 20 sandbox seconds per real second
    renewal = named(ws, "assistants", "Renewal Outreach")
    phone = named(ws, "phone_numbers", "Primary US Toll-Free")
    customers = [{"number": f"+1415555{1000 + i}", "name": f"Customer {i}"} for i in range(6)]
    body = {"name": "July renewals", "assistantId": renewal["id"], "phoneNumberId": phone["id"],
            "customers": customers, "maxConcurrency": 2,
            # 60 sandbox seconds from now = 3 real (fake) seconds at time_scale 20
            "schedulePlan": {"earliestAt": iso_ms(ws.clock.now_dt() + timedelta(seconds=60))}}
    created = ws.create_object("campaigns", body)
    T.Campaign.model_validate(created)
    assert created["status"] == "scheduled" and created["calls"] == {}
    assert all(created[k] == 0 for k in created if k.startswith("callsCounter"))
    states: list[str] = []
    max_live = 0
    for _ in range(400):
        fake.t += 0.5
        view = ws.get_object("campaigns", created["id"])
        T.Campaign.model_validate(view)
        states.append(view["status"])
        live = view["callsCounterQueued"] + view["callsCounterInProgress"]
        max_live = max(max_live, live)
        total = live + view["callsCounterScheduled"] + view["callsCounterEnded"]
        assert total == len(customers)
        if view["status"] == "ended":
            break
    assert states[0] == "scheduled" and "in-progress" in states and states[-1] == "ended"
    assert view["endedReason"] == "campaign.ended.success" and max_live <= 2
    assert view["callsCounterEnded"] == 6 and len(view["calls"]) == 6
    calls = [c for c in ws.list_calls(limit=20) if c.get("campaignId") == created["id"]]
    assert len(calls) == 6 and all(c["status"] == "ended" and c["type"] == "outboundPhoneCall" for c in calls)
    assert {c["customer"]["number"] for c in calls} == {c["number"] for c in customers}
    dial_times = sorted(ms_of(parse_iso(c["createdAt"])) for c in calls)
    assert dial_times[0] >= ms_of(parse_iso(body["schedulePlan"]["earliestAt"]))
    assert all(b - a >= 20_000 for a, b in itertools.pairwise(dial_times))
    voicemail = sum(1 for c in calls if c["endedReason"] == "voicemail")
    assert view["callsCounterEndedVoicemail"] == voicemail
    for c in calls:
        T.Call.model_validate(c)
    paged = Workspace.page(ws.list_objects("campaigns"), page=1, limit=10)
    T.CampaignPaginatedResponse.model_validate(paged)


def test_campaign_patch_and_rules(make_ws: Callable[..., Workspace], fake: FakeTime) -> None:
    """Campaign cross-field rules, PATCH status ended stops dialling, in-use deletes conflict."""
    ws = make_ws(time_scale=10.0)
    support = named(ws, "assistants", "Support")
    phone = named(ws, "phone_numbers", "Support Local Line")
    base = {"name": "Callbacks", "assistantId": support["id"], "phoneNumberId": phone["id"],
            "customers": [{"number": f"+1415555{2000 + i}"} for i in range(10)]}
    before = ws.list_objects("campaigns")
    for bad in ({**base, "phoneNumberId": "nope"}, {**base, "dialPlan": []}, {k: v for k, v in base.items()
                                                                              if k != "name"},
                {**base, "squadId": named(ws, "squads", "Front Desk Squad")["id"]}):
        with pytest.raises(ValidationFailed):
            ws.create_object("campaigns", bad)
    assert ws.list_objects("campaigns") == before
    campaign = ws.create_object("campaigns", base)
    with pytest.raises(ValidationFailed):
        ws.update_object("campaigns", campaign["id"], {"status": "in-progress"})
    fake.t += 5  # 50 sandbox seconds: the first few contacts have been dialled
    dialled = ws.get_object("campaigns", campaign["id"])
    assert dialled["status"] == "in-progress" and 1 <= len(dialled["calls"]) < 10
    stopped = ws.update_object("campaigns", campaign["id"], {"status": "ended"})
    assert stopped["endedReason"] == "campaign.in-progress.ended-by-user"
    fake.t += 600
    final = ws.get_object("campaigns", campaign["id"])
    assert final["status"] == "ended" and len(final["calls"]) == len(dialled["calls"])
    assert final["callsCounterScheduled"] == 0
    with pytest.raises(Conflict):
        ws.update_object("campaigns", campaign["id"], {"status": "cancelled"})
    with pytest.raises(Conflict):  # still routed to by a phone number
        ws.delete_object("assistants", support["id"])
    assert ws.delete_object("campaigns", campaign["id"])["id"] == campaign["id"]


# ------------------------------------------------------------------ squads and other objects
def test_squad_destinations_must_name_a_member(make_ws: Callable[..., Workspace]) -> None:
    """Squad destinations must name a member's assistant exactly; refused squads store nothing."""
    import vapi.types as T

    ws = make_ws()
    router = named(ws, "assistants", "Front Desk Router")
    tech = named(ws, "assistants", "Technical Fallback")
    before = ws.list_objects("squads")
    bad = {"name": "Tier 1", "members": [
        {"assistantId": router["id"], "assistantDestinations": [
            {"type": "assistant", "assistantName": "Technical"}]},  # a prefix, not the exact name
        {"assistantId": tech["id"]}]}
    with pytest.raises(ValidationFailed) as refused:
        ws.create_object("squads", bad)
    assert "members.0.assistantDestinations.0.assistantName" in refused.value.messages[0]
    broken: list[list[dict[str, Any]]] = [[], [{"assistantId": "missing"}], [{"assistantDestinations": []}]]
    for members in broken:
        with pytest.raises(ValidationFailed):
            ws.create_object("squads", {"members": members})
    assert ws.list_objects("squads") == before
    good = ws.create_object("squads", {"name": "Tier 1", "members": [
        {"assistantId": router["id"], "assistantDestinations": [
            {"type": "assistant", "assistantName": "Technical Fallback"},
            {"type": "assistant", "assistantName": "Night Desk"}]},
        {"assistantId": tech["id"]},
        {"assistant": {"name": "Night Desk", "firstMessage": "Hi, night desk here."}}]})
    T.Squad.model_validate(good)
    assert ws.get_object("squads", good["id"]) == good
    with pytest.raises(Conflict):
        ws.delete_object("assistants", tech["id"])


def test_generic_objects_crud_filters_and_pages(make_ws: Callable[..., Workspace], fake: FakeTime) -> None:
    """Create/list/filter/page/patch/delete on a paginated kind, with reference rules."""
    import vapi.types as T

    ws = make_ws()
    outputs = {o["name"]: o for o in ws.list_objects("structured_outputs")}
    with pytest.raises(ValidationFailed):
        ws.create_object("scorecards", {"name": "x", "metrics": [{"structuredOutputId": "nope", "conditions": []}]})
    created = []
    for i in range(3):
        fake.t += 1
        created.append(ws.create_object("scorecards", {"name": f"Card {i}", "metrics": [
            {"structuredOutputId": outputs["CSAT"]["id"],
             "conditions": [{"type": "comparator", "comparator": ">=", "value": 8, "points": 100}]}]}))
    for card in created:
        T.Scorecard.model_validate(card)
    assert ws.list_objects("scorecards", limit=1)[0]["id"] == created[-1]["id"]
    assert [c["name"] for c in ws.list_objects("scorecards", name="Card 1")] == ["Card 1"]
    since = parse_iso(created[1]["createdAt"])
    assert {c["id"] for c in ws.list_objects("scorecards", created_at_ge=since)} == {c["id"] for c in created[1:]}
    assert {c["id"] for c in ws.list_objects("scorecards", id_any=",".join(c["id"] for c in created[:2]))} == {
        c["id"] for c in created[:2]}
    page = Workspace.page(ws.list_objects("scorecards"), page=2, limit=2, sort_order="ASC")
    assert page["metadata"] == {"itemsPerPage": 2, "totalItems": 5, "currentPage": 2, "totalPages": 3,
                                "hasNextPage": True, "sortOrder": "ASC"}
    assert [c["id"] for c in page["results"]] == [created[0]["id"], created[1]["id"]]
    fake.t += 1
    patched = ws.update_object("scorecards", created[0]["id"], {"name": "Renamed"})
    assert patched["name"] == "Renamed" and patched["updatedAt"] > created[0]["updatedAt"]
    with pytest.raises(Conflict):  # a scorecard grades it
        ws.delete_object("structured_outputs", outputs["CSAT"]["id"])
    assert ws.delete_object("scorecards", created[2]["id"])["id"] == created[2]["id"]
    with pytest.raises(NotFound):
        ws.get_object("scorecards", created[2]["id"])
    with pytest.raises(NotFound):
        ws.update_object("assistants", "missing", {"name": "x"})


# ------------------------------------------------------------------ columns and ground truth
def test_columns_match_the_served_calls(make_ws: Callable[..., Workspace], fake: FakeTime) -> None:
    """The columnar view agrees with the JSON of every call, overlay and live calls included."""
    ws = make_ws()
    ws.delete_call(ws.list_calls(limit=30)[20]["id"])
    support = named(ws, "assistants", "Support")
    ws.create_call({"assistantId": support["id"], "customer": {"number": "+14155550199"}})
    fake.t += 600
    calls = list(ws.all_calls_raw())
    cols = ws.calls_frame_columns()
    assert len(cols) == len(calls) == 400
    assert [c["createdAt"] for c in calls] == sorted(c["createdAt"] for c in calls)
    assert np.isclose(cols.cost.sum(), sum(c.get("cost", 0) for c in calls))
    by_id = sorted(calls, key=lambda c: (c["createdAt"], c["id"]))
    order = np.lexsort((np.arange(len(cols)), cols.created_ms))
    for row, call in zip(order, by_id, strict=True):
        assert cols.statuses[cols.status[row]] == call["status"]
        assert (cols.ended_reasons[cols.ended_reason[row]] if cols.ended_reason[row] >= 0 else None) == call.get(
            "endedReason")
        assert cols.assistant_ids[cols.assistant[row]] == call["assistantId"]
        success = call.get("analysis", {}).get("successEvaluation")
        assert {1: "true", 0: "false", -1: None}[int(cols.success[row])] == success
        if call["status"] == "ended":
            seconds = (parse_iso(call["endedAt"]) - parse_iso(call["startedAt"])).total_seconds()
            assert abs(cols.duration_s[row] - seconds) < 1e-6
            assert abs(cols.cost_llm[row] - call["costBreakdown"]["llm"]) < 1e-9


def test_ground_truth_agrees_with_the_served_calls(make_ws: Callable[..., Workspace], tmp_path: Path) -> None:
    """Ground truth (metrics, failure quote and time, recording hashes) matches what is served."""
    ws = make_ws()
    truth = write_ground_truth(tmp_path / "truth.json", ws, recordings=3)
    assert json.loads((tmp_path / "truth.json").read_text()) == truth
    assert truth["failing"], "the dataset must contain failing calls"
    outputs = {o["name"]: o["id"] for o in ws.list_objects("structured_outputs")}
    for failure in truth["failing"]:
        call = ws.get_call(failure["call_id"])
        message = call["artifact"]["messages"][failure["message_index"]]
        assert message["role"] == "bot" and message["message"] == failure["quote"]
        assert message["secondsFromStart"] == failure["at_seconds"]
        assert failure["quote"] in call["artifact"]["transcript"]
        empathy = call["artifact"]["structuredOutputs"][outputs["Empathy"]]["result"]
        assert empathy == failure["empathy"] < 80
    for aid, group in truth["assistants"].items():
        for cid, entry in list(group["calls"].items())[:40]:
            call = ws.get_call(cid)
            assert call["status"] == entry["status"] and call.get("endedReason") == entry["endedReason"]
            results = call.get("artifact", {}).get("structuredOutputs", {})
            for name, value in entry["metrics"].items():
                assert results.get(outputs[name], {}).get("result") == value, (cid, name)
            scores = {k: v["scoreNormalized"] for k, v in call.get("artifact", {}).get("scorecards", {}).items()}
            assert scores == entry["scores"]
            assert call["assistantId"] == aid
    for cid, kinds in truth["recordings"].items():
        if kinds is None:
            assert ws.call_recording(cid, "mono") is None
            continue
        for kind, facts in kinds.items():
            data = ws.call_recording(cid, kind) or b""
            assert hashlib.sha256(data).hexdigest() == facts["sha256"] and len(data) == facts["bytes"]
    newest = truth["newest_ended"][named(ws, "assistants", "Support")["id"]]
    served = [c["id"] for c in ws.list_calls(assistant_id=named(ws, "assistants", "Support")["id"], limit=20)
              if c["status"] == "ended"][:3]
    assert newest == served
    assert ground_truth(ws, recordings="none")["recordings"] == {}
