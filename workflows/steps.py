"""Small steps shared by workflows: atomic file writes, transcripts, concurrency."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

def write_atomically(path: Path, data: str | bytes) -> Path:
    """Write a file via a temporary sibling and a rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
    """Run ``worker`` over ``items`` with at most ``limit`` at once; results in input order."""
    semaphore = asyncio.Semaphore(max(1, limit))

    async def run(item: T) -> R:
        async with semaphore:
            return await worker(item)

    return list(await asyncio.gather(*(run(item) for item in items)))
