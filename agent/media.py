"""Recording downloads: JSON link, ``resource_link`` or embedded blob, to a file, atomically.

Rules (why): a recording link answers 302 to a short-lived presigned URL. We follow at most 3
redirects ourselves (so every hop is checked), https only except loopback, and send no
Authorization or cookie on any hop: presigned storage rejects extra auth, and our keys must never
reach a storage host. On 403 (the link or signature expired) we ask the tool for a fresh link, at
most twice. The body streams to a temporary file beside the target, renamed into place at the end.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import wave
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from agent.errors import ToolError, UpstreamError
from agent.files import atomic_file, write_atomically
from agent.mcp.decode import ToolOutput
from agent.redact import redact, register_secret

MAX_REDIRECTS = 3
MAX_REFRESHES = 2


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


def is_loopback_host(host: str | None) -> bool:
    """True for localhost, ``*.localhost`` and loopback addresses (the only hosts allowed over http)."""
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> None:
    """Refuse anything but https, or http to a loopback host."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname)):
        return
    raise UpstreamError(f"refusing to download from {redact(url)}: only https (or http on loopback) is allowed")


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


async def save_bytes(data: bytes, dest: Path, content_type: str | None) -> Download:
    """Write an embedded blob atomically and describe it."""
    write_atomically(dest, data)
    return _describe(dest, hashlib.sha256(data), len(data), content_type)


async def download_url(
    url: str,
    dest: Path,
    http: Any,
    *,
    progress: Callable[[int, int | None], None] | None = None,
) -> Download:
    """Follow up to 3 redirects (each hop checked, no credentials) and stream the body to ``dest``.

    ``http`` is an httpx2.AsyncClient with *no* default auth headers or cookies. Raises
    ``PermissionError``-like ``UpstreamError(status=403)`` on an expired link so the caller can refresh.
    """
    # A recording link is a bearer capability (anyone holding it can fetch the audio): keep it out of logs.
    register_secret(url)
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        check_url(current)
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
                    f"recording download failed: HTTP {response.status_code} from {urlsplit(current).netloc}",
                    status=response.status_code,
                )
            content_type = response.headers.get("content-type", "").split(";")[0] or None
            total = int(response.headers["content-length"]) if "content-length" in response.headers else None
            digest, size = hashlib.sha256(), 0
            with atomic_file(dest) as handle:
                async for chunk in response.aiter_bytes():
                    handle.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if progress is not None:
                        progress(size, total)
                if total is not None and size != total:
                    raise UpstreamError(f"recording download truncated: {size} of {total} bytes")
            return _describe(dest, digest, size, content_type)
        finally:
            await response.aclose()
    raise UpstreamError(f"recording link redirected more than {MAX_REDIRECTS} times")


async def download_recording(
    fetch_link: Callable[[], Awaitable[ToolOutput]],
    dest: Path,
    http: Any,
    *,
    progress: Callable[[int, int | None], None] | None = None,
) -> Download:
    """Ask the tool for a link (or blob) and save it; on 403 ask again for a fresh link, at most twice."""
    for attempt in range(MAX_REFRESHES + 1):
        output = await fetch_link()
        url, blob, content_type = link_from_output(output)
        if blob is not None:
            return await save_bytes(blob, dest, content_type)
        assert url is not None
        try:
            return await download_url(url, dest, http, progress=progress)
        except UpstreamError as exc:
            if exc.status == 403 and attempt < MAX_REFRESHES:
                continue
            raise
    raise UpstreamError("recording link kept expiring")
