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
    from rich.table import Table

    from agent.store import RUNS_TABLE_COLUMNS
    from cli.console import terminal_console

    table = Table(title="recent runs")
    for column in RUNS_TABLE_COLUMNS:
        table.add_column(column)
    for row in outcome.result["runs"]:
        table.add_row(*(str(row.get(c, "")) for c in RUNS_TABLE_COLUMNS))
    terminal_console().print(table)


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
