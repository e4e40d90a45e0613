"""The sandbox clock: real time, optionally sped up, so campaigns move while tests wait little."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


class SandboxClock:
    """Wall-clock time for the simulated workspace.

    ``time_scale`` speeds up the *sandbox* notion of elapsed time (campaign progress) relative to
    ``start`` (the moment the clock was created, unless given: a persisted workspace starts it at its
    anchor so that every process agrees on sandbox time); presigned-link expiry and rate-limit
    windows use real time (``real()``), because clients measure those with their own clocks.
    """

    def __init__(self, time_scale: float = 1.0, real: Callable[[], float] | None = None,
                 start: float | None = None) -> None:
        self.time_scale = time_scale
        self._real = real or time.time  # looked up now, not at import: a process's time can be shifted in tests
        self._start = self._real() if start is None else start

    def real(self) -> float:
        """Unscaled epoch seconds (for link expiry and rate-limit windows)."""
        return self._real()

    def now(self) -> float:
        """Scaled epoch seconds: the start moment plus elapsed real time times ``time_scale``."""
        elapsed = self._real() - self._start
        return self._start + elapsed * self.time_scale

    def now_dt(self) -> datetime:
        """Scaled now as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now(), tz=UTC)
