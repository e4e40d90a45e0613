"""The error tree. Every branch carries the exit code the CLI maps it to, in one place.

::

    AgentError                                                          exit 1
    ├── ConfigError        bad flag, unknown name, unreadable file, no model   2
    ├── UpstreamError      MCP/HTTP failure after retries, auth refused,       3
    │   │                  or the server lacks a needed tool
    │   ├── RateLimited    rate limit not recovered within the budget          4
    │   ├── AmbiguousWrite a write timed out / got a 5xx: it may have happened 3
    │   ├── UnsafeInput    server data we refuse to act on: an id that is not  3
    │   │                  a safe file name, a link to a private address, a
    │   │                  download over the size limit
    │   └── CircuitOpen    too many consecutive failures to one upstream       3
    ├── ApprovalRequired   a write needs approval and none can be given,       5
    │                      or it is refused by read-only
    ├── BudgetExceeded     a budget or deadline was reached                    6
    ├── LockHeld           another run of the same job holds its lock          7
    └── ToolError, ModelError   fed back to the model where possible; else     3

Messages are one line: what failed, why, and what to do. They never hold secrets (callers pass
redacted text; ``agent.redact`` is applied again when printing).
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_UPSTREAM = 3
EXIT_RATE_LIMITED = 4
EXIT_APPROVAL = 5
EXIT_BUDGET = 6
EXIT_LOCKED = 7
EXIT_INTERRUPTED = 130


class AgentError(Exception):
    """Base of every error the agent reports to a user. ``code`` is a stable machine-readable slug."""

    exit_code = 1
    code = "error"

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def line(self) -> str:
        """The one-line rendering: message, then the hint (what to do) when there is one."""
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, Any]:
        """The ``errors[]`` entry of the JSON envelope."""
        entry: dict[str, Any] = {"code": self.code, "message": self.line()}
        entry.update({k: v for k, v in self.details.items() if v is not None})
        return entry


class ConfigError(AgentError):
    """Bad flag, unknown name, unreadable file, or no model when one is needed (exit 2)."""

    exit_code = EXIT_CONFIG
    code = "config"


class UpstreamError(AgentError):
    """An MCP or HTTP failure after retries, refused auth, or a missing capability (exit 3)."""

    exit_code = EXIT_UPSTREAM
    code = "upstream"

    def __init__(self, message: str, *, status: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, status=status, **kwargs)
        self.status = status


class MissingCapability(UpstreamError):
    """The connected server has no tool for an operation a command needs (exit 3)."""

    code = "missing_capability"


class RateLimited(UpstreamError):
    """The rate limit did not clear within the retry budget (exit 4)."""

    exit_code = EXIT_RATE_LIMITED
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, retry_after=retry_after, **kwargs)
        self.retry_after = retry_after


class AmbiguousWrite(UpstreamError):
    """A write timed out or got a 5xx: it may or may not have taken effect; reconcile before resending."""

    code = "ambiguous_write"


class UnsafeInput(UpstreamError):
    """Server data we refuse to act on (an id unfit for a file name, a link to a private address...) (exit 3).

    Workflows that handle many items report it per item and go on.
    """

    code = "unsafe_input"


class CircuitOpen(UpstreamError):
    """Too many consecutive failures to one upstream; calls fail fast until it cools down."""

    code = "circuit_open"


class ApprovalRequired(AgentError):
    """A write needed approval and none could be given, or read-only refused it (exit 5)."""

    exit_code = EXIT_APPROVAL
    code = "approval_required"


class BudgetExceeded(AgentError):
    """A cost, token, turn, tool-call or time budget was reached (exit 6)."""

    exit_code = EXIT_BUDGET
    code = "budget_exceeded"


class LockHeld(AgentError):
    """Another run of the same job holds its lock (exit 7)."""

    exit_code = EXIT_LOCKED
    code = "locked"


class ToolError(UpstreamError):
    """A tool call failed (``isError``, a JSON-RPC error, an ``Error:`` text, a Truto envelope)."""

    code = "tool_error"


class ModelError(UpstreamError):
    """The model endpoint failed or answered something unusable."""

    code = "model_error"


def unreachable_cause(exc: BaseException) -> str | None:
    """Why no connection could be made, when retrying soon cannot help: ``"connection refused"``,
    ``"no such host"``, ``"DNS lookup failed (...)"`` or ``"TLS handshake failed (...)"``; else None.

    Reads the exception's cause chain: httpx2 and openai wrap the socket's ``OSError``.
    """
    import socket
    import ssl

    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, ConnectionRefusedError):
            return "connection refused"
        if isinstance(node, socket.gaierror):
            if node.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                return "no such host"
            return f"DNS lookup failed ({node.strerror or node})"
        if isinstance(node, ssl.SSLError):
            return f"TLS handshake failed ({getattr(node, 'reason', None) or node})"
        node = node.__cause__ or node.__context__
    return None


def internal_error(exc: BaseException) -> AgentError:
    """A bug of ours (not an upstream failure), reported as exit 1 with how to report it."""
    return AgentError(f"internal error: {type(exc).__name__}: {exc}", hint="rerun with --debug and report it")
