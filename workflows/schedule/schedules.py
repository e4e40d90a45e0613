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
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.files import write_atomically
from agent.joblock import JOB_ENV

MARKER = "# vapi-agent:"
CRONTAB_USER_ENV = "VAPI_AGENT_CRONTAB_USER"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+$")
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
def validate_name(name: str) -> str:
    """A schedule name: letters, digits, ``._-``, up to 64 characters (it names files and the lock)."""
    if not _NAME.match(name or ""):
        raise ConfigError(f"schedule name {name!r} is not valid",
                          hint="use letters, digits, '.', '_' or '-' (up to 64), e.g. weekly-cost")
    return name


def validate_cron(expression: str) -> str:
    """A cron expression both croniter and the cron daemon accept; returned normalised (single spaces)."""
    from croniter import croniter

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
    return text


def next_fire(expression: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` (an aware datetime) that ``expression`` fires."""
    from croniter import croniter

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


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
        env: dict[str, str] = {}
        path = self.env_path(name)
        if not path.exists():
            return {JOB_ENV: name}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export "):].partition("=")
                env[key] = "".join(shlex.split(value)) if value else ""
        return env

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
    """The crontab line of ``entry`` (``%`` escaped: cron turns a bare one into a newline)."""
    command = " ".join(shlex.quote(part) for part in [*(program or executable()), *entry.argv])
    shell = (f". {shlex.quote(str(store.env_path(entry.name)))} && cd {shlex.quote(entry.cwd)} && exec {command} "
             f">> {shlex.quote(str(store.log_path(entry.name)))} 2>&1")
    return f"{entry.cron} {shell.replace('%', chr(92) + '%')}"


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
        """Our entries in the crontab: name -> its line."""
        lines = self.read().splitlines()
        found = {}
        for i, line in enumerate(lines):
            if line.startswith(MARKER) and i + 1 < len(lines):
                found[line[len(MARKER):].strip()] = lines[i + 1]
        return found


def merged_crontab(current: str, entries: Sequence[Entry], store: ScheduleStore,
                   program: Sequence[str] | None = None) -> str:
    """``current`` without our tagged lines, then a tagged pair per entry; other lines untouched."""
    lines = current.splitlines()
    kept: list[str] = []
    skip_next = False
    for line in lines:
        if skip_next:
            skip_next = False
            if not line.startswith(MARKER):
                continue
        if line.startswith(MARKER):
            skip_next = True
            continue
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    ours = [part for e in entries for part in (f"{MARKER}{e.name}", cron_line(e, store, program))]
    return "\n".join([*kept, *ours]) + "\n" if kept or ours else ""


# ---------------------------------------------------------------- operations
@dataclass
class Scheduler:
    """``schedule add/list/remove/sync``: the file first in mind, the crontab kept in step."""

    store: ScheduleStore = field(default_factory=ScheduleStore)
    crontab: Crontab | None = field(default_factory=Crontab.from_env)  # None: do not touch any crontab
    program: list[str] | None = None

    def add(self, name: str, cron: str, argv: Sequence[str], *, cwd: str | None = None, replace: bool = False,
            env: Mapping[str, str] | None = None, now: datetime | None = None) -> tuple[Entry, bool]:
        """Add (or with ``replace`` update) an entry; returns it and whether the crontab was updated."""
        validate_name(name)
        expression = validate_cron(cron)
        if not argv:
            raise ConfigError("no command to schedule", hint='put it after "--": schedule add ... -- report --since 7d')
        if argv[0] == "schedule":
            raise ConfigError("a schedule cannot run the schedule command itself")
        args, lifted = lift_secrets(argv)
        entries = self.store.load()
        if any(e.name == name for e in entries) and not replace:
            raise ConfigError(f"a schedule named {name!r} exists", hint="remove it first, or pass --replace")
        entry = Entry(name=name, cron=expression, argv=args, cwd=str(Path(cwd or os.getcwd()).absolute()),
                      created_at=(now or datetime.now(tz=UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        entries = [e for e in entries if e.name != name] + [entry]
        self.store.write_env(name, job_environment(name, lifted, env))
        log = self.store.log_path(name)
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not log.exists():
            log.touch(mode=0o600)
        mirrored = self._mirror(entries)
        self.store.save(entries)
        return entry, mirrored

    def remove(self, name: str) -> bool:
        """Remove an entry (exit 2 when there is none); returns whether the crontab was updated."""
        entries = self.store.load()
        if not any(e.name == name for e in entries):
            known = ", ".join(e.name for e in entries) or "none"
            raise ConfigError(f"no schedule named {name!r}", hint=f"schedules: {known}")
        entries = [e for e in entries if e.name != name]
        mirrored = self._mirror(entries)
        self.store.save(entries)
        self.store.remove_files(name)
        return mirrored

    def sync(self) -> bool:
        """Rewrite our crontab lines from the schedule file."""
        return self._mirror(self.store.load())

    def _mirror(self, entries: Sequence[Entry]) -> bool:
        if self.crontab is None or not self.crontab.available():
            return False
        self.crontab.write(merged_crontab(self.crontab.read(), entries, self.store, self.program))
        return True

    def listing(self, now: datetime, zone: tzinfo | None = None) -> list[dict[str, Any]]:
        """Every entry with its next run (in ``zone``, default local) and whether the crontab has it."""
        in_crontab: dict[str, str] | None = None
        if self.crontab is not None and self.crontab.available():
            in_crontab = self.crontab.tagged()
        local = now.astimezone(zone) if zone else now.astimezone()
        rows = []
        for entry in self.store.load():
            rows.append({**entry.to_dict(), "command": " ".join(shlex.quote(a) for a in entry.argv),
                         "next_run": next_fire(entry.cron, local).isoformat(),
                         "in_crontab": None if in_crontab is None else entry.name in in_crontab,
                         "log": str(self.store.log_path(entry.name))})
        return rows
