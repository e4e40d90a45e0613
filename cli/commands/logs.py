"""Command bodies of ``vapi-agent logs`` and ``logs prune`` (the run log lives in ``agent.store``)."""

from __future__ import annotations

import json

from agent.terminal import escape_c1_in_json
from cli.runner import Body, CommandContext, Outcome


def logs_body(run_id: str | None, limit: int) -> Body:
    """One run in detail, or the recent runs."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.store import RunStore, run_detail, runs_table_rows

        with RunStore() as store:
            if run_id:
                return Outcome(result={"run": run_detail(store.get_run(run_id))})
            return Outcome(result={"runs": runs_table_rows(store.list_runs(limit=limit))})

    return body


def logs_render(outcome: Outcome, ctx: CommandContext) -> None:
    """A table of runs, or one run as indented JSON."""
    if "run" in outcome.result:
        print(escape_c1_in_json(json.dumps(outcome.result["run"], indent=2, ensure_ascii=False, default=str)))
        return
    from agent.display import ID, NUMBER, TEXT, WHOLE, Column, console, fit_table

    columns = {"id": Column("id", ID, keep=100), "started": Column("started", WHOLE, keep=80),
               "workflow": Column("workflow", WHOLE, keep=45), "status": Column("status", WHOLE, keep=85),
               "duration": Column("duration", NUMBER, keep=40), "tools": Column("tools", NUMBER, keep=30),
               "cost": Column("cost", NUMBER, keep=35), "summary": Column("summary", TEXT, keep=60, min_width=16)}
    out = console()
    rows = [[row.get(name, "") for name in columns] for row in outcome.result["runs"]]
    out.print(fit_table(list(columns.values()), rows, out.width, title="recent runs"))


def prune_body(older_than: str) -> Body:
    """Delete runs older than the given age."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.store import RunStore, parse_age

        age = parse_age(older_than)
        with RunStore() as store:
            deleted = store.prune(age)
        return Outcome(result={"deleted": deleted, "older_than": older_than})

    return body


def prune_render(outcome: Outcome, ctx: CommandContext) -> None:
    """One line."""
    print(f"deleted {outcome.result['deleted']} run(s) older than {outcome.result['older_than']}")
