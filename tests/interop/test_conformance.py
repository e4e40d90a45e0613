"""The MCP conformance suite (``@modelcontextprotocol/conformance``, Node 22) in client mode.

For each scenario the suite starts its own server and runs ``conformance_shim.py <url>``, which
connects through our connection layer (``open_runtime`` / ``Connection``, never the ``mcp`` client
directly). The suite's exit status and its ``checks.json`` decide; warnings (e.g. reconnecting
late after an SSE stream closed) count as failures here. The expected-failures baseline may hold
only ``auth/*`` scenarios (OAuth flows, which vapi-agent does not implement).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from tests.interop.conftest import Peers

pytestmark = pytest.mark.node

HERE = Path(__file__).resolve().parent
SHIM = HERE / "conformance_shim.py"
BASELINE = HERE / "conformance-baseline.yml"
SCENARIOS = {
    "initialize": {"mcp-client-initialization"},
    "tools_call": {"tool-add-numbers"},
    "sse-retry": {"client-sse-graceful-reconnect", "client-sse-retry-timing", "client-sse-last-event-id"},
    "elicitation-sep1034-client-defaults": {f"client-elicitation-sep1034-{kind}-default"
                                            for kind in ("string", "integer", "number", "enum", "boolean")},
}


def client_scenarios(peers: Peers) -> list[str]:
    """Every client scenario the pinned suite knows (from ``conformance list``)."""
    listing = peers.run_node(peers.bin("conformance"), "list", timeout=60)
    assert listing.returncode == 0, listing.stderr
    client_part = listing.stdout.split("Client scenarios", 1)[1]
    return [line.strip()[2:].split(" ")[0] for line in client_part.splitlines() if line.strip().startswith("- ")]


def test_baseline_holds_only_auth_scenarios(peers: Peers) -> None:
    """The expected-failures list names only auth/* scenarios, each one the suite really has."""
    baseline = yaml.safe_load(BASELINE.read_text(encoding="utf-8"))
    assert set(baseline) == {"client"}
    entries = baseline["client"]
    assert entries and all(name.startswith("auth/") for name in entries), entries
    known = client_scenarios(peers)
    assert set(entries) <= set(known), set(entries) - set(known)
    assert set(SCENARIOS) <= set(known)  # the scenarios this file runs exist under these names


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_client_scenario_passes(peers: Peers, scenario: str, tmp_path: Path) -> None:
    """The suite passes the scenario with our shim as the client: exit 0, every check a success."""
    command = shlex.join([sys.executable, str(SHIM)])
    proc = peers.run_node(
        peers.bin("conformance"), "client", "--command", command, "--scenario", scenario,
        "--expected-failures", BASELINE, "--timeout", "60000", "-o", tmp_path, cwd=tmp_path, timeout=180,
    )
    report = f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, report
    (result_dir,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith(scenario)]
    checks = json.loads((result_dir / "checks.json").read_text(encoding="utf-8"))
    statuses = {check["id"]: check["status"] for check in checks if check["status"] != "INFO"}
    assert statuses == dict.fromkeys(SCENARIOS[scenario], "SUCCESS"), (statuses, report)
    client_stdout = (result_dir / "stdout.txt").read_text(encoding="utf-8")
    assert client_stdout.startswith(f"{scenario}: "), client_stdout  # the shim ran to its end and exited 0
