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
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.config import Settings, check_http_url
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
        if self.url:  # host and port only: the userinfo of a URL is a secret
            parts = urlsplit(self.url)
            host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname or ""
            return (f"{host}:{parts.port}" if parts.port else host) or self.name
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
    """Replace ``${NAME}`` in strings (in lists and dict values too); an unset variable is a ConfigError."""
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
    try:
        check_http_url(url)
    except ValueError as exc:
        raise ConfigError(f"{where}: {redact(url)!r} {exc}", hint="e.g. https://api.truto.one/mcp/<token>") from None


def _url_transport(url: str, declared: str | None = None) -> str:
    if declared == "sse":
        return "sse"
    return "sse" if urlsplit(url).path.rstrip("/").endswith("/sse") else "http"


Transport = Literal["http", "streamable-http", "streamableHttp", "sse", "stdio"]
Globs = str | list[str] | None


class ServerEntry(BaseModel):
    """One server of an ``mcpServers`` file, as typed as the file format allows.

    Keys other clients use (``autoApprove``, ``timeout``...) are ignored; ours must have their type:
    ``"args": "x"`` is refused, not split into characters.
    """

    model_config = ConfigDict(extra="ignore")

    url: str | None = None
    type: Transport | None = None
    transport: Transport | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    disabled: bool = False
    kind: Literal["truto", "vapi", "generic", "sandbox"] | None = None
    tools: Globs = None
    excludeTools: Globs = None
    exclude_tools: Globs = None


class ServersFile(BaseModel):
    """The ``{"mcpServers": {...}}`` file (other top-level keys of a client's config are ignored)."""

    model_config = ConfigDict(extra="ignore")

    mcpServers: dict[str, ServerEntry] = Field(min_length=1)


def _globs(value: Globs) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return tuple(value)


def _read_servers_file(path: str) -> ServersFile:
    """Read and type-check an ``mcpServers`` file; every problem is one ConfigError naming the file."""
    from agent.files import read_small_text

    where = f"--mcp-config {path}"
    text = read_small_text(path, where)
    try:
        data = json.loads(text)
    except RecursionError:
        raise ConfigError(f"{where} nests too deeply to be an mcpServers file") from None
    except ValueError as exc:
        raise ConfigError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "mcpServers" not in data:
        raise ConfigError(f"{where} has no mcpServers object", hint='expected {"mcpServers": {...}}')
    try:
        return ServersFile.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, where) from None
    except RecursionError:
        raise ConfigError(f"{where} nests too deeply to be an mcpServers file") from None


def _explain(exc: ValidationError, where: str) -> ConfigError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [str(part) for part in first["loc"]]
    if loc[:1] == ["mcpServers"] and len(loc) >= 2:
        place = f"server {loc[1]!r}" + (f" key {'.'.join(loc[2:])!r}" if len(loc) > 2 else "")
    else:
        place = "'" + ".".join(loc) + "'" if loc else "the file"
    reason = first["msg"].removeprefix("Value error, ")
    reason = reason[:1].lower() + reason[1:]
    more = f"; {len(errors) - 1} more problem(s) after this one" if len(errors) > 1 else ""
    return ConfigError(f"{where}: {place}: {reason}", hint=f"fix the file{more}")


def _check_command(command: str, cwd: str | None, env: Mapping[str, str], where: str) -> None:
    """A stdio server's program must exist before we try to start it (exit 2, not a connection error)."""
    if cwd is not None and not Path(cwd).is_dir():
        raise ConfigError(f"{where}: cwd {cwd!r} is not a directory")
    candidate = command
    if os.sep in command and cwd is not None and not os.path.isabs(command):
        candidate = os.path.join(cwd, command)
    if shutil.which(candidate, path=env.get("PATH", os.defpath)) is None:
        raise ConfigError(f"{where}: command {command!r} is not an executable program",
                          hint="install it, or give its absolute path in \"command\"")


def load_mcp_config(path: str, env: Mapping[str, str]) -> list[ServerSpec]:
    """Parse an ``{"mcpServers": {...}}`` file into specs (``url``+``headers`` or ``command``+``args``+``env``)."""
    servers = _read_servers_file(path).mcpServers
    specs: list[ServerSpec] = []
    for name, raw in servers.items():
        where = f"server {name!r} in {path}"
        if raw.disabled:
            continue
        entry = raw.model_copy(update={
            key: substitute_env(getattr(raw, key), env, where=where)
            for key in ("url", "headers", "command", "args", "env", "cwd")})
        allow, deny = _globs(entry.tools), _globs(entry.excludeTools or entry.exclude_tools)
        if entry.url:
            url = entry.url
            _check_url(url, where)
            for value in entry.headers.values():
                register_secret(value.split()[-1] if value.split() else value)
            register_secret(urlsplit(url).path.rsplit("/", 1)[-1] if "/mcp/" in url else None)
            specs.append(ServerSpec(
                name=name, transport=_url_transport(url, entry.type or entry.transport),
                kind=_kind_for_url(url, entry.kind), url=url, headers=dict(entry.headers), allow=allow, deny=deny,
                source=f"the url of {where}",
            ))
        elif entry.command:
            for value in entry.env.values():
                register_secret(value)
            _check_command(entry.command, entry.cwd, {**env, **entry.env}, where)
            specs.append(ServerSpec(
                name=name, transport="stdio", kind=entry.kind or "generic", command=entry.command,
                args=list(entry.args), env=dict(entry.env), cwd=entry.cwd, allow=allow, deny=deny,
                source=f"the command of {where}",
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
        specs = [sandbox_spec(settings)]
    elif settings.mcp_config:
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
        specs = [sandbox_spec(settings)]
    if settings.server and settings.server not in {s.name for s in specs}:
        names = ", ".join(s.name for s in specs)
        raise ConfigError(f"unknown --server {settings.server!r}", hint=f"servers: {names}")
    for spec in specs:
        if spec.transport != "sandbox":  # sandbox_spec already has them
            spec.allow = spec.allow + settings.tools
            spec.deny = spec.deny + settings.exclude_tools
    return specs


def sandbox_spec(settings: Settings) -> ServerSpec:
    """The embedded sandbox as a server spec (the runtime builds the workspace behind it)."""
    return ServerSpec(name="sandbox", transport="sandbox", kind="sandbox", allow=settings.tools,
                      deny=settings.exclude_tools)
