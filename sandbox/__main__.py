"""``python -m sandbox serve|stdio [options]``: run the simulated Vapi workspace.

``serve`` runs the REST API and the Truto-style MCP server on one HTTP origin in the foreground;
``stdio`` serves the MCP server over stdin/stdout. ``vapi-agent sandbox serve`` maps the same flags
through ``sandbox.serve.ServeOptions``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sandbox.serve import DEFAULT_HOST, DEFAULT_PORT, add_config_arguments, options_from_namespace, serve
from sandbox.stdio import run_stdio


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for both sub-commands."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Simulated Vapi workspace.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve REST + MCP over HTTP until Ctrl-C")
    serve_cmd.add_argument("--host", default=DEFAULT_HOST)
    serve_cmd.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    serve_cmd.add_argument("--no-access-log", action="store_true", help="do not log each request")
    add_config_arguments(serve_cmd)
    stdio_cmd = commands.add_parser("stdio", help="serve the MCP server over stdin/stdout")
    add_config_arguments(stdio_cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 on bad options)."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    options = options_from_namespace(ns)
    try:
        config = options.to_config()
        fleet = options.to_fleet_config()
    except ValueError as exc:
        parser.error(str(exc))
    if ns.command == "stdio":
        if fleet is not None:
            parser.error("--accounts needs HTTP: use serve")
        return run_stdio(config)
    return serve(fleet or config, options.host, options.port, access_log=not ns.no_access_log)


if __name__ == "__main__":
    sys.exit(main())
