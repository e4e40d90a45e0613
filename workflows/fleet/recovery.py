"""Recovering the jobs of a dead process: liveness per executor, and DBOS's internal recovery call.

Open-source DBOS does not notice dead executors: a job it had dequeued stays PENDING under that
executor's id until a process *with the same id* launches again, or until someone calls
``DBOS._recover_pending_workflows([ids])`` (an internal API, used by DBOS's own conductor), which puts
them back on their queue (partition kept) for any worker to take. Every process of ours has a unique
executor id and holds a liveness lock while it runs:

- SQLite (one machine): an exclusive ``flock`` on ``<data dir>/fleet-executors/<id>.lock``;
- PostgreSQL (many machines): a session advisory lock on a dedicated connection, released by the
  server when the process dies.

An executor whose lock can be taken is dead; its PENDING jobs are recovered. The underscore call is
isolated here (``recover_executors``) with a test that fails if DBOS renames or changes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import zlib
from pathlib import Path
from typing import Any

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def recover_executors(executor_ids: list[str]) -> list[str]:
    """Re-enqueue the PENDING jobs of these (dead) executors; the ids of the jobs recovered.

    DBOS 3.x internal API: ``DBOS._recover_pending_workflows(executor_ids) -> list[WorkflowHandle]``
    (re-enqueues rows of the caller's application version; idempotent). Needs a launched DBOS.
    """
    from dbos import DBOS

    handles = DBOS._recover_pending_workflows(list(executor_ids))
    return [handle.get_workflow_id() for handle in handles]


def lock_key(executor_id: str) -> int:
    """The advisory lock key of an executor (a signed 32-bit value, as Postgres wants)."""
    return zlib.crc32(f"vapi-agent-fleet:{executor_id}".encode()) - 2**31


class FileLiveness:
    """Executors on one machine: a held ``flock`` per live executor (SQLite mode)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._held: Any = None

    def _path(self, executor_id: str) -> Path:
        return self.folder / f"{_SAFE.sub('_', executor_id)}.lock"

    def hold(self, executor_id: str) -> None:
        """Mark this process's executor alive until ``release`` (or until the process dies)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self._path(executor_id), "a+b")  # noqa: SIM115 - held open for the process's life
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._held = handle

    def release(self) -> None:
        """Drop the lock (and its file)."""
        if self._held is not None:
            path = self._held.name
            self._held.close()
            self._held = None
            with contextlib.suppress(OSError):
                os.unlink(path)

    def dead(self, executor_ids: set[str]) -> list[str]:
        """The executors among these whose lock is free (their process is gone)."""
        found = []
        for executor_id in sorted(executor_ids):
            path = self._path(executor_id)
            try:
                handle = open(path, "a+b")  # noqa: SIM115
            except OSError:
                continue
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue  # held: alive
            handle.close()
            found.append(executor_id)
        return found


class PostgresLiveness:
    """Executors anywhere: a session advisory lock per live executor (PostgreSQL mode)."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self._sa = sa
        self._engine = sa.create_engine(_driver_url(url), poolclass=sa.pool.NullPool)
        self._held: Any = None

    def hold(self, executor_id: str) -> None:
        """Take this executor's lock on a connection kept open for the process's life."""
        connection = self._engine.connect()
        connection.execute(self._sa.text("select pg_advisory_lock(:k)"), {"k": lock_key(executor_id)})
        connection.commit()
        self._held = connection

    def release(self) -> None:
        """Close the lock's connection (the server releases the lock)."""
        if self._held is not None:
            self._held.close()
            self._held = None
        self._engine.dispose()

    def dead(self, executor_ids: set[str]) -> list[str]:
        """The executors among these whose lock nobody holds."""
        found = []
        with self._engine.connect() as connection:
            for executor_id in sorted(executor_ids):
                key = lock_key(executor_id)
                if connection.execute(self._sa.text("select pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                    connection.execute(self._sa.text("select pg_advisory_unlock(:k)"), {"k": key})
                    found.append(executor_id)
            connection.commit()
        return found


def _driver_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
