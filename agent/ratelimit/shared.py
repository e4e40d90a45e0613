"""Rate-limit windows shared by every vapi-agent process on one machine (a small SQLite store).

Two processes hitting the same org (a cron ``report`` overlapping an interactive ``qa-grade``) each have
their own ``Governor``; alone, each would spend the whole window. ``SharedWindows`` keeps, per upstream,
what all of them know and have spent in the current window, in one row of
``<state dir>/ratelimit.sqlite3`` updated under SQLite's write lock (``BEGIN IMMEDIATE``), so together
they stay within the limit:

* ``reserve(key, now)``: take one request of the window, or learn until when to wait (a window used up,
  or a 429's reset); a window whose end has passed starts afresh;
* ``observe(key, ...)``: fold an answer in: ``ratelimit-limit/-remaining/-reset`` (spent = limit -
  remaining, the window's end = receipt + reset: reset is rounded up, so the estimate is never early),
  and a 429 blocks everyone until its reset.

Times are wall-clock epoch seconds (processes share no monotonic clock). The key is the upstream's
display name plus a hash of its internal key (``shared_key``): the token in a Truto URL never reaches the
file. ``VAPI_AGENT_SHARED_RATE_LIMITS=0`` turns sharing off (each process on its own, as before; the
benchmark's baseline). Any failure of the store (locked too long, unwritable) lets the request go: the
in-process governor still paces it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_OPEN: dict[str, SharedWindows] = {}
_OPEN_LOCK = threading.Lock()
UNKNOWN_END_POLL = 0.05  # a window used up whose end no answer has told yet: look again this soon
_SCHEMA = """
create table if not exists windows (
    key text primary key,
    lim integer,
    window_len real,
    window_end real,
    used integer not null default 0,
    blocked_until real
)
"""


def shared_key(upstream_key: str, display: str) -> str:
    """``display#<sha256 prefix of the internal key>``: stable per upstream, never the token itself."""
    return f"{display}#{hashlib.sha256(upstream_key.encode()).hexdigest()[:24]}"


class SharedWindows:
    """The machine-wide window store (see the module docstring). Thread-safe; one connection per instance."""

    def __init__(self, path: Path | str, *, busy_timeout: float = 2.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None  # opened by the first request: a run refused before any
        # traffic leaves no file behind

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            from agent.paths import ensure_private_dir

            ensure_private_dir(self.path.parent)
            db = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                 check_same_thread=False)
            with contextlib.suppress(OSError):
                self.path.chmod(0o600)
            db.execute("pragma journal_mode=wal")
            db.execute("pragma synchronous=normal")
            db.execute(_SCHEMA)
            self._db = db
        return self._db

    @classmethod
    def default(cls) -> SharedWindows | None:
        """The store in the user's state dir (one per process and path), or None when it cannot be opened."""
        import os

        from agent.paths import state_dir

        if os.environ.get("VAPI_AGENT_SHARED_RATE_LIMITS", "").strip() == "0":
            return None
        try:
            path = state_dir(create=False) / "ratelimit.sqlite3"
            with _OPEN_LOCK:
                store = _OPEN.get(str(path))
                if store is None:
                    store = _OPEN[str(path)] = cls(path)
                return store
        except Exception as exc:  # a shared store is an optimisation: never a reason for a run to fail
            log.debug("shared rate-limit store unavailable: %s", exc)
            return None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._connection()
            db.execute("begin immediate")
            try:
                yield db
            except BaseException:
                db.execute("rollback")
                raise
            db.execute("commit")

    def reserve(self, key: str, now: float) -> float | None:
        """Take one request of ``key``'s window at ``now``: None to go, else the epoch time to look again."""
        try:
            with self._transaction() as db:
                row = db.execute("select lim, window_end, used, blocked_until from windows where key = ?",
                                 (key,)).fetchone()
                if row is None:
                    db.execute("insert into windows (key, used) values (?, 1)", (key,))
                    return None
                limit, end, used, blocked = row
                if blocked is not None and now < blocked:
                    return float(blocked)
                if end is not None and now >= end:
                    end, used, blocked = None, 0, None  # the window ended: a fresh one
                if limit is None or used < limit:
                    db.execute("update windows set window_end = ?, used = ?, blocked_until = ? where key = ?",
                               (end, used + 1, blocked, key))
                    return None
                db.execute("update windows set window_end = ?, used = ?, blocked_until = ? where key = ?",
                           (end, used, blocked, key))
                return float(end) if end is not None else now + UNKNOWN_END_POLL
        except sqlite3.Error as exc:
            log.debug("shared rate-limit store: %s", exc)
            return None

    def observe(self, key: str, *, status: int, received: float, limit: int | None, remaining: int | None,
                reset_after: float | None, window: float | None) -> None:
        """Fold one answer (received at epoch ``received``) into ``key``'s window."""
        if status != 429 and limit is None and remaining is None and reset_after is None:
            return  # nothing learnt
        try:
            with self._transaction() as db:
                row = db.execute("select lim, window_len, window_end, used, blocked_until from windows where key = ?",
                                 (key,)).fetchone()
                old_limit, length, end, used, blocked = row if row is not None else (None, None, None, 0, None)
                limit = limit if limit is not None else old_limit
                length = window if window is not None and window > 0 else length
                announced = received + reset_after if reset_after is not None else None
                if status == 429:
                    until = announced if announced is not None else received + 1.0
                    blocked = max(blocked or 0.0, until)
                    end = max(end or 0.0, until) if end is not None and end > received else until
                    used = max(used, limit or used)
                elif announced is not None:
                    # within one window every announcement bounds its end from above: keep the earliest
                    end = announced if end is None or received >= end else min(end, announced)
                if remaining is not None and limit is not None:
                    used = max(used, limit - remaining)
                db.execute("insert into windows (key, lim, window_len, window_end, used, blocked_until) "
                           "values (?, ?, ?, ?, ?, ?) on conflict(key) do update set lim = excluded.lim, "
                           "window_len = excluded.window_len, window_end = excluded.window_end, "
                           "used = excluded.used, blocked_until = excluded.blocked_until",
                           (key, limit, length, end, used, blocked))
        except sqlite3.Error as exc:
            log.debug("shared rate-limit store: %s", exc)
