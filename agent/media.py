"""Recording downloads: JSON link, ``resource_link`` or embedded blob, to a file, atomically.

Rules (why): a recording link answers 302 to a short-lived presigned URL. We follow at most 3
redirects ourselves (so every hop is checked) and send no Authorization or cookie on any hop:
presigned storage rejects extra auth, and our keys must never reach a storage host. On 403 (the link
or signature expired) we ask the tool for a fresh link, at most twice. The body streams to a
temporary file beside the target, renamed into place at the end, and stops at ``max_bytes``
(``--max-download-bytes``, default 512 MiB).

Where a link may lead (``AddressGuard``, the transport under the media client, so every request and
every redirect hop is checked): https only, to public addresses. The host is resolved first and
every address it resolves to must be public (not private, loopback, link-local, multicast,
reserved, unspecified, shared, documentation, nor an IPv4-mapped, 6to4 or Teredo form of one); the
connection then goes to that checked address (TLS still verifies the host name), so a second DNS
answer cannot swap in another. Loopback is allowed only "on the sandbox": the embedded sandbox's
hosts, and the (scheme, port) of an MCP server the user configured on a loopback address.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import socket
import wave
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx2

from agent.errors import ToolError, UnsafeInput, UpstreamError
from agent.files import atomic_file, write_atomically
from agent.mcp.decode import ToolOutput
from agent.redact import redact, register_secret

MAX_REDIRECTS = 3
MAX_REFRESHES = 2
DEFAULT_MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}

# host, port -> the addresses it resolves to (tests pass a table; the default asks the system).
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver, off the event loop)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UpstreamError(f"cannot resolve the recording host {host}: {exc.strerror or exc}") from None
    return [str(info[4][0]) for info in infos]


def refused_address(address: str) -> str | None:
    """Why ``address`` is not a public unicast address a download may reach, or None when it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "an IPv4-mapped address"
        if ip.teredo is not None:
            return "a Teredo address"
        if ip.sixtofour is not None:
            inner = refused_address(str(ip.sixtofour))
            if inner is not None:
                return f"a 6to4 form of {inner}"
    for reason, hit in (("a loopback address", ip.is_loopback), ("a link-local address", ip.is_link_local),
                        ("a multicast address", ip.is_multicast), ("an unspecified address", ip.is_unspecified),
                        ("a reserved address", ip.is_reserved), ("a private address", ip.is_private)):
        if hit:
            return reason
    return None if ip.is_global else "not a public address"


def is_loopback_host(host: str | None) -> bool:
    """True for localhost, ``*.localhost`` and loopback addresses."""
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class DownloadRules:
    """Where media may come from (see the module docstring) and how big it may be.

    ``loopback_ports``: (scheme, port) pairs served on loopback by the sandbox or an MCP server the
    user configured there; ``local_hosts``: hosts (and their subdomains) the runtime serves
    in-process, never over the network.
    """

    loopback_ports: frozenset[tuple[str, int]] = frozenset()
    local_hosts: frozenset[str] = frozenset()
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES
    resolve: Resolver = field(default=system_resolver)

    @classmethod
    def for_origins(cls, urls: Iterable[str | None], *, local_hosts: Iterable[str] = (),
                    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES) -> DownloadRules:
        """Rules for a runtime whose servers live at ``urls`` (only loopback ones widen anything)."""
        ports = set()
        for url in urls:
            parts = urlsplit(url or "")
            if parts.scheme in _DEFAULT_PORTS and is_loopback_host(parts.hostname):
                ports.add((parts.scheme, parts.port or _DEFAULT_PORTS[parts.scheme]))
        return cls(frozenset(ports), frozenset(local_hosts), max_bytes)

    def is_local(self, scheme: str, host: str, port: int | None) -> bool:
        """True for the sandbox's own hosts (see the class docstring)."""
        if any(host == h or host.endswith("." + h) for h in self.local_hosts):
            return True
        effective = port or _DEFAULT_PORTS.get(scheme, 0)
        return is_loopback_host(host) and (scheme, effective) in self.loopback_ports

    async def public_address(self, url: str, host: str, port: int) -> str:
        """The checked address to connect to for ``host``; ``UnsafeInput`` when any answer is not public."""
        try:
            addresses = [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            addresses = await self.resolve(host, port)
        if not addresses:
            raise UpstreamError(f"the recording host {host} has no address")
        for address in addresses:
            reason = refused_address(address)
            if reason is not None:
                raise UnsafeInput(f"refusing to download from {redact(url)}: {host} is {reason} ({address})",
                                  hint="recordings are fetched only from public https hosts")
        return addresses[0]


class AddressGuard(httpx2.AsyncBaseTransport):
    """An httpx transport that lets a request through only to where ``rules`` allow, pinned.

    Local (sandbox) requests pass unchanged. Anything else must be https to a host whose every
    address is public; the request is then sent to the first of those addresses, with the original
    ``Host`` header and TLS server name, so what was checked is what is reached.
    """

    def __init__(self, inner: Any, rules: DownloadRules) -> None:
        self.inner = inner
        self.rules = rules

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Check, pin, then hand the request to the inner transport."""
        url = request.url
        if self.rules.is_local(url.scheme, url.host, url.port):
            return await self.inner.handle_async_request(request)
        if url.scheme != "https":
            where = "only the sandbox may be reached over loopback" if is_loopback_host(url.host) else \
                "only https is allowed"
            raise UnsafeInput(f"refusing to download from {redact(str(url))}: {where}",
                              hint="recordings are fetched only from public https hosts")
        address = await self.rules.public_address(str(url), url.host, url.port or 443)
        request.url = url.copy_with(host=address)  # the Host header keeps the name
        request.extensions = {**request.extensions, "sni_hostname": url.host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()


@dataclass
class Download:
    """What was saved: path, size, sha256, content type and WAV duration (None for other formats)."""

    path: str
    bytes: int
    sha256: str
    content_type: str | None
    duration_seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def link_from_output(output: ToolOutput) -> tuple[str | None, bytes | None, str | None]:
    """(url, inline bytes, content type) from a recording tool's output, whatever its shape."""
    for media in output.media:
        if media.data is not None:
            return None, media.data, media.mime_type
        if media.uri:
            return media.uri, None, media.mime_type
    data = output.data
    if isinstance(data, dict) and isinstance(data.get("result"), list) and data["result"]:
        data = data["result"][0]
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        url = data.get("url") or data.get("recordingUrl") or data.get("location")
        if isinstance(url, str):
            return url, None, data.get("content_type") or data.get("contentType")
    text = output.text.strip()
    if text.startswith(("https://", "http://")) and " " not in text:
        return text, None, None
    raise ToolError(f"{output.tool} returned no recording link: {redact(json.dumps(output.data))[:200]}")


def wav_duration(path: Path) -> float | None:
    """Duration of a WAV file in seconds, or None when it is not a readable WAV."""
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes() / float(wav.getframerate())
    except (wave.Error, EOFError, OSError):
        return None


def _describe(dest: Path, digest: Any, size: int, content_type: str | None) -> Download:
    wav_type = (content_type or "").startswith(("audio/wav", "audio/x-wav", "audio/wave"))
    is_wav = wav_type or dest.suffix.lower() == ".wav"
    return Download(str(dest), size, digest.hexdigest(), content_type, wav_duration(dest) if is_wav else None)


def _too_large(size: int | str, max_bytes: int) -> UnsafeInput:
    return UnsafeInput(f"the recording is larger than the download limit ({size} > {max_bytes} bytes)",
                       hint="raise --max-download-bytes to fetch it")


async def save_bytes(data: bytes, dest: Path, content_type: str | None, *,
                     max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES) -> Download:
    """Write an embedded blob atomically and describe it."""
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes)
    write_atomically(dest, data)
    return _describe(dest, hashlib.sha256(data), len(data), content_type)


async def download_url(
    url: str,
    dest: Path,
    http: Any,
    *,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    progress: Callable[[int, int | None], None] | None = None,
) -> Download:
    """Follow up to 3 redirects (no credentials on any hop) and stream at most ``max_bytes`` to ``dest``.

    ``http`` is an httpx2.AsyncClient with *no* default auth headers or cookies, over an
    ``AddressGuard`` (the runtime's media client). Raises ``UpstreamError(status=403)`` on an
    expired link so the caller can refresh.
    """
    # A recording link is a bearer capability (anyone holding it can fetch the audio): keep it out of logs.
    register_secret(url)
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        request = http.build_request("GET", current, headers={"Accept": "*/*"})
        request.headers.pop("Authorization", None)
        request.headers.pop("Cookie", None)
        response = await http.send(request, stream=True, follow_redirects=False)
        try:
            if response.status_code in (301, 302, 303, 307, 308):
                location = response.headers.get("location")
                if not location:
                    raise UpstreamError("recording redirect without a Location header", status=response.status_code)
                current = urljoin(current, location)
                continue
            if response.status_code != 200:
                raise UpstreamError(
                    f"recording download failed: HTTP {response.status_code} from {urlsplit(current).hostname}",
                    status=response.status_code,
                )
            content_type = response.headers.get("content-type", "").split(";")[0] or None
            total = _content_length(response.headers.get("content-length"))
            if total is not None and total > max_bytes:
                raise _too_large(total, max_bytes)
            digest, size = hashlib.sha256(), 0
            with atomic_file(dest) as handle:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_large(f"over {max_bytes}", max_bytes)
                    handle.write(chunk)
                    digest.update(chunk)
                    if progress is not None:
                        progress(size, total)
                if total is not None and size != total:
                    raise UpstreamError(f"recording download truncated: {size} of {total} bytes")
            return _describe(dest, digest, size, content_type)
        finally:
            await response.aclose()
    raise UpstreamError(f"recording link redirected more than {MAX_REDIRECTS} times")


def _content_length(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def download_recording(
    fetch_link: Callable[[], Awaitable[ToolOutput]],
    dest: Path,
    http: Any,
    *,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    progress: Callable[[int, int | None], None] | None = None,
) -> Download:
    """Ask the tool for a link (or blob) and save it; on 403 ask again for a fresh link, at most twice."""
    for attempt in range(MAX_REFRESHES + 1):
        output = await fetch_link()
        url, blob, content_type = link_from_output(output)
        if blob is not None:
            return await save_bytes(blob, dest, content_type, max_bytes=max_bytes)
        assert url is not None
        try:
            return await download_url(url, dest, http, max_bytes=max_bytes, progress=progress)
        except UpstreamError as exc:
            if exc.status == 403 and attempt < MAX_REFRESHES:
                continue
            raise
    raise UpstreamError("recording link kept expiring")
