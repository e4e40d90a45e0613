"""One run per job at a time: an advisory file lock keyed by the schedule name or the command line.

Cron may start a job while the previous run still works (a slow upstream, a long rate-limit wait).
The second run must not overlap: it exits 7 at once with a clear message. ``flock`` locks vanish
with the process, so a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from agent.errors import LockHeld

JOB_ENV = "VAPI_AGENT_JOB"  # set by `schedule` for its entries: the lock key is the schedule name


def job_key(argv: Sequence[str]) -> str:
    """The schedule name when run by the scheduler, else the command line."""
    name = os.environ.get(JOB_ENV, "").strip()
    return f"schedule:{name}" if name else "argv:" + "\0".join(argv)


@contextmanager
def job_lock(key: str, *, label: str) -> Iterator[None]:
    """Hold the lock for ``key`` or raise ``LockHeld`` (exit 7) naming the job (``label``)."""
    from agent.paths import state_dir

    folder = state_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock")
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise LockHeld(f"another run of {label} is still running (pid {holder})",
                           hint="wait for it to finish; runs of the same job never overlap") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()
