"""The cron contract, through the real CLI in subprocesses (no TTY): prompts, exit codes, locks, deadlines.

A sandbox served on loopback stands in for the MCP server; its ``latency`` makes runs slow enough to
overlap (the lock) or to overrun (the deadline).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings
from agent.runtime import open_runtime
from sandbox.app import Sandbox

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys, cli; sys.exit(cli.main())"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VAPI_AGENT_JOB"}
    return {**env, **extra}


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    # stdin is not a terminal (as under cron): nothing may prompt
    return subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True, env=env or _env(),
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def served(serve_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return serve_sandbox(calls=400)


def test_no_tty_means_no_prompt_and_exit_5_for_a_write(served: Sandbox) -> None:
    done = _cli("--mcp-url", served.mcp_url, "squad", "create", "--name", "Night Shift",
                "--member", "Support", "--member", "Billing Specialist")
    assert done.returncode == 5, done.stderr
    assert "needs approval and there is no terminal to ask" in done.stderr
    assert "[y/N]" not in done.stdout + done.stderr and "confirm" not in done.stdout + done.stderr
    assert served.config.token not in done.stdout + done.stderr
    assert not [e for e in served.log.entries("rest") if e.method == "POST" and e.path == "/squad"]

    envelope = json.loads(_cli("--json", "--mcp-url", served.mcp_url, "squad", "create", "--name", "Night Shift",
                               "--member", "Support").stdout)
    assert envelope["status"] == "error" and envelope["errors"][0]["code"] == "approval_required"


def test_report_exit_codes_and_quiet_output(served: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    ok = _cli("--mcp-url", served.mcp_url, "report", "--since", "7d", "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == ""  # quiet off a terminal: no notices, no progress, no logs by default
    assert "Summary and change against the previous period" in ok.stdout
    assert len(_files(out)) == 5 and not [n for n in _files(out) if n.endswith(".part")]

    as_json = _cli("--mcp-url", served.mcp_url, "report", "--since", "7d", "--json")
    envelope = json.loads(as_json.stdout)  # exactly one JSON object on stdout
    assert as_json.returncode == 0 and envelope["status"] == "ok" and envelope["result"]["summary"]

    assert _cli("report", "--group-by", "customer").returncode == 2
    assert _cli("report", "--no-such-flag").returncode == 2
    unreachable = _cli("--mcp-url", "http://127.0.0.1:9/mcp/nothing-listens", "report", "--since", "7d",
                       env=_env(VAPI_AGENT_MAX_ATTEMPTS="1"))  # no retries: the exit code, not the backoff
    assert unreachable.returncode == 3 and "nothing-listens" not in unreachable.stderr


def _wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_runs_of_one_job_never_overlap(serve_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    slow = serve_sandbox(calls=400, latency=0.4)
    args = ["--mcp-url", slow.mcp_url, "report", "--since", "30d", "--source", "calls", "--out", str(tmp_path)]
    first = subprocess.Popen([*CLI, *args], cwd=ROOT, env=_env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the lock is taken before connecting: once the server sees the first run, it holds it
        _wait_for(lambda: bool(slow.log.entries("mcp")) or first.poll() is not None)
        assert first.poll() is None, "the first run ended too soon to overlap"
        second = _cli(*args)
        assert second.returncode == 7, second.stderr
        assert "another run of report is still running" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        _, err = first.communicate(timeout=180)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # once the first run has finished, the job can run again
    assert _cli(*args).returncode == 0


def test_a_scheduled_job_is_locked_by_its_name(served: Sandbox, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.joblock import JOB_ENV, job_key, job_lock

    monkeypatch.setenv(JOB_ENV, "weekly-cost")
    with job_lock(job_key([]), label="report"):  # another run of the job "weekly-cost" holds it
        # a different command line, the same schedule name: still the same job
        done = _cli("--mcp-url", served.mcp_url, "report", "--since", "1d", env=_env(**{JOB_ENV: "weekly-cost"}))
    assert done.returncode == 7 and "another run of report is still running" in done.stderr
    assert not served.log.entries("mcp"), "a locked run must not even connect"


def test_deadline_exits_6_and_leaves_no_partial_file(serve_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    slow = serve_sandbox(calls=400, latency=0.5)
    out = tmp_path / "reports"
    done = _cli("--mcp-url", slow.mcp_url, "--deadline", "1.5s", "report", "--since", "30d", "--source", "calls",
                "--out", str(out))
    assert done.returncode == 6, done.stderr
    assert "did not finish within the --deadline of 1.5 s" in done.stderr
    assert _files(out) == []


async def test_a_deadline_during_rendering_writes_nothing(make_sandbox: Callable[..., Sandbox], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's deadline cancels the run while the charts render: no file, no temporary file."""
    from workflows import report
    from workflows.report import render as report_render

    rendering = asyncio.Event()
    loop = asyncio.get_running_loop()
    real = report_render.render_files

    def slow_render(result: Any, formats: tuple[str, ...]) -> dict[str, bytes]:
        loop.call_soon_threadsafe(rendering.set)
        contents = real(result, formats)
        time.sleep(1.0)
        return contents

    monkeypatch.setattr(report_render, "render_files", slow_render)
    out = tmp_path / "reports"
    async with open_runtime(Settings(), sandbox=make_sandbox(calls=60), store=None) as rt:
        task = asyncio.ensure_future(report.run(rt, report.ReportParams(since="7d", out=str(out))))
        await rendering.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await asyncio.sleep(1.5)  # the rendering thread finishes on its own; nothing writes its result
    assert _files(out) == []
