"""The run log is written off the event loop: another process locking the database delays the log, never
a request, and the log is complete once the command has finished.

The lock is real: a child process holds ``BEGIN IMMEDIATE`` on the run log's file for a few seconds.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.store import RunStore, default_store_path
from agent.store.writer import BackgroundStore
from sandbox.app import Sandbox
from tests.ask_support import AskRunner, make_runner

LOCK_SECONDS = 5.0
_LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print(time.time(), flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print(time.time(), flush=True)
"""


@contextmanager
def locked(path: Path, seconds: float = LOCK_SECONDS) -> Iterator[list[float]]:
    """Another process holds the write lock of ``path`` for ``seconds``; yields [locked_at], then adds unlocked_at."""
    child = subprocess.Popen([sys.executable, "-c", _LOCKER, str(path), str(seconds)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    times = [float(child.stdout.readline())]  # the lock is held from here on
    try:
        yield times
    finally:
        times.append(float(child.stdout.readline()))
        child.wait(10)


def test_writes_wait_for_the_lock_in_the_background_and_all_arrive(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    RunStore(path).close()  # the file exists (and is in WAL mode) before the other process locks it
    store = BackgroundStore(path)
    with locked(path, 2.0):
        run = store.start_run("ask", ["ask", "hi"], prompt="hi")
        for i in range(50):
            run.add_tool_call("list_all_vapi_calls", {"page": i}, True, "read", "read")
        store.checkpoint_put("job", "item", {"value": 1})
        run.finish("ok", 0, {"answer": "done"})
        assert store.flush(timeout=0.5) is False  # still locked: queued, nobody waited for it
        assert store.checkpoint_get("job", "item") is None  # reads are not blocked by the lock either
    store.close()
    with RunStore(path) as check:
        recorded = check.get_run(run.id)
        assert recorded.status == "ok" and recorded.prompt == "hi" and len(recorded.tool_calls) == 50
        assert [c.arguments["page"] for c in recorded.tool_calls] == list(range(50))
        assert check.checkpoint_get("job", "item") == {"value": 1}


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], endpoint: object,
        serve_sandbox: Callable[..., Sandbox]) -> tuple[AskRunner, Sandbox]:
    """``vapi-agent ...`` on a small served sandbox, with no model (qa-grade then only grades)."""
    sandbox = serve_sandbox(calls=50)
    return make_runner(monkeypatch, capsys, endpoint, sandbox), sandbox  # type: ignore[arg-type]


def test_a_locked_run_log_does_not_delay_qa_grade_and_is_complete_after(run: tuple[AskRunner, Sandbox]) -> None:
    cli, sandbox = run
    argv = ("qa-grade", "--json", "--assistant", "Support", "--last", "8", "--recordings", "none", "--fresh")
    first = cli(*argv, model=False)  # unlocked: the reference timing (and the run log file exists after it)
    assert first.code == 0, first.stderr
    unlocked = tool_call_times(sandbox)

    path = default_store_path()
    with locked(path) as lock:
        second = cli(*argv, model=False)
        answered_at = time.time()
    assert second.code == 0, second.stderr
    requests = tool_call_times(sandbox)[len(unlocked):]
    assert len(requests) == len(unlocked)  # the same run
    # Every request of the run was answered while the other process held the lock: nothing waited for it.
    locked_at, unlocked_at = lock
    assert locked_at < requests[0][0] and requests[-1][1] < unlocked_at, (lock, requests)
    assert answered_at >= unlocked_at  # the command itself waited, at exit, to write its log
    # The gaps between requests are those of the unlocked run (a stall on the log would add the lock's time).
    assert max_gap(requests) < max_gap(unlocked) + LOCK_SECONDS / 2

    with RunStore(path) as store:
        latest = store.get_run("last")
        assert latest.status == second.envelope["status"] and latest.exit_code == 0 and latest.ended_at is not None
        assert len(latest.tool_calls) == len(requests)
        assert latest.result == second.envelope["result"]
        graded = [c["id"] for c in second.envelope["result"]["calls"]]
        assert set(store.checkpoints(next(iter(_jobs(store))))) >= set(graded)


def tool_call_times(sandbox: Sandbox) -> list[tuple[float, float]]:
    """(arrived, answered) of every ``tools/call`` the sandbox's MCP server received, in arrival order."""
    return [(e.t_start, e.t_end) for e in sandbox.log.entries("mcp") if e.rpc_method == "tools/call"]


def max_gap(requests: list[tuple[float, float]]) -> float:
    """The longest time between one request's answer and the next request's arrival."""
    return max((b[0] - a[1] for a, b in itertools.pairwise(requests)), default=0.0)


def _jobs(store: RunStore) -> list[str]:
    rows = store._conn.execute("SELECT DISTINCT job FROM checkpoints").fetchall()
    return [row[0] for row in rows]
