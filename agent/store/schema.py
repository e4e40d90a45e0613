"""The run log's SQLite schema, its migrations, and how a connection is opened.

Concurrency model (two CLI runs at once, a cron job next to a REPL):
- WAL journal, so readers never block the single writer and the writer never blocks readers;
- autocommit connections (``isolation_level=None``) and explicit ``BEGIN IMMEDIATE`` for every write:
  a deferred transaction that reads first and then writes can fail with SQLITE_BUSY *without* the
  busy handler being consulted (a WAL snapshot upgrade), while IMMEDIATE takes the write lock up front
  and so waits for ``busy_timeout`` like any other lock;
- short transactions (one row or one small batch each).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from agent.errors import ConfigError, LockHeld
from agent.paths import DATA_DIR_ENV, ensure_private_dir

log = logging.getLogger(__name__)

MEMORY = ":memory:"
FILE_MODE = 0o600

# Each migration brings the schema from version N-1 to N. Statements are idempotent (IF NOT EXISTS)
# and a migration runs inside the same IMMEDIATE transaction that reads and bumps the version, so two
# processes opening a fresh file at once cannot both apply it.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE IF NOT EXISTS runs (
                id TEXT PRIMARY KEY,
                workflow TEXT NOT NULL,
                argv TEXT NOT NULL DEFAULT '[]',
                prompt TEXT,
                started_at TEXT NOT NULL,
                ended_at TEXT,
                duration REAL,
                status TEXT NOT NULL DEFAULT 'running',
                exit_code INTEGER,
                result TEXT,
                errors TEXT,
                usage TEXT,
                pid INTEGER
            )""",
            "CREATE INDEX IF NOT EXISTS runs_started ON runs(started_at)",
            "CREATE INDEX IF NOT EXISTS runs_workflow ON runs(workflow, started_at)",
            """CREATE TABLE IF NOT EXISTS messages (
                run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                role TEXT NOT NULL,
                content TEXT NOT NULL,
                at TEXT NOT NULL,
                PRIMARY KEY (run_id, seq)
            )""",
            """CREATE TABLE IF NOT EXISTS tool_calls (
                run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                name TEXT NOT NULL,
                arguments TEXT NOT NULL,
                ok INTEGER NOT NULL,
                approved_by TEXT,
                access TEXT,
                error TEXT,
                duration REAL,
                at TEXT NOT NULL,
                PRIMARY KEY (run_id, seq)
            )""",
            """CREATE TABLE IF NOT EXISTS waits (
                run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                upstream TEXT NOT NULL,
                seconds REAL NOT NULL,
                at TEXT NOT NULL,
                PRIMARY KEY (run_id, seq)
            )""",
            """CREATE TABLE IF NOT EXISTS checkpoints (
                job TEXT NOT NULL,
                item TEXT NOT NULL,
                value TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (job, item)
            )""",
            "CREATE INDEX IF NOT EXISTS checkpoints_updated ON checkpoints(updated_at)",
        ),
    ),
    # Every tool call's outcome: ok | error | refused | cancelled (a cut write carries what became of it).
    (2, ("ALTER TABLE tool_calls ADD COLUMN outcome TEXT",)),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception) on an autocommit connection."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _precreate_private_file(path: Path) -> None:
    """Create the database file with mode 0600 before SQLite does (it would use 0644 minus the umask).

    SQLite gives the -wal and -shm files the mode of the database file, so they are private too.
    An existing file that is readable by others is tightened when we own it.
    """
    ensure_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, FILE_MODE)
    except OSError as exc:
        raise ConfigError(
            f"cannot open run log {path}: {exc.strerror or exc}", hint=f"set {DATA_DIR_ENV} to a writable directory"
        ) from None
    try:
        info = os.fstat(fd)
        if info.st_mode & 0o777 != FILE_MODE and info.st_uid == os.geteuid():
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (SQLITE_BUSY or one of its extended codes)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.OperationalError) and code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


def locked_error(path: Path | str, timeout: float) -> LockHeld:
    """The error for a run log that another process kept locked longer than the busy timeout."""
    return LockHeld(
        f"the run log {path} stayed locked by another process for {timeout:g}s",
        hint="another vapi-agent run is writing to it; retry when it is done",
    )


def _enable_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL (a persistent property of the file, so only its first opener changes it).

    Switching needs an exclusive lock and SQLite reports "database is locked" *at once*, without
    consulting the busy handler, when another connection holds a write lock on it (two runs creating
    the log together). So we retry here, within the same budget as the busy timeout.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
    if str(mode).lower() != "wal":  # e.g. a filesystem without shared memory: still correct, slower
        log.debug("run log journal mode is %s, not wal", mode)


def connect(path: Path | str, *, busy_timeout: float) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the run log at ``path``; ``:memory:`` for a private one."""
    memory = str(path) == MEMORY
    if not memory:
        _precreate_private_file(Path(path))
    try:
        # timeout= is SQLite's busy handler: wait up to that long for another process's lock.
        conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ConfigError(
            f"cannot open run log {path}: {exc}", hint=f"set {DATA_DIR_ENV} to a writable directory"
        ) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if not memory:
            _enable_wal(conn, busy_timeout)
        # NORMAL is durable enough in WAL mode (a power cut may lose the last transaction, never corrupt).
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        # Pruned conversations are overwritten with zeros instead of lingering in free pages.
        conn.execute("PRAGMA secure_delete = ON")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if is_busy(exc):
            raise locked_error(path, busy_timeout) from None
        raise ConfigError(
            f"run log {path} is unusable: {exc}", hint="move the file away; a new one is created on the next run"
        ) from None
    except BaseException:
        conn.close()
        raise
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    """The version recorded in the ``schema_version`` table (0 for a database without one)."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to ``SCHEMA_VERSION`` (a no-op when it is current); returns the version.

    A file written by a newer vapi-agent is refused rather than written with an older idea of the schema.
    """
    if schema_version(conn) == SCHEMA_VERSION:  # the common case: no write lock needed
        return SCHEMA_VERSION
    with write_transaction(conn):
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise ConfigError(
                f"the run log uses schema version {current}, newer than this vapi-agent understands ({SCHEMA_VERSION})",
                hint=f"upgrade vapi-agent, or set {DATA_DIR_ENV} to use another run log",
            )
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                try:
                    conn.execute(statement)
                except sqlite3.OperationalError as exc:
                    # ADD COLUMN has no IF NOT EXISTS: a column already there was added by this same step.
                    if "duplicate column name" not in str(exc):
                        raise
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            current = version
    return current
