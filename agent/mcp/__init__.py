"""Connections to MCP servers: server specs, transports, the tool catalogue, result decoding.

Logic elsewhere talks to ``Hub`` (several servers, one catalogue) and ``ToolOutput`` (a decoded
result); nothing outside this package imports ``mcp`` directly.
"""
