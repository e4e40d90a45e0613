"""The fleet on PostgreSQL: two `vapi-agent worker` processes, 20 accounts, one worker killed mid-run.

A throwaway cluster (tests/pg_support.py), a sandbox fleet of 20 accounts served on loopback with
Truto's admin API, two workers and an enqueuer, all real processes. Checked: both workers take jobs;
after ``kill -9`` of one, the other recovers its jobs and the run finishes; every account appears
exactly once in the result; no account ever had two jobs at once (the sandbox's log: the MCP
requests of two servers of one account never overlap); no sentinel secret in a ``pg_dump``.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from sandbox.fleet import FleetConfig, SandboxFleet
from sandbox.serve import ServerThread
from sandbox.world.config import SandboxConfig
from tests.pg_support import pg_dump, postgres_cluster, with_pickles_decoded

TOKEN = "truto-sentinel-pg-api-token-91c2"

pytestmark = pytest.mark.slow


def _cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _worker(url: str, env: dict[str, str], home: Path) -> subprocess.Popen[str]:
    worker_env = {**env, "VAPI_AGENT_DATA_DIR": str(home)}
    return subprocess.Popen([sys.executable, "-m", "cli", "worker", "--queue-url", url, "--concurrency", "3"],
                            env=worker_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _jobs(url: str, run_id: str) -> list[Any]:
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=url, application_name="vapi-agent-fleet")
    try:
        return list(client.list_workflows(workflow_id_prefix=f"{run_id}:", load_input=False, load_output=False))
    finally:
        client.destroy()


def test_two_workers_one_killed_every_account_once(tmp_path: Path) -> None:
    fleet = SandboxFleet(FleetConfig(accounts=20, base=SandboxConfig(calls=60, latency=0.08), api_token=TOKEN))
    with postgres_cluster() as url, ServerThread(fleet, host="127.0.0.1", port=0):
        env = {**os.environ, "TRUTO_API_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        workers = [_worker(url, env, tmp_path / f"w{i}") for i in (1, 2)]
        try:
            enqueued = _cli("--json", "fleet", "qa-grade", "--assistant", "Support", "--last", "3", "--recordings",
                            "none", "--truto-api", fleet.api_url, "--queue-url", url, "--detach", env=env)
            assert enqueued.returncode == 0, enqueued.stderr
            run_id = json.loads(enqueued.stdout)["result"]["run_id"]
            # wait until the first worker is running a job and a few have finished, then kill it
            victim = workers[0]
            taken_by_victim: list[str] = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                jobs = _jobs(url, run_id)
                done = sum(1 for j in jobs if j.status == "SUCCESS")
                running = {j.executor_id for j in jobs if j.status == "PENDING"}
                victims = {j.executor_id for j in jobs if j.executor_id and f"-{victim.pid}-" in j.executor_id}
                if done >= 3 and victims & running:
                    taken_by_victim = sorted(j.workflow_id for j in jobs if j.executor_id in victims)
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the first worker never took a job")
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            watched = _cli("--json", "fleet", "status", run_id, "--queue-url", url, "--watch", "--interval", "0.5",
                           env=env, timeout=240)
            assert watched.returncode == 0, watched.stderr
            envelope = json.loads(watched.stdout)
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
        result = envelope["result"]
        names = [a["account"] for a in result["accounts"]]
        assert sorted(names) == sorted(a.tenant_id for a in fleet.accounts) and not result.get("pending")
        by_status = defaultdict(list)
        for entry in result["accounts"]:
            by_status[entry["status"]].append(entry["account"])
        assert by_status["error"] == [a.tenant_id for a in fleet.accounts if a.status == "needs_reauth"]
        # both workers took jobs: the victim was running some when it was killed (seen above), and the
        # survivor finished the run, the victim's recovered jobs included
        survivor = workers[1].pid
        jobs = _jobs(url, run_id)
        assert {j.status for j in jobs} == {"SUCCESS"}
        assert any(f"-{survivor}-" in (j.executor_id or "") for j in jobs)
        assert taken_by_victim
        # no account ever had two jobs at once: the MCP requests of its servers never overlap in time
        spans: dict[tuple[str, str], list[float]] = {}
        for entry in fleet.log_entries():
            server = entry["extra"].get("mcp_server")
            if entry["transport"] == "mcp" and server:
                span = spans.setdefault((entry["account"], server), [entry["t_start"], entry["t_end"]])
                span[0], span[1] = min(span[0], entry["t_start"]), max(span[1], entry["t_end"])
        per_account: dict[str, list[list[float]]] = defaultdict(list)
        for (account, _server), span in spans.items():
            per_account[account].append(span)
        for account, intervals in per_account.items():
            intervals.sort()
            for before, after in itertools.pairwise(intervals):
                assert before[1] <= after[0], f"account {account} had two jobs at once"
        # every job minted a read-only, second-factor, expiring server; the survivor deleted its own, the
        # victim's in-flight ones are left to expire, and `fleet cleanup` removes them
        for server in fleet.admin.history:
            assert server.methods == ("read",) and server.require_api_token_auth and server.expires_at is not None
        assert len(fleet.admin.servers()) <= 3  # at most the victim's --concurrency jobs
        cleaned = _cli("--json", "fleet", "cleanup", "--truto-api", fleet.api_url, env=env)
        assert cleaned.returncode == 0, cleaned.stderr
        assert fleet.admin.servers() == []
        for entry in result["accounts"]:
            assert entry["status"] == "error" or entry["summary"]["calls"] == 3
        dumped = with_pickles_decoded(pg_dump(url))
        assert run_id in dumped
        assert TOKEN not in dumped
        assert not any(s.token in dumped for s in fleet.admin.history)
