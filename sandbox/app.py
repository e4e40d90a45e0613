"""Composition of one sandbox: workspace + REST app + MCP server on a single origin.

Routes of the combined ASGI app (``Sandbox.app``):
- ``/mcp/<token>``                 the Truto-style MCP server (Streamable HTTP, JSON responses)
- ``/_links/...``, ``/_storage/...`` short-lived recording links and signed storage (no auth)
- ``/_sandbox/log``                the request log as JSON (Bearer api key)
- everything else                  the simulated Vapi REST API (Bearer api key)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sandbox.core import IN_PROCESS_ORIGIN
from sandbox.core.requestlog import RequestLog
from sandbox.world.clock import SandboxClock
from sandbox.world.config import SandboxConfig

if TYPE_CHECKING:
    import httpx2

__all__ = ["IN_PROCESS_ORIGIN", "Sandbox"]


class Sandbox:
    """One simulated Vapi workspace with everything in front of it.

    ``public_url`` is the origin clients use (the real ``http://127.0.0.1:PORT`` once served, else
    ``IN_PROCESS_ORIGIN``); links the sandbox hands out are built on it. The faces see it through
    ``sandbox.core.SandboxCore``.
    """

    def __init__(self, config: SandboxConfig | None = None, *, clock: SandboxClock | None = None) -> None:
        from sandbox.rest.app import create_rest_app
        from sandbox.truto.server import TrutoMCP
        from sandbox.world.workspace import Workspace

        self.config = config or SandboxConfig()
        self.anchor: datetime = self.config.anchor or datetime.now(tz=UTC)
        self.clock = clock or SandboxClock(self.config.time_scale)
        self.log = RequestLog()
        self.public_url = IN_PROCESS_ORIGIN
        self.workspace = Workspace(self.config, self.clock, anchor=self.anchor)
        self.rest_app = create_rest_app(self)
        self.mcp = TrutoMCP(self)
        self.app = self.mcp.combined_app(self.rest_app)

    @property
    def mcp_url(self) -> str:
        """The MCP endpoint URL (holds the secret token: never log it)."""
        return f"{self.public_url}/mcp/{self.config.token}"

    def rest_client(self, **kwargs: Any) -> httpx2.AsyncClient:
        """An in-process httpx2 client to the REST API (no socket), authorised with the api key."""
        import httpx2

        return httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=self.app),
            base_url=self.public_url,
            headers={"Authorization": f"Bearer {self.config.api_key}"},
            **kwargs,
        )
