"""Atomic file writes, output targets checked before any work, file names from untrusted text, and
bounded reads of small files.

Writes: a temporary sibling, renamed into place only when complete. Readers (and a cron job's
consumers) never see half a file, and a failure or a cancellation (a ``--deadline``) removes the
temporary file, leaving whatever was there before untouched.

Names: an id from a server becomes part of a file name only when it is a safe token
(``[A-Za-z0-9._-]``, no leading dot, at most 200 characters; Vapi ids are UUIDs), and the path it
makes is checked to resolve inside its folder (symlinks followed), so ``../../x`` or a link cannot
lead a write elsewhere.

Reads of small input files (the config file, an ``mcpServers`` file, an accounts file) stop at a cap,
so ``/dev/zero`` or a FIFO that never ends cannot exhaust memory.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from agent.errors import ConfigError, UnsafeInput

_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")


def is_safe_name(token: object) -> bool:
    """True when ``token`` may be used as (part of) a file name as it is (see the module docstring)."""
    return isinstance(token, str) and _SAFE_NAME.fullmatch(token) is not None


def path_inside(folder: Path, name: str, *, what: str = "the name") -> Path:
    """``folder / name`` for a name built from ``what`` (server data); ``UnsafeInput`` unless it is safe.

    Safe: ``name`` is a safe token and the path resolves inside ``folder``.
    """
    shown = repr(name[:80]) if isinstance(name, str) else repr(name)
    if not is_safe_name(name):
        raise UnsafeInput(f"{what} {shown} cannot be a file name (letters, digits, '.', '_' and '-' only, no "
                          "leading dot)", hint="nothing was written for it")
    path = folder / name
    if not path.resolve().is_relative_to(folder.resolve()):
        raise UnsafeInput(f"{what} {shown} leads outside {folder}", hint="nothing was written for it")
    return path


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


def copy_atomically(source: Path, dest: Path) -> Path:
    """Copy ``source`` to ``dest`` through a temporary sibling (``dest`` appears whole or not at all)."""
    import shutil

    with source.open("rb") as reader, atomic_file(dest) as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)
    return dest


# ---------------------------------------------------------------- output targets, checked before any work
def output_file(path: str | Path, default_name: str, *, option: str = "--out") -> Path:
    """The file a single-file output goes to, checked now (before any request is sent).

    An existing folder (or a path ending in ``/``) means ``default_name`` inside it; an existing
    regular file is replaced atomically when the output is written. Anything that cannot be
    written (a special file, a path under a regular file, a folder we cannot create files in) is a
    ``ConfigError`` (exit 2) naming the option.
    """
    target = Path(path)
    if target.is_dir() or str(path).endswith(("/", os.sep)):
        target = target / default_name
    if target.exists() and not target.is_file():
        raise _unwritable(option, path, f"{target} exists and is not a regular file")
    _check_can_create(target.parent, option, path)
    return target


def output_folder(path: str | Path, *, option: str = "--out") -> Path:
    """A folder outputs are written into (created when missing), checked now; an existing file is refused."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise _unwritable(option, path, "it is a file; this option names a folder to write files into",
                          hint="give a folder (it is created when missing)")
    _check_can_create(target, option, path)
    return target


def _check_can_create(folder: Path, option: str, given: str | Path) -> None:
    """Create and remove a file in ``folder``, or in its nearest existing ancestor when it is missing."""
    probe_dir = folder
    while not probe_dir.exists():
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise _unwritable(option, given, f"{probe_dir} is not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".vapi-agent-probe.", dir=probe_dir)
    except OSError as exc:
        raise _unwritable(option, given, f"cannot create files in {probe_dir} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(name)


def _unwritable(option: str, given: str | Path, why: str, *, hint: str | None = None) -> ConfigError:
    return ConfigError(f"{option} {given}: {why}", hint=hint or "choose a place you can write to")


def read_small_text(path: str | Path, what: str, *, limit: int = SMALL_FILE_BYTES, hint: str = "",
                    missing_ok: bool = False) -> str:
    """The UTF-8 text of ``path``, reading at most ``limit`` bytes; else one ``ConfigError`` about ``what``:
    missing (unless ``missing_ok``: then it reads as empty text), unreadable (a directory, no
    permission), larger than the cap (``/dev/zero`` is refused after ``limit`` bytes), not UTF-8.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except FileNotFoundError:
        if missing_ok:
            return ""
        raise ConfigError(f"cannot read {what}: No such file or directory", hint=hint or "check the path") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or exc}", hint=hint or "check the path") from None
    if len(raw) > limit:
        size = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit:,} bytes"
        raise ConfigError(f"cannot read {what}: larger than {size}", hint=hint or "is it the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {what}: not UTF-8 text", hint=hint or "save it as UTF-8") from None
