"""``python -m sandbox stdio``: the same Truto-style MCP server over stdio, REST traffic in-process.

stdout carries nothing but JSON-RPC (mcp's stdio transport also points fd 1 at stderr while it
serves, so a stray print cannot corrupt the wire); logs go to stderr. HTTP-only Truto options
(rate limit, token expiry, second factor) have no meaning here; method/tag filters and
``tool_exposure`` apply.
"""

from __future__ import annotations

import contextlib
import logging
import sys

import anyio
from mcp.server.stdio import stdio_server

from sandbox.app import Sandbox
from sandbox.world.config import SandboxConfig

log = logging.getLogger(__name__)


async def serve_stdio(sandbox: Sandbox) -> None:
    """Serve ``sandbox.mcp.server`` on this process's stdin/stdout until stdin closes."""
    server = sandbox.mcp.server
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def run_stdio(config: SandboxConfig) -> int:
    """Build the sandbox and serve it over stdio; returns the exit code."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # stdout is the JSON-RPC wire: anything printed while the dataset is built goes to stderr
    with contextlib.redirect_stdout(sys.stderr):
        sandbox = Sandbox(config)
    log.info("sandbox ready: %d calls, seed %d", config.calls, config.seed)
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve_stdio, sandbox)
    return 0
