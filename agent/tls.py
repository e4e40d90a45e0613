"""One TLS context per process, shared by every HTTP transport vapi-agent creates.

Building a context loads the system's CA bundle: ~70-100 ms of CPU each time. A fleet run opens a
runtime (an MCP transport, a media transport, an admin client) per account, so a fresh context per
transport cost seconds of CPU per hundred accounts. Verification is unchanged: the default context.
"""

from __future__ import annotations

import functools
import ssl


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The process's default-verifying TLS context (built once)."""
    return ssl.create_default_context()
