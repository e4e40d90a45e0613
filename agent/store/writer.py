"""The run log off the event loop: reads on their own connection, every write queued to one thread.

A command records as it goes (messages, tool calls, waits, checkpoints). Written on the event loop, a
``BEGIN IMMEDIATE`` would wait for another process's lock (up to the busy timeout) and stall every
request in flight. ``BackgroundStore`` takes writes as closures on a queue; one writer thread, with
its own SQLite connection, drains the queue in batches (one transaction each), recording each write
at the time it was made. A locked database therefore delays the log, never a request. Reads
(checkpoints) use a second connection: in WAL mode a reader never waits for a writer.

``close`` writes what is still queued (waiting for a lock as long as the busy timeout) and closes
both connections; the runner calls it once the command has finished.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.store.records import RUN_STATUSES
from agent.store.runs import RunHandle, RunStore

log = logging.getLogger(__name__)

Write = Callable[[RunStore], Any]
_STOP = object()


class BackgroundStore:
    """The run store as the event loop sees it (see the module docstring). Thread-safe."""

    def __init__(self, path: Path | str | None = None, *, busy_timeout: float = 30.0) -> None:
        """Open the store at ``path`` (default ``default_store_path()``) and start the writer thread."""
        self._writer = RunStore(path, busy_timeout=busy_timeout)
        self._reader = RunStore(self._writer.path, busy_timeout=busy_timeout)
        self.path = self._writer.path
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name="vapi-agent-runlog", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ writes (queued)
    def submit(self, write: Write) -> None:
        """Queue ``write(store)``; it runs on the writer thread, as of now. Never blocks."""
        if self._closed:
            log.warning("run log write after close dropped")
            return
        self._queue.put((self._writer.now(), write))

    def start_run(self, workflow: str, argv: Sequence[str], prompt: str | None = None) -> QueuedRun:
        """Open a run record (written in the background) and return the handle that logs into it."""
        run = QueuedRun(self, workflow)
        argv = list(argv)
        self.submit(lambda store: store.start_run(workflow, argv, prompt, run_id=run.id, started=run.started_at))
        return run

    def checkpoint_put(self, job: str, item: str, value: Any) -> None:
        """Store (or replace) a workflow checkpoint, in the background."""
        frozen = copy.deepcopy(value)
        self.submit(lambda store: store.checkpoint_put(job, item, frozen))

    def checkpoint_put_many(self, job: str, values: Mapping[str, Any]) -> None:
        """Store several checkpoints of ``job`` in the background."""
        frozen = copy.deepcopy(dict(values))
        self.submit(lambda store: store.checkpoint_put_many(job, frozen))

    # ------------------------------------------------------------------ reads (own connection)
    def checkpoint_get(self, job: str, item: str, default: Any = None) -> Any:
        """The stored value of ``item`` in ``job`` (what the writer has written so far)."""
        return self._reader.checkpoint_get(job, item, default)

    def checkpoints(self, job: str) -> dict[str, Any]:
        """Every stored item of ``job``."""
        return self._reader.checkpoints(job)

    # ------------------------------------------------------------------ lifecycle
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written (or ``timeout``); True when it was."""
        done = threading.Event()
        self.submit(lambda _store: done.set())
        return done.wait(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, stop the writer and close both connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the run log is still locked; %s entries may be missing", self.path)
        else:
            self._writer.close()
        self._reader.close()

    def _drain(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            writes = [item for item in batch if item is not _STOP]
            if writes:
                self._write(writes)
            if len(writes) < len(batch):
                return

    def _write(self, writes: list[tuple[datetime, Write]]) -> None:
        try:
            with self._writer.batch():
                for moment, write in writes:
                    with self._writer.as_of(moment):
                        write(self._writer)
            return
        except Exception as exc:  # one bad write must not lose the batch: write them one by one
            log.debug("run log batch failed (%s); writing one by one", exc)
        for moment, write in writes:
            try:
                with self._writer.as_of(moment):
                    write(self._writer)
            except Exception as exc:  # the run log is a record, never a reason to fail the command
                log.warning("run log write failed: %s", exc)


class QueuedRun:
    """A run record written through a ``BackgroundStore``: ``RunHandle``'s methods, none of them blocking."""

    def __init__(self, store: BackgroundStore, workflow: str) -> None:
        """A new run id, started now; ``BackgroundStore.start_run`` queues the row itself."""
        self.store = store
        self.id = uuid.uuid4().hex
        self.workflow = workflow
        self.started_at = store._writer.now()
        self.finished = False

    @property
    def short_id(self) -> str:
        """The first 8 hex digits of the id."""
        return self.id[:8]

    def _submit(self, method: str, *args: Any, **kwargs: Any) -> None:
        args, kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)  # later changes by the caller are not the log's

        def write(store: RunStore) -> None:
            getattr(RunHandle(store, self.id, self.workflow, started_at=self.started_at), method)(*args, **kwargs)

        self.store.submit(write)

    def add_message(self, role: str, content: Any) -> None:
        """Log a conversation message."""
        self._submit("add_message", role, content)

    def add_tool_call(self, name: str, arguments: Any, ok: bool, approved_by: str | None, access: str | None,
                      error: str | None = None, duration: float | None = None, outcome: str | None = None) -> None:
        """Log a tool call (``outcome``: ok | error | refused | cancelled)."""
        self._submit("add_tool_call", name, arguments, ok, approved_by, access, error, duration, outcome)

    def add_wait(self, upstream: str, seconds: float) -> None:
        """Log a rate-limit wait."""
        self._submit("add_wait", upstream, seconds)

    def finish(self, status: str, exit_code: int, result: Any = None, usage: Mapping[str, Any] | None = None, *,
               errors: Sequence[Any] | None = None) -> None:
        """Record the outcome (status ok | partial | error)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {RUN_STATUSES}, not {status!r}")
        self.finished = True
        self._submit("finish", status, exit_code, result, usage, errors=errors)
