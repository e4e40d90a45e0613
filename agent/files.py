"""Atomic file writes, and bounded reads of small files the user names.

Writes go to a temporary sibling, renamed into place only when complete: readers (and a cron job's
consumers) never see half a file, and a failure or a cancellation (a ``--deadline``) removes the
temporary file, leaving whatever was there before untouched.

Reads of small input files (the config file, an ``mcpServers`` file, an accounts file) stop at a cap,
so ``/dev/zero`` or a FIFO that never ends cannot exhaust memory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

SMALL_FILE_BYTES = 1024 * 1024


@contextmanager
def atomic_file(path: Path, *, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces ``path`` when the block ends without an exception.

    ``mode`` sets the file's permissions (the default is the temporary file's 0600).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, data: str | bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_file(path, mode=mode) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read_small_text(path: str | Path, what: str, *, limit: int = SMALL_FILE_BYTES, hint: str = "") -> str:
    """The UTF-8 text of ``path``, reading at most ``limit`` bytes; else one ``ConfigError`` about ``what``.

    Raises ``FileNotFoundError`` for a missing file (callers decide whether that is fine), and
    ``ConfigError`` for anything else: unreadable (a directory, no permission), larger than the cap
    (``/dev/zero`` is refused after ``limit`` bytes), not UTF-8.
    """
    from agent.errors import ConfigError

    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or exc}", hint=hint or "check the path") from None
    if len(raw) > limit:
        size = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit:,} bytes"
        raise ConfigError(f"cannot read {what}: larger than {size}", hint=hint or "is it the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {what}: not UTF-8 text", hint=hint or "save it as UTF-8") from None
