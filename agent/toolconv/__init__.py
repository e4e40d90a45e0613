"""Pure pieces of the MCP-tool -> OpenAI-function conversion (see ``agent.toolconv.convert`` for the public API).

- ``names``    fit a tool name to ``^[a-zA-Z0-9_-]{1,64}$`` (hash suffix when cut)
- ``refs``     inline local ``$ref``s (``$defs``, ``definitions``, zod-style ``#/properties/...``)
- ``sanitize`` the schema every tool gets (non-strict function calling)
- ``strict``   the strict-mode copy, or ``None`` when strict mode cannot express the schema
"""
