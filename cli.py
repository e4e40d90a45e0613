"""The vapi-agent command line: parse options, build Settings, await one library call, render.

Heavy libraries (openai, mcp, pandas...) are imported inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.exceptions import TyperException

from agent import __version__
from agent.argv import common_options_help, split_common_options
from agent.errors import AgentError

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
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(config_app, name="config")

# Filled by main() before typer runs: the common options lifted out of argv.
COMMON_FLAGS: dict[str, Any] = {}


def _version_callback(value: bool) -> None:
    if value:
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

    raise typer.Exit(sandbox_main(["serve", *ctx.args]))


@sandbox_app.command("ground-truth", context_settings=PASSTHROUGH, add_help_option=False)
def sandbox_ground_truth(ctx: typer.Context) -> None:
    """Write the dataset's ground-truth file (metric values, failing calls, recording hashes)."""
    from sandbox.__main__ import main as sandbox_main

    raise typer.Exit(sandbox_main(["ground-truth", *ctx.args]))


def _run(workflow: str, body: Any, render: Any = None) -> None:
    """Run one library coroutine through the command runner and exit with its code."""
    from agent.runner import run_command

    raise typer.Exit(run_command(workflow, _settings(), body, render))


@app.command("qa-grade")
def qa_grade(
    assistant: str = typer.Option(..., "--assistant", help="Assistant id, or its exact whole name."),
    last: int = typer.Option(5, "--last", help="How many of the newest ended calls to grade."),
    since: str | None = typer.Option(None, "--since", help="Only calls created within this window (7d, 12h)."),
    metric: str | None = typer.Option(
        None, "--metric", help="Scorecard or numeric structured output (scorecard:NAME / output:NAME force one)."
    ),
    threshold: float = typer.Option(80.0, "--threshold", help="A call fails when its value is below this."),
    recordings: str = typer.Option("failing", "--recordings", help="failing | all | none"),
    recordings_dir: str = typer.Option("./recordings", "--recordings-dir", help="Where recordings are saved."),
    out: str | None = typer.Option(None, "--out", help="Also write a markdown report here."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore checkpoints of earlier runs."),
) -> None:
    """Grade an assistant's latest calls on a metric, fetch failing recordings, explain the failures."""
    from workflows import commands

    params = dict(assistant=assistant, last=last, since=since, metric=metric, threshold=threshold,
                  recordings=recordings, recordings_dir=recordings_dir, out=out, fresh=fresh)
    _run("qa-grade", commands.qa_grade_body(params), commands.qa_grade_render)


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (flags > env > config file > defaults), secrets redacted."""
    import json

    from agent.config import config_path

    settings = _settings()
    data = {"config_file": str(config_path()), "settings": settings.redacted()}
    print(json.dumps(data, indent=None if settings.json else 2))


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: lift common options, then hand the rest to typer."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        flags, rest = split_common_options(args)
    except AgentError as exc:
        print(f"error: {exc.line()}", file=sys.stderr)
        return exc.exit_code
    COMMON_FLAGS.clear()
    COMMON_FLAGS.update(flags)
    try:
        app(args=rest, prog_name="vapi-agent", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except AgentError as exc:
        print(f"error: {exc.line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except typer.Abort:
        return 130
    except TyperException as exc:  # usage errors (bad flag, unknown command) arrive here unshown
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        return int(getattr(exc, "exit_code", 2) or 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
