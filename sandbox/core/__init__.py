"""What the sandbox's faces (``sandbox.rest``, ``sandbox.truto``) know of one sandbox.

``sandbox.app.Sandbox`` builds the world and both faces; the faces only need the typed view below,
so they import this module instead of ``sandbox.app`` and nothing loops.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from sandbox.core.requestlog import RequestLog
    from sandbox.world.clock import SandboxClock
    from sandbox.world.config import SandboxConfig
    from sandbox.world.workspace import Workspace

IN_PROCESS_ORIGIN = "http://sandbox.localhost"  # RFC 6761: *.localhost is loopback, never the internet


class SandboxCore(Protocol):
    """One sandbox as its faces see it: settings, clock, request log, public origin, world, REST app."""

    config: SandboxConfig
    anchor: datetime
    clock: SandboxClock
    log: RequestLog
    public_url: str
    workspace: Workspace
    rest_app: ASGIApp
