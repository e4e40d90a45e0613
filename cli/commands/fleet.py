"""Command bodies of ``vapi-agent fleet ...`` and ``vapi-agent worker``.

The CLI declares the options (cli/app.py); the work is in ``agent.fleet`` (accounts, minting,
cleanup) and ``workflows.fleet`` (the durable fleet runs on DBOS, imported only here, lazily).
"""

from __future__ import annotations

from typing import Any

from cli.runner import Body, CommandContext, Outcome


def _source(ctx: CommandContext, source: dict[str, Any], sandbox: Any = None) -> Any:
    from agent.runtime import fleet_source

    return fleet_source(ctx.settings, accounts_file=source.get("accounts_file"), truto_api=source.get("truto_api"),
                        sandbox_accounts=source.get("sandbox_accounts"), sandbox=sandbox, notice=ctx.notice)


# ---------------------------------------------------------------- fleet accounts
def accounts_body(source: dict[str, Any], tenant: str | None, status: str | None, *, sandbox: Any = None) -> Body:
    """``vapi-agent fleet accounts``: the accounts of the fleet, from Truto, a file or the sandbox."""

    async def body(ctx: CommandContext) -> Outcome:
        fleet = _source(ctx, source, sandbox)
        accounts = await fleet.accounts(tenant=tenant, status=status)
        return Outcome(result={"source": fleet.kind, "accounts": [a.to_dict() for a in accounts]})

    return body


def accounts_render(outcome: Outcome, ctx: CommandContext) -> None:
    """A table: name, tenant, status, sandbox mode, how the account is reached."""
    from rich.table import Table

    from agent.display import console

    table = Table(title=f"{len(outcome.result['accounts'])} accounts ({outcome.result['source']})")
    for column in ("account", "tenant", "status", "sandbox mode", "reached by"):
        table.add_column(column)
    for account in outcome.result["accounts"]:
        reached = (account["truto_account_id"] and f"Truto {account['truto_account_id']}") or account["credential"]
        table.add_row(account["name"], account["tenant"] or "—", account["status"],
                      "yes" if account["is_sandbox"] else "no", str(reached))
    console().print(table)


# ---------------------------------------------------------------- fleet cleanup
def cleanup_body(source: dict[str, Any], dry_run: bool, run_id: str | None, *, sandbox: Any = None) -> Body:
    """``vapi-agent fleet cleanup``: delete leftover MCP servers that vapi-agent minted."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.errors import ConfigError
        from agent.fleet.access import cleanup

        fleet = _source(ctx, source, sandbox)
        if not fleet.mints:
            raise ConfigError("fleet cleanup needs Truto (TRUTO_API_TOKEN) or the sandbox: an accounts file "
                              "mints nothing")
        accounts = [a for a in await fleet.accounts() if a.truto_account_id]
        async with fleet.admin() as admin:
            result = await cleanup(admin, accounts, dry_run=dry_run, run_id=run_id)
        return Outcome(result=result)

    return body


def cleanup_render(outcome: Outcome, ctx: CommandContext) -> None:
    """One line per server found, then a count."""
    result = outcome.result
    verb = "would delete" if result.dry_run else "deleted"
    for server in result.found:
        print(f"{verb} {server.id}  {server.name}  (account {server.account_id}, expires {server.expires_at})")
    count = len(result.found) if result.dry_run else len(result.deleted)
    print(f"{verb} {count} MCP server(s) minted by vapi-agent")


# ---------------------------------------------------------------- fleet qa-grade | report, status, resume, worker
def fleet_run_body(fleet_params: dict[str, Any], *, sandbox: Any = None) -> Body:
    """``vapi-agent fleet qa-grade|report``: the workflow on every account, one fleet result.

    ``--queue-url``, ``--truto-api`` and ``--concurrency`` arrive as (validated) settings.
    """

    async def body(ctx: CommandContext) -> Outcome:
        from workflows.fleet.run import DEFAULT_CONCURRENCY, FleetParams, run_fleet

        params = FleetParams(**{"concurrency": ctx.settings.fleet_concurrency or DEFAULT_CONCURRENCY, **fleet_params})
        params.validate()
        result = await run_fleet(ctx.settings, params, notice=ctx.notice, sandbox=sandbox)
        return Outcome(result=result, status=result.status, errors=result.errors, exit_code=result.exit_code)

    return body


def fleet_status_body(run_id: str, watch: bool, interval: float) -> Body:
    """``vapi-agent fleet status RUN_ID``: the run as it stands (``--watch``: until it ends)."""

    async def body(ctx: CommandContext) -> Outcome:
        from workflows.fleet.run import fleet_status

        result = await fleet_status(ctx.settings, run_id, watch=watch, interval=interval,
                                    notice=ctx.notice)
        return Outcome(result=result, status=result.status, errors=result.errors,
                       exit_code=0 if result.pending else result.exit_code)

    return body


def fleet_resume_body(run_id: str, *, sandbox: Any = None) -> Body:
    """``vapi-agent fleet resume RUN_ID``: finish a run whose process or workers stopped."""

    async def body(ctx: CommandContext) -> Outcome:
        from workflows.fleet.run import fleet_resume

        result = await fleet_resume(ctx.settings, run_id, notice=ctx.notice, sandbox=sandbox)
        return Outcome(result=result, status=result.status, errors=result.errors, exit_code=result.exit_code)

    return body


def fleet_render(outcome: Outcome, ctx: CommandContext) -> None:
    """The fleet table (worst first) and the totals; pending accounts while the run goes on."""
    from agent.display import console
    from workflows.fleet.render import render_terminal

    render_terminal(outcome.result, console())
    for path in outcome.result.files:
        ctx.notice(f"wrote {path}")


def worker_body() -> Body:
    """``vapi-agent worker``: run fleet jobs from the queue until stopped (``--concurrency``: fleet_concurrency)."""

    async def body(ctx: CommandContext) -> Outcome:
        from workflows.fleet.run import worker

        await worker(ctx.settings, concurrency=ctx.settings.fleet_concurrency, notice=ctx.notice)
        return Outcome(result={"stopped": True})

    return body
