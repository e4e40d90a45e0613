"""Schedules refuse what would break out of a crontab line, what never fires, and commands the CLI would refuse.

Issue 13 items 1 and 12, issue 14 item 12. A fake ``crontab`` program on PATH keeps the crontab in
a file, so these tests run as any user and never touch a real crontab. The CLI runs in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import cli
from agent.errors import ConfigError
from tests.test_schedule import FakeClock
from workflows.schedule.runner import Runner
from workflows.schedule.schedules import MARKER, Entry, Scheduler, ScheduleStore

FAKE_CRONTAB = """#!/bin/sh
# crontab(1) stand-in: the crontab lives in one file
store={store}
while [ $# -gt 0 ]; do
  case "$1" in
    -u) shift ;;
    -l) if [ -f "$store" ]; then cat "$store"; exit 0; fi; echo "no crontab for tester" >&2; exit 1 ;;
    -r) rm -f "$store"; exit 0 ;;
    -) cat > "$store"; exit 0 ;;
  esac
  shift
done
exit 2
"""
FOREIGN = "MAILTO=ops@example.com\n15 3 * * * /usr/bin/true # someone else's job\n"


@pytest.fixture
def crontab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file behind a fake ``crontab`` program first on PATH; it starts with a foreign job."""
    folder = tmp_path / "bin"
    folder.mkdir()
    text = tmp_path / "crontab.txt"
    program = folder / "crontab"
    program.write_text(FAKE_CRONTAB.format(store=shlex.quote(str(text))))
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("VAPI_AGENT_CRONTAB_USER", raising=False)
    text.write_text(FOREIGN)
    return text


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """``vapi-agent ARGS`` in-process, headless."""
    import io

    def run(*argv: str) -> Run:
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        capsys.readouterr()
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def folder() -> Path:
    """Where the CLI keeps schedules (the test's private data dir)."""
    return Path(os.environ["VAPI_AGENT_DATA_DIR"]) / "schedule"


def refused(done: Run, *words: str) -> None:
    """Exit 2 with one line on stderr holding ``words``, no traceback."""
    assert done.code == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr


def nothing_saved(crontab: Path) -> None:
    """No schedule file, and the crontab is as the test left it."""
    assert not (folder() / "schedules.json").exists()
    assert crontab.read_text() == FOREIGN


def add(run: Callable[..., Run], *args: str, name: str = "weekly", cron: str = "0 8 * * 1") -> Run:
    """``schedule add --cron CRON --name NAME ARGS`` (ARGS holds ``--`` and the command)."""
    return run("schedule", "add", "--cron", cron, "--name", name, *args)


def job_lines_are_tagged(text: str) -> None:
    """Every line is foreign, one of our markers, or the single job line right after a marker."""
    lines = text.splitlines()
    assert lines[:2] == FOREIGN.splitlines()
    ours = lines[2:]
    assert len(ours) % 2 == 0
    for marker, job in zip(ours[0::2], ours[1::2], strict=True):
        assert marker.startswith(MARKER) and not job.startswith("#") and " 2>&1" in job


# ---------------------------------------------------------------- issue 13, item 1: crontab injection
INJECTED = "7d\n* * * * * touch /tmp/pwned #"


@pytest.mark.parametrize(("args", "words"), [
    (("--", "report", "--since", INJECTED), ("argument 3", "newline")),
    (("--", "report", "--since", "7d\r* * * * * touch x"), ("argument 3", "carriage return")),
    (("--", "report", "--since", "7d\0x"), ("argument 3", "NUL")),
    (("--", "--mcp-url", "https://example.com/mcp\n* * * * * touch x #", "report"), ("argument 2", "newline")),
])
def test_a_line_break_in_an_argument_is_refused(crontab: Path, run: Callable[..., Run], args: tuple[str, ...],
                                                words: tuple[str, ...]) -> None:
    refused(add(run, *args), *words)
    nothing_saved(crontab)


@pytest.mark.parametrize(("name", "cron", "words"), [
    ("weekly\n", "0 8 * * 1", ("schedule name",)),
    ("weekly", "0 8 * * 1\r", ("cron expression", "carriage return")),
    ("weekly", "0 8 * * 1\n* * * * * touch x", ("cron expression", "newline")),
])
def test_a_line_break_in_the_name_or_the_expression_is_refused(crontab: Path, run: Callable[..., Run], name: str,
                                                               cron: str, words: tuple[str, ...]) -> None:
    refused(add(run, "--", "report", "--since", "7d", name=name, cron=cron), *words)
    nothing_saved(crontab)


def test_a_working_directory_holding_a_cron_line_is_refused(crontab: Path, run: Callable[..., Run], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    trap = tmp_path / "a\n* * * * * touch pwned #"
    trap.mkdir()
    monkeypatch.chdir(trap)
    refused(add(run, "--", "report", "--since", "7d"), "working directory", "newline")
    nothing_saved(crontab)


def _old_block(name: str, store: ScheduleStore, cwd: str, since: str) -> str:
    """What an earlier version wrote for an entry whose argument or name held a newline."""
    env, log = shlex.quote(str(store.env_path(name))), shlex.quote(str(store.log_path(name)))
    return (f"{MARKER}{name}\n0 8 * * 1 . {env} && cd {shlex.quote(cwd)} && exec /usr/local/bin/vapi-agent "
            f"report --since {shlex.quote(since)} >> {log} 2>&1\n")


def test_every_rewrite_drops_the_lines_an_earlier_version_split(crontab: Path, run: Callable[..., Run],
                                                                tmp_path: Path) -> None:
    store = ScheduleStore(folder())
    split_argument = _old_block("weekly", store, str(tmp_path), INJECTED)
    split_name = _old_block("daily\n", store, str(tmp_path / "it's"), "1d")  # the marker then a blank line
    later = "30 4 * * * /usr/bin/backup # added by hand after ours\n"
    crontab.write_text(FOREIGN + split_argument + split_name + later)
    assert split_argument.count("\n") == 3 and split_name.count("\n") == 5  # as cron reads them: untagged lines

    done = run("schedule", "sync")
    assert done.code == 0, done.stderr
    assert crontab.read_text() == FOREIGN + later  # the foreign lines exactly, every piece of ours gone

    crontab.write_text(FOREIGN + split_argument)
    done = add(run, "--", "report", "--since", "7d")
    assert done.code == 0, done.stderr
    text = crontab.read_text()
    assert "pwned" not in text and text.count(MARKER) == 1
    job_lines_are_tagged(text)


def test_an_entry_saved_with_a_newline_is_removed_with_its_lines(crontab: Path, run: Callable[..., Run],
                                                                 tmp_path: Path) -> None:
    store = ScheduleStore(folder())
    store.save([Entry("weekly", "0 8 * * 1", ["report", "--since", INJECTED], str(tmp_path))])
    crontab.write_text(FOREIGN + _old_block("weekly", store, str(tmp_path), INJECTED))

    blocked = add(run, "--", "report", name="other")  # the old entry cannot be written again: it says which
    refused(blocked, "schedule 'weekly'", "newline", "schedule remove weekly")

    done = run("schedule", "remove", "weekly")
    assert done.code == 0, done.stderr
    assert crontab.read_text() == FOREIGN


# ---------------------------------------------------------------- issue 13, item 12: dates that never come
@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6 *"])
def test_an_expression_that_never_fires_is_refused_before_saving(crontab: Path, run: Callable[..., Run],
                                                                 cron: str) -> None:
    refused(add(run, "--", "report", "--since", "7d", cron=cron), "never fires")
    nothing_saved(crontab)


def test_an_old_entry_that_never_fires_does_not_break_list_or_run(tmp_path: Path, run: Callable[..., Run]) -> None:
    store = ScheduleStore(folder())
    store.save([Entry("feb30", "0 0 30 2 *", ["report"], str(tmp_path))])
    listed = run("--json", "schedule", "list")
    assert listed.code == 0, listed.stderr
    [row] = json.loads(listed.stdout)["result"]["schedules"]
    assert row["name"] == "feb30" and row["next_run"] is None
    shown = run("schedule", "list")
    assert shown.code == 0 and "never" in shown.stdout

    notices: list[str] = []
    runner = Runner(store.load(), launch=lambda e: pytest.fail("it never fires"), notice=notices.append)
    assert asyncio.run(runner.run()) == []
    assert notices == ["feb30: '0 0 30 2 *' never fires; remove it with `schedule remove`"]


def test_no_crontab_is_remembered_by_the_entry(crontab: Path, run: Callable[..., Run]) -> None:
    local = add(run, "--no-crontab", "--", "report", "--since", "1d", name="local")
    assert local.code == 0 and "--no-crontab" in local.stdout, local.stderr
    assert crontab.read_text() == FOREIGN
    mirrored = add(run, "--", "report", "--since", "7d", name="mirrored")
    assert mirrored.code == 0 and "and in your crontab" in mirrored.stdout, mirrored.stderr
    assert run("schedule", "sync").code == 0
    text = crontab.read_text()
    assert f"{MARKER}mirrored" in text and "local" not in text

    rows = {r["name"]: r for r in json.loads(run("--json", "schedule", "list").stdout)["result"]["schedules"]}
    assert rows["local"]["local_only"] is True and rows["local"]["in_crontab"] is False
    assert rows["mirrored"]["local_only"] is False and rows["mirrored"]["in_crontab"] is True
    assert "local only" in run("schedule", "list").stdout

    # replacing a crontab entry by a local-only one takes its line out of the crontab
    assert add(run, "--no-crontab", "--replace", "--", "report", name="mirrored").code == 0
    assert crontab.read_text() == FOREIGN


# ---------------------------------------------------------------- issue 14, item 12
@pytest.mark.parametrize(("command", "words"), [
    (("frobnicate",), ("No such command 'frobnicate'",)),
    (("repot", "--since", "7d"), ("Did you mean 'report'",)),
    (("report", "--since"), ("'--since' requires an argument",)),
    (("report", "--no-such-flag"), ("--no-such-flag",)),
    (("qa-grade", "--last", "5"), ("Missing option '--assistant'",)),
    (("report", "--help"), ("only prints help",)),
    (("--json", "schedule", "run"), ("cannot run the schedule command",)),
    (("calls",), ("needs a command",)),
])
def test_the_command_is_parsed_by_the_cli_before_saving(crontab: Path, run: Callable[..., Run],
                                                         command: tuple[str, ...], words: tuple[str, ...]) -> None:
    done = add(run, "--", *command)
    refused(done, *words)
    assert done.stdout == ""  # no help text leaked from the parser
    nothing_saved(crontab)


def test_a_valid_command_line_with_common_options_is_accepted(crontab: Path, run: Callable[..., Run]) -> None:
    done = add(run, "--", "--json", "report", "--since", "7d", "--group-by", "assistant")
    assert done.code == 0, done.stderr
    job_lines_are_tagged(crontab.read_text())


def test_remove_says_what_changed_and_where_the_log_is(crontab: Path, run: Callable[..., Run]) -> None:
    assert add(run, "--no-crontab", "--", "report", name="local").code == 0
    assert add(run, "--", "report", name="mirrored").code == 0
    log = folder() / "logs" / "local.log"

    removed = run("--json", "schedule", "remove", "local")
    assert removed.code == 0, removed.stderr
    assert json.loads(removed.stdout)["result"] == {"removed": "local", "crontab_updated": False, "log": str(log)}
    assert log.exists()  # history stays, and the user is told where

    removed = run("schedule", "remove", "mirrored")
    assert removed.code == 0, removed.stderr
    assert removed.stdout == (f"removed mirrored (crontab updated); its log is kept at {folder() / 'logs'}"
                              "/mirrored.log (delete it when no longer needed)\n")
    assert crontab.read_text() == FOREIGN


async def test_schedule_run_reports_a_finished_job_when_it_finishes(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 1, 6, 7, 59, 30, tzinfo=UTC))  # 30 s before a Monday 08:00 job
    long_nap = asyncio.Event()  # never set: after the start, the runner naps "a minute"

    async def sleep(seconds: float) -> None:
        clock.naps.append(seconds)
        if len(clock.naps) > 1:
            await long_nap.wait()
        clock.now += seconds

    finished = asyncio.Event()
    notices: list[str] = []

    def notice(message: str) -> None:
        notices.append(message)
        if "finished" in message:
            finished.set()

    def launch(entry: Entry) -> Any:
        return subprocess.Popen([sys.executable, "-c", "pass"])

    runner = Runner([Entry("quick", "0 8 * * 1", ["report"], str(tmp_path))], launch=launch, clock=clock,
                    sleep=sleep, zone=UTC, notice=notice)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(finished.wait(), timeout=60)  # today: only after the nap, i.e. never here
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert notices == ["quick: started (scheduled for 2025-01-06T08:00:00+00:00)", "quick: finished with exit code 0"]
    # told during the nap that followed the start: no nap after 08:00 ever ended
    assert clock.naps[:2] == [30.0, 60.0] and clock() == datetime(2025, 1, 6, 8, 0, tzinfo=UTC).timestamp()
    assert runner.fired[0].exit_code == 0


def test_library_add_refuses_a_nul_in_the_working_directory(tmp_path: Path) -> None:
    scheduler = Scheduler(store=ScheduleStore(tmp_path / "s"), crontab=None)
    with pytest.raises(ConfigError, match="working directory"):
        scheduler.add("x", "@daily", ["report"], cwd="/tmp/a\0b")
    assert not (tmp_path / "s").exists()


def test_a_deleted_working_directory_is_a_clear_error(crontab: Path, run: Callable[..., Run], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    refused(add(run, "--", "report"), "current directory no longer exists")
    nothing_saved(crontab)
