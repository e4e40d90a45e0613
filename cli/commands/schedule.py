"""Command bodies of `schedule add|list|remove|sync|run`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from agent.terminal import printable
from cli.runner import Body, CommandContext, Outcome


def schedule_add_body(name: str, cron: str, argv: list[str], replace: bool, use_crontab: bool, parser: Any) -> Body:
    """``schedule add --cron EXPR --name NAME [--replace] [--no-crontab] -- COMMAND...``.

    ``parser`` is the CLI's typer app: the command line is parsed with it before anything is saved.
    """

    async def body(ctx: CommandContext) -> Outcome:
        from agent.errors import ConfigError
        from cli.argv import check_command_line
        from workflows.schedule.schedules import next_fire

        def check(command: Sequence[str]) -> None:
            path = check_command_line(parser, list(command))
            if path[:1] == ["schedule"]:
                raise ConfigError("a schedule cannot run the schedule command itself")

        scheduler = _scheduler(True)
        entry, mirrored = scheduler.add(name, cron, argv, replace=replace, local_only=not use_crontab,
                                        check_command=check)
        if use_crontab and not mirrored:
            ctx.notice("note: the crontab program is not installed; the entry is saved: run "
                       "`vapi-agent schedule run` in the foreground to fire it")
        return Outcome(result={**entry.to_dict(), "in_crontab": mirrored,
                               "next_run": next_fire(entry.cron, datetime.now().astimezone()).isoformat(),
                               "log": str(scheduler.store.log_path(entry.name))})

    return body


def schedule_add_render(outcome: Outcome, ctx: CommandContext) -> None:
    """One line."""
    r = outcome.result
    where = "and in your crontab" if r["in_crontab"] else \
        "(not in the crontab: --no-crontab)" if r["local_only"] else "(not in a crontab)"
    print(printable(f"scheduled {r['name']} ({r['cron']}) {where}; next run {r['next_run']}; log {r['log']}"))


def schedule_list_body() -> Body:
    """``schedule list``."""

    async def body(ctx: CommandContext) -> Outcome:
        return Outcome(result={"schedules": _scheduler(True).listing(datetime.now(tz=UTC))})

    return body


def schedule_list_render(outcome: Outcome, ctx: CommandContext) -> None:
    """A table of entries that fits the terminal (the command cut at a word when it must be)."""
    from agent.display import TEXT, WHOLE, Column, console, fit_table

    columns = (Column("name", WHOLE, keep=100), Column("cron", WHOLE, keep=90),
               Column("command", TEXT, keep=70, min_width=20), Column("next run", WHOLE, keep=80),
               Column("crontab", WHOLE, keep=60))
    rows = []
    for row in outcome.result["schedules"]:
        crontab = "local only" if row["local_only"] else {True: "yes", False: "MISSING", None: "-"}[row["in_crontab"]]
        next_run = row["next_run"][:16].replace("T", " ") if row["next_run"] else "never"
        rows.append([row["name"], row["cron"], row["command"], next_run, crontab])
    out = console()
    out.print(fit_table(columns, rows, out.width, title="schedules"))


def schedule_remove_body(name: str, use_crontab: bool) -> Body:
    """``schedule remove NAME``."""

    async def body(ctx: CommandContext) -> Outcome:
        scheduler = _scheduler(use_crontab)
        changed = scheduler.remove(name)
        log = scheduler.store.log_path(name)
        return Outcome(result={"removed": name, "crontab_updated": changed,
                               "log": str(log) if log.exists() else None})

    return body


def schedule_remove_render(outcome: Outcome, ctx: CommandContext) -> None:
    """One line: what was removed, whether the crontab changed, where the log stays."""
    r = outcome.result
    crontab = "crontab updated" if r["crontab_updated"] else "crontab unchanged"
    kept = f"; its log is kept at {r['log']} (delete it when no longer needed)" if r["log"] else ""
    print(f"removed {r['removed']} ({crontab}){kept}")


def schedule_sync_body() -> Body:
    """``schedule sync``: rewrite our crontab lines from the schedule file."""

    async def body(ctx: CommandContext) -> Outcome:
        scheduler = _scheduler(True)
        return Outcome(result={"entries": len(scheduler.store.load()), "crontab_updated": scheduler.sync()})

    return body


def schedule_run_body(grace: float) -> Body:
    """``schedule run``: fire the entries in the foreground until Ctrl-C (or ``--deadline``)."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.errors import ConfigError
        from agent.joblock import job_lock
        from workflows.schedule.runner import Runner, launch_entry

        scheduler = _scheduler(False)
        entries = scheduler.store.load()
        if not entries:
            raise ConfigError("there is nothing scheduled", hint="add an entry with `vapi-agent schedule add`")
        runner = Runner(entries, launch=lambda entry: launch_entry(entry, scheduler.store), grace=grace,
                        notice=ctx.notice)
        with job_lock("schedule-runner", label="schedule run"):
            ctx.notice(f"running {len(entries)} schedule(s) in the foreground; Ctrl-C stops")
            try:
                await runner.run()
            finally:
                runner.reap()
                if runner.running:
                    ctx.notice(f"{len(runner.running)} job(s) still running; they finish on their own")
        return Outcome(result={"fired": [f.to_dict() for f in runner.fired]})

    return body


def _scheduler(use_crontab: bool) -> Any:
    from workflows.schedule.schedules import Crontab, Scheduler

    return Scheduler(crontab=Crontab.from_env() if use_crontab else None)


def print_line(outcome: Outcome, ctx: CommandContext) -> None:
    """``key: value`` of a flat result."""
    print(printable(", ".join(f"{k}: {v}" for k, v in outcome.result.items())), file=sys.stdout)

