"""Which MCP servers to connect to, and with which credentials, from ``Settings``.

Resolution order: ``--mcp-config`` (the standard ``{"mcpServers": {...}}`` file; several servers),
else ``--mcp-url``, else ``VAPI_API_KEY`` alone (Vapi's hosted server), else the embedded sandbox.
``TRUTO_API_TOKEN`` is sent as ``Authorization: Bearer`` only to the ``--mcp-url`` origin and only when
that server is Truto's (host ``api.truto.one`` or kind ``truto``/``sandbox``): never to another
server, a redirect, a recording link or the model API.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.config import Settings
from agent.errors import ConfigError
from agent.redact import redact, register_secret

VAPI_HOSTED_MCP = "https://mcp.vapi.ai/mcp"
TRUTO_HOST = "api.truto.one"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class ServerSpec:
    """One MCP server to connect to.

    ``transport`` is ``http`` (Streamable HTTP), ``sse`` (legacy HTTP+SSE), ``stdio`` or ``sandbox``
    (the embedded workspace, wired by ``agent.runtime``). ``kind`` is truto | vapi | generic | sandbox.
    ``source`` says where the server was configured, in the words a user would check (``--mcp-url
    (or VAPI_AGENT_MCP_URL)``, ``VAPI_API_KEY`` for Vapi's hosted server...), for errors such as
    "cannot reach".
    """

    name: str
    transport: str
    kind: str = "generic"
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    source: str = ""

    @property
    def display(self) -> str:
        """A printable identity without secrets (host only for URLs, the command for stdio)."""
        if self.url:
            return urlsplit(self.url).netloc or self.name
        if self.command:
            return f"{self.name} ({Path(self.command).name})"
        return self.name

    @property
    def upstream_key(self) -> str:
        """The governor key: origin plus path (the Truto token is part of the path); never printed."""
        if self.url:
            parts = urlsplit(self.url)
            return f"{parts.scheme}://{parts.netloc}{parts.path}"
        return f"{self.transport}:{self.name}"


def substitute_env(value: Any, env: Mapping[str, str], *, where: str) -> Any:
    """Replace ``${NAME}`` in strings (recursively); an unset variable is a ConfigError naming it."""
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"{where} uses ${{{name}}}, which is not set", hint=f"export {name}=...")
            return env[name]

        return _ENV_REF.sub(repl, value)
    if isinstance(value, list):
        return [substitute_env(v, env, where=where) for v in value]
    if isinstance(value, dict):
        return {k: substitute_env(v, env, where=where) for k, v in value.items()}
    return value


def _kind_for_url(url: str, declared: str | None) -> str:
    if declared:
        return declared
    host = urlsplit(url).hostname or ""
    if host == TRUTO_HOST:
        return "truto"
    if host == "mcp.vapi.ai":
        return "vapi"
    return "generic"


def _check_url(url: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: {redact(url)!r} is not an http(s) URL", hint="e.g. https://api.truto.one/mcp/<token>")


def _url_transport(url: str, declared: str | None = None) -> str:
    if declared in ("sse",):
        return "sse"
    return "sse" if urlsplit(url).path.rstrip("/").endswith("/sse") else "http"


def _globs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return tuple(str(v) for v in value)


def load_mcp_config(path: str, env: Mapping[str, str]) -> list[ServerSpec]:
    """Parse an ``{"mcpServers": {...}}`` file into specs (``url``+``headers`` or ``command``+``args``+``env``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read --mcp-config {path}: {exc.strerror}", hint="check the path") from None
    except ValueError as exc:
        raise ConfigError(f"--mcp-config {path} is not valid JSON: {exc}") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict) or not servers:
        raise ConfigError(f"--mcp-config {path} has no mcpServers object", hint='expected {"mcpServers": {...}}')
    specs: list[ServerSpec] = []
    for name, raw in servers.items():
        where = f"server {name!r} in {path}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} is not an object")
        if raw.get("disabled"):
            continue
        entry = substitute_env(raw, env, where=where)
        allow, deny = _globs(entry.get("tools")), _globs(entry.get("excludeTools") or entry.get("exclude_tools"))
        if entry.get("url"):
            url = str(entry["url"])
            _check_url(url, where)
            headers = {str(k): str(v) for k, v in (entry.get("headers") or {}).items()}
            for value in headers.values():
                register_secret(value.split()[-1] if value else value)
            register_secret(urlsplit(url).path.rsplit("/", 1)[-1] if "/mcp/" in url else None)
            specs.append(ServerSpec(
                name=name, transport=_url_transport(url, entry.get("type") or entry.get("transport")),
                kind=_kind_for_url(url, entry.get("kind")), url=url, headers=headers, allow=allow, deny=deny,
                source=f"the url of {where}",
            ))
        elif entry.get("command"):
            env_vars = {str(k): str(v) for k, v in (entry.get("env") or {}).items()}
            for value in env_vars.values():
                register_secret(value)
            specs.append(ServerSpec(
                name=name, transport="stdio", kind=entry.get("kind") or "generic", command=str(entry["command"]),
                args=[str(a) for a in entry.get("args") or []], env=env_vars, cwd=entry.get("cwd"),
                allow=allow, deny=deny, source=f"the command of {where}",
            ))
        else:
            raise ConfigError(f"{where} has neither url nor command")
    if not specs:
        raise ConfigError(f"--mcp-config {path}: every server is disabled")
    return specs


def resolve_servers(settings: Settings, env: Mapping[str, str] | None = None) -> list[ServerSpec]:
    """The servers this run connects to, in priority order (see the module docstring)."""
    env = os.environ if env is None else env
    if settings.sandbox or (settings.mcp_kind == "sandbox" and not settings.mcp_url):
        return [sandbox_spec(settings)]
    if settings.mcp_config:
        specs = load_mcp_config(settings.mcp_config, env)
    elif settings.mcp_url:
        url = settings.mcp_url
        _check_url(url, "--mcp-url")
        kind = _kind_for_url(url, settings.mcp_kind)
        headers: dict[str, str] = {}
        if "/mcp/" in url:
            register_secret(urlsplit(url).path.split("/mcp/", 1)[1].strip("/"))
        if kind in ("truto", "sandbox") and settings.truto_api_token:
            headers["Authorization"] = f"Bearer {settings.truto_api_token}"
        elif kind == "vapi" and settings.vapi_api_key:
            headers["Authorization"] = f"Bearer {settings.vapi_api_key}"
        specs = [ServerSpec(name=urlsplit(url).hostname or "mcp", transport=_url_transport(url), kind=kind,
                            url=url, headers=headers, source="--mcp-url (or VAPI_AGENT_MCP_URL)")]
    elif settings.vapi_api_key:
        specs = [ServerSpec(name="vapi", transport="http", kind="vapi", url=VAPI_HOSTED_MCP,
                            headers={"Authorization": f"Bearer {settings.vapi_api_key}"},
                            source="VAPI_API_KEY")]
    else:
        return [sandbox_spec(settings)]
    if settings.server and settings.server not in {s.name for s in specs}:
        names = ", ".join(s.name for s in specs)
        raise ConfigError(f"unknown --server {settings.server!r}", hint=f"servers: {names}")
    for spec in specs:
        spec.allow = spec.allow + settings.tools
        spec.deny = spec.deny + settings.exclude_tools
    return specs


def sandbox_spec(settings: Settings) -> ServerSpec:
    """The embedded sandbox as a server spec (the runtime builds the workspace behind it)."""
    return ServerSpec(name="sandbox", transport="sandbox", kind="sandbox", allow=settings.tools,
                      deny=settings.exclude_tools)
