"""Recording downloads: every link shape, checked hops and addresses, no credentials, refresh on 403, size cap,
atomic writes."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx2
import pytest

from agent.config import load_settings
from agent.errors import UnsafeInput, UpstreamError
from agent.mcp.decode import ToolOutput, decode_result
from agent.media import AddressGuard, DownloadRules, download_recording, download_url, system_resolver
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


# Public names for the mocked hosts (the resolver is a table: tests never ask real DNS). Numeric hosts
# and localhost fall through to the system resolver, which answers them without the network.
NAMES = {
    "links.example": ["93.184.216.34"],
    "storage.example": ["2606:2800:220:1::1"],
    "metadata.example": ["169.254.169.254"],
    "rebind.example": ["93.184.216.34", "10.1.2.3"],  # one public answer, one private: refused
    "mapped.example": ["::ffff:10.0.0.1"],
}


async def table_resolver(host: str, port: int) -> list[str]:
    """``NAMES``, else the system resolver for numeric hosts and localhost (no network involved)."""
    if host in NAMES:
        return NAMES[host]
    assert host == "localhost" or (host.replace(".", "").isalnum() and not any(c.isalpha() for c in host[:1])), host
    return await system_resolver(host, port)


def _rules(**kwargs: Any) -> DownloadRules:
    return DownloadRules(**{"resolve": table_resolver, **kwargs})


def _mock(handler: Callable[[httpx2.Request], httpx2.Response], **rules: Any) -> httpx2.AsyncClient:
    """A media client as the runtime builds it (the address guard over a transport), on a mock transport."""
    guard = AddressGuard(httpx2.MockTransport(handler), _rules(**rules))
    return httpx2.AsyncClient(transport=guard, follow_redirects=False)


def _host(request: httpx2.Request) -> str:
    """The host the request was for (the URL itself holds the checked address it is pinned to)."""
    return request.headers["host"]


async def test_hops_carry_no_credentials_and_are_capped(tmp_path: Path) -> None:
    seen: list[httpx2.Request] = []
    audio = _wav()

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        hop = int(request.url.params.get("hop", "0"))
        if hop < 3:
            return httpx2.Response(302, headers={"location": f"https://storage.example/a.wav?hop={hop + 1}"})
        return httpx2.Response(200, content=audio, headers={"content-type": "audio/wav"})

    guard = AddressGuard(httpx2.MockTransport(handler), _rules())
    http = httpx2.AsyncClient(transport=guard, follow_redirects=False,
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


async def test_a_checked_address_is_the_one_connected_to(tmp_path: Path) -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if _host(request) == "links.example":
            return httpx2.Response(302, headers={"location": "https://storage.example:8443/a.wav"})
        return httpx2.Response(200, content=b"RIFF")

    async with _mock(handler) as http:
        await download_url("https://links.example/r", tmp_path / "a.bin", http)
    first, second = seen
    # Pinned: the connection goes to the address that was checked; the name stays in Host and TLS SNI.
    assert (first.url.host, _host(first), first.extensions["sni_hostname"]) == \
        ("93.184.216.34", "links.example", "links.example")
    assert (second.url.host, second.url.port, _host(second), second.extensions["sni_hostname"]) == \
        ("2606:2800:220:1::1", 8443, "storage.example:8443", "storage.example")


# Every link a server could hand out that must not be fetched, and why (the refusal names it).
REFUSED = [
    ("https://10.0.0.1/a.wav", "a private address"),
    ("https://172.16.5.4/a.wav", "a private address"),
    ("https://192.168.1.10/a.wav", "a private address"),
    ("https://127.0.0.1/a.wav", "a loopback address"),
    ("https://127.1/a.wav", "a loopback address"),  # short form, resolved
    ("https://2130706433/a.wav", "a loopback address"),  # 127.0.0.1 as one decimal number, resolved
    ("https://localhost/a.wav", "a loopback address"),
    ("https://169.254.169.254/latest/meta-data/", "a link-local address"),  # cloud metadata
    ("https://metadata.example/latest/meta-data/", "a link-local address"),  # ...behind a name
    ("https://100.64.0.1/a.wav", "not a public address"),  # carrier-grade NAT
    ("https://192.0.2.7/a.wav", "a private address"),  # documentation range
    ("https://0.0.0.0/a.wav", "an unspecified address"),
    ("https://224.0.0.1/a.wav", "a multicast address"),
    ("https://240.0.0.1/a.wav", "a reserved address"),
    ("https://255.255.255.255/a.wav", "a reserved address"),
    ("https://[::1]/a.wav", "a loopback address"),
    ("https://[fe80::1]/a.wav", "a link-local address"),
    ("https://[fd00:ec2::254]/a.wav", "a private address"),
    ("https://[ff0e::1]/a.wav", "a multicast address"),
    ("https://[::ffff:127.0.0.1]/a.wav", "an IPv4-mapped address"),
    ("https://[::ffff:8.8.8.8]/a.wav", "an IPv4-mapped address"),  # mapped forms are refused outright
    ("https://mapped.example/a.wav", "an IPv4-mapped address"),
    ("https://[2002:a9fe:a9fe::1]/a.wav", "a 6to4 form of a link-local address"),
    ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/a.wav", "a Teredo address"),
    ("https://[64:ff9b::a9fe:a9fe]/a.wav", "a reserved address"),  # NAT64 of the metadata address
    ("https://rebind.example/a.wav", "a private address"),  # any private answer refuses the host
    ("http://93.184.216.34/a.wav", "only https is allowed"),
    ("http://links.example/a.wav", "only https is allowed"),
    ("http://127.0.0.1:8080/a.wav", "only the sandbox may be reached over loopback"),
    ("http://localhost:9/a.wav", "only the sandbox may be reached over loopback"),
]


@pytest.mark.parametrize("redirected", [False, True], ids=["link", "redirect"])
@pytest.mark.parametrize(("link", "why"), REFUSED, ids=[link for link, _ in REFUSED])
async def test_address_filter(link: str, why: str, redirected: bool, tmp_path: Path) -> None:
    reached: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        reached.append(_host(request))
        return httpx2.Response(302, headers={"location": link}) if _host(request) == "links.example" \
            else httpx2.Response(200, content=b"secret")

    start = "https://links.example/r" if redirected else link
    async with _mock(handler) as http:
        with pytest.raises(UnsafeInput) as info:
            await download_url(start, tmp_path / "a.wav", http)
    assert why in info.value.line() and info.value.exit_code == 3
    assert reached == (["links.example"] if redirected else [])  # the refused target was never contacted
    assert not list(tmp_path.iterdir())


async def test_public_https_passes_the_filter(tmp_path: Path) -> None:
    async with _mock(lambda request: httpx2.Response(200, content=b"ok")) as http:
        for link in ("https://links.example/a", "https://8.8.8.8/a", "https://[2606:4700::1111]/a"):
            saved = await download_url(link, tmp_path / "a.bin", http)
            assert saved.bytes == 2


async def test_plain_http_and_loopback_only_to_the_sandbox(tmp_path: Path) -> None:
    rules = DownloadRules.for_origins(["http://127.0.0.1:9/mcp/token", "https://api.truto.one/mcp/x", None])
    assert rules.loopback_ports == {("http", 9)}  # a public server widens nothing
    assert rules.is_local("http", "127.0.0.1", 9) and rules.is_local("http", "localhost", 9)  # storage alias
    assert not rules.is_local("http", "127.0.0.1", 10) and not rules.is_local("https", "127.0.0.1", 9)
    in_process = DownloadRules(local_hosts=frozenset({"sandbox.localhost"}))
    assert in_process.is_local("http", "storage.sandbox.localhost", None)
    assert not in_process.is_local("http", "localhost", None) and not in_process.is_local("http", "127.0.0.1", 80)

    async with _mock(lambda request: httpx2.Response(200, content=b"x"), loopback_ports=rules.loopback_ports) as http:
        saved = await download_url("http://127.0.0.1:9/a.bin", tmp_path / "c.bin", http)
        assert saved.bytes == 1 and saved.duration_seconds is None
        with pytest.raises(UnsafeInput, match="only the sandbox"):
            await download_url("http://127.0.0.1:10/a.bin", tmp_path / "d.bin", http)


class _Recorder(BaseHTTPRequestHandler):
    """A real loopback HTTP server: records each request path; answers 302 to ``target`` when set."""

    target: ClassVar[str | None] = None
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        if self.target is not None:
            self.send_response(302)
            self.send_header("Location", self.target)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            body = b"internal secret"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@contextmanager
def _loopback_server(target: str | None = None) -> Iterator[tuple[str, list[str]]]:
    handler = type("Handler", (_Recorder,), {"target": target, "paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.paths
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_a_real_loopback_service_is_never_reached(tmp_path: Path) -> None:
    with _loopback_server() as (internal, internal_paths), \
            _loopback_server(target=f"{internal}/admin?from=redirect") as (sandbox_like, sandbox_paths):
        # The user's MCP server (say a served sandbox) is on loopback: its own origin is allowed, no other port.
        rules = DownloadRules.for_origins([f"{sandbox_like}/mcp/token"], local_hosts=())
        async with httpx2.AsyncClient(transport=AddressGuard(httpx2.AsyncHTTPTransport(), rules),
                                      follow_redirects=False) as http:
            with pytest.raises(UnsafeInput, match="only the sandbox"):
                await download_url(f"{internal}/admin", tmp_path / "a.bin", http)
            with pytest.raises(UnsafeInput, match="only the sandbox"):
                await download_url(f"{sandbox_like}/_links/x", tmp_path / "b.bin", http)  # its 302 goes elsewhere
    assert sandbox_paths == ["/_links/x"] and internal_paths == []
    assert not list(tmp_path.iterdir())


async def test_size_cap(tmp_path: Path) -> None:
    def declared(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=b"x" * 2000, headers={"content-length": "2000"})

    async def endless_body() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 100

    def undeclared(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=endless_body())

    for handler in (declared, undeclared):
        async with _mock(handler) as http:
            with pytest.raises(UnsafeInput, match="larger than the download limit") as info:
                await download_url("https://links.example/big", tmp_path / "big.wav", http, max_bytes=1000)
            assert "--max-download-bytes" in info.value.line()
            saved = await download_url("https://links.example/big", tmp_path / "ok.wav", http, max_bytes=10_000)
            assert saved.bytes in (2000, 10_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.wav"]  # the refused one left nothing

    blob = decode_result("t", {"content": [{"type": "resource", "resource": {
        "uri": "file:///r.wav", "mimeType": "audio/wav", "blob": base64.b64encode(b"y" * 50).decode()}}]})
    with pytest.raises(UnsafeInput, match="larger than"):
        await download_recording(_once(blob), tmp_path / "blob.wav", http=None, max_bytes=10)
    assert not (tmp_path / "blob.wav").exists()


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


def test_max_download_bytes_from_the_command_line(serve_sandbox: Callable[..., Sandbox], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import cli

    sandbox = serve_sandbox(calls=80)
    call = _recorded_call(sandbox)
    monkeypatch.chdir(tmp_path)
    argv = ["calls", "recording", call["id"], "--out", "r.wav", "--mcp-url", sandbox.mcp_url, "--mcp-kind", "sandbox"]
    assert cli.main([*argv, "--max-download-bytes", "1000"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "larger than the download limit" in err[0] and "--max-download-bytes" in err[0]
    assert not list(tmp_path.iterdir())
    assert cli.main(argv) == 0  # the default limit (512 MiB) lets it through
    assert (tmp_path / "r.wav").read_bytes() == sandbox.workspace.call_recording(call["id"], "mono")
