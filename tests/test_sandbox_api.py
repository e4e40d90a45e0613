"""The simulated Vapi REST API, in-process: auth, filters, validation, recordings, faults, chat SSE."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from sandbox.app import Sandbox
from sandbox.rest.observe import RESPONSE_OBSERVERS, ServedResponse, notify, take_observer_errors
from sandbox.rest.recordings import make_recording_link, storage_origin
from sandbox.world.clock import SandboxClock
from sandbox.world.config import RateLimit, SandboxConfig
from sandbox.world.ids import iso_ms, parse_iso

UNAUTHORIZED = {
    "message": "Invalid Key. Hot tip, you may be using the private key instead of the public key, or vice versa.",
    "error": "Unauthorized",
    "statusCode": 401,
}


class FakeTime:
    """An injectable real-time source for SandboxClock (link expiry, rate-limit windows)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def sandbox_with_time(**overrides: Any) -> tuple[Sandbox, FakeTime]:
    fake = FakeTime()
    config = SandboxConfig(**{"calls": 150, "seed": 7, **overrides})
    return Sandbox(config, clock=SandboxClock(config.time_scale, real=fake)), fake


def bare_client(sandbox: Sandbox) -> httpx2.AsyncClient:
    """A client without the API key (what a browser following a presigned URL is)."""
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=sandbox.app), base_url=sandbox.public_url)


async def all_calls(client: httpx2.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/call", params={"limit": 1000})
    assert response.status_code == 200
    return response.json()


def recorded_call(calls: list[dict[str, Any]]) -> dict[str, Any]:
    return next(c for c in calls if (c.get("artifact") or {}).get("recording"))


# ---------------------------------------------------------------- auth and routing
async def test_every_api_route_needs_the_bearer_key(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    async with bare_client(sandbox) as client:
        for method, path in [("GET", "/call"), ("GET", "/assistant"), ("POST", "/analytics"),
                             ("GET", "/call/x/mono-recording"), ("POST", "/chat/responses"), ("GET", "/_sandbox/log")]:
            response = await client.request(method, path, json={} if method == "POST" else None)
            assert response.status_code == 401, path
            assert response.json() == UNAUTHORIZED
        bad = await client.get("/call", headers={"Authorization": "Bearer wrong-key"})
        assert bad.status_code == 401 and bad.json() == UNAUTHORIZED
        basic = await client.get("/call", headers={"Authorization": f"Basic {sandbox.config.api_key}"})
        assert basic.status_code == 401


async def test_unknown_route_is_nest_404(make_sandbox: Callable[..., Sandbox]) -> None:
    async with make_sandbox().rest_client() as client:
        response = await client.get("/v1/call")
        assert response.status_code == 404
        assert response.json() == {"message": "Cannot GET /v1/call", "error": "Not Found", "statusCode": 404}
        wrong_method = await client.put("/call")
        assert wrong_method.status_code == 404 and wrong_method.json()["message"] == "Cannot PUT /call"


# ---------------------------------------------------------------- GET /call filters
async def test_calls_newest_first_with_default_and_max_limit(make_sandbox: Callable[..., Sandbox]) -> None:
    async with make_sandbox().rest_client() as client:
        default = (await client.get("/call")).json()
        everything = await all_calls(client)
        assert len(default) == 100 and len(everything) == 400
        created = [c["createdAt"] for c in everything]
        assert created == sorted(created, reverse=True)
        assert default == everything[:100] or [c["id"] for c in default] == [c["id"] for c in everything[:100]]
        for limit, expected in (("0", 0), ("7", 7)):
            assert len((await client.get("/call", params={"limit": limit})).json()) == expected
        too_big = await client.get("/call", params={"limit": 1001})
        assert too_big.status_code == 400
        assert too_big.json()["message"] == ["limit must not be greater than 1000"]


@pytest.mark.parametrize("column", ["createdAt", "updatedAt"])
async def test_timestamp_filters_strict_and_inclusive(make_sandbox: Callable[..., Sandbox], column: str) -> None:
    async with make_sandbox(calls=120).rest_client() as client:
        everything = await all_calls(client)
        pivot = sorted(c[column] for c in everything)[50]  # an exact value some call has
        boundary = next(c["id"] for c in everything if c[column] == pivot)
        moment = parse_iso(pivot)
        # the same instant spelled with ms + Z, and with a non-UTC offset and microseconds
        spellings = [pivot, moment.astimezone(timezone(timedelta(hours=-5))).isoformat(timespec="microseconds")]
        checks = {"Gt": lambda v: v > pivot, "Ge": lambda v: v >= pivot,
                  "Lt": lambda v: v < pivot, "Le": lambda v: v <= pivot}
        for n, (op, keep) in enumerate(checks.items()):
            expected = [c["id"] for c in everything if keep(c[column])]
            value = spellings[n % 2]
            got = (await client.get("/call", params={f"{column}{op}": value, "limit": 1000})).json()
            assert [c["id"] for c in got] == expected, (op, value)
            assert (boundary in expected) == (op in ("Ge", "Le"))


async def test_id_assistant_phone_filters_and_fractionless_dates(make_sandbox: Callable[..., Sandbox]) -> None:
    async with make_sandbox(calls=120).rest_client() as client:
        everything = await all_calls(client)
        sample = everything[42]
        by_id = (await client.get("/call", params={"id": sample["id"]})).json()
        assert [c["id"] for c in by_id] == [sample["id"]]
        for key in ("assistantId", "phoneNumberId"):
            expected = [c["id"] for c in everything if c.get(key) == sample[key]]
            got = (await client.get("/call", params={key: sample[key], "limit": 1000})).json()
            assert [c["id"] for c in got] == expected and 0 < len(expected) < 120
        day = parse_iso(everything[60]["createdAt"]).replace(microsecond=0)
        window: dict[str, str | int] = {"createdAtGe": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "createdAtLt": (day + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S+00:00"), "limit": 1000}
        got = (await client.get("/call", params=window)).json()
        expected = [c["id"] for c in everything if day <= parse_iso(c["createdAt"]) < day + timedelta(days=2)]
        assert [c["id"] for c in got] == expected and expected


async def test_bad_query_parameters_give_nest_array_messages(make_sandbox: Callable[..., Sandbox]) -> None:
    async with make_sandbox().rest_client() as client:
        response = await client.get("/call", params={"status": "ended", "createdAtGt": "yesterday", "limit": "x"})
        assert response.status_code == 400
        assert response.json() == {
            "message": [
                "property status should not exist",
                "createdAtGt must be a valid ISO 8601 date string",
                "limit must be a number conforming to the specified constraints",
            ],
            "error": "Bad Request",
            "statusCode": 400,
        }


# ---------------------------------------------------------------- 404s and CRUD codes
@pytest.mark.parametrize(
    "path",
    ["/call/nope", "/assistant/nope", "/squad/nope", "/phone-number/nope", "/campaign/nope",
     "/observability/scorecard/nope", "/structured-output/nope", "/tool/nope", "/chat/nope"],
)
async def test_unknown_ids_are_404(make_sandbox: Callable[..., Sandbox], path: str) -> None:
    async with make_sandbox().rest_client() as client:
        response = await client.get(path)
        assert response.status_code == 404
        body = response.json()
        assert body["error"] == "Not Found" and body["statusCode"] == 404 and "not found" in body["message"]


async def test_assistant_crud_codes(make_sandbox: Callable[..., Sandbox]) -> None:
    async with make_sandbox().rest_client() as client:
        created = await client.post("/assistant", json={"name": "Temp", "firstMessage": "Hello there",
                                                        "model": {"provider": "openai", "model": "gpt-4o"}})
        assert created.status_code == 201
        assistant = created.json()
        patched = await client.patch(f"/assistant/{assistant['id']}", json={"name": "Temp 2"})
        assert patched.status_code == 200 and patched.json()["name"] == "Temp 2"
        assert patched.json()["firstMessage"] == "Hello there"
        deleted = await client.delete(f"/assistant/{assistant['id']}")
        assert deleted.status_code == 200 and deleted.json()["id"] == assistant["id"]
        assert (await client.get(f"/assistant/{assistant['id']}")).status_code == 404


# ---------------------------------------------------------------- validation: 400, all-or-nothing
async def test_unknown_and_mistyped_keys_write_nothing(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    async with sandbox.rest_client() as client:
        before = (await client.get("/assistant")).json()
        response = await client.post("/assistant", json={"name": 5, "foo": 1, "endCallPhrases": ["bye", 3],
                                                         "model": {"model": "gpt-4o"}})
        assert response.status_code == 400
        assert response.json()["message"] == [
            "property foo should not exist",
            "model.provider should not be empty",
            "name must be a string",
            "each value in endCallPhrases must be a string",
        ]
        assert (await client.get("/assistant")).json() == before
        call = (await client.get("/call", params={"limit": 1})).json()[0]
        bad_patch = await client.patch(f"/call/{call['id']}", json={"name": "ok", "status": "ended"})
        assert bad_patch.status_code == 400
        assert bad_patch.json()["message"] == ["property status should not exist"]
        assert (await client.get(f"/call/{call['id']}")).json().get("name") == call.get("name")
        not_json = await client.post("/assistant", content=b"{nope", headers={"content-type": "application/json"})
        assert not_json.status_code == 400


def _campaign(assistant_id: str, phone_id: str, **extra: Any) -> dict[str, Any]:
    return {"name": "June recall", "assistantId": assistant_id, "phoneNumberId": phone_id,
            "customers": [{"number": "+14155550123", "name": "Dana Lee"}], **extra}


async def test_campaign_validation_and_patch(make_sandbox: Callable[..., Sandbox]) -> None:
    async with make_sandbox().rest_client() as client:
        assistant = (await client.get("/assistant")).json()[0]["id"]
        phone = (await client.get("/phone-number")).json()[0]["id"]
        squad = (await client.get("/squad")).json()[0]["id"]
        before = (await client.get("/campaign")).json()["metadata"]["totalItems"]
        bad_bodies = [
            {k: v for k, v in _campaign(assistant, phone).items() if k != "name"},
            _campaign(assistant, phone, squadId=squad),
            {k: v for k, v in _campaign(assistant, phone).items() if k != "assistantId"},
            _campaign(assistant, phone, dialPlan=[{"phoneNumberId": phone, "customers": [{"number": "+14155550100"}]}]),
            {k: v for k, v in _campaign(assistant, phone).items() if k != "phoneNumberId"},
            _campaign(assistant, phone, maxConcurrency=0),
            _campaign("not-an-assistant", phone),
        ]
        for body in bad_bodies:
            response = await client.post("/campaign", json=body)
            assert response.status_code == 400, body
            assert isinstance(response.json()["message"], list)
        assert (await client.get("/campaign")).json()["metadata"]["totalItems"] == before
        created = await client.post("/campaign", json=_campaign(assistant, phone))
        assert created.status_code == 201
        campaign = created.json()
        assert campaign["status"] == "scheduled" and campaign["calls"] == {}
        assert all(campaign[f"callsCounter{k}"] == 0
                   for k in ("Scheduled", "Queued", "InProgress", "EndedVoicemail", "Ended"))
        refused = await client.patch(f"/campaign/{campaign['id']}", json={"status": "in-progress"})
        assert refused.status_code == 400
        assert refused.json()["message"] == ["status must be one of the following values: ended, cancelled"]
        ended = await client.patch(f"/campaign/{campaign['id']}", json={"status": "cancelled"})
        assert ended.status_code == 200 and ended.json()["status"] == "cancelled"
        listed = (await client.get("/campaign", params={"status": "cancelled"})).json()
        assert [c["id"] for c in listed["results"]] == [campaign["id"]]


async def test_squad_validation(make_sandbox: Callable[..., Sandbox]) -> None:
    async with make_sandbox().rest_client() as client:
        assistants = (await client.get("/assistant")).json()
        first, second = assistants[0], assistants[1]
        before = len((await client.get("/squad")).json())
        missing = await client.post("/squad", json={"name": "No members"})
        assert missing.status_code == 400 and "members should not be empty" in missing.json()["message"]
        typo = {"members": [{"assistantId": first["id"], "assistantName": "x"}]}
        member_typo = await client.post("/squad", json=typo)
        assert member_typo.json()["message"] == ["members.0.property assistantName should not exist"]
        stranded = {"name": "Bad", "members": [
            {"assistantId": first["id"], "assistantDestinations": [{"type": "assistant", "assistantName": "Nobody"}]},
            {"assistantId": second["id"]}]}
        response = await client.post("/squad", json=stranded)
        assert response.status_code == 400 and "Nobody" in " ".join(response.json()["message"])
        assert len((await client.get("/squad")).json()) == before
        good = {"name": "Good", "members": [
            {"assistantId": first["id"], "assistantDestinations": [
                {"type": "assistant", "assistantName": second["name"], "description": "billing questions"}]},
            {"assistantId": second["id"]}]}
        created = await client.post("/squad", json=good)
        assert created.status_code == 201 and created.json()["members"] == good["members"]
        assert len((await client.get("/squad")).json()) == before + 1


# ---------------------------------------------------------------- recordings
async def test_302_to_signed_storage_serves_the_workspace_bytes(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    async with sandbox.rest_client() as client, bare_client(sandbox) as bare:
        call = recorded_call((await client.get("/call")).json())
        for kind in ("mono", "stereo", "assistant", "customer"):
            redirect = await client.get(f"/call/{call['id']}/{kind}-recording")
            assert redirect.status_code == 302
            location = redirect.headers["location"]
            # storage lives on another host name, like S3 next to api.vapi.ai
            assert location.startswith(f"http://storage.sandbox.localhost/_storage/{call['id']}/{kind}.wav?")
            assert "X-Amz-Signature=" in location and sandbox.config.api_key not in location
            audio = await bare.get(location)
            assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
            assert audio.content == sandbox.workspace.call_recording(call["id"], kind)
            assert int(audio.headers["content-length"]) == len(audio.content)
        # an API client that follows the 302 drops its Bearer key on the cross-host hop (httpx does)
        followed = await client.get(f"/call/{call['id']}/mono-recording", follow_redirects=True)
        assert followed.status_code == 200 and [r.status_code for r in followed.history] == [302]
        inline = call["artifact"]
        assert (await bare.get(inline["presignedMonoUrl"])).content == sandbox.workspace.call_recording(
            call["id"], "mono")
        assert parse_iso(inline["presignedUrlsExpiresAt"]) > datetime.now(tz=UTC)
        video = await client.get(f"/call/{call['id']}/video-recording")
        assert video.status_code == 404 and video.json()["error"] == "Not Found"
        assert (await client.get("/call/nope/mono-recording")).status_code == 404
        logs = await client.get(f"/call/{call['id']}/call-logs")
        assert logs.status_code == 404


async def test_calls_without_recording_404_and_no_presigned_urls(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    async with sandbox.rest_client() as client:
        silent = next(c for c in (await client.get("/call")).json() if not (c.get("artifact") or {}).get("recording"))
        assert "presignedMonoUrl" not in (silent.get("artifact") or {})
        response = await client.get(f"/call/{silent['id']}/mono-recording")
        assert response.status_code == 404


async def test_expired_and_forged_signatures_are_403() -> None:
    sandbox, clock = sandbox_with_time(link_ttl=60)
    async with sandbox.rest_client() as client, bare_client(sandbox) as bare:
        call = recorded_call((await client.get("/call")).json())
        location = (await client.get(f"/call/{call['id']}/mono-recording")).headers["location"]
        signature = parse_qs(urlsplit(location).query)["X-Amz-Signature"][0]
        forged = location.replace(signature, signature[:-1] + ("0" if signature[-1] != "0" else "1"))
        denied = await bare.get(forged)
        assert denied.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in denied.content
        clock.now += 59
        assert (await bare.get(location)).status_code == 200
        clock.now += 3
        expired = await bare.get(location)
        assert expired.status_code == 403 and b"Request has expired" in expired.content
        with_auth = await client.get(location)  # the API client still sends its Bearer key
        assert with_auth.status_code == 400 and b"InvalidArgument" in with_auth.content


async def test_links_expire_and_redirect_fresh() -> None:
    sandbox, clock = sandbox_with_time(link_ttl=30)
    async with sandbox.rest_client() as client, bare_client(sandbox) as bare:
        call = recorded_call((await client.get("/call")).json())
        link = make_recording_link(sandbox, call["id"], "stereo")
        assert link["content_type"] == "audio/wav"
        assert parse_iso(link["expires_at"]) == parse_iso(iso_ms(clock.now + 30))
        hop = await bare.get(link["url"])
        assert hop.status_code == 302 and "/_storage/" in hop.headers["location"]
        assert (await bare.get(link["url"], follow_redirects=True)).content == sandbox.workspace.call_recording(
            call["id"], "stereo")
        clock.now += 31
        gone = await bare.get(link["url"])
        assert gone.status_code == 403 and gone.json()["statusCode"] == 403
        assert (await bare.get(link["url"][:-3] + "abc")).status_code == 403
        with pytest.raises(Exception) as missing:
            make_recording_link(sandbox, call["id"], "video")
        assert getattr(missing.value, "status", None) == 404


async def test_expire_first_applies_once_across_both_routes() -> None:
    sandbox, _ = sandbox_with_time(expire_first=True)
    async with sandbox.rest_client() as client, bare_client(sandbox) as bare:
        call = recorded_call((await client.get("/call")).json())
        first = (await client.get(f"/call/{call['id']}/mono-recording")).headers["location"]
        assert (await bare.get(first)).status_code == 403
        second = (await client.get(f"/call/{call['id']}/mono-recording")).headers["location"]
        assert (await bare.get(second)).status_code == 200
        link = make_recording_link(sandbox, call["id"], "mono")
        assert (await bare.get(link["url"], follow_redirects=True)).status_code == 200
    other, _ = sandbox_with_time(expire_first=True)
    async with bare_client(other) as bare:
        call_id = recorded_call([other.workspace.get_call(c["id"]) for c in other.workspace.list_calls(limit=50)])["id"]
        dead = make_recording_link(other, call_id, "mono")
        assert (await bare.get(dead["url"])).status_code == 403
        assert (await bare.get(make_recording_link(other, call_id, "mono")["url"])).status_code == 302


def test_storage_origin_is_another_host_of_the_same_server() -> None:
    assert storage_origin("http://127.0.0.1:8123") == "http://localhost:8123"
    assert storage_origin("http://localhost:8123/") == "http://127.0.0.1:8123"
    assert storage_origin("http://sandbox.localhost") == "http://storage.sandbox.localhost"
    assert storage_origin("http://example.test:9") == "http://example.test:9"


# ---------------------------------------------------------------- faults
class SleepSpy:
    """Stands in for ``asyncio`` in sandbox/rest/faults.py: records each wait (and what ``probe`` saw when it
    began), then really waits. Tests check the waits asked for, never how long a request took."""

    def __init__(self, probe: Callable[[], Any] = lambda: None) -> None:
        self.waits: list[tuple[float, Any]] = []
        self.probe = probe

    async def sleep(self, seconds: float) -> None:
        import asyncio

        self.waits.append((seconds, self.probe()))
        await asyncio.sleep(seconds)


async def test_latency_is_added(make_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch) -> None:
    spy = SleepSpy()
    monkeypatch.setattr("sandbox.rest.faults.asyncio", spy)
    async with make_sandbox(latency=0.25).rest_client() as client:
        assert (await client.get("/assistant")).status_code == 200
        assert [seconds for seconds, _ in spy.waits] == [0.25]  # before the answer


async def test_error_rate_is_deterministic_5xx(make_sandbox: Callable[..., Sandbox]) -> None:
    statuses = []
    for _ in range(2):
        async with make_sandbox(error_rate=0.5).rest_client() as client:
            run = [(await client.get("/assistant")).status_code for _ in range(30)]
        statuses.append(run)
    assert statuses[0] == statuses[1]
    assert set(statuses[0]) - {200} and set(statuses[0]) <= {200, 500, 502, 503} and 200 in statuses[0]
    failing = make_sandbox(error_rate=1.0)
    async with failing.rest_client() as client:
        response = await client.post("/assistant", json={"name": "never"})
        assert response.status_code in (500, 502, 503)
        assert response.json()["statusCode"] == response.status_code
    # the 5xx came before doing anything: nothing was written
    assert "never" not in [a.get("name") for a in failing.workspace.list_objects("assistants")]


async def test_write_fault_502_applies_then_fails(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(write_fault="502", write_fault_count=1)
    async with sandbox.rest_client() as client:
        rejected = await client.post("/assistant", json={"name": 3})
        assert rejected.status_code == 400  # a refused write is not an applied write
        faulted = await client.post("/assistant", json={"name": "Ambiguous"})
        assert faulted.status_code == 502 and faulted.json()["error"] == "Bad Gateway"
        names = [a["name"] for a in (await client.get("/assistant")).json()]
        assert names.count("Ambiguous") == 1  # applied despite the 502
        after = await client.post("/assistant", json={"name": "Second"})
        assert after.status_code == 201
    entry = next(e for e in sandbox.log.entries("rest") if e.status == 502)
    assert entry.extra["write_fault"] == "502"


async def test_write_fault_timeout_holds_the_answer(make_sandbox: Callable[..., Sandbox],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = make_sandbox(write_fault="timeout", write_fault_delay=0.3, write_fault_count=0)
    spy = SleepSpy(lambda: [a["name"] for a in sandbox.workspace.list_objects("assistants", name="Slow")])
    monkeypatch.setattr("sandbox.rest.faults.asyncio", spy)
    async with sandbox.rest_client() as client:
        response = await client.post("/assistant", json={"name": "Slow"})
        assert response.status_code == 201
    assert spy.waits == [(0.3, ["Slow"])]  # held 0.3 s after the write was applied


async def test_rest_rate_limit_headers_and_reset() -> None:
    sandbox, clock = sandbox_with_time(api_rate_limit=RateLimit(2, 10))
    async with sandbox.rest_client() as client:
        first = await client.get("/assistant")
        assert first.headers["x-ratelimit-limit"] == "2" and first.headers["x-ratelimit-remaining"] == "1"
        assert (await client.get("/assistant")).status_code == 200
        clock.now += 4
        limited = await client.get("/assistant")
        assert limited.status_code == 429
        assert limited.json()["error"] == "Too Many Requests" and limited.json()["statusCode"] == 429
        assert limited.headers["retry-after"] == "6"
        assert limited.headers["x-ratelimit-remaining"] == "0"
        assert int(limited.headers["x-ratelimit-reset"]) == int(clock.now - 4 + 10)
        clock.now += 6
        assert (await client.get("/assistant")).status_code == 200


# ---------------------------------------------------------------- chat
def _sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


async def test_chat_responses_stream_order_and_continuation(make_sandbox: Callable[..., Sandbox]) -> None:
    async with make_sandbox().rest_client() as client:
        assistant = (await client.get("/assistant")).json()[0]
        response = await client.post("/chat/responses", json={"assistantId": assistant["id"],
                                                              "input": "Can I reschedule my appointment?"})
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(response.text)
        kinds = [e["type"] for e in events]
        assert kinds[-2:] == ["response.output_text.done", "response.completed"]
        assert set(kinds[:-2]) == {"response.output_text.delta"} and len(kinds) > 4
        text = "".join(e["delta"] for e in events[:-2])
        assert events[-2]["text"] == text == events[-1]["response"]["output"][0]["content"][0]["text"]
        assert assistant["firstMessage"].split("{{")[0].strip()[:20] in text and "day and time" in text
        chat_id = events[-1]["response"]["id"]
        follow = await client.post("/chat/responses", json={"previousChatId": chat_id, "input": "Thanks!",
                                                            "stream": False})
        assert follow.status_code == 201
        reply = follow.json()
        assert reply["object"] == "response" and reply["status"] == "completed"
        assert reply["output"][0]["content"][0]["text"].startswith("You're welcome")
        stored = (await client.get(f"/chat/{reply['id']}")).json()
        assert stored["previousChatId"] == chat_id and stored["assistantId"] == assistant["id"]
        assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user"]
        listed = (await client.get("/chat", params={"previousChatId": chat_id})).json()
        assert [c["id"] for c in listed["results"]] == [reply["id"]]


async def test_chat_native_json_and_stream(make_sandbox: Callable[..., Sandbox]) -> None:
    async with make_sandbox().rest_client() as client:
        assistant = (await client.get("/assistant")).json()[1]
        plain = await client.post("/chat", json={"assistantId": assistant["id"], "input": "I was charged twice"})
        assert plain.status_code == 201 and "billing" in plain.json()["output"][0]["content"]
        streamed = await client.post("/chat", json={"assistantId": assistant["id"], "input": "hi", "stream": True})
        events = _sse_events(streamed.text)
        assert events and all(set(e) == {"id", "path", "delta"} for e in events)
        assert {e["path"] for e in events} == {"chat.output[0].content"}
        stored = (await client.get(f"/chat/{events[0]['id']}")).json()
        assert "".join(e["delta"] for e in events) == stored["output"][0]["content"]
        mine = (await client.get("/chat", params={"assistantIdAny": f"{assistant['id']},other"})).json()
        assert {c["id"] for c in mine["results"]} == {plain.json()["id"], stored["id"]}
        assert (await client.get("/chat", params={"assistantIdAny": "other"})).json()["results"] == []
        invalid = await client.post("/chat/responses", json={"input": "hi"})
        assert invalid.status_code == 400
        both = await client.post("/chat", json={"assistantId": assistant["id"], "input": "x", "sessionId": "s",
                                                "previousChatId": "p"})
        assert both.status_code == 400


async def test_drop_sse_stops_without_completion(make_sandbox: Callable[..., Sandbox]) -> None:
    async with make_sandbox(drop_sse=True).rest_client() as client:
        assistant = (await client.get("/assistant")).json()[0]
        response = await client.post("/chat/responses", json={"assistantId": assistant["id"], "input": "hello"})
        kinds = [e["type"] for e in _sse_events(response.text)]
        assert kinds == ["response.output_text.delta"] * 2


# ---------------------------------------------------------------- log and observers
async def test_request_log_never_holds_signatures_or_links(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    async with sandbox.rest_client() as client, bare_client(sandbox) as bare:
        call = recorded_call((await client.get("/call")).json())
        location = (await client.get(f"/call/{call['id']}/mono-recording")).headers["location"]
        await bare.get(location)
        link = make_recording_link(sandbox, call["id"], "mono")
        await bare.get(link["url"])
        log = await client.get("/_sandbox/log")
        assert log.status_code == 200
        entries = log.json()
        transports = {e["transport"] for e in entries}
        assert {"rest", "storage", "link"} <= transports
        dumped = json.dumps(entries)
        assert "X-Amz-Signature" not in dumped and link["url"].rsplit("/", 1)[1] not in dumped
        assert sandbox.config.api_key not in dumped
        rest = [e for e in entries if e["transport"] == "rest"]
        assert rest[0]["path"] == "/call" and rest[0]["extra"]["route"] == "/call"
        assert rest[1]["extra"]["route"] == "/call/{id}/mono-recording" and rest[1]["status"] == 302
        await client.get("/call", params={"limit": 2})
        assert sandbox.log.entries("rest")[-1].extra["query"] == "limit=2"
        assert all(e["t_end"] >= e["t_start"] for e in entries)


async def test_a_crashing_observer_never_breaks_serving(make_sandbox: Callable[..., Sandbox]) -> None:
    def broken(_: Any) -> None:
        raise RuntimeError("observer bug")

    RESPONSE_OBSERVERS.append(broken)
    try:
        async with make_sandbox().rest_client() as client:
            assert (await client.get("/assistant")).status_code == 200
    finally:
        RESPONSE_OBSERVERS.remove(broken)
    errors = take_observer_errors()
    assert errors and "observer bug" in errors[0] and "/assistant" in errors[0]


async def test_sse_over_a_real_socket(serve_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = serve_sandbox(calls=30, drop_sse=False)
    headers = {"Authorization": f"Bearer {sandbox.config.api_key}"}
    async with httpx2.AsyncClient(base_url=sandbox.public_url, headers=headers, timeout=10) as client:
        assistant = (await client.get("/assistant")).json()[0]["id"]
        kinds: list[str] = []
        async with client.stream("POST", "/chat/responses", json={"assistantId": assistant, "input": "hello"}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    kinds.append(json.loads(line[6:])["type"])
        assert kinds[-1] == "response.completed" and kinds.count("response.output_text.done") == 1


def test_the_sdk_validator_rejects_what_the_sdk_would() -> None:
    from tests.sdk_validation import take_failures

    take_failures()  # start clean
    served = [
        ServedResponse("GET", "/call/{id}", 200, {"id": "c1"}),  # orgId/createdAt/updatedAt missing
        ServedResponse("GET", "/phone-number", 200, {"provider": "twilio"}),  # a list route given an object
        ServedResponse("GET", "/nowhere", 200, {"ok": True}),  # nothing served unchecked
        ServedResponse("POST", "/chat/responses", 200, {"type": "response.bogus"}, sse=True),
        ServedResponse("GET", "/call", 400, {"message": 3, "error": "Bad Request", "statusCode": 400}),
        ServedResponse("GET", "/_sandbox/log", 200, [{"anything": 1}]),  # exempt
        ServedResponse("GET", "/assistant/{id}", 404, {"message": "Assistant not found", "error": "Not Found",
                                                       "statusCode": 404}),  # a good error body
    ]
    for item in served:
        notify(item)
    failures = take_failures()
    assert len(failures) == 5, failures
    assert "orgId" in failures[0] and "bare JSON array" in failures[1] and "/nowhere" in failures[2]
    assert "response.bogus" in failures[3] and "message must be a string" in failures[4]
