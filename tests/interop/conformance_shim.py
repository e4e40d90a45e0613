"""The client under test for the MCP conformance suite (``@modelcontextprotocol/conformance client``).

The suite starts a scenario server, then runs ``<command> <server-url>`` with the scenario's name in
``MCP_CONFORMANCE_SCENARIO``; its checks look at what this process sent. Everything here goes
through the product's own connection layer, never the ``mcp`` client directly:

- ``initialize``, ``tools_call``, ``sse-retry`` (and any other scenario): ``agent.runtime.open_runtime``
  with ``--mcp-url <server-url>``, i.e. ``resolve_servers`` -> ``Connection`` over the runtime's
  rate-limit/retry HTTP stack -> ``Hub`` (write gate, approved as with ``--yes``) -> ``decode``;
- ``elicitation-sep1034-client-defaults``: ``agent.mcp.connection.Connection`` with the same HTTP
  stack and an elicitation callback that accepts with the requested schema's defaults. The product
  itself declares no elicitation (a headless agent must not consent on a person's behalf), so only
  this shim passes one.

Exit status 0 when the scenario's tool answered as expected, 1 otherwise (with one line on stderr).
Usage: ``python tests/interop/conformance_shim.py <server-url>``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

# Run as a file by the suite: make the project importable without relying on the current directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.config import Settings
from agent.mcp.connection import Connection
from agent.mcp.decode import ToolOutput
from agent.mcp.servers import resolve_servers

ELICITATION = "elicitation-sep1034-client-defaults"


class ShimFailure(Exception):
    """The scenario's server did not answer what the scenario defines."""


def schema_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """The ``default`` of every property of an elicitation ``requestedSchema`` (SEP-1034)."""
    properties = schema.get("properties") or {}
    return {name: spec["default"] for name, spec in properties.items()
            if isinstance(spec, dict) and "default" in spec}


async def accept_with_defaults(context: Any, params: Any) -> Any:
    """Elicitation callback: accept form requests with the schema's defaults; decline URL requests."""
    import mcp.types as types  # the result model only: the session itself is ours

    schema = getattr(params, "requested_schema", None)
    if schema is None:  # URL-mode elicitation asks a person to visit a page: nothing to fill in
        return types.ElicitResult(action="decline")
    return types.ElicitResult(action="accept", content=schema_defaults(dict(schema)))


def http_client_factory() -> Any:
    """The runtime's HTTP stack (rate-limit capture over governor + retries), for a bare Connection."""
    import httpx2

    from agent.ratelimit.breaker import BreakerRegistry
    from agent.ratelimit.governor import GovernorRegistry
    from agent.ratelimit.policy import RetryConfig, RetryPolicy
    from agent.ratelimit.transport import RateLimitAwareTransport, RetryingTransport

    policy = RetryPolicy(RetryConfig())
    governors, breakers = GovernorRegistry(max_concurrency=4), BreakerRegistry()

    def factory(spec: Any) -> Any:
        transport = RateLimitAwareTransport(RetryingTransport(httpx2.AsyncHTTPTransport(), policy, governors,
                                                              breakers=breakers))
        return httpx2.AsyncClient(headers=spec.headers, transport=transport, follow_redirects=False,
                                  timeout=httpx2.Timeout(30.0, connect=10.0))

    return factory


def expect_text(output: ToolOutput, needle: str) -> str:
    """The output's text, which must succeed and contain ``needle``."""
    output.raise_for_error()
    if needle not in output.text:
        raise ShimFailure(f"{output.tool} answered {output.text[:200]!r}, expected {needle!r}")
    return output.text


async def run_elicitation(url: str) -> str:
    """Call the scenario's tool; the server elicits, our callback accepts with the defaults."""
    settings = Settings(mcp_url=url, mcp_kind="generic")
    (spec,) = resolve_servers(settings, env={})
    async with Connection(spec, http_client_factory=http_client_factory(), tool_timeout=20.0,
                          elicitation_callback=accept_with_defaults) as conn:
        names = [tool.name for tool in await conn.list_tools()]
        if "test_client_elicitation_defaults" not in names:
            raise ShimFailure(f"the scenario server offers {names}")
        output = await conn.call("test_client_elicitation_defaults", {})
        return expect_text(output, "Elicitation completed")


def watch_standalone_stream() -> asyncio.Event:
    """An event set once a GET (the session's standalone event stream) has been answered.

    Why: the sse-retry check times the first GET that follows tools/call as the client's reconnection.
    The mcp client opens its standalone GET in the background after ``initialized``; on a loaded machine
    that GET can go out after tools/call, and the suite then counts it as a reconnection made before
    the stream closed ("reconnected too early (-51ms)"). Waiting for it keeps the check on the real
    reconnection. Only this test process is patched.
    """
    import httpx2

    answered = asyncio.Event()
    original = httpx2.AsyncHTTPTransport.handle_async_request

    async def handle(self: Any, request: Any) -> Any:
        response = await original(self, request)
        if request.method == "GET":
            answered.set()
        return response

    httpx2.AsyncHTTPTransport.handle_async_request = handle  # type: ignore[method-assign]
    return answered


async def run_with_runtime(url: str, scenario: str) -> str:
    """Connect as ``vapi-agent --mcp-url URL --yes`` does, then exercise the scenario's tool."""
    from agent.runtime import open_runtime

    standalone_stream = watch_standalone_stream()
    settings = Settings(mcp_url=url, mcp_kind="generic", yes=True, max_attempts=3, max_wait_per_request=10.0)
    async with open_runtime(settings, notice=lambda message: print(message, file=sys.stderr), store=None,
                            prompt=None, tool_timeout=20.0, connect_timeout=10.0) as rt:
        names = [tool.name for tool in rt.hub.catalogue]
        if scenario == "tools_call":
            return expect_text(await rt.hub.call("add_numbers", {"a": 5, "b": 3}), "is 8")
        if scenario == "sse-retry":
            # The server closes the POST's SSE stream after a priming event (retry: 500 ms); the
            # answer arrives only on a GET that resumes with Last-Event-ID after that delay.
            await asyncio.wait_for(standalone_stream.wait(), timeout=10.0)
            return expect_text(await rt.hub.call("test_reconnection", {}), "Reconnection test completed")
        return f"connected ({rt.hub.connections[0].protocol_version}); tools: {names}"


async def main(argv: list[str]) -> int:
    """Run the scenario named in ``MCP_CONFORMANCE_SCENARIO`` against the URL in ``argv``."""
    if len(argv) != 1:
        print("usage: conformance_shim.py <server-url>", file=sys.stderr)
        return 2
    url, scenario = argv[0], os.environ.get("MCP_CONFORMANCE_SCENARIO", "initialize")
    logging.basicConfig(level=logging.INFO if os.environ.get("SHIM_VERBOSE") else logging.WARNING,
                        stream=sys.stderr)
    try:
        if scenario == ELICITATION:
            summary = await run_elicitation(url)
        else:
            summary = await run_with_runtime(url, scenario)
    except Exception as exc:  # one line for the suite's stderr capture; the exit code carries the verdict
        line = exc.line() if hasattr(exc, "line") else f"{type(exc).__name__}: {exc}"
        print(f"conformance shim ({scenario}): {line}", file=sys.stderr)
        return 1
    print(f"{scenario}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
