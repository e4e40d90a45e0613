"""One org's rate limit shared by several vapi-agent processes on one machine (agent/ratelimit/shared.py).

Two real processes read the same rate-limited MCP server at once: together they get at most one 429
per window (replayed from the sandbox's log), and every call succeeds. The store's own rules are
checked directly: reservations stop at the limit, a 429 blocks everyone until its reset, a window that
ended starts afresh, and the file never holds the URL's token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.ratelimit.shared import SharedWindows, shared_key
from sandbox.world.config import RateLimit
from tests.test_ratelimit_e2e import check_replay, posts, windows

CLIENT = Path(__file__).parent / "fixtures" / "ratelimit_client.py"


def test_store_reserves_up_to_the_limit_and_honours_a_429(tmp_path: Path) -> None:
    store = SharedWindows(tmp_path / "rl.sqlite3")
    key = shared_key("http://127.0.0.1:1/mcp/secret-token-123", "127.0.0.1:1")
    assert "secret-token" not in key
    assert store.reserve(key, 100.0) is None  # nothing known: go
    store.observe(key, status=200, received=100.1, limit=3, remaining=2, reset_after=2, window=2)
    assert store.reserve(key, 100.2) is None and store.reserve(key, 100.3) is None
    assert store.reserve(key, 100.4) == 102.1  # used up: wait for the window's end
    other = SharedWindows(tmp_path / "rl.sqlite3")  # another process sees the same window
    assert other.reserve(key, 100.5) == 102.1
    assert other.reserve(key, 102.2) is None  # the window ended: a fresh one
    other.observe(key, status=429, received=102.3, limit=3, remaining=0, reset_after=2, window=2)
    assert store.reserve(key, 102.4) == 104.3
    assert b"secret-token" not in (tmp_path / "rl.sqlite3").read_bytes()


def test_store_is_created_by_the_first_request_and_not_for_an_in_process_sandbox(tmp_path: Path) -> None:
    from agent.ratelimit.governor import GovernorRegistry

    path = tmp_path / "state" / "rl.sqlite3"
    store = SharedWindows(path)
    registry = GovernorRegistry(shared=store, private_origins=("http://sandbox.localhost",))
    assert registry.for_url("http://sandbox.localhost/mcp").shared is None  # each process has its own sandbox
    served = registry.for_url("http://127.0.0.1:1/mcp")
    assert served.shared is store and not path.exists()  # a run refused before any traffic leaves no file
    assert store.reserve(served.shared_key, 1.0) is None and path.exists()


def _clients(url: str, home: Path, count: int, calls: int, shared: bool = True) -> list[dict[str, Any]]:
    env = {**os.environ, "VAPI_AGENT_DATA_DIR": str(home), "VAPI_AGENT_SHARED_RATE_LIMITS": "1" if shared else "0"}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    procs = [subprocess.Popen([sys.executable, str(CLIENT), url, str(calls), "4"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(count)]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_two_processes_share_one_org_limit(serve_sandbox: Any, tmp_path: Path) -> None:
    rate = RateLimit(10, 2.0)
    sandbox = serve_sandbox(calls=60, rate_limit=rate)
    results = _clients(sandbox.mcp_url, tmp_path / "home", 2, 14)
    assert all(r["failed"] == 0 and r["calls"] == 14 for r in results)
    entries = posts(sandbox)
    check_replay(entries, rate)
    refused = [sum(1 for e in members if e.status == 429) for _, members in windows(entries, rate.window)]
    assert max(refused) <= 1, refused
    assert len(entries) >= 2 * 16  # both processes' handshakes and calls went through this one limit
