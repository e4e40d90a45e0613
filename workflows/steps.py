"""Small steps shared by workflows: atomic file writes, transcripts, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

def call_messages(call: dict[str, Any]) -> list[dict[str, Any]]:
    """The spoken turns of a call (bot/user messages with ``secondsFromStart``), in order."""
    artifact = call.get("artifact") or {}
    messages = artifact.get("messages") or call.get("messages") or []
    spoken = [m for m in messages if m.get("role") in ("bot", "user", "assistant") and m.get("message")]
    return sorted(spoken, key=lambda m: float(m.get("secondsFromStart") or 0.0))


def timestamped_transcript(call: dict[str, Any]) -> str:
    """One line per turn: ``[12.3s] Assistant: ...`` (the model quotes from this)."""
    lines = []
    for message in call_messages(call):
        who = "Assistant" if message.get("role") in ("bot", "assistant") else "Customer"
        lines.append(f"[{float(message.get('secondsFromStart') or 0):.1f}s] {who}: {message['message']}")
    return "\n".join(lines)


async def gather_limited(items: Iterable[T], worker: Callable[[T], Awaitable[R]], *, limit: int) -> list[R]:
    """Run ``worker`` over ``items`` with at most ``limit`` at once; results in input order.

    When one item fails, the others are cancelled (not left running while the caller closes the
    connections they use) and that first error is raised as itself, not as an exception group.
    """
    semaphore = asyncio.Semaphore(max(1, limit))
    pending = list(items)
    results: list[R | None] = [None] * len(pending)

    async def run(index: int, item: T) -> None:
        async with semaphore:
            results[index] = await worker(item)

    try:
        async with asyncio.TaskGroup() as group:
            for index, item in enumerate(pending):
                group.create_task(run(index, item))
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return results  # type: ignore[return-value]  # every slot was filled: no task failed


class ProgressBar:
    """A rich progress bar on stderr for a person at a terminal; does nothing when ``show`` is false."""

    def __init__(self, show: bool, description: str, total: int | None = None) -> None:
        self._bar: Any = None
        self._task: Any = None
        if show:
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> ProgressBar:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self) -> None:
        """One more item done."""
        if self._bar is not None:
            self._bar.advance(self._task)

    def update(self, **fields: Any) -> None:
        """Set ``total``, ``completed`` or ``description``."""
        if self._bar is not None:
            self._bar.update(self._task, **fields)
