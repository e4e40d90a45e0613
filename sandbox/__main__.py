"""``python -m sandbox serve|stdio|ground-truth [options]``: run the simulated Vapi workspace.

``serve`` runs the REST API and the Truto-style MCP server on one HTTP origin in the foreground;
``stdio`` serves the MCP server over stdin/stdout; ``ground-truth`` writes what every generated call
*is* (``sandbox.world.groundtruth``), of a fresh dataset or, with ``--state-dir``, of a persisted
workspace as it stands now. ``vapi-agent sandbox serve|ground-truth`` map the same flags through
``sandbox.serve.ServeOptions`` (``ground-truth`` on the embedded sandbox's workspace by default).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import NoReturn

from sandbox.serve import DEFAULT_HOST, DEFAULT_PORT, add_config_arguments, options_from_namespace, serve
from sandbox.stdio import run_stdio
from sandbox.world.config import SandboxConfig


class _OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr with exit 2, like every other vapi-agent error."""

    def error(self, message: str) -> NoReturn:
        """Print ``error: MESSAGE (see PROG --help)`` and exit 2 (argparse prints usage lines too)."""
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser(prog: str = "python -m sandbox") -> argparse.ArgumentParser:
    """The argparse parser for both sub-commands (``prog``: how help and errors name the program)."""
    parser = _OneLineParser(prog=prog, description="Simulated Vapi workspace.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve REST + MCP over HTTP until Ctrl-C")
    serve_cmd.add_argument("--host", default=DEFAULT_HOST)
    serve_cmd.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    serve_cmd.add_argument("--no-access-log", action="store_true", help="do not log each request")
    add_config_arguments(serve_cmd)
    stdio_cmd = commands.add_parser("stdio", help="serve the MCP server over stdin/stdout")
    add_config_arguments(stdio_cmd)
    truth_cmd = commands.add_parser("ground-truth", help="write the dataset's ground truth as JSON")
    truth_cmd.add_argument("--out", default="ground-truth.json", help="file to write (default ground-truth.json)")
    truth_cmd.add_argument("--recordings", default="failing",
                           help="whose recordings to hash: failing (default), all, none, or N newest per assistant")
    truth_cmd.add_argument("--state-dir", help="describe the persisted workspace kept in this folder, as it stands now")
    add_config_arguments(truth_cmd)
    return parser


def write_truth(ns: argparse.Namespace, config: SandboxConfig) -> int:
    """``ground-truth``: the truth of a fresh dataset, or of the persisted workspace (unless ``--anchor`` pins one)."""
    from sandbox.app import Sandbox, StateError
    from sandbox.world.groundtruth import write_ground_truth

    recordings: str | int = int(ns.recordings) if ns.recordings.isdigit() else ns.recordings
    if recordings not in ("failing", "all", "none") and not isinstance(recordings, int):
        print(f"error: --recordings {ns.recordings!r} is not failing, all, none or a number", file=sys.stderr)
        return 2
    try:
        sandbox = (Sandbox.persistent(dataclasses.replace(config, living=True), ns.state_dir)
                   if ns.state_dir and config.anchor is None else Sandbox(config))
        truth = write_ground_truth(ns.out, sandbox.workspace, recordings=recordings)
    except (StateError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {ns.out}: {truth['calls']} calls ({truth['counts']['ended']} ended, "
          f"{truth['counts']['failing']} failing), anchor {truth['anchor']}")
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m sandbox") -> int:
    """Entry point; returns the process exit code (2 on bad options). ``vapi-agent sandbox`` passes its name."""
    parser = build_parser(prog)
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad flag (already reported on one line)
        return exc.code if isinstance(exc.code, int) else 2
    options = options_from_namespace(ns)
    try:
        config = options.to_config()
        fleet = options.to_fleet_config()
    except ValueError as exc:
        print(f"error: {exc} (see `{parser.prog} {ns.command} --help`)", file=sys.stderr, flush=True)
        return 2
    if ns.command == "stdio":
        if fleet is not None:
            parser.error("--accounts needs HTTP: use serve")
        return run_stdio(config)
    if ns.command == "ground-truth":
        if fleet is not None:
            parser.error("--accounts: the ground truth describes one workspace")
        return write_truth(ns, config)
    return serve(fleet or config, options.host, options.port, access_log=not ns.no_access_log)


if __name__ == "__main__":
    sys.exit(main())
