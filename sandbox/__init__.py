"""An embedded, simulated Vapi workspace behind a Truto-style MCP server.

Nothing in ``agent/`` or ``workflows/`` imports this package, except ``agent.runtime``.
"""
