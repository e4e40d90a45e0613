"""``RunStore``: the SQLite run log (runs, messages, tool calls, waits) and workflow checkpoints.

Every value is redacted before it is written (``records.encode`` / ``records.text``), so a secret
never reaches the database file or its WAL. One connection per store, guarded by a lock so that
threads (``asyncio.to_thread``, executor-run workflows) may share a store; separate processes share
the file through SQLite's own locking (see ``schema``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from agent.errors import AgentError, ConfigError
from agent.paths import data_dir
from agent.store.records import (
    RUN_COLUMNS,
    RUN_STATUSES,
    RUNNING,
    MessageRecord,
    RunRecord,
    ToolCallRecord,
    WaitRecord,
    decode,
    encode,
    run_from_row,
    text,
)
from agent.store.schema import MEMORY, connect, is_busy, locked_error, write_transaction
from agent.store.timeutil import Clock, as_utc, to_iso, utc_now

log = logging.getLogger(__name__)

STORE_FILENAME = "runs.sqlite3"
_HEX_PREFIX = re.compile(r"[0-9a-f]{1,32}")
_LATEST = ("last", "latest")
_AMBIGUITY_SHOWN = 5
_NEXT_SEQ = (
    "SELECT COALESCE(MAX(s), 0) + 1 FROM ("
    "SELECT MAX(seq) AS s FROM messages WHERE run_id = ?"
    " UNION ALL SELECT MAX(seq) FROM tool_calls WHERE run_id = ?"
    " UNION ALL SELECT MAX(seq) FROM waits WHERE run_id = ?)"
)


def default_store_path() -> Path:
    """``data_dir()/runs.sqlite3`` (the data dir honours ``VAPI_AGENT_DATA_DIR`` and ``XDG_DATA_HOME``)."""
    return data_dir() / STORE_FILENAME


class RunStore:
    """The run log and checkpoint store in one SQLite file (``:memory:`` for a throwaway one)."""

    def __init__(self, path: Path | str | None = None, *, now: Clock | None = None, busy_timeout: float = 30.0) -> None:
        """Open or create the store at ``path`` (default ``default_store_path()``); ``now`` is the clock."""
        self.path: Path | str = (
            MEMORY if str(path) == MEMORY else Path(path) if path is not None else default_store_path()
        )
        self._now: Clock = now or utc_now
        self._lock = threading.RLock()
        self._busy_timeout = busy_timeout
        self._batching = False
        self._conn = connect(self.path, busy_timeout=busy_timeout)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> RunStore:
        """Use the store as a context manager that closes it."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the store."""
        self.close()

    @contextlib.contextmanager
    def as_of(self, moment: datetime) -> Iterator[None]:
        """Record the writes inside the block as made at ``moment`` (queued writes keep the time they were made)."""
        clock = self._now
        self._now = lambda: moment
        try:
            yield
        finally:
            self._now = clock

    def now(self) -> datetime:
        """The store clock's current time."""
        return self._now()

    def now_iso(self) -> str:
        """The store clock's current time as the fixed-width UTC text stored in every ``*_at`` column."""
        return to_iso(self._now())

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes made inside the block into one transaction (the background writer's batches)."""
        with self._write():
            self._batching = True
            try:
                yield
            finally:
                self._batching = False

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self._batching:  # inside batch(): already in a write transaction, on the thread holding the lock
            with self._lock:
                yield self._conn
            return
        try:
            with self._lock, write_transaction(self._conn) as conn:
                yield conn
        except sqlite3.OperationalError as exc:
            # Only after busy_timeout of waiting: report it through the error tree, not as a crash.
            if is_busy(exc):
                raise locked_error(self.path, self._busy_timeout) from None
            raise

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        # Several SELECTs that must agree (a run and its children) share one read transaction.
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    # ------------------------------------------------------------------ runs
    def start_run(self, workflow: str, argv: Sequence[str], prompt: str | None = None, *, run_id: str | None = None,
                  started: datetime | None = None) -> RunHandle:
        """Record the start of a run (status ``running``) and return the handle that logs into it.

        ``run_id`` and ``started`` are given when the run was opened earlier elsewhere (the background writer).
        """
        run_id = run_id or uuid.uuid4().hex
        started = started or self._now()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO runs (id, workflow, argv, prompt, started_at, status, pid) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, text(workflow), encode(list(argv)), text(prompt), to_iso(started), RUNNING, os.getpid()),
            )
        return RunHandle(self, run_id, workflow, started_at=started)

    def get_run(self, prefix: str) -> RunRecord:
        """The run whose id starts with ``prefix`` (or ``last``), with its messages, tool calls and waits.

        An unknown, ambiguous or malformed prefix is a ConfigError that says what to type instead.
        """
        wanted = (prefix or "").strip().lower()
        with self._snapshot() as conn:
            row = self._resolve(conn, prefix, wanted)
            run = run_from_row(row)
            messages = tuple(
                MessageRecord(seq, role, decode(content), at)
                for seq, role, content, at in conn.execute(
                    "SELECT seq, role, content, at FROM messages WHERE run_id = ? ORDER BY seq", (run.id,)
                )
            )
            tool_calls = tuple(
                ToolCallRecord(seq, name, decode(args), bool(ok), approved_by, access, error, duration, at, outcome)
                for seq, name, args, ok, approved_by, access, error, duration, at, outcome in conn.execute(
                    "SELECT seq, name, arguments, ok, approved_by, access, error, duration, at, outcome"
                    " FROM tool_calls WHERE run_id = ? ORDER BY seq",
                    (run.id,),
                )
            )
            waits = tuple(
                WaitRecord(seq, upstream, seconds, at)
                for seq, upstream, seconds, at in conn.execute(
                    "SELECT seq, upstream, seconds, at FROM waits WHERE run_id = ? ORDER BY seq", (run.id,)
                )
            )
        return dataclasses.replace(run, messages=messages, tool_calls=tool_calls, waits=waits, detailed=True)

    @staticmethod
    def _resolve(conn: sqlite3.Connection, prefix: str, wanted: str) -> tuple[Any, ...]:
        if wanted in _LATEST:
            row = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise ConfigError("no runs are recorded yet", hint="run a command first, then `vapi-agent logs`")
            return tuple(row)
        if not _HEX_PREFIX.fullmatch(wanted):
            raise ConfigError(
                f"{prefix!r} is not a run id", hint="run ids are hex digits (a prefix is enough); see `vapi-agent logs`"
            )
        # Hex ids only, so the prefix holds no LIKE wildcard; fetch one more than we show to detect ambiguity.
        rows = conn.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE id LIKE ? ORDER BY started_at DESC LIMIT ?",
            (wanted + "%", _AMBIGUITY_SHOWN + 1),
        ).fetchall()
        if not rows:
            raise ConfigError(f"no run id starts with {wanted!r}", hint="list recent runs with `vapi-agent logs`")
        if len(rows) > 1:
            shown = ", ".join(r[0][: max(len(wanted) + 4, 8)] for r in rows[:_AMBIGUITY_SHOWN])
            more = ", ..." if len(rows) > _AMBIGUITY_SHOWN else ""
            raise ConfigError(
                f"run id prefix {wanted!r} is ambiguous: it matches {shown}{more}",
                hint="type more characters of the id",
            )
        return tuple(rows[0])

    def list_runs(
        self, limit: int | None = 20, workflow: str | None = None, status: str | None = None
    ) -> list[RunRecord]:
        """The most recent runs first (without their messages), optionally of one workflow or status."""
        where, params = [], []
        if workflow:
            where.append("workflow = ?")
            params.append(workflow)
        if status:
            where.append("status = ?")
            params.append(status)
        sql = f"SELECT {RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, rowid DESC"
        if limit is not None and limit > 0:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [run_from_row(row) for row in rows]

    def prune(self, older_than: timedelta, *, checkpoints: bool = True) -> int:
        """Delete runs (and their rows) that ended before ``now - older_than``; returns how many runs went.

        A run that never finished counts from its start. Checkpoints last updated before the same
        cutoff go too (unless ``checkpoints=False``); younger checkpoints are never touched, so a
        workflow resumed within the window keeps its finished items.
        """
        if older_than < timedelta(0):
            raise ConfigError("the prune age must not be negative", hint="use e.g. --older-than 30d")
        cutoff = to_iso(self._now() - older_than)
        old = "SELECT id FROM runs WHERE COALESCE(ended_at, started_at) < ?"
        with self._write() as conn:
            # Children explicitly (not only ON DELETE CASCADE), so a connection without foreign_keys still prunes.
            for table in ("messages", "tool_calls", "waits"):
                conn.execute(f"DELETE FROM {table} WHERE run_id IN ({old})", (cutoff,))
            removed = conn.execute("DELETE FROM runs WHERE COALESCE(ended_at, started_at) < ?", (cutoff,)).rowcount
            stale = (
                conn.execute("DELETE FROM checkpoints WHERE updated_at < ?", (cutoff,)).rowcount if checkpoints else 0
            )
        log.info("pruned %d runs and %d checkpoints older than %s", removed, stale, cutoff)
        self._checkpoint_wal()
        return int(removed)

    def _checkpoint_wal(self) -> None:
        # Fold the WAL back into the main file so deleted text does not linger in the -wal file. Best
        # effort: another process reading keeps part of the WAL alive, which is harmless.
        if self.path == MEMORY:
            return
        with self._lock, contextlib.suppress(sqlite3.OperationalError):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # ------------------------------------------------------------------ checkpoints (workflows)
    def checkpoint_put(self, job: str, item: str, value: Any) -> None:
        """Store (or replace) the JSON ``value`` of ``item`` in ``job``'s checkpoints."""
        self.checkpoint_put_many(job, {item: value})

    def checkpoint_put_many(self, job: str, values: Mapping[str, Any]) -> None:
        """Store several items of ``job`` in one transaction."""
        now = self.now_iso()
        rows = [(text(job), text(item), encode(value), now) for item, value in values.items()]
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO checkpoints (job, item, value, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (job, item) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                rows,
            )

    def checkpoint_get(self, job: str, item: str, default: Any = None) -> Any:
        """The stored value of ``item`` in ``job``, or ``default`` when there is none."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM checkpoints WHERE job = ? AND item = ?", (text(job), text(item))
            ).fetchone()
        return default if row is None else decode(row[0])

    def checkpoints(self, job: str) -> dict[str, Any]:
        """Every item of ``job`` with its value (empty when the job has none)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT item, value FROM checkpoints WHERE job = ? ORDER BY item", (text(job),)
            ).fetchall()
        return {item: decode(value) for item, value in rows}

    def checkpoint_clear(self, job: str) -> int:
        """Forget every checkpoint of ``job`` (``--fresh``); returns how many items were removed."""
        with self._write() as conn:
            return int(conn.execute("DELETE FROM checkpoints WHERE job = ?", (text(job),)).rowcount)


class RunHandle:
    """Logs one run into its store: messages, tool calls, waits, then ``finish``.

    Also a context manager: leaving the block without ``finish`` records ``ok`` (exit 0), or
    ``error`` with the exception's exit code and a redacted error entry.
    """

    def __init__(self, store: RunStore, run_id: str, workflow: str, *, started_at: datetime) -> None:
        """Bind a handle to an existing ``runs`` row (``RunStore.start_run`` creates both)."""
        self.store = store
        self.id = run_id
        self.workflow = workflow
        self.started_at = started_at
        self.finished = False

    @property
    def short_id(self) -> str:
        """The first 8 hex digits of the id (enough to address the run in ``vapi-agent logs``)."""
        return self.id[:8]

    def _append(self, table: str, columns: str, values: tuple[Any, ...]) -> int:
        # seq is one counter across messages, tool calls and waits, so it orders a run's events even
        # when their timestamps tie; it is allocated inside the IMMEDIATE transaction, so concurrent
        # writers (threads or processes) never collide.
        placeholders = ", ".join("?" for _ in values)
        with self.store._write() as conn:
            row = conn.execute(
                f"INSERT INTO {table} (run_id, seq, {columns}, at) VALUES (?, ({_NEXT_SEQ}), {placeholders}, ?)"
                " RETURNING seq",
                (self.id, self.id, self.id, self.id, *values, self.store.now_iso()),
            ).fetchone()
        return int(row[0])

    def add_message(self, role: str, content: Any) -> int:
        """Log a conversation message (content is any JSON value, redacted); returns its sequence number."""
        return self._append("messages", "role, content", (text(role), encode(content)))

    def add_tool_call(
        self,
        name: str,
        arguments: Any,
        ok: bool,
        approved_by: str | None,
        access: str | None,
        error: str | None = None,
        duration: float | None = None,
        outcome: str | None = None,
    ) -> int:
        """Log a tool call: redacted arguments, success, who approved it, its access class, error, seconds and
        outcome (ok | error | refused | cancelled; by default ok or error from ``ok``)."""
        outcome = outcome or ("ok" if ok else "error")
        return self._append(
            "tool_calls",
            "name, arguments, ok, approved_by, access, error, duration, outcome",
            (text(name), encode(arguments), int(bool(ok)), text(approved_by), text(access), text(error), duration,
             text(outcome)),
        )

    def add_wait(self, upstream: str, seconds: float) -> int:
        """Log a rate-limit wait of ``seconds`` caused by ``upstream`` (its display name)."""
        return self._append("waits", "upstream, seconds", (text(upstream), float(seconds)))

    def finish(
        self,
        status: str,
        exit_code: int,
        result: Any = None,
        usage: Mapping[str, Any] | None = None,
        *,
        errors: Sequence[Any] | None = None,
    ) -> None:
        """Record the outcome: status ok|partial|error, exit code, result and usage JSON, errors, duration."""
        if status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {RUN_STATUSES}, not {status!r}")
        ended = self.store._now()
        duration = max(0.0, (as_utc(ended) - as_utc(self.started_at)).total_seconds())
        with self.store._write() as conn:
            conn.execute(
                "UPDATE runs SET ended_at = ?, duration = ?, status = ?, exit_code = ?, result = ?, errors = ?,"
                " usage = ? WHERE id = ?",
                (
                    to_iso(ended),
                    duration,
                    status,
                    int(exit_code),
                    encode(result),
                    encode(list(errors or [])),
                    encode(dict(usage or {})),
                    self.id,
                ),
            )
        self.finished = True

    def __enter__(self) -> RunHandle:
        """Use the handle as a context manager that finishes the run on the way out."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Finish the run if the block did not: ``ok`` without an exception, else ``error``."""
        if self.finished:
            return
        if exc is None:
            self.finish("ok", 0)
            return
        if isinstance(exc, AgentError):
            self.finish("error", exc.exit_code, errors=[exc.to_dict()])
        elif isinstance(exc, KeyboardInterrupt):
            self.finish("error", 130, errors=[{"code": "interrupted", "message": "interrupted by Ctrl-C"}])
        else:
            self.finish("error", 1, errors=[{"code": "internal", "message": f"{type(exc).__name__}: {exc}"}])
