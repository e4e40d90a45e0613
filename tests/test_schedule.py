"""`vapi-agent schedule`: cron validation, the real `crontab` program on a throwaway user, `schedule run`.

Crontab tests run as root on a user created for the test (``useradd``) and removed after it, always
through ``crontab -u USER``; root's own crontab is read before and after and must be unchanged.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ConfigError
from agent.joblock import JOB_ENV
from tests.conftest import IN_CI, require_tool
from workflows.schedule.runner import Runner, launch_entry
from workflows.schedule.schedules import MARKER, Crontab, Entry, Scheduler, ScheduleStore, validate_cron

ROOT = Path(__file__).resolve().parents[1]


def _root_crontab() -> str:
    done = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


@pytest.fixture
def cron_user() -> Iterator[str]:
    """A throwaway system user whose crontab the test may change (root only)."""
    require_tool("crontab", "schedule mirrors into crontab (Debian package cron)")
    require_tool("useradd", "a throwaway user keeps the machine's own crontab untouched")
    if os.geteuid() != 0:
        message = "crontab -u USER needs root"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    name = "vatest" + secrets.token_hex(4)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True,
                   capture_output=True)
    before = _root_crontab()
    try:
        yield name
    finally:
        subprocess.run(["crontab", "-u", name, "-r"], capture_output=True, check=False)
        subprocess.run(["userdel", name], capture_output=True, check=False)
        assert _root_crontab() == before, "root's own crontab changed"


def _crontab_of(user: str) -> str:
    return Crontab(user=user).read()


# ---------------------------------------------------------------- cron expressions
@pytest.mark.parametrize(("text", "normal"), [
    ("0 8 * * 1", "0 8 * * 1"), ("  */15  9-17 * * mon-fri ", "*/15 9-17 * * mon-fri"), ("@daily", "@daily"),
    ("0 0 1,15 * *", "0 0 1,15 * *"), ("@WEEKLY", "@weekly"),
])
def test_valid_cron_expressions(text: str, normal: str) -> None:
    assert validate_cron(text) == normal


@pytest.mark.parametrize("text", [
    "61 * * * *", "* * * *", "* * * * * *", "H * * * *", "0 0 L * *", "0 8 * * 1#2", "0 0 15W * *",
    "@reboot", "every monday", "", "0 8 * * 1; rm -rf /", "0 25 * * *",
])
def test_invalid_cron_expressions_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        validate_cron(text)


# ---------------------------------------------------------------- add / list / remove on a real crontab
def test_add_list_remove_mirror_into_the_crontab(cron_user: str, tmp_path: Path) -> None:
    foreign = "MAILTO=ops@example.com\n15 3 * * * /usr/bin/true # someone else's job\n"
    Crontab(user=cron_user).write(foreign)
    store = ScheduleStore(tmp_path / "schedule")
    scheduler = Scheduler(store=store, crontab=Crontab(user=cron_user))
    env = {"TRUTO_API_TOKEN": "tok-SENTINEL-cron-1", "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "VAPI_AGENT_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "UNRELATED": "x"}
    argv = ["report", "--since", "7d", "--out", str(tmp_path / "out-%Y"),
            "--mcp-url", "https://api.truto.one/mcp/SENTINELtoken0123"]
    entry, mirrored = scheduler.add("weekly-cost", "0 8 * * 1", argv, cwd=str(tmp_path), env=env)
    assert mirrored and entry.argv == argv[:5]

    text = _crontab_of(cron_user)
    assert text.startswith(foreign)
    lines = text.splitlines()
    line = lines[lines.index(f"{MARKER}weekly-cost") + 1]
    assert line.startswith("0 8 * * 1 ")
    assert "SENTINEL" not in line and "SENTINEL" not in json.dumps(entry.to_dict())
    program = line.split("exec ", 1)[1].split(" ")[0].strip("'")
    assert Path(program).is_absolute() and os.access(program, os.X_OK)
    assert str(store.env_path("weekly-cost")) in line and str(store.log_path("weekly-cost")) in line
    assert "out-\\%Y" in line  # cron would turn a bare % into a newline

    env_file = store.env_path("weekly-cost")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert store.read_env("weekly-cost") == {
        "TRUTO_API_TOKEN": "tok-SENTINEL-cron-1", "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "VAPI_AGENT_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin",
        "VAPI_AGENT_MCP_URL": "https://api.truto.one/mcp/SENTINELtoken0123", JOB_ENV: "weekly-cost"}
    sourced = subprocess.run(["/bin/sh", "-c", f'. "{env_file}" && printf %s "$VAPI_AGENT_JOB|$VAPI_AGENT_MCP_URL"'],
                             capture_output=True, text=True, env={}, check=True)
    assert sourced.stdout == "weekly-cost|https://api.truto.one/mcp/SENTINELtoken0123"

    with pytest.raises(ConfigError, match="exists"):
        scheduler.add("weekly-cost", "0 9 * * 1", ["report"], env=env)
    scheduler.add("weekly-cost", "0 9 * * 1", ["report", "--since", "7d"], replace=True, cwd=str(tmp_path), env=env)
    scheduler.add("daily", "@daily", ["report", "--since", "1d"], cwd=str(tmp_path), env=env)
    listing = {row["name"]: row for row in scheduler.listing(datetime(2025, 1, 6, 8, 30, tzinfo=UTC), UTC)}
    assert listing["weekly-cost"]["cron"] == "0 9 * * 1" and listing["weekly-cost"]["in_crontab"] is True
    assert listing["weekly-cost"]["next_run"] == "2025-01-06T09:00:00+00:00"  # that Monday, later
    assert listing["daily"]["next_run"] == "2025-01-07T00:00:00+00:00"
    assert [ln for ln in _crontab_of(cron_user).splitlines() if ln.startswith(MARKER)] == [
        f"{MARKER}weekly-cost", f"{MARKER}daily"]

    assert scheduler.remove("weekly-cost")
    text = _crontab_of(cron_user)
    assert text.startswith(foreign) and "weekly-cost" not in text and f"{MARKER}daily" in text
    assert not env_file.exists()
    with pytest.raises(ConfigError, match="no schedule named"):
        scheduler.remove("weekly-cost")
    scheduler.remove("daily")
    assert _crontab_of(cron_user) == foreign
    assert [e.name for e in store.load()] == []


def test_the_crontab_line_runs_the_job_like_cron(cron_user: str, tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path / "schedule")
    scheduler = Scheduler(store=store, crontab=Crontab(user=cron_user))
    config_home = tmp_path / "cfg"
    scheduler.add("show", "*/5 * * * *", ["--json", "config", "show"], cwd=str(tmp_path),
                  env={"XDG_CONFIG_HOME": str(config_home), "VAPI_AGENT_DATA_DIR": str(tmp_path / "data")})
    line = _crontab_of(cron_user).splitlines()[-1]
    command = line.split(" ", 5)[5].replace("\\%", "%")
    # what cron does: /bin/sh -c with almost no environment
    subprocess.run(["/bin/sh", "-c", command], env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                   cwd="/", check=True, timeout=120)
    output = json.loads(store.log_path("show").read_text().strip().splitlines()[-1])
    # the environment file reached the job: its config file lives under the captured XDG_CONFIG_HOME
    assert output["result"]["config_file"] == str(config_home / "vapi-agent" / "config.toml")


@pytest.mark.parametrize(("name", "argv", "message"), [
    ("bad name!", ["report"], "not valid"),
    ("loop", ["schedule", "run"], "cannot run the schedule command"),
    ("empty", [], "no command"),
    ("leaky", ["tools", "call", "x", "--args", '{"h": "Bearer abcdef0123456789"}'], "hold a secret"),
])
def test_bad_entries_are_refused(tmp_path: Path, name: str, argv: list[str], message: str) -> None:
    scheduler = Scheduler(store=ScheduleStore(tmp_path), crontab=None)
    with pytest.raises(ConfigError, match=message):
        scheduler.add(name, "0 8 * * 1", argv)
    assert not (tmp_path / "schedules.json").exists()


def _cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def test_cli_schedule_add_list_remove(cron_user: str, tmp_path: Path) -> None:
    env = {**os.environ, "VAPI_AGENT_CRONTAB_USER": cron_user}
    out = tmp_path / "reports"
    added = _cli("schedule", "add", "--cron", "0 8 * * 1", "--name", "weekly-cost", "--",
                 "report", "--since", "7d", "--out", str(out), env=env)
    assert added.returncode == 0, added.stderr
    assert "scheduled weekly-cost (0 8 * * 1) and in your crontab" in added.stdout
    line = _crontab_of(cron_user).splitlines()[-1]
    assert line.startswith("0 8 * * 1 ") and f"report --since 7d --out {out}" in line

    listed = _cli("--json", "schedule", "list", env=env)
    envelope = json.loads(listed.stdout)
    [row] = envelope["result"]["schedules"]
    assert row["name"] == "weekly-cost" and row["in_crontab"] is True
    assert row["argv"] == ["report", "--since", "7d", "--out", str(out)]

    bad = _cli("schedule", "add", "--cron", "0 8 * *", "--name", "x", "--", "report", env=env)
    assert bad.returncode == 2 and "cron expression" in bad.stderr

    removed = _cli("schedule", "remove", "weekly-cost", env=env)
    assert removed.returncode == 0, removed.stderr
    assert "weekly-cost" not in _crontab_of(cron_user)


# ---------------------------------------------------------------- schedule run
class FakeClock:
    """Wall-clock seconds that move only when the runner sleeps (or a test jumps them)."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()
        self.naps: list[float] = []
        self.jumps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds + (self.jumps.pop(0) if self.jumps else 0.0)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


async def test_schedule_run_fires_a_job_at_an_injected_time(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path / "schedule")
    scheduler = Scheduler(store=store, crontab=None)
    scheduler.add("show", "0 8 * * 1", ["--json", "config", "show"], cwd=str(tmp_path),
                  env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    clock = FakeClock(datetime(2025, 1, 6, 7, 59, 30, tzinfo=UTC))  # a Monday, 30 s before the job
    started: list[Any] = []

    def launch(entry: Entry) -> Any:
        started.append((entry.name, _iso(clock())))
        return launch_entry(entry, store)

    runner = Runner(store.load(), launch=launch, clock=clock, sleep=clock.sleep, zone=UTC)
    fired = await runner.run(max_fires=1)
    assert clock.naps == [30.0]  # it slept exactly until 08:00, without waiting for real
    assert started == [("show", "2025-01-06T08:00:00+00:00")]
    assert fired[0].scheduled_for == "2025-01-06T08:00:00+00:00" and fired[0].skipped == 0
    [process] = runner.running
    assert process.wait(timeout=120) == 0
    runner.reap()
    assert fired[0].exit_code == 0
    output = json.loads(store.log_path("show").read_text().strip().splitlines()[-1])
    assert output["result"]["config_file"] == str(tmp_path / "cfg" / "vapi-agent" / "config.toml")
    assert store.read_env("show")[JOB_ENV] == "show"


class _Done:
    pid = 4242

    def poll(self) -> int:
        return 0


async def test_schedule_run_skips_missed_runs(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path)
    store.save([Entry("five", "*/5 * * * *", ["report"], str(tmp_path))])
    clock = FakeClock(datetime(2025, 1, 6, 10, 0, 10, tzinfo=UTC))
    clock.jumps = [16 * 60 + 20.0]  # the first nap (60 s) overshoots: the machine slept until 10:17:30
    launched: list[str] = []
    runner = Runner(store.load(), launch=lambda e: launched.append(_iso(clock())) or _Done(), clock=clock,
                    sleep=clock.sleep, zone=UTC, grace=60)
    fired = await runner.run(max_fires=1)
    assert [(f.scheduled_for, f.skipped, f.started_at) for f in fired] == [
        ("2025-01-06T10:05:00+00:00", 3, None),  # 10:05, 10:10 and 10:15 were missed: skipped, not caught up
        ("2025-01-06T10:20:00+00:00", 0, "2025-01-06T10:20:00+00:00"),
    ]
    assert launched == ["2025-01-06T10:20:00+00:00"]
    runner.reap()
    assert fired[1].exit_code == 0 and fired[1].pid == 4242


async def test_schedule_run_until_returns_without_firing_early(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path)
    store.save([Entry("weekly", "0 8 * * 1", ["report"], str(tmp_path))])
    clock = FakeClock(datetime(2025, 1, 6, 8, 0, 1, tzinfo=UTC))  # just after this week's run
    runner = Runner(store.load(), launch=lambda e: pytest.fail("nothing is due"), clock=clock, sleep=clock.sleep,
                    zone=UTC)
    until = datetime(2025, 1, 7, tzinfo=UTC).timestamp()
    assert await runner.run(until=until) == []
    assert clock() == until and max(clock.naps) <= 60  # short naps: a clock jump is noticed within a minute


def test_cli_schedule_run_stops_at_the_deadline(tmp_path: Path) -> None:
    env = {**os.environ}
    added = _cli("schedule", "add", "--no-crontab", "--cron", "0 8 * * 1", "--name", "weekly", "--",
                 "report", "--since", "7d", env=env)
    assert added.returncode == 0, added.stderr and "not in a crontab" in added.stdout
    running = _cli("--deadline", "2s", "schedule", "run", env=env)
    assert running.returncode == 6, running.stderr
    assert "running 1 schedule(s) in the foreground" in running.stderr and "--deadline" in running.stderr
