"""The report's HTML page in headless Chromium: the charts render, and opening it makes no network request.

Chromium runs with ``--proxy-server`` pointing at a local listener: any request for a URL would
reach it. A control page with one external image proves the listener does see such a request.

Chromium itself talks to a few Google service endpoints in the background (network time, the
on-demand component updater, sign-in) even with every background-networking flag we could find;
those exact hosts (``CHROMIUM_SERVICES``) are not the page's doing and are set aside. Anything else,
Google Fonts or a CDN included, fails the test.
"""

from __future__ import annotations

import base64
import io
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from agent.config import Settings
from agent.runtime import open_runtime
from sandbox.app import Sandbox
from sandbox.world.config import SandboxConfig
from tests.conftest import require_tool
from workflows import report

WINDOW = (1200, 1600)
CHROMIUM_SERVICES = frozenset({"update.googleapis.com", "accounts.google.com", "clients2.google.com",
                               "redirector.gvt1.com", "optimizationguide-pa.googleapis.com"})
CHART_ROWS = slice(100, 1000)  # the charts come right after the title and facts


class Listener:
    """A TCP listener on loopback that records the first line of every request sent to it (the would-be proxy).

    Each connection is read on its own thread until its request line is complete or the peer closes it
    (Chromium exits after each screenshot, closing every socket it opened): a connection opened and
    closed without a byte (a preconnect) is not a request, and a slow one under load is not cut short.
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._seen: list[bytes] = []
        self._readers: list[threading.Thread] = []
        self._idle = threading.Condition()
        self._idle_passes = 0  # accept() calls that found no connection waiting
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                with self._idle:
                    self._idle_passes += 1
                    self._idle.notify_all()
                continue
            reader = threading.Thread(target=self._read, args=(conn,), daemon=True)
            self._readers.append(reader)
            reader.start()

    def _read(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            conn.settimeout(60)  # a safety net only: the peer's exit ends every connection
            try:
                while b"\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
        if data:
            self._seen.append(data)

    @property
    def seen(self) -> list[bytes]:
        """What each request sent, once every connection made so far has been accepted and read to its end."""
        with self._idle:  # one accept() that finds nothing waiting, after now: the backlog is drained
            passes = self._idle_passes
            self._idle.wait_for(lambda: self._idle_passes > passes, timeout=60)
        for reader in list(self._readers):
            reader.join()
        return list(self._seen)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def screenshot(chromium: str, page: Path, tmp_path: Path, proxy_port: int) -> np.ndarray:
    """Open ``page`` in headless Chromium and return its screenshot as an RGB array."""
    from PIL import Image

    shot = tmp_path / f"{page.stem}.png"
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
        # Chromium's own background traffic (network time, updater, sign-in...): off, so any request
        # the listener sees comes from the page
        "--disable-extensions", "--disable-component-extensions-with-background-pages",
        "--disable-client-side-phishing-detection", "--disable-domain-reliability", "--no-pings",
        "--safebrowsing-disable-auto-update", "--disable-field-trial-config", "--no-service-autorun",
        "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,OptimizationHintsFetching,"
        "OptimizationGuideModelDownloading,OptimizationGuideOnDeviceModel,OnDeviceModelService,MediaRouter,"
        "Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater,"
        "InterestFeedContentSuggestions,DeviceBoundSessions,EnableBoundSessionCredentials,FedCm",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--proxy-server=127.0.0.1:{proxy_port}",
        "--proxy-bypass-list=<-loopback>", f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--virtual-time-budget=3000", page.absolute().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert shot.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return np.asarray(Image.open(shot).convert("RGB"))


def requested_hosts(seen: list[bytes]) -> list[str]:
    """The host of each request the listener saw (``CONNECT host:443`` or ``GET http://host/...``)."""
    hosts = []
    for data in seen:
        parts = data.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        target = parts[1] if len(parts) > 1 else ""
        hosts.append(target.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0] or "?")
    return hosts


def page_requests(seen: list[bytes]) -> list[str]:
    """Requests that are not Chromium's own background service traffic."""
    return [host for host in requested_hosts(seen) if host not in CHROMIUM_SERVICES]


def ink(pixels: np.ndarray) -> float:
    """Share of pixels that differ clearly from the white background."""
    return float((np.abs(pixels.astype(int) - 255).sum(axis=2) > 60).mean())


async def test_html_report_renders_charts_offline(tmp_path: Path, listener: Listener) -> None:
    chromium = require_tool("chromium", "the HTML report is checked in headless Chromium (Debian package chromium)")
    sandbox = Sandbox(SandboxConfig(calls=400, seed=7, anchor=datetime(2025, 4, 6, 15, 30, tzinfo=UTC)))
    async with open_runtime(Settings(), sandbox=sandbox, store=None) as rt:
        result = await report.run(rt, report.ReportParams(since="7d", as_of="2025-04-06T15:30:00Z", formats="html",
                                                          out=str(tmp_path / "out")))
    page = Path(result.files[0])
    html = page.read_text()
    assert "http://" not in html and "https://" not in html

    pixels = screenshot(chromium, page, tmp_path, listener.port)
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    charts = ink(pixels[CHART_ROWS])
    assert charts >= 0.02, f"only {charts:.2%} of the chart area is drawn"
    assert page_requests(listener.seen) == [], "chromium made a network request while showing the report"

    # the same page with each chart swapped for a white image of the same size: the layout stays and
    # the chart area is nearly empty, so the check above measured the charts, not the text around them
    blank = tmp_path / "blank.html"
    blank.write_text(re.sub(r"data:image/png;base64,([A-Za-z0-9+/=]+)", _white_like, html))
    assert ink(screenshot(chromium, blank, tmp_path, listener.port)[CHART_ROWS]) < charts / 4


def _white_like(match: re.Match[str]) -> str:
    from PIL import Image

    size = Image.open(io.BytesIO(base64.b64decode(match.group(1)))).size
    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def test_the_listener_catches_a_page_that_fetches(tmp_path: Path, listener: Listener) -> None:
    chromium = require_tool("chromium", "the HTML report is checked in headless Chromium (Debian package chromium)")
    page = tmp_path / "fetches.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://report-assets.example/x.png"></body></html>')
    screenshot(chromium, page, tmp_path, listener.port)
    assert page_requests(listener.seen) == ["report-assets.example"], listener.seen
