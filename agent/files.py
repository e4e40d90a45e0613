"""Atomic file writes: a temporary sibling, renamed into place only when complete.

Readers (and a cron job's consumers) never see half a file, and a failure or a cancellation (a
``--deadline``) removes the temporary file, leaving whatever was there before untouched.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


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
