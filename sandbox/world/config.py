"""Every knob of the sandbox in one frozen dataclass, shared by the REST app, the MCP server and ``serve``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime

DEFAULT_API_KEY = "sandbox-key"  # documented as not secret: it only opens the local simulator


@dataclass(frozen=True)
class RateLimit:
    """``N`` requests per ``window`` seconds (fixed windows, as Truto's ``ratelimit-*`` headers describe)."""

    limit: int
    window: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Parse ``N/SECONDS`` (e.g. ``3/1``, ``10/2``); raises ``ValueError`` with a readable message."""
        try:
            count, _, seconds = text.partition("/")
            parsed = cls(int(count), float(seconds or "1"))
        except ValueError:
            raise ValueError(f"rate limit {text!r} is not N/SECONDS, e.g. 10/2") from None
        if parsed.limit < 1 or parsed.window <= 0:
            raise ValueError(f"rate limit {text!r} needs N >= 1 and SECONDS > 0")
        return parsed


@dataclass(frozen=True)
class SandboxConfig:
    """Configuration of one simulated workspace.

    Dataset: ``seed``, ``calls`` (how many generated calls), ``anchor`` (the newest call is just
    before it; None means "now" when the workspace is built), ``living`` (time goes on after the
    anchor: calls live at it end, new ones keep arriving; see ``sandbox.world.arrivals``; off, the
    dataset stays as it stood at the anchor).
    Access: ``api_key`` (REST Bearer key), ``token`` (the MCP URL path token), ``require_api_token``
    (Truto's second factor: MCP requests must also carry ``Authorization: Bearer <it>``).
    Truto options: ``methods`` (subset of read/write/custom, or exact method names), ``tags``,
    ``tool_exposure`` (``all`` | ``discovery``), ``page_cap`` (max items per list page),
    ``recording_shape`` (``json`` | ``resource_link`` | ``embedded``), ``expires_in`` (seconds until
    the MCP token stops working; None = never), ``session_requests`` (the MCP path issues
    ``Mcp-Session-Id`` sessions and ends each after this many requests, answering 404 as the MCP
    spec says, so clients must initialize again; None = no sessions, like Truto).
    Faults: ``rate_limit`` (on the MCP path), ``api_rate_limit`` (on the REST API, Vapi-style
    headers), ``latency`` (seconds added per request), ``error_rate`` (share of requests answered 5xx
    before doing anything), ``write_fault`` (``502`` | ``timeout``: a write is applied, then answered
    502 or held for ``write_fault_delay`` seconds), ``write_fault_count`` (how many writes get it;
    0 = all), ``expire_first`` (the first recording link handed out is already expired),
    ``drop_sse`` (SSE chat streams stop after a few events without ``response.completed``),
    ``time_scale`` (campaign clock speed), ``link_ttl`` (seconds a recording link / presigned URL
    lives).
    Hostile data: ``hostile`` plants what a broken or malicious server might send: the newest ended
    call of Support gets the id ``HOSTILE_CALL_ID`` (``../../``, a path escape) and the Onboarding
    Draft assistant is named ``HOSTILE_ASSISTANT_NAME`` (terminal control codes).
    """

    seed: int = 7
    calls: int = 2000
    anchor: datetime | None = None
    living: bool = False
    api_key: str = DEFAULT_API_KEY
    token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    require_api_token: str | None = None
    methods: tuple[str, ...] = ("read", "write", "custom")
    tags: tuple[str, ...] = ()
    tool_exposure: str = "all"
    page_cap: int = 100
    recording_shape: str = "json"
    expires_in: float | None = None
    session_requests: int | None = None
    rate_limit: RateLimit | None = None
    api_rate_limit: RateLimit | None = None
    latency: float = 0.0
    error_rate: float = 0.0
    write_fault: str | None = None
    write_fault_count: int = 1
    write_fault_delay: float = 30.0
    expire_first: bool = False
    drop_sse: bool = False
    time_scale: float = 1.0
    link_ttl: float = 300.0
    hostile: bool = False


HOSTILE_CALL_ID = "../../escaped-recording"
HOSTILE_ASSISTANT_NAME = "Evil\x1b[2J\x1b]0;PWNED\x07"
