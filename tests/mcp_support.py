"""Test MCP servers built with the mcp SDK's ``MCPServer``."""

from __future__ import annotations

import logging
from typing import Any


def quiet_mcp_server(name: str) -> Any:
    """An ``MCPServer`` named ``name`` that leaves root logging as it was (``MCPServer`` configures root
    logging when nothing has: other tests own logging)."""
    from mcp.server import MCPServer

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    server = MCPServer(name, version="1.0")
    root.handlers[:], root.level = handlers, level
    return server
