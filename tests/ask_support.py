"""Helpers for tests that drive ``vapi-agent ask`` end to end (``test_ask.py``, ``test_injection.py``).

The path under test is the real one: ``cli.main`` parses the flags, ``agent.runtime`` connects to a
sandbox served on loopback (``VAPI_AGENT_MCP_URL``, so the sandbox's request log proves what reached
the MCP server) and builds ``OpenAIChatModel`` from ``OPENAI_BASE_URL``/``OPENAI_API_KEY``; the real
``openai`` SDK then talks HTTP to ``ScriptedOpenAI``, whose validation table refuses anything OpenAI
would refuse. The fixtures check after every test that no request was refused and no turn was left.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

import cli
from sandbox.app import Sandbox
from sandbox.core.requestlog import LogEntry
from tests.openai_fake import ScriptedOpenAI, serve_app


class ClockedApp:
    """ASGI wrapper recording when each chat-completions request arrived (``time.monotonic``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.arrivals: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Record the arrival, then hand the request to the scripted app unchanged."""
        if scope.get("type") == "http" and str(scope.get("path", "")).endswith("/chat/completions"):
            self.arrivals.append(time.monotonic())
        await self.app(scope, receive, send)


@dataclass
class Endpoint:
    """One served ``ScriptedOpenAI`` and the arrival clock in front of it."""

    fake: ScriptedOpenAI
    clock: ClockedApp
    base_url: str

    def reset(self) -> ScriptedOpenAI:
        """Empty the script, the recorded requests and the arrival times; returns the fake."""
        self.fake.reset()
        self.clock.arrivals.clear()
        return self.fake


@contextmanager
def serve_endpoint() -> Iterator[Endpoint]:
    """Serve a fresh ``ScriptedOpenAI`` (behind ``ClockedApp``) on loopback; yields the endpoint."""
    fake = ScriptedOpenAI()
    clock = ClockedApp(fake.app)
    with serve_app(clock) as origin:
        yield Endpoint(fake, clock, f"{origin}/v1")


def check_endpoint(endpoint: Endpoint) -> None:
    """What every test must end with: nothing refused by the validation table, every turn used."""
    refused = [f"{v.rule}: {v.message}" for v in endpoint.fake.rejections]
    assert not refused, "the scripted OpenAI server refused requests:\n" + "\n".join(refused)
    endpoint.fake.assert_all_used()


@dataclass
class AskRun:
    """The outcome of one ``vapi-agent ask`` run: exit code, stdout, stderr, the parsed envelope."""

    code: int
    stdout: str
    stderr: str

    @property
    def envelope(self) -> dict[str, Any]:
        """The ``--json`` envelope (exactly one JSON object on stdout)."""
        return json.loads(self.stdout)

    @property
    def result(self) -> dict[str, Any]:
        """The envelope's ``result``."""
        return self.envelope["result"]


AskRunner = Callable[..., AskRun]


def make_runner(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], endpoint: Endpoint,
                sandbox: Sandbox) -> AskRunner:
    """A function running ``vapi-agent <argv>`` in-process against ``endpoint`` and ``sandbox``.

    ``model=False`` leaves the model unconfigured; ``stdin`` is what the command reads as its
    standard input (never a terminal, so no approval prompt is possible: a headless run).
    """

    def run(*argv: str, stdin: str = "", model: bool = True) -> AskRun:
        monkeypatch.setenv("VAPI_AGENT_MCP_URL", sandbox.mcp_url)
        monkeypatch.setenv("VAPI_AGENT_MCP_KIND", "sandbox")
        if model:
            monkeypatch.setenv("OPENAI_BASE_URL", endpoint.base_url)
            monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        else:
            monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
            monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return AskRun(code, out, err)

    return run


def tool_calls_logged(sandbox: Sandbox) -> list[LogEntry]:
    """The ``tools/call`` requests the sandbox's MCP server received, in arrival order."""
    return [e for e in sandbox.log.entries("mcp") if e.rpc_method == "tools/call"]


def offered_names(body: dict[str, Any]) -> list[str]:
    """The function names a recorded chat-completions request offered."""
    return [t["function"]["name"] for t in body.get("tools") or []]


def strict_arguments(sandbox: Sandbox, tool: str, **given: Any) -> dict[str, Any]:
    """Arguments as a strict-mode model sends them: every property present, null when not wanted.

    The property list comes from the sandbox's own tool schema (not from the conversion under test).
    """
    schema = sandbox.mcp.tools[tool].to_tool().input_schema
    return {name: given.get(name) for name in schema.get("properties", {})} | given
