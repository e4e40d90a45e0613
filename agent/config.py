"""Settings: command-line flags > environment > config file profile > defaults.

The config file is ``$XDG_CONFIG_HOME/vapi-agent/config.toml`` (``VAPI_AGENT_CONFIG`` overrides the
path). Top-level keys are the defaults; ``[profiles.NAME]`` tables override them when ``--profile NAME``
(or ``VAPI_AGENT_PROFILE``, or ``profile = "NAME"`` at top level) selects one. Keys use the long flag
names with underscores (``mcp_url``, ``read_only``, ``tools``...). No I/O here beyond reading files.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.redact import MASK, register_secret

DEFAULT_MODEL = "gpt-4.1-mini"
MCP_KINDS = ("truto", "vapi", "generic", "sandbox")

# Flag name -> environment variable. Secrets have their conventional names.
ENV_VARS: dict[str, str] = {
    "mcp_url": "VAPI_AGENT_MCP_URL",
    "mcp_kind": "VAPI_AGENT_MCP_KIND",
    "mcp_config": "VAPI_AGENT_MCP_CONFIG",
    "server": "VAPI_AGENT_SERVER",
    "profile": "VAPI_AGENT_PROFILE",
    "sandbox": "VAPI_AGENT_SANDBOX",
    "model": "VAPI_AGENT_MODEL",
    "read_only": "VAPI_AGENT_READ_ONLY",
    "tools": "VAPI_AGENT_TOOLS",
    "exclude_tools": "VAPI_AGENT_EXCLUDE_TOOLS",
    "log_level": "VAPI_AGENT_LOG_LEVEL",
    "max_attempts": "VAPI_AGENT_MAX_ATTEMPTS",
    "max_wait_per_request": "VAPI_AGENT_MAX_WAIT_PER_REQUEST",
    "max_wait_per_run": "VAPI_AGENT_MAX_WAIT_PER_RUN",
    "concurrency": "VAPI_AGENT_CONCURRENCY",
    "deadline": "VAPI_AGENT_DEADLINE",
    "max_download_bytes": "VAPI_AGENT_MAX_DOWNLOAD_BYTES",
    "write_dirs": "VAPI_AGENT_WRITE_DIRS",
    "truto_api": "VAPI_AGENT_TRUTO_API",
    "queue_url": "VAPI_AGENT_QUEUE_URL",
    "truto_api_token": "TRUTO_API_TOKEN",
    "vapi_api_key": "VAPI_API_KEY",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
}
SECRET_FIELDS = ("truto_api_token", "vapi_api_key", "openai_api_key")


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about where to connect and how to behave."""

    mcp_url: str | None = None
    mcp_kind: str | None = None
    mcp_config: str | None = None
    server: str | None = None
    profile: str | None = None
    sandbox: bool = False
    model: str | None = None
    read_only: bool = False
    yes: bool = False
    allow: tuple[str, ...] = ()
    write_dirs: tuple[str, ...] = ()  # folders (besides the working directory) the agent may write files in
    tools: tuple[str, ...] = ()
    exclude_tools: tuple[str, ...] = ()
    json: bool = False
    verbose: int = 0
    debug: bool = False
    log_level: str | None = None
    max_attempts: int = 8
    max_wait_per_request: float = 120.0
    max_wait_per_run: float = 900.0
    concurrency: int = 8
    deadline: float | None = None
    max_download_bytes: int = 512 * 1024 * 1024  # = agent.media.DEFAULT_MAX_DOWNLOAD_BYTES
    truto_api: str | None = None
    queue_url: str | None = None
    truto_api_token: str | None = None
    vapi_api_key: str | None = None
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    sandbox_options: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_model(self) -> str:
        """The model name to use (``--model``, ``VAPI_AGENT_MODEL``, config, else the default)."""
        return self.model or DEFAULT_MODEL

    @property
    def has_model(self) -> bool:
        """True when an OpenAI-compatible endpoint is configured (a key or a base URL)."""
        return bool(self.openai_api_key or self.openai_base_url)

    def redacted(self) -> dict[str, Any]:
        """All settings as a dict with secrets masked (``config show``)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS and value:
                value = MASK
            elif f.name == "queue_url" and value:
                value = _mask_password(value)
            elif f.name == "mcp_url" and value:
                from agent.redact import redact

                value = redact(value)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def _password(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _mask_password(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    password = _password(url)
    return url.replace(f":{password}@", f":{MASK}@", 1) if password else url


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the config file lives (``VAPI_AGENT_CONFIG``, else the XDG config dir)."""
    env = os.environ if env is None else env
    if env.get("VAPI_AGENT_CONFIG"):
        return Path(env["VAPI_AGENT_CONFIG"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vapi-agent" / "config.toml"


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}", hint="fix or remove the file") from None


def _coerce(name: str, value: Any) -> Any:
    """Turn env/config text into the field's type; a bad value is a ConfigError naming the key."""
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if kind == "int":
            return int(value)
        if kind in ("float", "float | None"):
            if name == "deadline" and isinstance(value, str):
                from agent.timeparse import parse_duration

                return parse_duration(value, option="--deadline").total_seconds()
            return float(value)
        if kind.startswith("tuple"):
            if isinstance(value, str):
                return tuple(p.strip() for p in value.split(",") if p.strip())
            return tuple(str(v) for v in value)
        return value if value is None else str(value) if not isinstance(value, dict) else value
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name} has an invalid value {value!r}", hint="check its type") from None


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> Settings:
    """Merge flags > env > config file profile > config file top level > defaults into ``Settings``.

    ``flags`` holds only options the user actually gave (None/empty means "not given").
    """
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v not in (None, (), [], False) or (k == "verbose" and v)}
    file_data = _read_config_file(path or config_path(env))
    known = {f.name for f in fields(Settings)}
    profiles = file_data.pop("profiles", {}) if isinstance(file_data.get("profiles"), dict) else {}
    servers_in_file = {k for k in file_data if k not in known}
    if servers_in_file:
        raise ConfigError(
            f"unknown key(s) in config file: {', '.join(sorted(servers_in_file))}",
            hint=f"known keys: {', '.join(sorted(known))}",
        )
    merged: dict[str, Any] = {k: _coerce(k, v) for k, v in file_data.items()}
    profile = flags.get("profile") or env.get("VAPI_AGENT_PROFILE") or merged.get("profile")
    if profile:
        if profile not in profiles:
            choices = ", ".join(sorted(profiles)) or "none defined"
            raise ConfigError(f"unknown profile {profile!r}", hint=f"profiles in the config file: {choices}")
        for key, value in profiles[profile].items():
            if key not in known:
                raise ConfigError(f"unknown key {key!r} in profile {profile!r}")
            merged[key] = _coerce(key, value)
        merged["profile"] = profile
    for name, var in ENV_VARS.items():
        if env.get(var) not in (None, ""):
            merged[name] = _coerce(name, env[var])
    for name, value in flags.items():
        if name not in known:
            raise ConfigError(f"unknown option {name}")
        merged[name] = _coerce(name, value) if not isinstance(value, (bool, int, float, tuple)) else value
    settings = replace(Settings(), **merged)
    if settings.max_download_bytes < 1:
        raise ConfigError(f"--max-download-bytes must be at least 1 (got {settings.max_download_bytes})")
    if settings.mcp_kind and settings.mcp_kind not in MCP_KINDS:
        raise ConfigError(f"unknown --mcp-kind {settings.mcp_kind!r}", hint=f"choose one of {', '.join(MCP_KINDS)}")
    for secret_field in SECRET_FIELDS:
        register_secret(getattr(settings, secret_field))
    if settings.queue_url:
        register_secret(_password(settings.queue_url))
    return settings
