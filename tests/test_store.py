"""The run log (agent.store) and the user directories (agent.paths)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.errors import ConfigError, LockHeld
from agent.paths import cache_dir, data_dir, ensure_private_dir, state_dir
from agent.redact import register_secret
from agent.store import (
    RUNS_TABLE_COLUMNS,
    SCHEMA_VERSION,
    RunHandle,
    RunStore,
    default_store_path,
    parse_age,
    run_detail,
    run_transcript_lines,
    runs_table_rows,
)
from agent.store.schema import migrate
from agent.store.timeutil import format_seconds

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """A settable clock for the store (``now`` is injected)."""

    def __init__(self, start: datetime = T0) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[RunStore]:
    with RunStore(tmp_path / "runs.sqlite3", now=clock) as s:
        yield s


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """Permissions must come from the code, not from a friendly umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _fixed_ids(monkeypatch: pytest.MonkeyPatch, *hexes: str) -> None:
    values = iter(uuid.UUID(h) for h in hexes)
    monkeypatch.setattr("agent.store.runs.uuid.uuid4", lambda: next(values))


def _count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


# ---------------------------------------------------------------- schema
def test_schema_is_created_versioned_and_reopened(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "runs.sqlite3"
    with RunStore(path, now=clock) as first:
        run_id = first.start_run("qa-grade", ["vapi-agent", "qa-grade"]).id
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"schema_version", "runs", "messages", "tool_calls", "waits", "checkpoints"} <= tables
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Migrations are idempotent: running them again changes nothing and keeps one version row.
    conn.isolation_level = None
    assert migrate(conn) == SCHEMA_VERSION
    conn.execute("DELETE FROM schema_version")  # as if the version bump had been lost: re-apply safely
    assert migrate(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1
    conn.close()
    with RunStore(path, now=clock) as second:
        assert second.get_run(run_id).workflow == "qa-grade"


def test_newer_schema_and_garbage_files_are_config_errors(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite3"
    RunStore(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="newer than this vapi-agent"):
        RunStore(newer)
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="unusable") as info:
        RunStore(garbage)
    assert "move the file away" in info.value.line()


def test_memory_store_works_without_a_file() -> None:
    with RunStore(":memory:") as s:
        run = s.start_run("chat", ["vapi-agent", "chat"], prompt="hi")
        run.finish("ok", 0)
        assert s.get_run("last").prompt == "hi"


# ---------------------------------------------------------------- runs
def test_full_run_round_trip(store: RunStore, clock: FakeClock) -> None:
    run = store.start_run("chat", ["vapi-agent", "chat", "--json"], prompt="How many calls failed yesterday?")
    clock.advance(seconds=1)
    assert run.add_message("user", "How many calls failed yesterday?") == 1
    clock.advance(seconds=1)
    seq = run.add_tool_call("list_calls", {"limit": 50, "status": "ended"}, True, "policy:read", "read", duration=0.25)
    assert seq == 2
    run.add_wait("Truto (vapi)", 2.5)
    run.add_tool_call("delete_call", {"id": "c1"}, False, None, "destructive", error="refused by --read-only")
    run.add_message("assistant", {"role": "assistant", "content": "3 calls failed."})
    clock.advance(seconds=10)
    usage = {
        "model_calls": 2,
        "input_tokens": 900,
        "output_tokens": 40,
        "cost_usd": 0.0021,
        "tool_calls": 2,
        "rate_limit_waits": 1,
        "wait_seconds": 2.5,
    }
    run.finish("partial", 0, {"failed": 3}, usage, errors=[{"code": "approval_required", "message": "refused"}])

    got = store.get_run(run.id)
    assert (got.workflow, got.status, got.exit_code) == ("chat", "partial", 0)
    assert (got.result, got.usage) == ({"failed": 3}, usage)
    assert got.started_at == "2025-03-01T12:00:00.000000Z"
    assert got.ended_at == "2025-03-01T12:00:12.000000Z"
    assert got.duration == pytest.approx(12.0)
    assert got.argv == ["vapi-agent", "chat", "--json"]
    assert got.pid == os.getpid()
    assert [(m.seq, m.role) for m in got.messages] == [(1, "user"), (5, "assistant")]
    assert got.messages[1].content == {"role": "assistant", "content": "3 calls failed."}
    first, second = got.tool_calls
    assert (first.seq, first.name, first.arguments, first.ok, first.approved_by, first.access, first.duration) == (
        2,
        "list_calls",
        {"limit": 50, "status": "ended"},
        True,
        "policy:read",
        "read",
        0.25,
    )
    assert (second.ok, second.error, second.access) == (False, "refused by --read-only", "destructive")
    assert [(w.seq, w.upstream, w.seconds) for w in got.waits] == [(3, "Truto (vapi)", 2.5)]

    detail = run_detail(got)
    assert json.loads(json.dumps(detail)) == detail  # JSON-ready
    assert detail["command"] == "vapi-agent chat --json"
    assert [c["name"] for c in detail["tool_calls"]] == ["list_calls", "delete_call"]
    assert detail["errors"] == [{"code": "approval_required", "message": "refused"}]

    lines = run_transcript_lines(got)
    body = [line for line in lines if line[:2] in ("[u", "->", "..", "[a")]
    assert body == [
        "[user] How many calls failed yesterday?",
        '-> list_calls({"limit":50,"status":"ended"}) ok [read, approved by policy:read, 250ms]',
        ".. waited 2.5s for Truto (vapi) (rate limit)",
        '-> delete_call({"id":"c1"}) failed: refused by --read-only [destructive]',
        "[assistant] 3 calls failed.",
    ]
    assert lines[-1] == "error   refused"

    (row,) = runs_table_rows(store.list_runs())
    assert tuple(row) == RUNS_TABLE_COLUMNS
    assert row == {
        "id": run.id[:8],
        "started": "2025-03-01 12:00:00Z",
        "workflow": "chat",
        "status": "partial",
        "duration": "12.0s",
        "tools": "2",
        "cost": "$0.0021",
        "summary": "How many calls failed yesterday?",
    }
    header = run_detail(store.list_runs()[0])
    assert "messages" not in header and header["id"] == run.id


def test_handle_as_context_manager_records_errors(store: RunStore) -> None:
    with pytest.raises(ConfigError), store.start_run("campaign", ["vapi-agent", "campaign"]) as run:
        run.add_message("user", "go")
        raise ConfigError("bad CSV row 3", hint="fix the phone number")
    got = store.get_run(run.id)
    assert (got.status, got.exit_code) == ("error", 2)
    assert got.errors == [{"code": "config", "message": "bad CSV row 3 (fix the phone number)"}]
    with store.start_run("report", ["vapi-agent", "report"]) as ok_run:
        pass
    assert (store.get_run(ok_run.id).status, store.get_run(ok_run.id).exit_code) == ("ok", 0)
    with pytest.raises(ValueError, match="status"):
        ok_run.finish("done", 0)


def test_list_runs_orders_filters_and_limits(store: RunStore, clock: FakeClock) -> None:
    ids = []
    for i, workflow in enumerate(["qa-grade", "chat", "qa-grade", "report"]):
        run = store.start_run(workflow, ["vapi-agent", workflow])
        run.finish("error" if i == 2 else "ok", 3 if i == 2 else 0)
        ids.append(run.id)
        clock.advance(minutes=1)
    assert [r.id for r in store.list_runs()] == ids[::-1]
    assert [r.id for r in store.list_runs(limit=2)] == ids[:1:-1]
    assert [r.id for r in store.list_runs(workflow="qa-grade")] == [ids[2], ids[0]]
    assert [r.id for r in store.list_runs(status="error")] == [ids[2]]
    assert runs_table_rows(store.list_runs(status="error"))[0]["status"] == "error (3)"
    assert store.get_run("latest").id == ids[3]


def test_prefix_lookup_unique_ambiguous_unknown(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    _fixed_ids(monkeypatch, "abcd1111" + "0" * 24, "abcd2222" + "0" * 24, "ffff0000" + "0" * 24)
    a, b, c = (store.start_run("chat", ["vapi-agent"]) for _ in range(3))
    assert store.get_run("abcd1").id == a.id
    assert store.get_run("ABCD2").id == b.id  # case-insensitive, like hex everywhere
    assert store.get_run(c.id).id == c.id
    with pytest.raises(ConfigError, match="ambiguous") as info:
        store.get_run("abcd")
    assert "abcd1111" in info.value.message and "abcd2222" in info.value.message
    assert info.value.hint == "type more characters of the id"
    with pytest.raises(ConfigError, match="no run id starts with '0123'"):
        store.get_run("0123")
    for bad in ("", "zz", "abcd%", "a" * 33):
        with pytest.raises(ConfigError, match="not a run id"):
            store.get_run(bad)


def test_last_on_empty_store_is_a_config_error(store: RunStore) -> None:
    with pytest.raises(ConfigError, match="no runs"):
        store.get_run("last")


# ---------------------------------------------------------------- prune and ages
def test_prune_removes_old_runs_and_checkpoints_only(tmp_path: Path, store: RunStore, clock: FakeClock) -> None:
    def run_at(day: int, finish: bool = True) -> str:
        clock.current = T0 + timedelta(days=day)
        run = store.start_run("qa-grade", ["vapi-agent", "qa-grade"])
        run.add_message("user", f"day {day}")
        run.add_tool_call("list_calls", {}, True, None, "read")
        run.add_wait("sandbox", 1.0)
        if finish:
            clock.advance(hours=1)
            run.finish("ok", 0)
        return run.id

    old, stale_unfinished, recent = run_at(0), run_at(1, finish=False), run_at(40)
    clock.current = T0 + timedelta(days=5)
    store.checkpoint_put("job", "old-item", {"grade": 1})
    clock.current = T0 + timedelta(days=30)
    store.checkpoint_put("job", "young-item", {"grade": 2})
    clock.current = T0 + timedelta(days=45)

    assert store.prune(parse_age("30d")) == 2  # cutoff: day 15
    assert [r.id for r in store.list_runs()] == [recent]
    for gone in (old, stale_unfinished):
        with pytest.raises(ConfigError):
            store.get_run(gone)
    db = tmp_path / "runs.sqlite3"
    assert [_count(db, t) for t in ("messages", "tool_calls", "waits")] == [1, 1, 1]
    assert store.checkpoints("job") == {"young-item": {"grade": 2}}
    assert store.prune(timedelta(days=30)) == 0
    with pytest.raises(ConfigError):
        store.prune(timedelta(days=-1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("45s", timedelta(seconds=45)),
        (" 1d12h ", timedelta(days=1, hours=12)),
        ("0d", timedelta(0)),
        ("7D", timedelta(days=7)),
    ],
)
def test_parse_age_accepts(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "-1d", "1.5d", "3 days", "10y", "1d-2h", "9" * 30 + "w"])
def test_parse_age_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_age(text)


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (None, 0.25, 12.34, 245, 7380)] == ["", "250ms", "12.3s", "4m05s", "2h03m"]


# ---------------------------------------------------------------- checkpoints
def test_checkpoints_are_shared_between_store_instances(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "runs.sqlite3"
    with RunStore(path, now=clock) as writer, RunStore(path, now=clock) as reader:
        assert reader.checkpoint_get("qa:abc", "call-1") is None
        assert reader.checkpoint_get("qa:abc", "call-1", default="missing") == "missing"
        writer.checkpoint_put("qa:abc", "call-1", {"score": 4, "pass": True})
        writer.checkpoint_put_many("qa:abc", {"call-2": {"score": 2}, "call-3": None})
        writer.checkpoint_put("other", "call-1", [1, 2])
        assert reader.checkpoint_get("qa:abc", "call-1") == {"score": 4, "pass": True}
        assert reader.checkpoints("qa:abc") == {
            "call-1": {"score": 4, "pass": True},
            "call-2": {"score": 2},
            "call-3": None,
        }
        writer.checkpoint_put("qa:abc", "call-2", {"score": 5})  # overwrite, not duplicate
        assert reader.checkpoint_get("qa:abc", "call-2") == {"score": 5}
        assert reader.checkpoint_clear("qa:abc") == 3
        assert writer.checkpoints("qa:abc") == {}
        assert writer.checkpoints("other") == {"call-1": [1, 2]}


# ---------------------------------------------------------------- concurrency
WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agent.store import RunStore
    path, name, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    while not go.exists():
        time.sleep(0.005)
    store = RunStore(path)  # a fresh file: both processes race to create and migrate it
    for i in range(count):
        run = store.start_run("campaign", ["vapi-agent", name, str(i)])
        run.add_message("user", f"{name} {i}")
        run.add_tool_call("create_call", {"i": i}, True, "--yes", "write", duration=0.01)
        store.checkpoint_put("campaign:shared", f"{name}-{i}", {"i": i})
        run.finish("ok", 0, {"i": i}, {"tool_calls": 1})
    store.close()
    """
)


def test_two_processes_write_concurrently(tmp_path: Path) -> None:
    path, go, count = tmp_path / "data" / "runs.sqlite3", tmp_path / "go", 300
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), name, str(count), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("alpha", "beta")
    ]
    time.sleep(0.3)  # both interpreters are importing; release them together
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err
    with RunStore(path) as s:
        runs = s.list_runs(limit=None)
        assert len(runs) == 2 * count and all(r.status == "ok" for r in runs)
        assert len(s.checkpoints("campaign:shared")) == 2 * count
    assert _count(path, "messages") == _count(path, "tool_calls") == 2 * count


def test_threads_share_one_store(store: RunStore) -> None:
    run = store.start_run("chat", ["vapi-agent", "chat"])

    def work(k: int) -> None:
        for i in range(25):
            run.add_tool_call("get_call", {"k": k, "i": i}, True, None, "read")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [c.seq for c in store.get_run(run.id).tool_calls]
    assert seqs == list(range(1, 101))


# ---------------------------------------------------------------- privacy
def test_file_and_directory_permissions(tmp_path: Path, umask_zero: None) -> None:
    path = tmp_path / "private" / "runs.sqlite3"
    with RunStore(path) as s:
        s.start_run("chat", ["vapi-agent"]).add_message("user", "hi")  # something in the WAL
        wal = Path(str(path) + "-wal")
        assert wal.exists()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(str(path) + "-shm").stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loose = tmp_path / "loose.sqlite3"
    loose.touch(mode=0o644)
    RunStore(loose).close()
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600


SENTINELS = ("sk-live-SENTINEL-0001", "SIGSENTINEL0002", "MCPTOKENSENTINEL0003", "BEARERSENTINEL0004")


def test_sentinel_secrets_never_reach_the_database(tmp_path: Path, clock: FakeClock) -> None:
    api_key, signature, mcp_token, bearer = SENTINELS
    register_secret(api_key)
    presigned = f"https://bucket.s3.amazonaws.com/rec.wav?X-Amz-Expires=60&X-Amz-Signature={signature}"
    mcp_url = f"https://api.truto.one/mcp/{mcp_token}"
    path = tmp_path / "runs.sqlite3"
    store = RunStore(path, now=clock)
    run = store.start_run("chat", ["vapi-agent", "--mcp-url", mcp_url, f"--key={api_key}"], prompt=f"use {api_key}")
    run.add_message("user", {"content": f"fetch {presigned}", api_key: "as a key"})
    run.add_message("tool", [{"type": "text", "text": f"Authorization: Bearer {bearer}"}])
    run.add_tool_call(
        f"tool_{api_key}",
        {"url": presigned, "headers": {"Authorization": f"Bearer {bearer}"}, "path": Path(f"/tmp/{api_key}")},
        False,
        f"user {api_key}",
        "read",
        error=f"401 from {mcp_url}",
    )
    run.add_wait(f"truto {mcp_url}", 1.0)
    store.checkpoint_put(f"job-{api_key}", f"item-{api_key}", {"recording": presigned})
    run.finish("error", 3, {"url": presigned}, {"cost_usd": 0.1}, errors=[{"message": f"bad key {api_key}"}])

    files = [p for p in tmp_path.iterdir() if p.name.startswith("runs.sqlite3")]
    assert {p.name for p in files} >= {"runs.sqlite3", "runs.sqlite3-wal"}
    detail = json.dumps(run_detail(store.get_run(run.id)))
    assert detail.count("***") >= 10  # the data was written, masked
    for blob in [*(p.read_bytes() for p in files), detail.encode()]:
        for sentinel in SENTINELS:
            assert sentinel.encode() not in blob
    store.close()  # the WAL is folded into the main file on close: check that too
    for p in tmp_path.iterdir():
        if p.name.startswith("runs.sqlite3"):
            for sentinel in SENTINELS:
                assert sentinel.encode() not in p.read_bytes()


# ---------------------------------------------------------------- paths
@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No overrides; HOME in tmp_path so that nothing touches the real home."""
    for var in (
        "VAPI_AGENT_DATA_DIR",
        "VAPI_AGENT_STATE_DIR",
        "VAPI_AGENT_CACHE_DIR",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "XDG_CACHE_HOME",
    ):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.mark.skipif(sys.platform != "linux", reason="XDG layout is the Linux default")
def test_xdg_dirs_are_honoured(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_zero: None
) -> None:
    assert data_dir(create=False) == clean_env / ".local" / "share" / "vapi-agent"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    assert data_dir() == tmp_path / "xdg-data" / "vapi-agent"
    assert state_dir() == tmp_path / "xdg-state" / "vapi-agent"
    assert cache_dir() == tmp_path / "xdg-cache" / "vapi-agent"
    for d in (data_dir(), state_dir(), cache_dir()):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert default_store_path() == tmp_path / "xdg-data" / "vapi-agent" / "runs.sqlite3"
    with RunStore() as s:
        assert s.path == default_store_path()
    assert (tmp_path / "xdg-data" / "vapi-agent" / "runs.sqlite3").exists()
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")  # the XDG spec says: ignore relative values
    assert data_dir(create=False) == clean_env / ".local" / "share" / "vapi-agent"


def test_vapi_agent_overrides(clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("VAPI_AGENT_DATA_DIR", str(tmp_path / "mine"))
    assert data_dir() == tmp_path / "mine"
    assert state_dir(create=False) == tmp_path / "mine" / "state"
    assert cache_dir(create=False) == tmp_path / "mine" / "cache"
    monkeypatch.setenv("VAPI_AGENT_CACHE_DIR", str(tmp_path / "cache-elsewhere"))
    assert cache_dir(create=False) == tmp_path / "cache-elsewhere"
    assert not (tmp_path / "xdg-data").exists()


def test_private_dir_despite_umask_and_bad_paths(tmp_path: Path) -> None:
    old = os.umask(0o277)  # would leave mkdir's 0700 as 0500
    try:
        made = ensure_private_dir(tmp_path / "a" / "b")
    finally:
        os.umask(old)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        ensure_private_dir(blocker)
    with pytest.raises(ConfigError, match="cannot create"):
        ensure_private_dir(blocker / "below")


def test_creating_the_log_waits_for_another_opener(tmp_path: Path) -> None:
    # SQLite answers "database is locked" at once (no busy handler) when switching a file to WAL while
    # another connection holds a write lock on it, which is what the first of two runs starting
    # together does while it switches the new file: the second must wait instead of failing.
    path = tmp_path / "runs.sqlite3"
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release_lock() -> None:
        released.set()  # before COMMIT: an opener that finishes after it set had to wait for it
        blocker.execute("COMMIT")

    release = threading.Timer(0.3, release_lock)
    release.start()
    try:
        with RunStore(path, busy_timeout=10) as s:
            s.start_run("chat", ["vapi-agent"]).finish("ok", 0)
        waited = released.is_set()  # read before the join below, which waits for the release anyway
    finally:
        release.join()
        blocker.close()
    assert waited, "the second opener did not wait for the lock"


def test_a_lock_held_past_the_timeout_is_lock_held(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"
    with RunStore(path, busy_timeout=0.2) as s:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process in the middle of a (very long) write
        try:
            with pytest.raises(LockHeld, match="stayed locked") as info:
                s.checkpoint_put("job", "item", 1)
            assert info.value.exit_code == 7
            assert s.checkpoints("job") == {}  # reads are not blocked by a writer under WAL
        finally:
            other.execute("ROLLBACK")
            other.close()
        s.checkpoint_put("job", "item", 1)
        assert s.checkpoints("job") == {"item": 1}


def test_a_version_1_run_log_gains_the_outcome_column(tmp_path: Path) -> None:
    """A run log written before tool-call outcomes were kept is migrated in place; old rows keep None."""
    import sqlite3

    from agent.store.schema import MIGRATIONS

    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0][1]:
        old.execute(statement)
    old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    old.execute("INSERT INTO schema_version (version) VALUES (1)")
    old.execute("INSERT INTO runs (id, workflow, started_at) VALUES ('ab' || hex(randomblob(15)), 'ask', '2026')")
    run_id = old.execute("SELECT id FROM runs").fetchone()[0]
    old.execute("INSERT INTO tool_calls (run_id, seq, name, arguments, ok, at) VALUES (?, 1, 't', '{}', 1, '2026')",
                (run_id,))
    old.close()
    with RunStore(path) as store:
        run = store.get_run(run_id)
        assert run.tool_calls[0].outcome is None
        handle = RunHandle(store, run_id, "ask", started_at=T0)
        handle.add_tool_call("create_a_vapi_campaign", {}, False, "yes", "write", "cut", outcome="cancelled")
        assert [c.outcome for c in store.get_run(run_id).tool_calls] == [None, "cancelled"]
