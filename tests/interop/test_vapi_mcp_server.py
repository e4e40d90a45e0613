"""Interop with Vapi's own MCP server, ``@vapi-ai/mcp-server`` (pinned), over stdio against the sandbox.

The sandbox is served on loopback; Vapi's server runs on Node 22 with ``interop/vapi-mcp-baseurl-patch.cjs``
preloaded (it has no base-URL setting), so its Vapi SDK calls reach the sandbox's REST API. We
connect the way a user would: an ``mcpServers`` file whose ``env`` takes the key from
``${VAPI_API_KEY}`` (the mcp SDK does not hand the parent environment to stdio servers). The
sandbox's API key is a random value, so nothing works unless that substitution did.

What must hold: the facade lists assistants, calls and phone numbers through this server (checked
against the sandbox's own REST answers), maps its ``Error: Status code: N`` texts to errors, and
``doctor`` / ``qa-grade`` say exactly what the server lacks (10 items, no filters, no artifacts).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings
from agent.errors import MissingCapability, ToolError
from agent.runtime import open_runtime
from sandbox.app import Sandbox
from tests.interop.conftest import INTEROP, ROOT, Peers

pytestmark = pytest.mark.node

LIMITED = "lists only 10 items with no filters and no artifacts"


@dataclass
class VapiWorld:
    """A served sandbox, the mcpServers file that reaches it through Vapi's server, and the key."""

    sandbox: Sandbox
    config: Path
    api_key: str

    async def rest(self, path: str) -> Any:
        """The sandbox's own REST answer (ground truth; not through anything under test)."""
        async with self.sandbox.rest_client() as client:
            response = await client.get(path)
            response.raise_for_status()
            return response.json()


@pytest.fixture
def vapi_world(serve_sandbox: Any, peers: Peers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VapiWorld:
    """Sandbox on loopback (60 calls: more than Vapi's server will ever list) + the config file."""
    api_key = "sk-interop-" + secrets.token_hex(12)
    sandbox = serve_sandbox(calls=60, api_key=api_key)
    server_js = peers.modules / "@vapi-ai" / "mcp-server" / "dist" / "index.js"
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"vapi": {
        "command": str(peers.node),
        "args": ["-r", str(INTEROP / "vapi-mcp-baseurl-patch.cjs"), str(server_js)],
        "env": {"VAPI_TOKEN": "${VAPI_API_KEY}", "VAPI_BASE_URL": sandbox.public_url,
                "VAPI_MCP_DIR": str(peers.npm_dir)},
        "cwd": str(tmp_path),  # the server reads a .env from its cwd: keep it away from the project's
    }}}))
    monkeypatch.setenv("VAPI_API_KEY", api_key)
    prime_response_validation(sandbox)
    return VapiWorld(sandbox=sandbox, config=config, api_key=api_key)


def prime_response_validation(sandbox: Sandbox) -> None:
    """Serve each list once before Vapi's server asks for it.

    The suite's SDK validation builds a model the first time a route is served, which can take
    tens of seconds for calls and assistants; inside a request of Vapi's server that could exceed
    its SDK's 60 s timeout and trigger its retries. Paid here once, the interop requests stay fast.
    """
    import httpx2

    headers = {"Authorization": f"Bearer {sandbox.config.api_key}"}
    with httpx2.Client(base_url=sandbox.public_url, headers=headers, timeout=300.0) as client:
        for path in ("/assistant?limit=10", "/call?limit=10", "/phone-number?limit=10"):
            client.get(path).raise_for_status()
    sandbox.log.clear()


def rest_requests(sandbox: Sandbox) -> list[tuple[str, str, str, int]]:
    """(method, path, query, status) of every REST request the sandbox received."""
    return [(e.method, e.path, e.extra.get("query", ""), e.status) for e in sandbox.log.entries("rest")]


def ids(items: list[dict[str, Any]]) -> list[str]:
    """The ``id`` of each item, in order."""
    return [item["id"] for item in items]


async def test_facade_reads_through_vapi_server_and_maps_its_errors(vapi_world: VapiWorld) -> None:
    """Assistants, calls and phone numbers equal the sandbox's own first page; Error: texts map."""
    world = vapi_world
    settings = Settings(mcp_config=str(world.config))
    async with open_runtime(settings, store=None, prompt=None, notice=lambda message: None) as rt:
        conn = rt.hub.connections[0]
        assert (conn.server_name, conn.spec.transport, len(rt.hub.catalogue)) == ("Vapi MCP", "stdio", 13)

        assistants = await rt.vapi.list_assistants()
        assert ids(assistants) == ids(await world.rest("/assistant?limit=10"))
        assert {"Support", "Renewal Outreach"} <= {a["name"] for a in assistants}

        calls = await rt.vapi.list_all("calls.list")
        assert len(calls) == 10  # the sandbox holds 60: the server's hard cap, no paging
        assert ids(calls) == ids(await world.rest("/call?limit=10"))

        numbers = await rt.vapi.list_phone_numbers()
        assert ids(numbers) == ids(await world.rest("/phone-number?limit=10"))
        assert any("Primary" in (n.get("name") or "") for n in numbers)

        one = await rt.vapi.get_call(calls[0]["id"])  # get_call takes callId, not id
        assert (one["id"], one["assistantId"]) == (calls[0]["id"], calls[0]["assistantId"])
        support = await rt.vapi.resolve_assistant("Support")
        assert (await rt.vapi.get("assistants.get", support["id"]))["name"] == "Support"

        # "Error: Status code: 404\nBody: {...}" arrives as a *successful* MCP result: it must fail.
        with pytest.raises(ToolError) as raised:
            await rt.vapi.get_call("no-such-call")
        assert raised.value.details["status"] == 404 and "Call not found" in raised.value.message
        with pytest.raises(ToolError) as raised:
            await rt.vapi.get("assistants.get", "00000000-0000-4000-8000-000000000000")
        assert raised.value.details["status"] == 404 and "Assistant not found" in raised.value.message

        # What this server cannot do is named, not attempted.
        assert rt.vapi.supports("calls.list", full=False) and not rt.vapi.supports("calls.list")
        with pytest.raises(MissingCapability):
            await rt.vapi.iter_calls(assistant_id=support["id"]).__anext__()
        assert LIMITED in rt.vapi.missing_for("qa-grade")["calls.list"]

    seen = rest_requests(world.sandbox)
    for expected in [("GET", "/assistant", "limit=10", 200), ("GET", "/call", "limit=10", 200),
                     ("GET", "/phone-number", "limit=10", 200), ("GET", "/call/no-such-call", "", 404)]:
        assert expected in seen, f"{expected} not among the sandbox's requests {seen}"
    assert all(status != 401 for *_, status in seen)  # the substituted key was accepted every time


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (the environment carries VAPI_API_KEY for the config file)."""
    return subprocess.run([sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", *args],
                          cwd=ROOT, capture_output=True, text=True, env=dict(os.environ), timeout=120)


def test_doctor_reports_what_the_vapi_server_lacks(vapi_world: VapiWorld) -> None:
    """``doctor --mcp-config FILE --json``: reachable, 13 tools, qa-grade and report unsupported and why."""
    proc = run_cli("doctor", "--mcp-config", str(vapi_world.config), "--json")
    assert proc.returncode == 0, proc.stderr
    envelope = json.loads(proc.stdout)
    assert (envelope["workflow"], envelope["status"]) == ("doctor", "ok")
    result = envelope["result"]
    (server,) = result["servers"]
    assert (server["name"], server["transport"], server["server_name"], server["tools"]) == (
        "vapi", "stdio", "Vapi MCP", 13)
    for workflow in ("qa-grade", "report"):
        info = result["workflows"][workflow]
        assert info["supported"] is False
        assert LIMITED in info["missing"]["calls.list"], info
    assert "no tool" in result["workflows"]["qa-grade"]["missing"]["recordings.mono"]
    assert vapi_world.api_key not in proc.stdout + proc.stderr


def test_qa_grade_exits_3_naming_the_missing_capability(vapi_world: VapiWorld) -> None:
    """``qa-grade`` refuses with exit 3 before asking the account for anything."""
    before = len(rest_requests(vapi_world.sandbox))
    proc = run_cli("qa-grade", "--assistant", "Support", "--mcp-config", str(vapi_world.config), "--json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    envelope = json.loads(proc.stdout)
    assert (envelope["workflow"], envelope["status"]) == ("qa-grade", "error")
    (error,) = envelope["errors"]
    assert error["code"] == "missing_capability"
    assert "calls.list" in error["message"] and LIMITED in error["message"]
    assert "Traceback" not in proc.stderr and vapi_world.api_key not in proc.stdout + proc.stderr
    assert len(rest_requests(vapi_world.sandbox)) == before  # tools/list only: nothing reached the API
