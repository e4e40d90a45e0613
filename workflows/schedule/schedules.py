"""Scheduled runs: our schedule file is the source of truth, mirrored into the user's crontab.

``schedule add --cron "0 8 * * 1" --name weekly-cost -- report --since 7d --out DIR`` stores an entry
in ``<data dir>/schedule/schedules.json`` and rewrites the user's crontab (through the ``crontab``
program) so it holds, for every entry, a tagged pair of lines::

    # vapi-agent:weekly-cost
    0 8 * * 1 . '<data>/schedule/weekly-cost.env' && cd '<cwd>' && exec '/abs/vapi-agent' report ... >> '<log>' 2>&1

- The expression is validated with croniter and must be one the cron daemon understands too: five
  fields (or ``@hourly``...), none of croniter's extensions (seconds, years, ``H``, ``L``, ``W``, ``#``).
- The environment file (mode 0600) sets ``VAPI_AGENT_JOB=<name>`` (the job lock's key) and the
  settings and credentials of the environment the entry was added from. No secret is ever on the
  crontab line: ``--mcp-url`` moves into the environment file, and any other secret is refused.
- The job's stdout and stderr are appended to ``<data>/schedule/logs/<name>.log``.
- Other crontab lines are kept exactly as they are; ours are rewritten from the file each time.
- Cron reads one job per line: a newline, carriage return or NUL anywhere in the name, the
  expression, the arguments, the working directory or the paths is refused (``shlex.quote`` keeps
  newlines), so no line we write can carry a second, untagged job. Blocks that an earlier version
  split over several lines are recognised by their open quotes and dropped whole on every rewrite.
- ``--no-crontab`` entries (``local_only``) stay out of the crontab: only ``schedule run`` fires them.

``VAPI_AGENT_CRONTAB_USER`` (or ``user=``) manages another user's crontab (``crontab -u``; root only),
which is how the tests use a throwaway user and never the machine's own crontab.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from croniter import CroniterBadDateError, croniter

from agent.errors import ConfigError
from agent.files import write_atomically
from agent.joblock import JOB_ENV

MARKER = "# vapi-agent:"
CRONTAB_USER_ENV = "VAPI_AGENT_CRONTAB_USER"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+$")
_MAX_BLOCK_LINES = 1000  # an old split block longer than this is not ours
_LINE_BREAKS = {"\n": "a newline", "\r": "a carriage return", "\0": "a NUL character"}
# What a job needs from the environment it was scheduled in (cron starts jobs with almost nothing).
CAPTURED_ENV = (
    "VAPI_AGENT_MCP_URL", "VAPI_AGENT_MCP_KIND", "VAPI_AGENT_MCP_CONFIG", "VAPI_AGENT_SERVER", "VAPI_AGENT_PROFILE",
    "VAPI_AGENT_SANDBOX", "VAPI_AGENT_MODEL", "VAPI_AGENT_READ_ONLY", "VAPI_AGENT_TOOLS", "VAPI_AGENT_EXCLUDE_TOOLS",
    "VAPI_AGENT_LOG_LEVEL", "VAPI_AGENT_MAX_ATTEMPTS", "VAPI_AGENT_MAX_WAIT_PER_REQUEST",
    "VAPI_AGENT_MAX_WAIT_PER_RUN", "VAPI_AGENT_CONCURRENCY", "VAPI_AGENT_DEADLINE", "TRUTO_API_TOKEN",
    "VAPI_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "VAPI_AGENT_CONFIG", "VAPI_AGENT_DATA_DIR",
    "VAPI_AGENT_STATE_DIR", "VAPI_AGENT_CACHE_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
    "XDG_CACHE_HOME", "PATH", "LANG", "LC_ALL", "TZ",
)


# ---------------------------------------------------------------- validation
def refuse_line_breaks(what: str, value: str) -> str:
    """``value`` unchanged, or a ConfigError when it holds a character that would end a crontab line."""
    for char, label in _LINE_BREAKS.items():
        if char in value:
            shown = repr(value if len(value) <= 60 else value[:57] + "...")
            raise ConfigError(f"{what} {shown} holds {label}, which would split the crontab line",
                              hint="cron reads one job per line: remove it")
    return value


def validate_name(name: str) -> str:
    """A schedule name: letters, digits, ``._-``, up to 64 characters (it names files and the lock)."""
    if not _NAME.fullmatch(name or ""):
        raise ConfigError(f"schedule name {name!r} is not valid",
                          hint="use letters, digits, '.', '_' or '-' (up to 64), e.g. weekly-cost")
    return name


def validate_cron(expression: str) -> str:
    """A cron expression both croniter and the cron daemon accept; returned normalised (single spaces)."""
    refuse_line_breaks("the cron expression", expression or "")
    text = " ".join((expression or "").split())
    hint = 'five fields: minute hour day-of-month month day-of-week, e.g. "0 8 * * 1" (or @daily...)'
    if text.startswith("@"):
        if text.lower() not in _NICKNAMES:
            raise ConfigError(f"cron expression {expression!r} is not supported", hint=hint)
        return text.lower()
    fields = text.split(" ")
    if len(fields) != 5 or not all(_FIELD.match(f) for f in fields):
        raise ConfigError(f"cron expression {expression!r} is not valid", hint=hint)
    # croniter's extensions that cron itself does not know: hashed H, last-day L, weekday W, nth #
    if re.search(r"(^|[^a-z])[hlw]($|[^a-z])", text.lower()) or "#" in text:
        raise ConfigError(f"cron expression {expression!r} uses syntax the cron daemon does not know", hint=hint)
    if not croniter.is_valid(text):
        raise ConfigError(f"cron expression {expression!r} is not valid", hint=hint)
    try:  # valid fields can still name a date that never comes (30 February)
        next_fire(text, datetime.now(tz=UTC))
    except CroniterBadDateError:
        raise ConfigError(f"cron expression {expression!r} never fires (no such date)",
                          hint="check the day of month against the month, e.g. no 30 February") from None
    return text


def upcoming(expression: str, after: datetime) -> datetime | None:
    """``next_fire``, or None for an expression that never fires (saved before that was checked)."""
    try:
        return next_fire(expression, after)
    except CroniterBadDateError:
        return None


def next_fire(expression: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` (an aware datetime) that ``expression`` fires."""

    value = croniter(expression, after).get_next(datetime)
    assert isinstance(value, datetime)
    return value


# ---------------------------------------------------------------- entries and files
@dataclass
class Entry:
    """One scheduled job: its name, cron expression, vapi-agent arguments and working directory."""

    name: str
    cron: str
    argv: list[str]
    cwd: str
    created_at: str = ""
    local_only: bool = False  # added with --no-crontab: fired by `schedule run` only

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    def check(self) -> Entry:
        """The entry, or a ConfigError when any part of it could break out of its crontab line."""
        validate_name(self.name)
        validate_cron(self.cron)
        for position, arg in enumerate(self.argv, start=1):
            refuse_line_breaks(f"argument {position} of the command", arg)
        refuse_line_breaks("the working directory", self.cwd)
        return self


@dataclass
class ScheduleStore:
    """The schedule file and the per-entry environment and log files, in one private folder."""

    folder: Path = field(default_factory=lambda: _default_folder())

    @property
    def path(self) -> Path:
        """``schedules.json``."""
        return self.folder / "schedules.json"

    def env_path(self, name: str) -> Path:
        """The entry's environment file (mode 0600)."""
        return self.folder / f"{name}.env"

    def log_path(self, name: str) -> Path:
        """Where the entry's runs append their output."""
        return self.folder / "logs" / f"{name}.log"

    def load(self) -> list[Entry]:
        """Every entry, in the order they were added."""
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [Entry(**item) for item in data.get("entries", [])]
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot read the schedule file {self.path}: {exc}", hint="fix or remove it") from None

    def save(self, entries: Sequence[Entry]) -> None:
        """Replace the schedule file atomically (mode 0600)."""
        data = {"version": 1, "entries": [e.to_dict() for e in entries]}
        _write_private(self.path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def write_env(self, name: str, env: Mapping[str, str]) -> Path:
        """The entry's environment file: ``export KEY='value'`` lines a POSIX shell sources."""
        lines = ["# vapi-agent schedule environment (private: it may hold credentials)"]
        lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
        path = self.env_path(name)
        _write_private(path, "\n".join(lines) + "\n")
        return path

    def read_env(self, name: str) -> dict[str, str]:
        """The variables of the entry's environment file (for ``schedule run``)."""
        path = self.env_path(name)
        if not path.exists():
            return {JOB_ENV: name}
        # shlex reads the file as the shell does: a quoted value may span lines
        words = shlex.split(path.read_text(encoding="utf-8"), comments=True)
        return {key: value for key, _, value in (word.partition("=") for word in words if word != "export")}

    def remove_files(self, name: str) -> None:
        """Delete the entry's environment file (its log stays: it is history)."""
        self.env_path(name).unlink(missing_ok=True)


def _default_folder() -> Path:
    from agent.paths import data_dir, ensure_private_dir

    return ensure_private_dir(data_dir() / "schedule")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomically(path, text, mode=0o600)


# ---------------------------------------------------------------- commands and environment
def executable() -> list[str]:
    """How cron starts vapi-agent: the absolute console script next to this Python, else ``python -m cli``."""
    script = Path(sys.executable).parent / "vapi-agent"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "cli"]


def lift_secrets(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Move ``--mcp-url`` out of the job's arguments into its environment; refuse any other secret."""
    from agent.redact import redact

    rest: list[str] = []
    env: dict[str, str] = {}
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        if arg == "--mcp-url" and i + 1 < len(items):
            env["VAPI_AGENT_MCP_URL"] = items[i + 1]
            i += 2
            continue
        if arg.startswith("--mcp-url="):
            env["VAPI_AGENT_MCP_URL"] = arg.split("=", 1)[1]
            i += 1
            continue
        rest.append(arg)
        i += 1
    line = " ".join(rest)
    if redact(line) != line:
        raise ConfigError("the job's arguments hold a secret, which must never be on a crontab line",
                          hint="set it in the environment (e.g. VAPI_API_KEY) before `schedule add`")
    return rest, env


def job_environment(name: str, lifted: Mapping[str, str], source: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the environment file sets: the captured variables, the lifted ones, and ``VAPI_AGENT_JOB``."""
    source = os.environ if source is None else source
    env = {key: source[key] for key in CAPTURED_ENV if source.get(key)}
    env.update(lifted)
    env[JOB_ENV] = name
    return env


def cron_line(entry: Entry, store: ScheduleStore, program: Sequence[str] | None = None) -> str:
    """The crontab line of ``entry`` (``%`` escaped: cron turns a bare one into a newline); always one line."""
    entry.check()
    program = list(program or executable())
    refuse_line_breaks("the vapi-agent program path", " ".join(program))
    refuse_line_breaks("the schedule folder", str(store.folder))
    command = " ".join(shlex.quote(part) for part in [*program, *entry.argv])
    shell = (f". {shlex.quote(str(store.env_path(entry.name)))} && cd {shlex.quote(entry.cwd)} && exec {command} "
             f">> {shlex.quote(str(store.log_path(entry.name)))} 2>&1")
    return refuse_line_breaks(f"the crontab line of {entry.name}", f"{entry.cron} {shell.replace('%', chr(92) + '%')}")


# ---------------------------------------------------------------- the crontab
@dataclass
class Crontab:
    """The user's crontab through the ``crontab`` program (``user``: another user's, as root)."""

    user: str | None = None
    program: str = "crontab"

    @classmethod
    def from_env(cls) -> Crontab:
        """For the user in ``VAPI_AGENT_CRONTAB_USER``, else the current user."""
        return cls(user=os.environ.get(CRONTAB_USER_ENV) or None)

    def available(self) -> bool:
        """True when the ``crontab`` program is installed."""
        return shutil.which(self.program) is not None

    def _run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        base = [shutil.which(self.program) or self.program, *(["-u", self.user] if self.user else [])]
        try:
            return subprocess.run([*base, *args], input=stdin, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"cannot run crontab: {exc}", hint="is cron installed?") from None

    def read(self) -> str:
        """The current crontab text ("" when the user has none)."""
        done = self._run(["-l"])
        if done.returncode != 0:
            if "no crontab" in done.stderr.lower():
                return ""
            raise ConfigError(f"crontab -l failed: {done.stderr.strip()}", hint="check that you may use cron")
        return done.stdout

    def write(self, text: str) -> None:
        """Replace the crontab with ``text``."""
        done = self._run(["-"], stdin=text)
        if done.returncode != 0:
            raise ConfigError(f"installing the crontab failed: {done.stderr.strip()}",
                              hint="check that you may use cron (/etc/cron.allow)")

    def tagged(self) -> dict[str, str]:
        """Our entries in the crontab: name -> its job line (lines, for a block an earlier version split)."""
        lines = _crontab_lines(self.read())
        return {name: "\n".join(lines[first:end]) for name, _, first, end in _our_blocks(lines)}


def _crontab_lines(text: str) -> list[str]:
    # cron ends a line at "\n" only: str.splitlines would also split at \x0b, \x85, \u2028... and change them
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _quotes_closed(text: str) -> bool:
    try:
        shlex.split(text)
    except ValueError:  # "No closing quotation", "No escaped character"
        return False
    return True


def _our_blocks(lines: Sequence[str]) -> list[tuple[str, int, int, int]]:
    """(name, marker, first, end) of each entry we wrote: the marker's index and the job lines ``first:end``.

    The job line is the one after the marker. An earlier version wrote a newline inside an argument
    or path as it was (within single quotes, as ``shlex.quote`` leaves it), splitting the job over
    several lines: every line up to the one where the quotes close belongs to the block. A name that
    ended in a newline left a blank line after the marker. A block whose quotes never close was
    edited by hand: only its first line is taken.
    """
    blocks = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith(MARKER):
            i += 1
            continue
        name, marker, first = lines[i][len(MARKER):].strip(), i, i + 1
        while first < len(lines) and not lines[first].strip():
            first += 1
        if first >= len(lines) or lines[first].startswith(MARKER):
            blocks.append((name, marker, first, first))
            i = first
            continue
        end = next((last + 1 for last in range(first, min(len(lines), first + _MAX_BLOCK_LINES))
                    if _quotes_closed("\n".join(lines[first:last + 1]))), first + 1)
        blocks.append((name, marker, first, end))
        i = end
    return blocks


def merged_crontab(current: str, entries: Sequence[Entry], store: ScheduleStore,
                   program: Sequence[str] | None = None) -> str:
    """``current`` without any block we wrote, then a tagged pair per crontab entry; other lines untouched."""
    ours = []
    for entry in entries:
        if entry.local_only:
            continue
        try:
            line = cron_line(entry, store, program)
        except ConfigError as exc:  # an entry saved before these checks existed
            raise ConfigError(f"schedule {entry.name!r}: {exc.message}",
                              hint=f"remove it (vapi-agent schedule remove {shlex.quote(entry.name)}) and add it again"
                              ) from None
        ours += [f"{MARKER}{entry.name}", line]
    lines = _crontab_lines(current)
    dropped = {i for _, marker, _, end in _our_blocks(lines) for i in range(marker, end)}
    kept = [line for i, line in enumerate(lines) if i not in dropped]
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join([*kept, *ours]) + "\n" if kept or ours else ""


# ---------------------------------------------------------------- operations
@dataclass
class Scheduler:
    """``schedule add/list/remove/sync``: the file first in mind, the crontab kept in step."""

    store: ScheduleStore = field(default_factory=ScheduleStore)
    crontab: Crontab | None = field(default_factory=Crontab.from_env)  # None: do not touch any crontab
    program: list[str] | None = None

    def add(self, name: str, cron: str, argv: Sequence[str], *, cwd: str | None = None, replace: bool = False,
            local_only: bool = False, env: Mapping[str, str] | None = None, now: datetime | None = None,
            check_command: Callable[[Sequence[str]], None] | None = None) -> tuple[Entry, bool]:
        """Add (or with ``replace`` update) an entry; returns it and whether the crontab now has it.

        Everything is validated before anything is written: the name, the expression (it must fire
        some day), every argument, the working directory, and, with ``check_command``, the command
        line itself (the CLI passes its own parser). ``local_only`` entries stay out of the crontab.
        """
        validate_name(name)
        expression = validate_cron(cron)
        if not argv:
            raise ConfigError("no command to schedule", hint='put it after "--": schedule add ... -- report --since 7d')
        if argv[0] == "schedule":
            raise ConfigError("a schedule cannot run the schedule command itself")
        try:
            directory = str(Path(cwd or os.getcwd()).absolute())
        except OSError:
            raise ConfigError("the current directory no longer exists", hint="cd somewhere that does") from None
        entry = Entry(name=name, cron=expression, argv=list(argv), cwd=directory,
                      created_at=(now or datetime.now(tz=UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      local_only=local_only).check()
        if check_command is not None:
            check_command(argv)
        entry.argv, lifted = lift_secrets(argv)
        entries = self.store.load()
        previous = next((e for e in entries if e.name == name), None)
        if previous is not None and not replace:
            raise ConfigError(f"a schedule named {name!r} exists", hint="remove it first, or pass --replace")
        entries = [e for e in entries if e.name != name] + [entry]
        # a local-only entry leaves the crontab alone, unless the entry it replaces has a line there
        mirror = not local_only or (previous is not None and not previous.local_only)
        merged = self._merged(entries) if mirror else None  # every line checked before any file changes
        self.store.write_env(name, job_environment(name, lifted, env))
        log = self.store.log_path(name)
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not log.exists():
            log.touch(mode=0o600)
        if merged is not None:
            self._install(*merged)
        self.store.save(entries)
        return entry, merged is not None and not local_only

    def remove(self, name: str) -> bool:
        """Remove an entry (exit 2 when there is none); returns whether the crontab changed.

        The entry's environment file goes with it; its log stays (it is history: ``log_path`` says where).
        """
        entries = self.store.load()
        if not any(e.name == name for e in entries):
            known = ", ".join(e.name for e in entries) or "none"
            raise ConfigError(f"no schedule named {name!r}", hint=f"schedules: {known}")
        entries = [e for e in entries if e.name != name]
        merged = self._merged(entries)
        changed = self._install(*merged) if merged is not None else False
        self.store.save(entries)
        self.store.remove_files(name)
        return changed

    def sync(self) -> bool:
        """Rewrite our crontab lines from the schedule file; returns whether the crontab changed."""
        merged = self._merged(self.store.load())
        return self._install(*merged) if merged is not None else False

    def _merged(self, entries: Sequence[Entry]) -> tuple[str, str] | None:
        """(current crontab, the one to install), or None when no crontab is managed here."""
        if self.crontab is None or not self.crontab.available():
            return None
        current = self.crontab.read()
        return current, merged_crontab(current, entries, self.store, self.program)

    def _install(self, current: str, text: str) -> bool:
        if text == current:
            return False
        assert self.crontab is not None
        self.crontab.write(text)
        return True

    def listing(self, now: datetime, zone: tzinfo | None = None) -> list[dict[str, Any]]:
        """Every entry with its next run (in ``zone``, default local) and whether the crontab has it."""
        in_crontab: dict[str, str] | None = None
        if self.crontab is not None and self.crontab.available():
            in_crontab = self.crontab.tagged()
        local = now.astimezone(zone) if zone else now.astimezone()
        rows = []
        for entry in self.store.load():
            when = upcoming(entry.cron, local)
            rows.append({**entry.to_dict(), "command": " ".join(shlex.quote(a) for a in entry.argv),
                         "next_run": when.isoformat() if when else None,
                         "in_crontab": None if in_crontab is None else entry.name in in_crontab,
                         "log": str(self.store.log_path(entry.name))})
        return rows
