"""A sandbox served by ``python -m sandbox serve`` in a child process, for the benchmarks.

Client and server in separate processes, so they do not share a GIL: what a bench measures is the
client, with the server as an independent peer.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "sandbox-key"  # the sandbox's documented, non-secret default REST key


def auth() -> dict[str, str]:
    """The REST Authorization header of a sandbox served with the default key."""
    return {"Authorization": f"Bearer {API_KEY}"}


@contextmanager
def served_sandbox(*options: str) -> Iterator[tuple[str, str]]:
    """Serve a sandbox with ``options`` (serve flags); yields (MCP URL, origin); stops it on exit."""
    with _serve(options, "MCP (Truto-style") as url:
        origin = url.split("/mcp/", 1)[0]
        _wait_ready(f"{origin}/assistant", auth())
        yield url, origin


@contextmanager
def served_fleet(accounts: int, token: str, *options: str) -> Iterator[str]:
    """Serve a sandbox fleet of ``accounts`` (``serve --accounts``) with Truto API token ``token``; yields the
    Truto admin API URL; stops it on exit."""
    with _serve(("--accounts", str(accounts), "--api-token", token, *options), "Truto API (admin):") as url:
        _wait_ready(f"{url}/integrated-account", {"Authorization": f"Bearer {token}"})
        yield url


@contextmanager
def _serve(options: tuple[str, ...], marker: str) -> Iterator[str]:
    """``python -m sandbox serve --port 0 OPTIONS`` in a child process; yields the URL its banner line
    ``marker`` names."""
    cmd = [sys.executable, "-m", "sandbox", "serve", "--port", "0", "--no-access-log", *options]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = ""
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while not url and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("the sandbox exited before printing its URL")
            if marker in line:
                url = next((word for word in line.split() if word.startswith("http")), "")
        if not url:
            raise RuntimeError("the sandbox did not print its URL in time")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx2.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the sandbox did not answer in time")


def request_log(origin: str, transport: str | None = "mcp", *, token: str = API_KEY) -> list[dict[str, Any]]:
    """The sandbox's own record of every request it received on one transport (every transport: None)
    (``GET /_sandbox/log``, with the REST key or a fleet's Truto API token)."""
    response = httpx2.get(f"{origin}/_sandbox/log", params={"transport": transport} if transport else {},
                          headers={"Authorization": f"Bearer {token}"}, timeout=60)
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()
    return entries


def rest_get(origin: str, path: str, **params: Any) -> Any:
    """One REST read (the REST path is not rate limited: only the MCP path is)."""
    response = httpx2.get(f"{origin}{path}", params=params, headers=auth(), timeout=120)
    response.raise_for_status()
    return response.json()
