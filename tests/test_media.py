"""Recording downloads: every link shape, checked hops, no credentials, refresh on 403, atomic writes."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import wave
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from agent.config import load_settings
from agent.errors import UpstreamError
from agent.mcp.decode import ToolOutput, decode_result
from agent.media import download_recording, download_url
from agent.runtime import open_runtime
from sandbox.app import Sandbox


def _wav(seconds: float = 1.5, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x01\x00" * int(seconds * rate))
    return buffer.getvalue()


def _recorded_call(sandbox: Sandbox) -> dict:
    calls = sandbox.workspace.list_calls(limit=None)
    return next(c for c in calls if sandbox.workspace.call_recording(c["id"], "mono"))


def _text_output(payload: object) -> ToolOutput:
    return decode_result("list_all_vapi_mono_recordings",
                         {"content": [{"type": "text", "text": json.dumps(payload)}]})


def _once(output: ToolOutput) -> Callable[[], object]:
    async def fetch() -> ToolOutput:
        return output

    return fetch


@pytest.mark.parametrize("shape", ["json", "resource_link", "embedded"])
async def test_every_recording_shape_from_a_served_sandbox(shape: str, serve_sandbox: Callable[..., Sandbox],
                                                           tmp_path: Path) -> None:
    sandbox = serve_sandbox(recording_shape=shape, calls=80)
    call = _recorded_call(sandbox)
    expected = sandbox.workspace.call_recording(call["id"], "mono")
    settings = load_settings({"mcp_url": sandbox.mcp_url, "mcp_kind": "sandbox"}, env={})
    async with open_runtime(settings, store=None, notice=lambda _m: None) as rt:
        saved = await download_recording(lambda: rt.vapi.recording_link(call["id"], "mono"),
                                         tmp_path / "r.wav", rt.media_http)
    assert saved.bytes == len(expected) and saved.sha256 == hashlib.sha256(expected).hexdigest()
    assert Path(saved.path).read_bytes() == expected
    assert saved.duration_seconds is not None and saved.duration_seconds > 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    if shape != "embedded":
        storage = [e for e in sandbox.log.entries() if e.transport == "storage"]
        assert storage and all(e.status == 200 for e in storage[-1:])


async def test_expired_first_link_is_refreshed(serve_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    sandbox = serve_sandbox(expire_first=True, calls=80)
    call = _recorded_call(sandbox)
    settings = load_settings({"mcp_url": sandbox.mcp_url, "mcp_kind": "sandbox"}, env={})
    asked: list[int] = []
    async with open_runtime(settings, store=None, notice=lambda _m: None) as rt:
        async def fetch() -> ToolOutput:
            asked.append(1)
            return await rt.vapi.recording_link(call["id"], "mono")

        saved = await download_recording(fetch, tmp_path / "r.wav", rt.media_http)
    assert len(asked) == 2  # the first link was born expired: one fresh link was asked for
    assert saved.sha256 == hashlib.sha256(sandbox.workspace.call_recording(call["id"], "mono") or b"").hexdigest()
    statuses = [e.status for e in sandbox.log.entries() if e.transport in ("link", "storage")]
    assert 403 in statuses and statuses[-1] == 200


def _mock(handler: Callable[[httpx2.Request], httpx2.Response]) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler), follow_redirects=False)


async def test_hops_carry_no_credentials_and_are_capped(tmp_path: Path) -> None:
    seen: list[httpx2.Request] = []
    audio = _wav()

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        hop = int(request.url.params.get("hop", "0"))
        if hop < 3:
            return httpx2.Response(302, headers={"location": f"https://storage.example/a.wav?hop={hop + 1}"})
        return httpx2.Response(200, content=audio, headers={"content-type": "audio/wav"})

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler), follow_redirects=False,
                              headers={"Authorization": "Bearer must-not-leak"}, cookies={"session": "x"})
    async with http:
        saved = await download_url("https://links.example/r?hop=0", tmp_path / "a.wav", http)
    assert saved.bytes == len(audio) and saved.content_type == "audio/wav" and saved.duration_seconds == 1.5
    assert len(seen) == 4
    assert all("authorization" not in r.headers and "cookie" not in r.headers for r in seen)

    def endless(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(302, headers={"location": "https://storage.example/loop"})

    async with _mock(endless) as http:
        with pytest.raises(UpstreamError, match="redirected more than 3 times"):
            await download_url("https://links.example/r", tmp_path / "b.wav", http)
    assert not (tmp_path / "b.wav").exists()


async def test_plain_http_only_on_loopback(tmp_path: Path) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.host == "links.example":
            return httpx2.Response(302, headers={"location": "http://evil.example/a.wav"})
        return httpx2.Response(200, content=b"x")

    async with _mock(handler) as http:
        with pytest.raises(UpstreamError, match="only https"):
            await download_url("http://public.example/a.wav", tmp_path / "a.wav", http)
        with pytest.raises(UpstreamError, match="only https"):  # a redirect to plain http is refused too
            await download_url("https://links.example/r", tmp_path / "a.wav", http)
        saved = await download_url("http://127.0.0.1:9/a.bin", tmp_path / "c.bin", http)
    assert saved.bytes == 1 and saved.duration_seconds is None


async def test_403_asks_for_a_fresh_link_at_most_twice(tmp_path: Path) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(403, content=b"<Error>expired</Error>")

    links: list[int] = []

    async def fetch() -> ToolOutput:
        links.append(1)
        return _text_output({"result": [{"url": "https://links.example/r", "content_type": "audio/wav"}]})

    async with _mock(handler) as http:
        with pytest.raises(UpstreamError) as info:
            await download_recording(fetch, tmp_path / "a.wav", http)
    assert info.value.status == 403 and len(links) == 3  # the first link and two fresh ones
    assert not list(tmp_path.iterdir())


async def test_truncated_body_leaves_nothing(tmp_path: Path) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=b"RIFF", headers={"content-length": "100", "content-type": "audio/wav"})

    async with _mock(handler) as http:
        with pytest.raises(Exception):  # noqa: B017 - httpx2 or our own length check, whichever sees it first
            await download_url("https://storage.example/a.wav", tmp_path / "a.wav", http)
    assert not list(tmp_path.iterdir())


async def test_embedded_blob_and_resource_link_outputs(tmp_path: Path) -> None:
    audio = _wav(0.5)
    blob = decode_result("t", {"content": [{"type": "resource", "resource": {
        "uri": "file:///r.wav", "mimeType": "audio/wav", "blob": base64.b64encode(audio).decode()}}]})
    saved = await download_recording(_once(blob), tmp_path / "e.wav", http=None)  # type: ignore[arg-type]
    assert Path(saved.path).read_bytes() == audio and saved.duration_seconds == 0.5

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/linked.wav"
        return httpx2.Response(200, content=audio, headers={"content-type": "audio/wav"})

    link = decode_result("t", {"content": [{"type": "resource_link", "uri": "https://storage.example/linked.wav",
                                            "name": "r", "mimeType": "audio/wav"}]})
    async with _mock(handler) as http:
        saved = await download_recording(_once(link), tmp_path / "l.wav", http)
    assert saved.sha256 == hashlib.sha256(audio).hexdigest()
