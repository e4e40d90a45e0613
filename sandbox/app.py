"""Composition of one sandbox: workspace + REST app + MCP server on a single origin.

Routes of the combined ASGI app (``Sandbox.app``):
- ``/mcp/<token>``                 the Truto-style MCP server (Streamable HTTP, JSON responses)
- ``/_links/...``, ``/_storage/...`` short-lived recording links and signed storage (no auth)
- ``/_sandbox/log``                the request log as JSON (Bearer api key)
- everything else                  the simulated Vapi REST API (Bearer api key)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.core import IN_PROCESS_ORIGIN
from sandbox.core.requestlog import RequestLog
from sandbox.world import state as world_state
from sandbox.world.calljson import ms_of
from sandbox.world.clock import SandboxClock
from sandbox.world.config import SandboxConfig
from sandbox.world.state import StateError, WorkspaceState

if TYPE_CHECKING:
    import httpx2

__all__ = ["IN_PROCESS_ORIGIN", "Sandbox", "StateError", "reset_workspaces"]


class Sandbox:
    """One simulated Vapi workspace with everything in front of it.

    ``public_url`` is the origin clients use (the real ``http://127.0.0.1:PORT`` once served, else
    ``IN_PROCESS_ORIGIN``); links the sandbox hands out are built on it. The faces see it through
    ``sandbox.core.SandboxCore``.
    """

    def __init__(self, config: SandboxConfig | None = None, *, clock: SandboxClock | None = None,
                 state: WorkspaceState | None = None) -> None:
        from sandbox.rest.app import create_rest_app
        from sandbox.truto.server import TrutoMCP
        from sandbox.world.workspace import Workspace

        self.config = config or SandboxConfig()
        self.clock = clock or SandboxClock(self.config.time_scale)
        self.anchor: datetime = (state.header.anchor if state is not None else
                                 self.config.anchor or datetime.fromtimestamp(self.clock.real(), tz=UTC))
        self.state = state
        self.log = RequestLog()
        self.public_url = IN_PROCESS_ORIGIN
        self.workspace = Workspace(self.config, self.clock, anchor=self.anchor, state=state)
        self.rest_app = create_rest_app(self)
        self.mcp = TrutoMCP(self)
        self.app = self.mcp.combined_app(self.rest_app)

    @classmethod
    def persistent(cls, config: SandboxConfig, directory: str | Path, *, key: str | None = None,
                   real: Callable[[], float] | None = None) -> Sandbox:
        """A sandbox whose workspace is kept in ``directory`` under ``key`` (``sandbox.world.state``).

        The first use records the seed, the size and the anchor (``config.anchor``, else now); every
        later one, in any process, rebuilds the same workspace from them and replays every write made
        since. ``key`` defaults to one workspace per dataset (``workspace_key``); ``real`` is the wall
        clock (tests). Raises ``StateError`` when the stored state cannot be used (``reset_workspaces``
        starts over).
        """
        clock = SandboxClock(config.time_scale, real=real)
        anchor = config.anchor or datetime.fromtimestamp(clock.real(), tz=UTC)
        state = WorkspaceState.open(directory, key or world_state.workspace_key(config),
                                    seed=config.seed, calls=config.calls, anchor=anchor)
        # Sandbox time starts at the anchor, so that processes with a sped-up clock agree on it too.
        clock = SandboxClock(config.time_scale, real=real, start=ms_of(state.header.anchor) / 1000)
        return cls(config, clock=clock, state=state)

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


def reset_workspaces(directory: str | Path, key: str | None = None) -> list[str]:
    """Forget persisted workspaces in ``directory`` (every one, or ``key``); returns the keys removed."""
    return world_state.reset(directory, key)
