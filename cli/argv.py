"""Common options accepted both before and after the command name.

``vapi-agent --json qa-grade ...`` and ``vapi-agent qa-grade --json ...`` must mean the same thing, which
click/typer cannot express on their own (a group's options must precede the subcommand). So the
common options are lifted out of ``argv`` (anywhere before a bare ``--``) before typer sees the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.errors import ConfigError


@dataclass(frozen=True)
class CommonOption:
    """One common option: its flag names, settings field, and whether it takes a value / repeats."""

    names: tuple[str, ...]
    field: str
    takes_value: bool = False
    repeatable: bool = False
    help: str = ""


COMMON_OPTIONS: tuple[CommonOption, ...] = (
    CommonOption(("--mcp-url",), "mcp_url", True, help="MCP server URL (Streamable HTTP; ending in /sse: legacy SSE)"),
    CommonOption(("--mcp-kind",), "mcp_kind", True, help="truto | vapi | generic | sandbox"),
    CommonOption(("--mcp-config",), "mcp_config", True, help='a {"mcpServers": {...}} JSON file'),
    CommonOption(("--server",), "server", True, help="send facade operations to this server of the config"),
    CommonOption(("--profile",), "profile", True, help="a [profiles.NAME] table of the config file"),
    CommonOption(("--sandbox",), "sandbox", help="use the embedded sandbox workspace"),
    CommonOption(("--model",), "model", True, help="OpenAI-compatible model name"),
    CommonOption(("--read-only",), "read_only", help="refuse every write tool"),
    CommonOption(("--yes", "-y"), "yes", help="approve writes (not destructive tools: see --allow)"),
    CommonOption(("--allow",), "allow", True, True, help="approve this tool, destructive ones included (repeatable)"),
    CommonOption(("--write-dir",), "write_dirs", True, True,
                 help="a folder the agent may write files in, besides the working directory (repeatable)"),
    CommonOption(("--tools",), "tools", True, True, help="only tools matching these globs (comma-separated)"),
    CommonOption(("--exclude-tools",), "exclude_tools", True, True, help="hide tools matching these globs"),
    CommonOption(("--deadline",), "deadline", True, help="stop with exit 6 after this long (90s, 10m, 1h)"),
    CommonOption(("--max-download-bytes",), "max_download_bytes", True,
                 help="largest recording a download may save (bytes, or 100MB, 1GiB; default 512 MiB)"),
    CommonOption(("--json",), "json", help="print exactly one JSON envelope on stdout"),
    CommonOption(("--verbose", "-v"), "verbose", repeatable=True, help="more logging on stderr (repeatable)"),
    CommonOption(("--debug",), "debug", help="debug logging and tracebacks"),
)
_BY_NAME = {name: opt for opt in COMMON_OPTIONS for name in opt.names}


def split_common_options(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Lift common options out of ``argv``; returns (flags given, remaining argv for typer).

    Supports ``--opt value``, ``--opt=value``, repeated options, ``-vv``, and stops at ``--``.
    """
    flags: dict[str, Any] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg.startswith("-v") and len(arg) > 2 and set(arg[1:]) == {"v"}:
            flags["verbose"] = flags.get("verbose", 0) + len(arg) - 1
            i += 1
            continue
        name, eq, inline = arg.partition("=")
        option = _BY_NAME.get(name if name.startswith("--") else arg)
        if option is None:
            rest.append(arg)
            i += 1
            continue
        if option.takes_value:
            if eq:
                value = inline
            elif i + 1 < len(argv) and argv[i + 1] != "--" and argv[i + 1] not in _BY_NAME:
                i += 1
                value = argv[i]
            else:  # at the end, or followed by another option: `--tools --json` forgot the value
                raise ConfigError(f"option {name} needs a value")
            if option.repeatable:
                parts = [p.strip() for p in value.split(",")] if option.field != "allow" else [value]
                flags[option.field] = (*flags.get(option.field, ()), *[p for p in parts if p])
            else:
                flags[option.field] = value
        elif option.field == "verbose":
            flags["verbose"] = flags.get("verbose", 0) + 1
        else:
            if eq:
                raise ConfigError(f"option {name} takes no value")
            flags[option.field] = True
        i += 1
    return flags, rest


def wants_json(argv: list[str]) -> bool:
    """True when ``--json`` appears before a bare ``--`` (also when the rest of the line is broken)."""
    head = argv[: argv.index("--")] if "--" in argv else argv
    return any(arg == "--json" or arg.startswith("--json=") for arg in head)


def common_options_help() -> str:
    """A help epilog listing the common options (shown under every command)."""
    # "\b" keeps click from re-wrapping the table into one paragraph.
    lines = ["\b", "Common options (before or after the command name):"]
    for opt in COMMON_OPTIONS:
        names = ", ".join(opt.names) + (" VALUE" if opt.takes_value else "")
        lines.append(f"  {names:<26} {opt.help}")
    return "\n".join(lines)


def check_command_line(root: Any, argv: list[str]) -> list[str]:
    """Parse ``argv`` exactly as ``vapi-agent`` would, without running anything; returns the command path.

    ``root`` is the CLI's typer app. The common options are lifted first, then typer's parser reads
    every level of the command tree (options, arguments, choices, types). A line that would fail is a
    ConfigError carrying the parser's own message; one that only prints help or the version too.
    """
    import contextlib
    import io

    import typer
    import typer.main
    from typer.core import TyperGroup
    from typer.exceptions import TyperException

    _, rest = split_common_options(list(argv))
    command = typer.main.get_command(root)
    path: list[str] = []
    parent = None
    shown = "vapi-agent"
    try:
        # the parser prints help (and --version) itself before exiting: keep that off the terminal
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            while True:
                shown = " ".join(["vapi-agent", *path])
                if isinstance(command, TyperGroup) and not rest and command.no_args_is_help:
                    raise ConfigError(f"`{shown}` needs a command after it", hint=f"see `{shown} --help`")
                ctx = command.make_context(path[-1] if path else "vapi-agent", rest, parent=parent)
                if not isinstance(command, TyperGroup):
                    return path
                # a group keeps the subcommand's name apart from the arguments after it (as click does)
                rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
                if not rest:
                    if command.invoke_without_command:
                        return path
                    ctx.fail("Missing command.")
                name, sub, rest = command.resolve_command(ctx, rest)
                if name is None or sub is None:
                    ctx.fail("Missing command.")
                path.append(name)
                command, parent = sub, ctx
    except typer.Exit:
        raise ConfigError("the command only prints help or the version",
                          hint="schedule the command itself, e.g. -- report --since 7d") from None
    except TyperException as exc:
        raise ConfigError(f"the command is not valid: {exc.format_message()}",
                          hint=f"check it with `{shown} --help`") from None
