"""Every command run is recorded in the run log: outcome, usage, tool calls (redacted), waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", *args], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)


def test_a_workflow_run_and_its_tool_calls_are_logged(tmp_path: Path) -> None:
    graded = _cli("--json", "qa-grade", "--assistant", "Support", "--last", "2", "--recordings", "none", cwd=tmp_path)
    assert graded.returncode == 0, graded.stderr
    listed = _cli("logs", "--json", cwd=tmp_path)
    runs = json.loads(listed.stdout)["result"]["runs"]
    assert [r["workflow"] for r in runs] == ["qa-grade"]  # `logs` itself is not recorded
    detail = json.loads(_cli("logs", runs[0]["id"], "--json", cwd=tmp_path).stdout)["result"]["run"]
    assert detail["status"] == json.loads(graded.stdout)["status"] and detail["exit_code"] == 0
    names = [c["name"] for c in detail["tool_calls"]]
    assert "list_all_vapi_assistants" in names and "list_all_vapi_calls" in names
    assert detail["usage"]["tool_calls"] == len(names)
    assert detail["result"]["assistant"]["name"] == "Support"


def test_a_refused_write_is_logged_with_its_refusal(tmp_path: Path) -> None:
    refused = _cli("tools", "call", "create_a_vapi_squad", "--args", '{"name": "x", "members": []}', cwd=tmp_path)
    assert refused.returncode == 5
    runs = json.loads(_cli("logs", "--json", cwd=tmp_path).stdout)["result"]["runs"]
    detail = json.loads(_cli("logs", runs[0]["id"], "--json", cwd=tmp_path).stdout)["result"]["run"]
    assert detail["exit_code"] == 5 and detail["status"] == "error"
    call = detail["tool_calls"][0]
    assert call["name"] == "create_a_vapi_squad" and call["ok"] is False and "approval" in json.dumps(call).lower()
