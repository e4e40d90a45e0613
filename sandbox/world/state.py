"""The persisted state of a sandbox workspace: who it is (seed, size, anchor) and every write, in order.

One workspace, one JSON Lines journal ``<directory>/<key>.jsonl`` (mode 0600): the first line is the
header ``{"format", "version", "seed", "calls", "anchor"}``, each further line one write that
succeeded ``{"at", "op", "args", "ids"}`` (sandbox epoch ms, the workspace method and its JSON
arguments, the ids it minted). The workspace is rebuilt by replaying the writes at their recorded
moments over its seeded dataset, so the file holds only what users did, never generated data.

Several processes may share a workspace (two commands in two terminals). Every write happens under an
exclusive ``flock`` on ``<key>.lock``: the writer first replays what others appended since it last
looked, then applies its write and appends it. Writes are therefore serialised across processes,
minted ids never collide and none is lost. Readers take no lock and read complete lines only (a line
is appended with one ``write``). ``reset`` removes a journal under the same lock; a process that still
holds that workspace notices (``WorkspaceReset``) instead of writing into a world that is gone.

Keys name workspaces: ``workspace_key(config)`` for the embedded sandbox (seed and size), any other
name (e.g. one per simulated account) for callers that hold several.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sandbox.world.calljson import iso_from_ms, ms_of
from sandbox.world.config import SandboxConfig
from sandbox.world.ids import parse_iso
from sandbox.world.rules import Conflict

FORMAT = "vapi-agent-sandbox-state"
VERSION = 1
SUFFIX = ".jsonl"
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_Method = TypeVar("_Method", bound=Callable[..., Any])


class StateError(Exception):
    """A journal that cannot be used (unreadable, corrupt, another format or dataset); says what to do."""


class WorkspaceReset(Conflict):
    """The journal was removed (``sandbox reset``) or replaced while this process held the workspace."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the sandbox workspace {key!r} was reset while this command ran; run it again")


@dataclass(frozen=True)
class Header:
    """Who a workspace is: the dataset's seed and size, and the anchor its generated history ends at."""

    seed: int
    calls: int
    anchor: datetime

    def to_json(self) -> dict[str, Any]:
        """The header line's object."""
        return {"format": FORMAT, "version": VERSION, "seed": self.seed, "calls": self.calls,
                "anchor": iso_from_ms(ms_of(self.anchor))}


@dataclass(frozen=True)
class Write:
    """One write that succeeded: at sandbox time ``at`` (epoch ms), ``op(*args)`` minted ``ids``."""

    at: int
    op: str
    args: tuple[Any, ...]
    ids: tuple[str, ...] = ()

    def to_line(self) -> bytes:
        """The journal line (compact JSON and a newline)."""
        record = {"at": self.at, "op": self.op, "args": list(self.args), "ids": list(self.ids)}
        return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def workspace_key(config: SandboxConfig) -> str:
    """The key of the embedded sandbox's workspace for ``config``: one per dataset (seed, size, pinned anchor)."""
    key = f"seed{config.seed}-calls{config.calls}"
    return key if config.anchor is None else f"{key}-at{ms_of(config.anchor)}"


def journaled(method: _Method) -> _Method:
    """Mark a workspace method as a write: it is journaled when the workspace has a state, replayed on load.

    The workspace implements ``_journal_write(name, method, args)``; writes take positional JSON arguments.
    """

    def write(self: Any, *args: Any) -> Any:
        return self._journal_write(method.__name__, method, args)

    write.__name__, write.__qualname__, write.__doc__ = method.__name__, method.__qualname__, method.__doc__
    write.__wrapped__ = method  # type: ignore[attr-defined]
    write.journaled = True  # type: ignore[attr-defined]
    return write  # type: ignore[return-value]


def _check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"workspace key {key!r} must be letters, digits, '.', '_' or '-' (a file name)")
    return key


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor closes, even if the process dies
        yield
    finally:
        os.close(fd)


def _private_dir(directory: Path) -> Path:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create {directory}: {exc.strerror or exc}") from None
    return directory


class WorkspaceState:
    """The journal of one workspace: its header, the writes appended since this process last read, appends.

    Build with ``open``; ``exclusive()`` is the cross-process write lock; ``new_writes()`` returns writes
    not yet seen by this object (all of them the first time); ``append`` adds one (under ``exclusive``).
    """

    def __init__(self, directory: Path, key: str, header: Header) -> None:
        self.directory = directory
        self.key = key
        self.header = header
        self.path = directory / (key + SUFFIX)
        self.lock_path = directory / (key + ".lock")
        self._offset = 0  # bytes of the journal consumed (header included)
        self._inode: int | None = None

    @classmethod
    def open(cls, directory: str | Path, key: str, *, seed: int, calls: int, anchor: datetime) -> WorkspaceState:
        """The state of workspace ``key`` in ``directory``, created with this header if it does not exist yet.

        An existing journal keeps its own anchor (that is the point); a different seed or size, another
        format or a corrupt header is a ``StateError``.
        """
        folder = _private_dir(Path(directory))
        key = _check_key(key)
        path = folder / (key + SUFFIX)
        with _flock(folder / (key + ".lock")):
            if not path.exists():
                _write_new(path, Header(seed, calls, anchor))
            header = _read_header(path)
        if (header.seed, header.calls) != (seed, calls):
            raise StateError(f"{path} holds a workspace of seed {header.seed} with {header.calls} calls, "
                             f"not seed {seed} with {calls}")
        return cls(folder, key, header)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the workspace's write lock (other processes' writes wait)."""
        with _flock(self.lock_path):
            yield

    def new_writes(self) -> list[Write]:
        """Complete writes appended since the last call (by anyone, this process included)."""
        try:
            with self.path.open("rb") as handle:
                inode = os.fstat(handle.fileno()).st_ino
                if self._inode is not None and inode != self._inode:
                    raise WorkspaceReset(self.key)
                size = os.fstat(handle.fileno()).st_size
                if size < self._offset:
                    raise WorkspaceReset(self.key)
                if size == self._offset:
                    return []
                handle.seek(self._offset)
                chunk = handle.read(size - self._offset)
        except FileNotFoundError:
            raise WorkspaceReset(self.key) from None
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being appended right now waits for next time
        lines = complete.splitlines()
        if self._inode is None:
            lines = lines[1:]  # the header, read by open()
        self._inode = inode
        self._offset += len(complete)
        return [_parse_write(self.path, line) for line in lines if line.strip()]

    def append(self, write: Write) -> None:
        """Append one write (call under ``exclusive()``, after ``new_writes()`` caught up)."""
        if self._inode is None:
            raise RuntimeError("append before new_writes(): the journal must be caught up first")
        line = write.to_line()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            raise WorkspaceReset(self.key) from None
        try:
            if os.fstat(fd).st_ino != self._inode:
                raise WorkspaceReset(self.key)
            os.write(fd, line)  # one write: readers see the whole line or none of it
        finally:
            os.close(fd)
        self._offset += len(line)


def reset(directory: str | Path, key: str | None = None) -> list[str]:
    """Remove the journal of workspace ``key`` (of every one in ``directory`` when None); returns the keys removed."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    keys = [_check_key(key)] if key is not None else sorted(p.name[: -len(SUFFIX)] for p in folder.glob("*" + SUFFIX))
    removed = []
    for name in keys:
        path = folder / (name + SUFFIX)
        with _flock(folder / (name + ".lock")):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
        removed.append(name)
    return removed


def _write_new(path: Path, header: Header) -> None:
    """Create the journal with its header atomically (a reader never sees an empty file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(header.to_json(), separators=(",", ":")) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_header(path: Path) -> Header:
    try:
        with path.open("rb") as handle:
            first = handle.readline()
        record = json.loads(first)
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError("not a sandbox state file")
        if record.get("version") != VERSION:
            raise ValueError(f"format version {record.get('version')!r}, this version reads {VERSION}")
        return Header(seed=int(record["seed"]), calls=int(record["calls"]), anchor=parse_iso(str(record["anchor"])))
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(f"{path} is not a usable sandbox state ({exc})") from None


def _parse_write(path: Path, line: bytes) -> Write:
    try:
        record = json.loads(line)
        return Write(at=int(record["at"]), op=str(record["op"]), args=tuple(record["args"]),
                     ids=tuple(str(i) for i in record.get("ids") or ()))
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(f"{path} has a corrupt line ({exc})") from None
