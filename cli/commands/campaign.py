"""Command bodies for the CLI: open the runtime, run one workflow, hand back an ``Outcome``.

The CLI stays thin: it parses flags and calls these; the runner does envelopes and exit codes.
"""

from __future__ import annotations

from typing import Any

from agent.display import ID, NUMBER, TEXT, WHOLE, Column, console, fit_table
from agent.terminal import printable
from cli.runner import Body, CommandContext, Outcome


# ---------------------------------------------------------------- campaigns
def _plan_printer(ctx: CommandContext) -> Any:
    """Show a campaign plan on stderr (stdout is for the result or the envelope)."""

    def show(plan: Any) -> None:
        data = plan.to_dict()
        est = data["estimate"]
        estimate = "unknown (no call history)" if est["total_usd"] is None else (
            f"${est['total_usd']:.2f} (${est['per_call_usd']:.4f} x {data['leads']['accepted']} leads, "
            f"from {est['basis_calls']} recent calls)")
        lines = [
            f"Campaign {data['name']!r}",
            f"  assistant:    {data['assistant']['name']} ({data['assistant']['id']})",
            f"  phone number: {data['phone_number']['name']} {data['phone_number']['number']}",
            f"  leads:        {data['leads']['accepted']} accepted, {len(data['leads']['rejected'])} rejected, "
            f"{len(data['leads']['duplicates'])} duplicates removed",
            f"  window:       {data['window']['earliest_at']} -> {data['window']['latest_at'] or 'open'}",
            f"  estimate:     {estimate}",
        ]
        lines += [f"  rejected line {r['line']}: {r['reason']}" for r in data["leads"]["rejected"]]
        lines += [f"  warning: {w}" for w in data["warnings"]]
        for line in lines:
            ctx.notice(line)

    return show


def campaign_create_body(params: dict[str, Any]) -> Body:
    """``campaign create``."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.runtime import open_runtime
        from workflows.campaign import lifecycle as campaign

        checked = campaign.CampaignParams(**params)
        leads = campaign.load_leads(checked)  # a bad file is refused before any connection
        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice) as rt:
            result = await campaign.create(rt, checked, leads=leads,
                                           show_plan=None if ctx.settings.json else _plan_printer(ctx))
        return Outcome(result=result)

    return body


def campaign_create_render(outcome: Outcome, ctx: CommandContext) -> None:
    """One line: created (id, status) or the dry-run note."""
    result = outcome.result
    if result.dry_run:
        print("dry run: nothing was created")
    else:
        print(printable(f"created campaign {result.campaign.get('id')} ({result.campaign.get('status')})"))


def campaign_list_body() -> Body:
    """``campaign list``."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.runtime import open_runtime
        from workflows.campaign.lifecycle import counters

        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice, store=None) as rt:
            campaigns = await rt.vapi.list_campaigns()
        rows = [{"id": c.get("id"), "name": c.get("name"), "status": c.get("status"),
                 "created_at": c.get("createdAt"), **counters(c)} for c in campaigns]
        return Outcome(result={"campaigns": rows})

    return body


CAMPAIGN_COLUMNS = (
    Column("id", ID, keep=100),
    Column("name", TEXT, keep=90, min_width=12),
    Column("status", WHOLE, keep=80),
    Column("ended", NUMBER, keep=70),
    Column("customers", NUMBER, keep=60),
    Column("created (UTC)", WHOLE, keep=40),
)


def campaign_list_render(outcome: Outcome, ctx: CommandContext) -> None:
    """A table of campaigns that fits the terminal (ids whole, or as prefixes every command accepts)."""
    out = console()
    rows = [[c["id"], c["name"], c["status"], f"{c['callsCounterEnded']:,}", f"{c['customers']:,}",
             str(c["created_at"] or "").replace("T", " ")[:19]] for c in outcome.result["campaigns"]]
    out.print(fit_table(CAMPAIGN_COLUMNS, rows, out.width, title="campaigns"))


def campaign_status_body(campaign_id: str, watch: bool, interval: float) -> Body:
    """``campaign status ID [--watch]``: counters; with --watch, follow it to its end.

    On a terminal --watch shows a progress bar; elsewhere (a log file, CI) it prints one line on
    stderr each time the status or a counter changes, and a final line when the campaign ends.
    """

    async def body(ctx: CommandContext) -> Outcome:
        import asyncio

        from agent.runtime import open_runtime
        from workflows.campaign.lifecycle import counters, is_final, status
        from workflows.steps import ProgressBar

        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice, store=None) as rt:
            current = await status(rt, campaign_id)  # the id, or a unique prefix of it
            full_id = str(current.get("id") or campaign_id)
            lines = watch and not rt.show_progress
            last: tuple[Any, ...] | None = None
            with ProgressBar(rt.show_progress and watch, "campaign") as bar:
                while watch and not is_final(current):
                    shown = counters(current)
                    bar.update(total=shown["customers"] or None, completed=shown["callsCounterEnded"],
                               description=f"{current.get('status')}: {shown['callsCounterInProgress']} in progress")
                    if lines and (current.get("status"), shown) != last:
                        ctx.notice(_watch_line(current))
                        last = (current.get("status"), shown)
                    await asyncio.sleep(interval)
                    current = await status(rt, full_id)
            if lines:
                ctx.notice(_watch_line(current, final=True))
        return Outcome(result={"id": current.get("id"), "name": current.get("name"), "status": current.get("status"),
                               "ended_reason": current.get("endedReason"), "counters": counters(current)})

    return body


def _watch_line(campaign: dict[str, Any], *, final: bool = False) -> str:
    """One progress line of ``--watch`` off a terminal: UTC time, status, counters."""
    from datetime import UTC, datetime

    from agent.display import terminal_text
    from workflows.campaign.lifecycle import counters

    c = counters(campaign)
    state = terminal_text(campaign.get("status"))
    if final and campaign.get("endedReason"):
        state += f" ({terminal_text(campaign['endedReason'])})"
    return (f"{datetime.now(tz=UTC):%H:%M:%SZ} {'final: ' if final else ''}{state}: "
            f"{_counter_text(c)}")


def _counter_text(c: dict[str, int]) -> str:
    return (f"scheduled {c['callsCounterScheduled']}, queued {c['callsCounterQueued']}, in progress "
            f"{c['callsCounterInProgress']}, ended {c['callsCounterEnded']} (voicemail "
            f"{c['callsCounterEndedVoicemail']}) of {c['customers']} customers")


def campaign_status_render(outcome: Outcome, ctx: CommandContext) -> None:
    """Status and counters."""
    from agent.display import terminal_text

    r = outcome.result
    reason = f", {r['ended_reason']}" if r["ended_reason"] else ""
    print(terminal_text(f"{r['name']} ({r['id']}): {r['status']}{reason}"))
    print(f"  {_counter_text(r['counters'])}")


def campaign_cancel_body(campaign_id: str) -> Body:
    """``campaign cancel ID``: destructive, so it needs an interactive yes or --allow."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.runtime import open_runtime
        from workflows.campaign.lifecycle import cancel

        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice) as rt:
            campaign = await cancel(rt, campaign_id)
        return Outcome(result={"id": campaign.get("id"), "status": campaign.get("status")})

    return body


def print_result_line(outcome: Outcome, ctx: CommandContext) -> None:
    """Generic: ``key: value`` of a flat result."""
    print(printable(", ".join(f"{k}: {v}" for k, v in outcome.result.items())))
