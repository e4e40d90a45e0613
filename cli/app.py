"""The vapi-agent command line: parse options, build Settings, await one library call, render.

Heavy libraries (openai, mcp, pandas...) are imported inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.exceptions import TyperException

from agent import __version__
from agent.errors import AgentError, ConfigError
from cli.argv import common_options_help, split_common_options, wants_json
from cli.groups import DefaultSubcommandGroup
from cli.values import duration, finite

app = typer.Typer(
    name="vapi-agent",
    help="Operate a Vapi voice-AI account through MCP: audit and grade calls, build squads, "
    "launch campaigns, report on cost. Runs on an embedded sandbox when no account is configured.",
    epilog=common_options_help(),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
sandbox_app = typer.Typer(help="The embedded simulated Vapi workspace.", no_args_is_help=True)
config_app = typer.Typer(help="Show the effective settings.", no_args_is_help=True)
tools_app = typer.Typer(help="The MCP tool catalogue.", no_args_is_help=True)
calls_app = typer.Typer(help="Calls and their recordings.", no_args_is_help=True)
campaign_app = typer.Typer(help="Outbound call campaigns.", no_args_is_help=True)
squad_app = typer.Typer(help="Squads: several assistants sharing a call.", no_args_is_help=True)
logs_app = typer.Typer(
    help="The run log (every run, its tool calls and usage). `logs` alone lists, `logs RUN_ID` shows one.",
    cls=DefaultSubcommandGroup, no_args_is_help=False)
schedule_app = typer.Typer(help="Run vapi-agent commands on a schedule (mirrored into your crontab).",
                           no_args_is_help=True)
assistant_app = typer.Typer(help="Your Vapi assistants.", no_args_is_help=True)
fleet_app = typer.Typer(help="Every Vapi account of a platform (Truto, an accounts file, or the sandbox): "
                        "graded and reported, durably, with a least-privilege MCP server per job.",
                        no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(config_app, name="config")
app.add_typer(tools_app, name="tools")
app.add_typer(calls_app, name="calls")
app.add_typer(logs_app, name="logs")
app.add_typer(campaign_app, name="campaign")
app.add_typer(squad_app, name="squad")
app.add_typer(schedule_app, name="schedule")
app.add_typer(assistant_app, name="assistant")
app.add_typer(fleet_app, name="fleet")

# Filled by main() before typer runs: the common options lifted out of argv.
COMMON_FLAGS: dict[str, Any] = {}


def _version_callback(value: bool) -> None:
    if value:
        if COMMON_FLAGS.get("json"):
            from cli.envelope import Envelope

            print(Envelope(workflow="vapi-agent", result={"version": __version__}).dumps())
        else:
            print(f"vapi-agent {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    """vapi-agent."""


def _settings() -> Any:
    from agent.config import load_settings

    return load_settings(COMMON_FLAGS)


PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@sandbox_app.command("serve", context_settings=PASSTHROUGH, add_help_option=False)
def sandbox_serve(ctx: typer.Context) -> None:
    """Serve the sandbox on loopback: Truto-style MCP URL and REST API (see --help for options)."""
    from sandbox.__main__ import main as sandbox_main

    _no_json("sandbox serve", "it is a foreground server: it prints its URLs and serves until Ctrl-C")
    raise typer.Exit(sandbox_main(["serve", *ctx.args], prog="vapi-agent sandbox"))


@sandbox_app.command("ground-truth", context_settings=PASSTHROUGH, add_help_option=False)
def sandbox_ground_truth(ctx: typer.Context) -> None:
    """Write the embedded sandbox's ground-truth file (metric values, failing calls, recording hashes)."""
    from agent.runtime import embedded_sandbox_dir
    from sandbox.__main__ import main as sandbox_main

    _no_json("sandbox ground-truth", "it writes a JSON file (--out)")
    raise typer.Exit(sandbox_main(["ground-truth", "--state-dir", str(embedded_sandbox_dir()), *ctx.args],
                                  prog="vapi-agent sandbox"))


def _no_json(command: str, why: str) -> None:
    """``--json`` on a command without an envelope: exit 2 with an error envelope (never plain text on stdout)."""
    if COMMON_FLAGS.get("json"):
        from cli.runner import fail_before_start

        error = ConfigError(f"{command} has no --json form: {why}", hint="run it without --json")
        raise typer.Exit(fail_before_start(command.replace(" ", "."), error, json=True))


@sandbox_app.command("reset")
def sandbox_reset() -> None:
    """Forget every change made to the embedded sandbox (created objects, campaigns, chats); start over."""
    from cli.commands import sandbox

    _run("sandbox.reset", sandbox.sandbox_reset_body(), sandbox.sandbox_reset_render)


def _run(workflow: str, body: Any, render: Any = None, *, lock: bool = False, deadline_inside: bool = False,
         record: bool = True) -> None:
    """Run one library coroutine through the command runner and exit with its code.

    Settings are validated first: a bad one is exit 2 (with its envelope) before anything starts.
    """
    from cli.runner import fail_before_start, run_command

    try:
        settings = _settings()
    except AgentError as exc:
        raise typer.Exit(fail_before_start(workflow, exc, json=bool(COMMON_FLAGS.get("json")))) from None
    raise typer.Exit(run_command(workflow, settings, body, render, lock=lock, deadline_inside=deadline_inside,
                                 record=record))


@app.command("qa-grade")
def qa_grade(
    assistant: str = typer.Option(..., "--assistant", help="Assistant id (or a unique prefix), or its exact name."),
    last: int = typer.Option(5, "--last", min=1, help="How many of the newest ended calls to grade."),
    since: str | None = typer.Option(None, "--since", parser=duration,
                                     help="Only calls created within this window (7d, 12h)."),
    metric: str | None = typer.Option(
        None, "--metric", help="Scorecard or numeric structured output (scorecard:NAME / output:NAME force one)."
    ),
    threshold: float = typer.Option(80.0, "--threshold", parser=finite(),
                                    help="A call fails when its value is below this."),
    recordings: str = typer.Option("failing", "--recordings", help="failing | all | none"),
    recordings_dir: str = typer.Option("./recordings", "--recordings-dir", help="Where recordings are saved."),
    out: str | None = typer.Option(
        None, "--out", help="Also write a markdown report to this file (replaced atomically), or into this folder "
        "as qa-grade-YYYY-MM-DD.md."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore checkpoints of earlier runs."),
) -> None:
    """Grade an assistant's latest calls on a metric, fetch failing recordings, explain the failures."""
    from cli.commands import qa

    params = dict(assistant=assistant, last=last, since=since, metric=metric, threshold=threshold,
                  recordings=recordings, recordings_dir=recordings_dir, out=out, fresh=fresh)
    _run("qa-grade", qa.qa_grade_body(params), qa.qa_grade_render, lock=True)


@campaign_app.command("create")
def campaign_create(
    name: str = typer.Option(..., "--name", help="Campaign name."),
    assistant: str = typer.Option(..., "--assistant", help="Assistant id (or a unique prefix), or its exact name."),
    phone_number: str = typer.Option(
        ..., "--phone-number", help='Id, E.164, exact name, or a description like "primary US toll-free".'
    ),
    leads: str = typer.Option(..., "--leads", help="CSV with a header: number (required), name, other columns."),
    region: str = typer.Option("US", "--region", help="Region for national numbers in the CSV."),
    start: str | None = typer.Option(None, "--start", help="Earliest start, ISO 8601 (default now)."),
    max_duration: str | None = typer.Option(None, "--max-duration", parser=duration,
                                            help="Stop dialling after this long (2h)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan and create nothing."),
    strict: bool = typer.Option(False, "--strict", help="Refuse the run if any CSV row is invalid."),
    allow_duplicate: bool = typer.Option(
        False, "--allow-duplicate", help="Create it even if a campaign of this name was created in the last 24 h."
    ),
) -> None:
    """Plan, confirm and create an outbound campaign (exactly once)."""
    from cli.commands import campaign

    params = dict(name=name, assistant=assistant, phone_number=phone_number, leads=leads, region=region,
                  start=start, max_duration=max_duration, dry_run=dry_run, strict=strict,
                  allow_duplicate=allow_duplicate)
    _run("campaign.create", campaign.campaign_create_body(params), campaign.campaign_create_render, lock=True)


@campaign_app.command("status")
def campaign_status(
    campaign_id: str = typer.Argument(..., help="Campaign id, or a unique prefix of it."),
    watch: bool = typer.Option(False, "--watch", help="Follow the campaign until it ends."),
    interval: float = typer.Option(2.0, "--interval", parser=finite(gt=0, le=3600),
                                   help="Seconds between checks with --watch."),
) -> None:
    """Show a campaign's counters (and follow it with --watch)."""
    from cli.commands import campaign

    _run("campaign.status", campaign.campaign_status_body(campaign_id, watch, interval),
         campaign.campaign_status_render)


@campaign_app.command("list")
def campaign_list() -> None:
    """List campaigns."""
    from cli.commands import campaign

    _run("campaign.list", campaign.campaign_list_body(), campaign.campaign_list_render)


@campaign_app.command("cancel")
def campaign_cancel(campaign_id: str = typer.Argument(..., help="Campaign id, or a unique prefix of it.")) -> None:
    """Cancel a campaign (destructive: an interactive yes, or --allow update_a_vapi_campaign_by_id)."""
    from cli.commands import campaign

    _run("campaign.cancel", campaign.campaign_cancel_body(campaign_id), campaign.print_result_line)


@squad_app.command("create")
def squad_create(
    name: str = typer.Option(..., "--name", help="Squad name."),
    member: list[str] = typer.Option(..., "--member", help="Assistant id or exact name (repeatable; first starts)."),
    route: list[str] = typer.Option([], "--route", help='"FROM -> TO: when ..." (repeatable).'),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the squad and create nothing."),
) -> None:
    """Create a squad whose members transfer to each other by name."""
    from cli.commands import squad

    params = dict(name=name, members=list(member), routes=list(route), dry_run=dry_run)
    _run("squad.create", squad.squad_create_body(params), squad.squad_create_render, lock=True)


@app.command("report")
def report(
    since: str | None = typer.Option(None, "--since", parser=duration,
                                     help="The window back from now (or --to): 7d, 24h (default 7d)."),
    start: str | None = typer.Option(None, "--from", help="Window start, ISO 8601 (a bare date: midnight in --tz)."),
    end: str | None = typer.Option(None, "--to", help="Window end (exclusive), ISO 8601 (default: now or --as-of)."),
    tz: str = typer.Option("UTC", "--tz", help="Time zone of the report's days (IANA name)."),
    group_by: str = typer.Option("assistant", "--group-by", help="assistant | endedReason | squad"),
    formats: str | None = typer.Option(
        None, "--format", help="Files to write: md,csv,html,json,png (--out alone writes them all)."),
    out: str | None = typer.Option(
        None, "--out", help="Folder (created if missing; a file is refused) for the report-YYYY-MM-DD.<ext> files, "
        "named after the day of --as-of (or today) in --tz."),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Run as if now were this ISO time (reproducible files, named after its day in --tz)."),
    source: str = typer.Option("auto", "--source", help="auto | analytics (Vapi's analytics) | calls (page calls)."),
    worse_success_pp: float = typer.Option(5.0, "--worse-success-pp", parser=finite(ge=0),
                                           help="Worse: success rate down > this (pp)."),
    worse_cost_pct: float = typer.Option(10.0, "--worse-cost-pct", parser=finite(ge=0),
                                         help="Worse: cost per call up > this (%)."),
    min_calls: int = typer.Option(10, "--min-calls", min=0,
                                  help="Flag worse only with this many calls in both periods."),
) -> None:
    """Calls, minutes, cost and how calls ended, by assistant and day, against the previous period."""
    from cli.commands import report

    params = dict(since=since, start=start, end=end, tz=tz, group_by=group_by, formats=formats, out=out, as_of=as_of,
                  source=source, worse_success_pp=worse_success_pp, worse_cost_pct=worse_cost_pct,
                  min_calls=min_calls)
    _run("report", report.report_body(params), report.report_render, lock=True)


@schedule_app.command("add")
def schedule_add(
    name: str = typer.Option(..., "--name", help="The schedule's name (letters, digits, . _ -)."),
    cron: str = typer.Option(..., "--cron", help='Cron expression, e.g. "0 8 * * 1" (Mondays 08:00).'),
    replace: bool = typer.Option(False, "--replace", help="Replace an entry of the same name."),
    no_crontab: bool = typer.Option(False, "--no-crontab",
                                    help="Keep this entry out of the crontab (only `schedule run` fires it)."),
    command: list[str] = typer.Argument(..., help='The vapi-agent command after "--", e.g. -- report --since 7d.'),
) -> None:
    """Schedule a command: saved in the schedule file and mirrored into your crontab."""
    from cli.commands import schedule

    _run("schedule.add", schedule.schedule_add_body(name, cron, list(command), replace, not no_crontab, app),
         schedule.schedule_add_render)


@schedule_app.command("list")
def schedule_list() -> None:
    """List the schedules, their next run and whether the crontab has them."""
    from cli.commands import schedule

    _run("schedule.list", schedule.schedule_list_body(), schedule.schedule_list_render)


@schedule_app.command("remove")
def schedule_remove(
    name: str = typer.Argument(..., help="The schedule's name."),
    no_crontab: bool = typer.Option(False, "--no-crontab", help="Leave the crontab alone."),
) -> None:
    """Remove a schedule (and its crontab line)."""
    from cli.commands import schedule

    _run("schedule.remove", schedule.schedule_remove_body(name, not no_crontab), schedule.schedule_remove_render)


@schedule_app.command("sync")
def schedule_sync() -> None:
    """Rewrite vapi-agent's crontab lines from the schedule file."""
    from cli.commands import schedule

    _run("schedule.sync", schedule.schedule_sync_body(), schedule.print_line)


@schedule_app.command("run")
def schedule_run(
    grace: float = typer.Option(60.0, "--grace", parser=finite(ge=0),
                                help="Seconds late a run may still start; later ones are skipped."),
) -> None:
    """Fire the schedules in the foreground (for containers without a cron daemon); Ctrl-C stops."""
    from cli.commands import schedule

    _run("schedule.run", schedule.schedule_run_body(grace), None)


@app.command("ask")
def ask(
    prompt: str | None = typer.Argument(None, help='The request, e.g. "list my assistants" (stdin when - or absent).'),
    max_turns: int = typer.Option(20, "--max-turns", min=1, help="Model turns before a final answer is forced."),
    max_tool_calls: int = typer.Option(60, "--max-tool-calls", min=0,
                                       help="Tool calls before a final answer is forced."),
    max_cost: float | None = typer.Option(None, "--max-cost", parser=finite(ge=0),
                                          help="Stop when the run has cost this many USD."),
    price: str | None = typer.Option(None, "--price", help="Model price IN,OUT in USD per 1M tokens."),
) -> None:
    """Ask in plain words; the model drives the MCP tools and answers."""
    from cli.commands import ask

    options = ask.AskOptions(prompt, max_turns, max_tool_calls, max_cost, price)
    # ask stops itself at --deadline (a final answer and a partial envelope), so the runner does not.
    _run("ask", ask.ask_body(options), ask.ask_render, deadline_inside=True)


@app.command("chat")
def chat(
    max_turns: int = typer.Option(20, "--max-turns", min=1,
                                  help="Model turns per message before a final answer is forced."),
    max_tool_calls: int = typer.Option(60, "--max-tool-calls", min=0, help="Tool calls per message."),
    max_cost: float | None = typer.Option(None, "--max-cost", parser=finite(ge=0),
                                          help="Stop a turn once the session cost this many USD."),
    price: str | None = typer.Option(None, "--price", help="Model price IN,OUT in USD per 1M tokens."),
) -> None:
    """Chat with the agent in your terminal: tools run as you watch, writes ask first (/help inside)."""
    from cli.commands import chat

    options = chat.ChatOptions(max_turns, max_tool_calls, max_cost, price)
    _run("chat", chat.chat_body(options), record=False)  # the REPL records each turn as a run


@assistant_app.command("chat")
def assistant_chat(
    assistant: str = typer.Argument(..., help="Assistant id (or a unique prefix), or its exact name."),
    message: str | None = typer.Argument(None, help="One message (- reads stdin); none: interactive, or stdin lines."),
    previous_chat_id: str | None = typer.Option(None, "--previous-chat-id", help="Continue this earlier chat."),
    via: str = typer.Option("auto", "--via", help="auto | rest (streamed /chat/responses) | mcp (the chat tool)."),
) -> None:
    """Talk to one of your assistants by text (creates billed chats: the command is the approval)."""
    from cli.commands import chat

    options = chat.AssistantChatOptions(assistant, message, previous_chat_id, via)
    _run("assistant.chat", chat.assistant_chat_body(options))


@tools_app.command("list")
def tools_list() -> None:
    """List every tool of the connected servers with its access class (read, write, destructive)."""
    from cli.commands import tools

    _run("tools.list", tools.tools_list_body(), tools.tools_list_render)


@tools_app.command("call")
def tools_call(
    name: str = typer.Argument(..., help="Tool name as `tools list` shows it."),
    args: str = typer.Option("{}", "--args", help="Arguments as a JSON object."),
) -> None:
    """Call one tool (writes go through the approval gate)."""
    from cli.commands import tools

    _run("tools.call", tools.tools_call_body(name, args), tools.print_json_result)


@calls_app.command("list")
def calls_list(
    assistant: str = typer.Option(..., "--assistant", help="Assistant id (or a unique prefix), or its exact name."),
    since: str | None = typer.Option(None, "--since", parser=duration,
                                     help="Only calls created within this window (7d)."),
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many calls."),
) -> None:
    """List an assistant's newest calls."""
    from cli.commands import calls

    _run("calls.list", calls.calls_list_body(assistant, since, limit), calls.calls_list_render)


@calls_app.command("recording")
def calls_recording(
    call_id: str = typer.Argument(..., help="The call id, or a unique prefix of it (as qa-grade shows)."),
    kind: str = typer.Option("mono", "--kind", help="mono | stereo | customer | assistant | video"),
    out: str | None = typer.Option(
        None, "--out", help="File to write (replaced atomically), or a folder for <id>-<kind>.wav (default: here)."),
) -> None:
    """Download a call's recording (follows the redirect to the short-lived signed URL)."""
    from cli.commands import calls

    _run("calls.recording", calls.calls_recording_body(call_id, kind, out), calls.recording_render)


@app.command("doctor")
def doctor() -> None:
    """Check the connection: reachability, auth, tool count, and which workflows this server supports."""
    from cli.commands import doctor

    _run("doctor", doctor.doctor_body(), doctor.doctor_render)


# ---------------------------------------------------------------- fleet
ACCOUNTS_FILE_HELP = "An accounts.toml ([[account]] name + mcp_url | truto_account_id | vapi_api_key; ${ENV} allowed)."
TRUTO_API_HELP = "Truto's API base URL (default https://api.truto.one; env VAPI_AGENT_TRUTO_API)."
SANDBOX_ACCOUNTS_HELP = "With the embedded sandbox: how many simulated accounts (default 5)."


def _fleet_source(accounts: str | None, truto_api: str | None, sandbox_accounts: int | None) -> dict[str, Any]:
    _fleet_settings(truto_api=truto_api)
    return {"accounts_file": accounts, "sandbox_accounts": sandbox_accounts}


def _fleet_settings(**flags: Any) -> None:
    """The fleet's flags that are settings (validated with the others by ``agent.config``, exit 2 on a bad one)."""
    COMMON_FLAGS.update(flags)


@fleet_app.command("accounts")
def fleet_accounts(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's accounts."),
    status: str | None = typer.Option(None, "--status", help="Only accounts in this status (active, needs_reauth...)."),
    accounts: str | None = typer.Option(None, "--accounts", help=ACCOUNTS_FILE_HELP),
    truto_api: str | None = typer.Option(None, "--truto-api", help=TRUTO_API_HELP),
    sandbox_accounts: int | None = typer.Option(None, "--sandbox-accounts", min=1, max=1000,
                                                help=SANDBOX_ACCOUNTS_HELP),
) -> None:
    """List the accounts of the fleet (Truto with TRUTO_API_TOKEN, --accounts FILE, or the sandbox)."""
    from cli.commands import fleet

    _run("fleet.accounts", fleet.accounts_body(_fleet_source(accounts, truto_api, sandbox_accounts), tenant, status),
         fleet.accounts_render)


@fleet_app.command("cleanup")
def fleet_cleanup(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be deleted."),
    run_id: str | None = typer.Option(None, "--run", help="Only the servers of this fleet run."),
    accounts: str | None = typer.Option(None, "--accounts", help=ACCOUNTS_FILE_HELP),
    truto_api: str | None = typer.Option(None, "--truto-api", help=TRUTO_API_HELP),
    sandbox_accounts: int | None = typer.Option(None, "--sandbox-accounts", min=1, max=1000,
                                                help=SANDBOX_ACCOUNTS_HELP),
) -> None:
    """Delete leftover MCP servers minted by vapi-agent (named "vapi-agent ..."); idempotent."""
    from cli.commands import fleet

    _run("fleet.cleanup", fleet.cleanup_body(_fleet_source(accounts, truto_api, sandbox_accounts), dry_run, run_id),
         fleet.cleanup_render)


FLEET_CONCURRENCY_HELP = "Accounts at a time, in-process runs (default 8; env VAPI_AGENT_FLEET_CONCURRENCY)."
QUEUE_URL_HELP = "PostgreSQL URL of the fleet queue: enqueue for `vapi-agent worker`s (env VAPI_AGENT_QUEUE_URL)."


def _fleet_run(workflow: str, params: dict[str, Any], *, accounts: str | None, truto_api: str | None,
               sandbox_accounts: int | None, tenant: str | None, status: str | None, account: list[str],
               concurrency: int | None, out: str | None, queue_url: str | None, detach: bool) -> None:
    from cli.commands import fleet

    _fleet_settings(queue_url=queue_url, fleet_concurrency=concurrency)
    fleet_params = dict(workflow=workflow, params=params,
                        source=_fleet_source(accounts, truto_api, sandbox_accounts), tenant=tenant, status=status,
                        names=tuple(account), out=out, detach=detach)
    _run(f"fleet.{workflow}", fleet.fleet_run_body(fleet_params), fleet.fleet_render, lock=True)


@fleet_app.command("qa-grade")
def fleet_qa_grade(
    assistant: str = typer.Option(..., "--assistant", help="Assistant id, or its exact whole name (in every account)."),
    last: int = typer.Option(5, "--last", min=1, help="How many of the newest ended calls to grade per account."),
    since: str | None = typer.Option(None, "--since", parser=duration,
                                     help="Only calls created within this window (7d, 12h)."),
    metric: str | None = typer.Option(None, "--metric", help="Scorecard or numeric structured output."),
    threshold: float = typer.Option(80.0, "--threshold", parser=finite(),
                                    help="A call fails when its value is below this."),
    recordings: str = typer.Option("failing", "--recordings", help="failing | all | none"),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore checkpoints of earlier runs."),
    accounts: str | None = typer.Option(None, "--accounts", help=ACCOUNTS_FILE_HELP),
    truto_api: str | None = typer.Option(None, "--truto-api", help=TRUTO_API_HELP),
    sandbox_accounts: int | None = typer.Option(None, "--sandbox-accounts", min=1, max=1000,
                                                help=SANDBOX_ACCOUNTS_HELP),
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's accounts."),
    status: str | None = typer.Option(None, "--status", help="Only accounts in this status (e.g. active)."),
    account: list[str] = typer.Option([], "--account", help="Only this account (repeatable)."),
    concurrency: int | None = typer.Option(None, "--concurrency", help=FLEET_CONCURRENCY_HELP),
    out: str | None = typer.Option(None, "--out", help="Folder for the fleet summary and DIR/accounts/<name>/ files."),
    queue_url: str | None = typer.Option(None, "--queue-url", help=QUEUE_URL_HELP),
    detach: bool = typer.Option(False, "--detach", help="With --queue-url: enqueue, print the run id, return."),
) -> None:
    """qa-grade on every account of the fleet, one least-privilege MCP server per job; one fleet table."""
    params = dict(assistant=assistant, last=last, since=since, metric=metric, threshold=threshold,
                  recordings=recordings, fresh=fresh)
    _fleet_run("qa-grade", params, accounts=accounts, truto_api=truto_api, sandbox_accounts=sandbox_accounts,
               tenant=tenant, status=status, account=account, concurrency=concurrency, out=out, queue_url=queue_url,
               detach=detach)


@fleet_app.command("report")
def fleet_report(
    since: str | None = typer.Option(None, "--since", parser=duration,
                                     help="The window back from now (or --to): 7d, 24h (default 7d)."),
    start: str | None = typer.Option(None, "--from", help="Window start, ISO 8601."),
    end: str | None = typer.Option(None, "--to", help="Window end (exclusive), ISO 8601."),
    tz: str = typer.Option("UTC", "--tz", help="Time zone of the report's days (IANA name)."),
    group_by: str = typer.Option("assistant", "--group-by", help="assistant | endedReason | squad"),
    formats: str | None = typer.Option(None, "--format", help="Per-account files: md,csv,html,json,png."),
    as_of: str | None = typer.Option(None, "--as-of", help="Run as if now were this ISO time."),
    source: str = typer.Option("auto", "--source", help="auto | analytics | calls"),
    accounts: str | None = typer.Option(None, "--accounts", help=ACCOUNTS_FILE_HELP),
    truto_api: str | None = typer.Option(None, "--truto-api", help=TRUTO_API_HELP),
    sandbox_accounts: int | None = typer.Option(None, "--sandbox-accounts", min=1, max=1000,
                                                help=SANDBOX_ACCOUNTS_HELP),
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's accounts."),
    status: str | None = typer.Option(None, "--status", help="Only accounts in this status (e.g. active)."),
    account: list[str] = typer.Option([], "--account", help="Only this account (repeatable)."),
    concurrency: int | None = typer.Option(None, "--concurrency", help=FLEET_CONCURRENCY_HELP),
    out: str | None = typer.Option(None, "--out", help="Folder for the fleet summary and DIR/accounts/<name>/ files."),
    queue_url: str | None = typer.Option(None, "--queue-url", help=QUEUE_URL_HELP),
    detach: bool = typer.Option(False, "--detach", help="With --queue-url: enqueue, print the run id, return."),
) -> None:
    """report on every account of the fleet: volume, minutes, cost and change per account; one fleet table."""
    params = dict(since=since, start=start, end=end, tz=tz, group_by=group_by, formats=formats, as_of=as_of,
                  source=source)
    _fleet_run("report", params, accounts=accounts, truto_api=truto_api, sandbox_accounts=sandbox_accounts,
               tenant=tenant, status=status, account=account, concurrency=concurrency, out=out, queue_url=queue_url,
               detach=detach)


@fleet_app.command("status")
def fleet_status(
    run_id: str = typer.Argument(..., help="The fleet run id (printed when the run started)."),
    queue_url: str | None = typer.Option(None, "--queue-url", help=QUEUE_URL_HELP),
    watch: bool = typer.Option(False, "--watch", help="Follow the run until every job has ended."),
    interval: float = typer.Option(2.0, "--interval", parser=finite(gt=0, le=3600),
                                   help="Seconds between checks with --watch."),
) -> None:
    """A fleet run's accounts: finished (with their results) and pending."""
    from cli.commands import fleet

    _fleet_settings(queue_url=queue_url)
    _run("fleet.status", fleet.fleet_status_body(run_id, watch, interval), fleet.fleet_render)


@fleet_app.command("resume")
def fleet_resume(
    run_id: str = typer.Argument(..., help="The fleet run id."),
    queue_url: str | None = typer.Option(None, "--queue-url", help=QUEUE_URL_HELP),
) -> None:
    """Finish a fleet run whose process or workers stopped (finished accounts are not redone)."""
    from cli.commands import fleet

    _fleet_settings(queue_url=queue_url)
    _run("fleet.resume", fleet.fleet_resume_body(run_id), fleet.fleet_render, lock=True)


@app.command("worker")
def worker(
    queue_url: str | None = typer.Option(None, "--queue-url", help=QUEUE_URL_HELP),
    concurrency: int | None = typer.Option(None, "--concurrency", help="Jobs at a time per worker (fleet-wide)."),
) -> None:
    """Run fleet jobs from the queue (PostgreSQL with --queue-url) until Ctrl-C or SIGTERM."""
    from cli.commands import fleet

    _fleet_settings(queue_url=queue_url, fleet_concurrency=concurrency)
    _run("worker", fleet.worker_body(), None)


@logs_app.command("list")
def logs_list(limit: int = typer.Option(20, "--limit", min=1, help="How many recent runs to list.")) -> None:
    """List recent runs (also `vapi-agent logs`)."""
    from cli.commands import logs

    _run("logs", logs.logs_body(None, limit), logs.logs_render, record=False)


@logs_app.command("show")
def logs_show(run_id: str = typer.Argument(..., help="A unique prefix of the run id, or `last`.")) -> None:
    """Show one run: command, outcome, tool calls, waits, conversation (also `vapi-agent logs RUN_ID`)."""
    from cli.commands import logs

    _run("logs", logs.logs_body(run_id, 0), logs.logs_render, record=False)


@logs_app.command("prune")
def logs_prune(
    older_than: str = typer.Option("30d", "--older-than", parser=duration,
                                   help="Delete runs older than this (30d, 12h)."),
) -> None:
    """Delete old runs from the run log."""
    from cli.commands import logs

    _run("logs.prune", logs.prune_body(older_than), logs.prune_render, record=False)


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (flags > env > config file > defaults), secrets redacted."""
    from cli.commands import config

    _run("config.show", config.config_show_body(), config.config_show_render, record=False)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: lift common options, then hand the rest to typer.

    Every failure before a command body runs (a usage error, a bad setting) is one line on stderr,
    exit 2, and with ``--json`` anywhere on the line one error envelope on stdout (help and the
    version too are an envelope then).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    json_mode = wants_json(args)
    COMMON_FLAGS.clear()
    try:
        flags, rest = split_common_options(args)
    except AgentError as exc:
        from cli.runner import fail_before_start

        return fail_before_start("vapi-agent", exc, json=json_mode)
    COMMON_FLAGS.update(flags)
    head = rest[: rest.index("--")] if "--" in rest else rest
    if json_mode and ("-h" in head or "--help" in head):
        return _help_as_envelope(rest, json_mode)
    return _invoke(rest, json_mode)


def _invoke(rest: list[str], json_mode: bool) -> int:
    try:
        # Without standalone mode, typer *returns* the code of a typer.Exit raised by a command
        # (it does not re-raise it): that return value is the command's exit code.
        code = app(args=rest, prog_name="vapi-agent", standalone_mode=False)
        if isinstance(code, int):
            return code
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except AgentError as exc:
        from cli.runner import fail_before_start

        return fail_before_start("vapi-agent", exc, json=json_mode)
    except (KeyboardInterrupt, typer.Abort):
        from cli.runner import fail_before_start

        return fail_before_start("vapi-agent", {"code": "interrupted", "message": "interrupted by Ctrl-C"},
                                 json=json_mode, exit_code=130)
    except TyperException as exc:  # usage errors (bad flag, unknown command) arrive here unshown
        from cli.runner import fail_on_usage

        return fail_on_usage(exc, json=json_mode)
    return 0


def _help_as_envelope(rest: list[str], json_mode: bool) -> int:
    """``--help`` with ``--json``: the help text in an envelope (``result.help``), so stdout stays one envelope."""
    import contextlib
    import io
    import json

    from cli.envelope import Envelope

    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        code = _invoke(rest, json_mode)
    text = shown.getvalue()
    try:  # "-h" was an argument after all, or the line failed: the command's own envelope
        own = json.loads(text)
    except ValueError:
        own = None
    if isinstance(own, dict):
        sys.stdout.write(text)
    else:
        print(Envelope(workflow="vapi-agent", status="ok" if code == 0 else "error", result={"help": text}).dumps())
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
