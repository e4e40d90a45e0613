"""Rate-limit windows for the benchmarks: the ideal under ``N`` per ``W``, a fresh window before each
sample, and a sample's figures replayed from the sandbox's own request log.

The sandbox's limiter (``sandbox/truto/gate.py``) opens a window with the first POST at or after the
previous window's end; ``windows`` replays that rule over the log, so 429s are counted per real window.
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench.served import API_KEY, request_log
from sandbox.world.config import RateLimit


def rate(text: str) -> tuple[int, float]:
    """``N/SECONDS`` -> (N, seconds), parsed as the sandbox parses it (``ValueError`` for anything else)."""
    rule = RateLimit.parse(text)
    return rule.limit, rule.window


def ideal_seconds(requests: int, limit: int, window: float) -> float:
    """The earliest the last of ``requests`` can be sent under N per W: (ceil(requests / N) - 1) x W."""
    return max(0, math.ceil(requests / limit) - 1) * window


def windows(posts: list[dict[str, Any]], length: float) -> list[list[dict[str, Any]]]:
    """Replay the sandbox's limiter: a window opens with the first POST at or after the last one ended."""
    out: list[list[dict[str, Any]]] = []
    end = -math.inf
    for entry in sorted(posts, key=lambda e: e["t_start"]):
        if entry["t_start"] >= end:
            end = entry["t_start"] + length
            out.append([])
        out[-1].append(entry)
    return out


def log_figures(posts: list[dict[str, Any]], wall: float, ideal: float, window: float) -> dict[str, float]:
    """A sample's figures from its POSTs (the sandbox's log) and the wall time the client measured."""
    refused = sum(1 for e in posts if e["status"] == 429)
    per_window = [sum(1 for e in w if e["status"] == 429) for w in windows(posts, window)]
    return {"wall_s": wall, "wall_over_ideal": wall / ideal if ideal else 0.0, "requests_sent": len(posts),
            "requests_429": refused, "429_per_window_mean": refused / len(per_window) if per_window else 0.0,
            "429_per_window_max": max(per_window, default=0)}


class Window:
    """Waits out the limiter's window between samples, so every sample starts on a fresh window.

    The log read after a sample (``since``) also tells when its last request ended, so ``fresh``
    reads the log itself only before the first sample.
    """

    def __init__(self, origin: str, seconds: float, *, transport: str | None = "mcp", token: str = API_KEY) -> None:
        self.origin, self.seconds, self.transport, self.token = origin, seconds, transport, token
        self._last_end: float | None = None

    def fresh(self) -> float:
        """Sleep until one window has passed since the last request; the epoch after."""
        last = self._last_end if self._last_end is not None else self._last(self._log())
        time.sleep(max(0.0, last + self.seconds + 0.2 - time.time()))
        return time.time()

    def since(self, epoch: float) -> list[dict[str, Any]]:
        """Every logged request that arrived after ``epoch``."""
        log = self._log()
        self._last_end = self._last(log)
        return [e for e in log if e["t_start"] >= epoch]

    def posts_since(self, epoch: float) -> list[dict[str, Any]]:
        """The POSTs that arrived after ``epoch``."""
        return [e for e in self.since(epoch) if e["method"] == "POST"]

    def _log(self) -> list[dict[str, Any]]:
        return request_log(self.origin, self.transport, token=self.token)

    @staticmethod
    def _last(log: list[dict[str, Any]]) -> float:
        return max((e["t_end"] for e in log), default=0.0)
