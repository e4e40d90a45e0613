"""``schedule run``: the schedule's entries fired in the foreground, for containers with no cron daemon.

Each entry runs exactly as cron would run it: the same command, environment file and log file,
in its own process (a long job never delays another entry). Missed runs are skipped, not caught
up: when the runner wakes more than ``grace`` seconds after an entry's time (the machine slept, the
clock jumped), that time is reported as missed and the entry waits for its next one. Clock, sleep
and process launch are injectable, so tests fire jobs at a chosen time without waiting for it.

A finished job is reported when it finishes: each started process has a watcher (a daemon thread
blocked in ``wait()``, so a job still running never holds the runner's exit) that wakes the
runner from its nap. An entry whose expression never fires (30 February, saved by an older
version) is reported once and left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from workflows.schedule.schedules import Entry, ScheduleStore, executable, next_fire, upcoming

MAX_NAP = 60.0  # seconds: sleep in short naps, so a jump of the wall clock is noticed soon


@dataclass
class Fired:
    """One run started (or skipped) by the runner."""

    name: str
    scheduled_for: str
    started_at: str | None = None
    pid: int | None = None
    exit_code: int | None = None
    skipped: int = 0  # missed times skipped (then nothing was started)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


def launch_entry(entry: Entry, store: ScheduleStore, program: Sequence[str] | None = None) -> subprocess.Popen[bytes]:
    """Start one entry like its crontab line does: its environment file, its cwd, output to its log."""
    env = {**os.environ, **store.read_env(entry.name)}
    log_path = store.log_path(entry.name)
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "ab") as log:
        return subprocess.Popen([*(program or executable()), *entry.argv], cwd=entry.cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


@dataclass
class Runner:
    """Fires entries at their cron times (see the module docstring)."""

    entries: Sequence[Entry]
    launch: Callable[[Entry], Any]
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    zone: tzinfo | None = None  # None: the machine's local time, like the cron daemon
    grace: float = 60.0
    notice: Callable[[str], None] = lambda message: None
    fired: list[Fired] = field(default_factory=list)
    _running: list[tuple[Fired, Any]] = field(default_factory=list)
    _woken: asyncio.Event = field(default_factory=asyncio.Event)  # set when a started job exits

    def _at(self, epoch: float) -> datetime:
        moment = datetime.fromtimestamp(epoch).astimezone() if self.zone is None else \
            datetime.fromtimestamp(epoch, tz=self.zone)
        return moment

    def _next(self, entry: Entry, after: float) -> float:
        return next_fire(entry.cron, self._at(after)).timestamp()

    def _missed(self, entry: Entry, since: float, now: float) -> int:
        count, at = 0, since
        while at <= now and count < 10_000:
            count += 1
            at = self._next(entry, at)
        return count

    def reap(self) -> None:
        """Record the exit codes of finished runs."""
        still = []
        for record, process in self._running:
            code = process.poll()
            if code is None:
                still.append((record, process))
            else:
                record.exit_code = code
                self.notice(f"{record.name}: finished with exit code {code}")
        self._running = still

    def _watch(self, process: Any) -> None:
        """Wake the runner when ``process`` exits (processes without ``wait`` are only polled)."""
        wait = getattr(process, "wait", None)
        if wait is None:
            return
        loop, woken = asyncio.get_running_loop(), self._woken

        def watch() -> None:
            wait()
            with contextlib.suppress(RuntimeError):  # the runner's loop is gone: nobody is left to tell
                loop.call_soon_threadsafe(woken.set)

        threading.Thread(target=watch, name=f"schedule-watch-{getattr(process, 'pid', '?')}", daemon=True).start()

    async def _nap(self, seconds: float) -> None:
        """Sleep ``seconds`` (injected sleep), or less when a job finishes meanwhile."""
        nap, woken = asyncio.ensure_future(self.sleep(seconds)), asyncio.ensure_future(self._woken.wait())
        try:
            await asyncio.wait((nap, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (nap, woken):
                task.cancel()
            await asyncio.gather(nap, woken, return_exceptions=True)

    @property
    def running(self) -> list[Any]:
        """Processes started and not yet reaped."""
        return [process for _, process in self._running]

    async def run(self, *, max_fires: int | None = None, until: float | None = None) -> list[Fired]:
        """Fire entries until ``max_fires`` runs started or the clock passes ``until`` (else forever)."""
        now = self.clock()
        entries = []
        for entry in self.entries:
            if upcoming(entry.cron, self._at(now)) is None:
                self.notice(f"{entry.name}: {entry.cron!r} never fires; remove it with `schedule remove`")
            else:
                entries.append(entry)
        if not entries:
            return self.fired
        due = {entry.name: self._next(entry, now) for entry in entries}
        started = 0
        while True:
            self._woken.clear()  # before reaping: a job ending after this point cuts the next nap short
            self.reap()
            if until is not None and now >= until:
                return self.fired
            wake = min(due.values())
            if until is not None:
                wake = min(wake, until)
            if wake > now:
                await self._nap(min(wake - now, MAX_NAP))
                now = self.clock()
            for entry in entries:
                at = due[entry.name]
                if at > now:
                    continue
                when = self._at(at).isoformat()
                if now - at <= self.grace:
                    process = self.launch(entry)
                    record = Fired(entry.name, when, self._at(now).isoformat(), getattr(process, "pid", None))
                    self._running.append((record, process))
                    self._watch(process)
                    self.notice(f"{entry.name}: started (scheduled for {when})")
                    started += 1
                else:
                    record = Fired(entry.name, when, skipped=self._missed(entry, at, now))
                    self.notice(f"{entry.name}: skipped {record.skipped} missed run(s) since {when}")
                self.fired.append(record)
                due[entry.name] = self._next(entry, now)
                if max_fires is not None and started >= max_fires:
                    return self.fired
