"""The Truto face of the sandbox: the MCP server, its tool catalogue and proxy to REST, the 429 gate."""
