"""vcrpy / pytest-recording configuration for recorded whole runs (``tests/test_cassettes.py``).

Loaded as a pytest plugin by that module (``pytest_plugins``), so its hook registers the JSON-RPC body
matcher with pytest-recording's VCR; the configuration itself is the ``cassette_vcr_config`` fixture,
which the test module exposes as its own ``vcr_config`` (so no other module's cassettes change).

Matching: method, scheme, host, path, query (all of them after scrubbing, so the ``/mcp/<token>``
segment never has to agree), and the body as JSON minus ``params._meta`` (MCP puts client-specific
data there). ``port`` is not matched: local servers listen on random ports.

Scrubbing, applied to every request before it is recorded *and* before it is matched (vcrpy runs
``before_record_request`` on live requests too, so a scrubbed recording still matches) and to every
response before it is recorded:
- request headers ``authorization``, ``x-api-key``, ``cookie``, OpenAI organisation/project: dropped;
- response headers that identify an account or a moment (``set-cookie``, ``openai-*``, request ids,
  ``date``, ``server``...): dropped; ``location`` values scrubbed like bodies;
- URIs and bodies: ``agent.redact.redact`` (registered secrets such as API keys and the MCP URL
  token, presigned ``X-Amz-Signature``/``sig``/``token`` query values, bearer tokens, ``/mcp/<token>``),
  plus recording link tokens (``/_links/<opaque>``) that ``redact`` cannot know;
- requests the sandbox makes to itself while recording are not client traffic and are not recorded:
  vcrpy patches ``httpx2.ASGITransport`` as well as the network transports, and the sandbox's MCP
  server calls its own REST app through an ``ASGITransport`` (on the server's thread, which is how
  they are told apart). For the same reason runs are recorded against a sandbox *served* on
  loopback: an in-process sandbox's whole ASGI traffic would be recorded as if it were network.
Every scrubber is idempotent: replayed responses are already scrubbed, and the requests built from
them must scrub to the same text as the recorded ones.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest

from agent.redact import MASK, redact

FILTER_REQUEST_HEADERS = ["authorization", "x-api-key", "cookie", "openai-organization", "openai-project"]
DROP_RESPONSE_HEADERS = {
    "set-cookie", "openai-organization", "openai-project", "x-request-id", "request-id", "date", "server",
    "cf-ray", "x-amz-request-id", "x-amz-id-2", "x-cloud-trace-context",
}
MATCH_ON = ["method", "scheme", "host", "path", "query", "jsonrpc_body"]
_LINK_TOKEN = re.compile(r"(/_links/)(?!\*\*\*)[A-Za-z0-9_\-.~%]{6,}")
SANDBOX_THREAD_PREFIX = "sandbox-server-"  # sandbox.serve.ServerThread names its thread so


def scrub_text(text: str) -> str:
    """Secrets, signatures, MCP path tokens and recording link tokens masked (idempotent)."""
    return _LINK_TOKEN.sub(lambda m: m.group(1) + MASK, redact(text))


def _scrub_body(body: Any) -> Any:
    if body is None:
        return None
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return body  # binary (audio): nothing textual to scrub
        return scrub_text(text).encode("utf-8")
    return scrub_text(str(body))


def scrub_request(request: Any) -> Any:
    """``before_record_request``: drop the sandbox's own in-process calls; scrub URI and body."""
    if threading.current_thread().name.startswith(SANDBOX_THREAD_PREFIX):
        return None
    request.uri = scrub_text(request.uri)
    request.body = _scrub_body(request.body)
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """``before_record_response``: drop identifying headers, scrub ``location`` and the body."""
    headers = {}
    for name, values in response.get("headers", {}).items():
        if name.lower() in DROP_RESPONSE_HEADERS:
            continue
        headers[name] = [scrub_text(v) for v in values] if isinstance(values, list) else scrub_text(str(values))
    response["headers"] = headers
    body = response.get("body") or {}
    if "string" in body:
        body["string"] = _scrub_body(body["string"])
    return response


def jsonrpc_key(body: Any) -> Any:
    """A body as JSON minus ``params._meta`` (the ``id`` is kept: responses are correlated by it)."""
    if not body:
        return body
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    if isinstance(data, dict) and isinstance(data.get("params"), dict):
        data["params"] = {k: v for k, v in data["params"].items() if k != "_meta"}
    return data


def jsonrpc_body(r1: Any, r2: Any) -> None:
    """vcr matcher: equal JSON bodies, ignoring ``params._meta``."""
    assert jsonrpc_key(r1.body) == jsonrpc_key(r2.body), "JSON bodies differ (ignoring params._meta)"


def register_matchers(vcr: Any) -> None:
    """Add the JSON-RPC body matcher to a ``vcr.VCR``."""
    vcr.register_matcher("jsonrpc_body", jsonrpc_body)


def recording_config() -> dict[str, Any]:
    """The ``use_cassette`` keyword arguments (see the module docstring)."""
    return {
        "match_on": MATCH_ON,
        "filter_headers": FILTER_REQUEST_HEADERS,
        "decode_compressed_response": True,
        "before_record_request": scrub_request,
        "before_record_response": scrub_response,
    }


def make_vcr() -> Any:
    """A standalone ``vcr.VCR`` with this configuration (for tests that open a cassette themselves)."""
    import vcr

    instance = vcr.VCR(**recording_config())
    register_matchers(instance)
    return instance


def pytest_recording_configure(config: Any, vcr: Any) -> None:
    """pytest-recording hook: register the matchers on the VCR it builds for each cassette."""
    register_matchers(vcr)


@pytest.fixture(scope="module")
def cassette_vcr_config() -> dict[str, Any]:
    """The configuration, for a test module's ``vcr_config`` fixture."""
    return recording_config()
