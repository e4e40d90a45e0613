"""Shared test fixtures: the internet is blocked, sandboxes in-process or on loopback, SDK validation."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.app import Sandbox
from sandbox.world.config import SandboxConfig

IN_CI = os.environ.get("CI", "").lower() == "true"

# ---------------------------------------------------------------- no internet, ever
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost",) or str(host).endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _is_local(address):
        raise RuntimeError(f"test tried to reach the network: {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _is_local(address):
        raise RuntimeError(f"test tried to reach the network: {address!r}")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _block_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that would open a connection beyond loopback."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)


@pytest.fixture(autouse=True)
def _private_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs never touch the real ~/.local/share or ~/.config: each test gets its own dirs."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("VAPI_AGENT_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg-data"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "VAPI_API_KEY", "TRUTO_API_TOKEN", "VAPI_AGENT_MCP_URL"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- missing tools: skip, or fail in CI
def require_tool(name: str, reason: str) -> str:
    """Path of an executable; skip the test when absent, except under CI=true where it fails."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: .ci/run must install it)")
    pytest.skip(message)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- sandboxes
SMALL = {"calls": 400, "seed": 7}


@pytest.fixture
def make_sandbox() -> Callable[..., Sandbox]:
    """Factory for an in-process sandbox; keyword arguments override ``SandboxConfig`` fields."""

    def factory(**overrides: Any) -> Sandbox:
        fields = {**SMALL, **overrides}
        return Sandbox(SandboxConfig(**fields))

    return factory


@pytest.fixture
def serve_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Factory for a sandbox served by uvicorn on 127.0.0.1 (a real socket) in a background thread."""
    from sandbox.serve import ServerThread

    started: list[ServerThread] = []

    def factory(**overrides: Any) -> Sandbox:
        sandbox = Sandbox(SandboxConfig(**{**SMALL, **overrides}))
        thread = ServerThread(sandbox, host="127.0.0.1", port=0)
        thread.start()
        started.append(thread)
        return sandbox

    yield factory
    for thread in started:
        thread.stop()


# ---------------------------------------------------------------- SDK validation of everything served
@pytest.fixture(scope="session")
def _response_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served-responses")


@pytest.fixture(autouse=True)
def _validate_served_objects(request: pytest.FixtureRequest, _response_logs: Path,
                             monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every JSON object the sandbox serves during a test is validated, strictly, against vapi-server-sdk
    models: in this process (an observer) and in the processes the test starts (their response log)."""
    from sandbox.rest.observe import RESPONSE_LOG_ENV
    from tests.sdk_validation import install, take_failures, take_logged_failures

    install()
    log = _response_logs / f"{abs(hash(request.node.nodeid)):x}.jsonl"
    monkeypatch.setenv(RESPONSE_LOG_ENV, str(log))
    yield
    failures = take_failures() + take_logged_failures(log)
    assert not failures, "sandbox served objects the Vapi SDK rejects:\n" + "\n".join(failures[:10])


# ---------------------------------------------------------------- the scripted OpenAI server (tests/openai_fake)
@pytest.fixture(scope="module")
def endpoint() -> Iterator[Any]:
    """One scripted OpenAI-compatible server per test module (``fake`` empties it before each test)."""
    from tests.ask_support import serve_endpoint

    with serve_endpoint() as served:
        yield served


@pytest.fixture
def fake(endpoint: Any) -> Iterator[Any]:
    """The scripted server, emptied; after the test: nothing refused and every turn used."""
    from tests.ask_support import check_endpoint

    scripted = endpoint.reset()
    yield scripted
    check_endpoint(endpoint)
