"""Settings: command-line flags > environment > config file profile > config file top level > defaults.

The config file is ``$XDG_CONFIG_HOME/vapi-agent/config.toml`` (``VAPI_AGENT_CONFIG`` overrides the
path). Top-level keys are the defaults; ``[profiles.NAME]`` tables override them when ``--profile NAME``
(or ``VAPI_AGENT_PROFILE``, or ``profile = "NAME"`` at top level) selects one. Keys use the long flag
names with underscores (``mcp_url``, ``read_only``, ``tools``...).

Every value, whatever its source, is validated in one place: the pydantic dataclass ``Settings``
(types, ranges, finite numbers, durations, byte sizes, http(s) URLs, known choices). ``load_settings``
remembers where each value came from, so a bad one is a ``ConfigError`` (exit 2) naming the setting,
its value and its source, raised before anything connects. No I/O here beyond reading the config file.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import BeforeValidator, ByteSize, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from agent.errors import ConfigError
from agent.redact import MASK, redact, register_secret

DEFAULT_MODEL = "gpt-4.1-mini"
MCP_KINDS = ("truto", "vapi", "generic", "sandbox")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # = agent.mcp.limits.DEFAULT_MAX_MESSAGE_BYTES
DEFAULT_MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024  # = agent.media.DEFAULT_MAX_DOWNLOAD_BYTES
_DAY = 86400.0

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
    "max_message_bytes": "VAPI_AGENT_MAX_MESSAGE_BYTES",
    "max_download_bytes": "VAPI_AGENT_MAX_DOWNLOAD_BYTES",
    "write_dirs": "VAPI_AGENT_WRITE_DIRS",
    "truto_api": "VAPI_AGENT_TRUTO_API",
    "queue_url": "VAPI_AGENT_QUEUE_URL",
    "fleet_concurrency": "VAPI_AGENT_FLEET_CONCURRENCY",
    "truto_api_token": "TRUTO_API_TOKEN",
    "vapi_api_key": "VAPI_API_KEY",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
}
SECRET_FIELDS = ("truto_api_token", "vapi_api_key", "openai_api_key")
# Settings whose command-line flag is not ``--`` + the name (``fleet --concurrency`` is accounts at a time,
# not the per-upstream request concurrency of ``concurrency``).
FLAG_NAMES: dict[str, str] = {"fleet_concurrency": "--concurrency"}


# ---------------------------------------------------------------- value checks (shared with agent.mcp.servers)
def has_control_or_space(text: str) -> bool:
    """True when ``text`` holds whitespace or a control character (CR/LF, NUL, ESC, DEL, C1...)."""
    return any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in text)


def _split_url(url: str) -> tuple[SplitResult, int | None]:
    """``url`` split, with its port; ``ValueError`` for text that is not one clean URL."""
    if not isinstance(url, str):
        raise ValueError("is not a string")
    if has_control_or_space(url):
        raise ValueError("contains a space or a control character (CR, LF, tab...)")
    try:
        parts = urlsplit(url)
        return parts, parts.port
    except ValueError as exc:  # "Port out of range 0-65535", "Invalid IPv6 URL"...
        raise ValueError(f"is not a valid URL ({str(exc).lower()})") from None


def check_http_url(url: str) -> str:
    """``url`` when it is an absolute http(s) URL with a host and a valid port; else ``ValueError`` saying why."""
    parts, port = _split_url(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("is not an http(s) URL")
    if not parts.hostname:
        raise ValueError("has no host")
    if port == 0:
        raise ValueError("has port 0")
    return url


def check_queue_url(url: str) -> str:
    """``url`` when it is a ``postgresql://`` (or ``postgres://``) URL with a valid port; else ``ValueError``."""
    parts, _port = _split_url(url)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise ValueError("is not a postgresql:// URL (e.g. postgresql://user@host:5432/fleet)")
    return url


def _not_bool(value: Any) -> Any:
    # pydantic's lax mode reads true as 1: `concurrency = true` in a file is a mistake, not 1.
    if isinstance(value, bool):
        raise ValueError("is a boolean, not a number")
    return value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _split_globs(value: Any) -> Any:
    """``"a,b"`` (a flag or an environment variable) or a list (the config file) -> a tuple."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


def _seconds(value: Any) -> Any:
    """A duration: a number of seconds, or text like ``90s``, ``10m``, ``1h30m``."""
    _not_bool(value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    from agent.timeparse import parse_duration

    try:
        return parse_duration(text).total_seconds()
    except ConfigError:
        raise ValueError("is not a number of seconds or a duration like 90s, 10m, 2h") from None


def _url(value: Any) -> Any:
    return check_http_url(value) if value is not None else None


def _queue_url(value: Any) -> Any:
    return check_queue_url(value) if value is not None else None


def _token(value: Any) -> Any:
    if isinstance(value, str) and has_control_or_space(value):
        raise ValueError("contains whitespace or a control character")
    return value


Count = Annotated[int, BeforeValidator(_not_bool)]
Seconds = Annotated[float, Field(ge=0, le=30 * _DAY, allow_inf_nan=False), BeforeValidator(_seconds)]
Name = Annotated[str, Field(min_length=1), BeforeValidator(_token)]
Secret = Annotated[str, BeforeValidator(_token)]
Globs = Annotated[tuple[str, ...], BeforeValidator(_split_globs)]
HttpUrl = Annotated[str, BeforeValidator(_url)]
QueueUrl = Annotated[str, BeforeValidator(_queue_url)]
Folders = Annotated[tuple[str, ...], BeforeValidator(_split_globs)]  # "a,b" (an environment variable) or a list


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Settings:
    """Everything a command needs to know about where to connect and how to behave (validated)."""

    mcp_url: HttpUrl | None = None
    mcp_kind: Literal["truto", "vapi", "generic", "sandbox"] | None = None
    mcp_config: Annotated[str, Field(min_length=1)] | None = None
    server: Name | None = None
    profile: Name | None = None
    sandbox: bool = False
    model: Name | None = None
    read_only: bool = False
    yes: bool = False
    allow: Annotated[tuple[str, ...], BeforeValidator(_one_or_many)] = ()
    write_dirs: Folders = ()  # folders (besides the working directory) the agent may write files in
    tools: Globs = ()
    exclude_tools: Globs = ()
    json: bool = False
    verbose: Annotated[Count, Field(ge=0)] = 0
    debug: bool = False
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)] | None \
        = None
    max_attempts: Annotated[Count, Field(ge=1, le=100)] = 8
    max_wait_per_request: Seconds = 120.0
    max_wait_per_run: Seconds = 900.0
    concurrency: Annotated[Count, Field(ge=1, le=256)] = 8
    deadline: Annotated[float, Field(gt=0, le=366 * _DAY, allow_inf_nan=False), BeforeValidator(_seconds)] | None \
        = None
    max_message_bytes: Annotated[ByteSize, Field(ge=1024, le=1 << 40), BeforeValidator(_not_bool)] = ByteSize(
        DEFAULT_MAX_MESSAGE_BYTES)
    max_download_bytes: Annotated[ByteSize, Field(ge=1, le=1 << 40), BeforeValidator(_not_bool)] = ByteSize(
        DEFAULT_MAX_DOWNLOAD_BYTES)
    truto_api: HttpUrl | None = None
    queue_url: QueueUrl | None = None  # the fleet queue's PostgreSQL URL; its password is a secret
    fleet_concurrency: Annotated[Count, Field(ge=1, le=256)] | None = None  # fleet runs: accounts at a time (8)
    truto_api_token: Secret | None = None
    vapi_api_key: Secret | None = None
    openai_api_key: Secret | None = None
    openai_base_url: HttpUrl | None = None
    sandbox_options: dict[str, Any] = dataclasses.field(default_factory=dict)

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
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS and value:
                value = MASK
            elif f.name == "queue_url" and value:
                value = _mask_password(value)
            elif f.name in ("mcp_url", "openai_base_url", "truto_api") and value:
                value = redact(value)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


SETTING_NAMES = tuple(f.name for f in dataclasses.fields(Settings))


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _mask_password(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db`` (also in a URL that does not parse)."""
    return re.sub(r"(://[^/@:]*:)[^/]*@", lambda m: f"{m.group(1)}{MASK}@", url, count=1)


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the config file lives (``VAPI_AGENT_CONFIG``, else the XDG config dir)."""
    env = os.environ if env is None else env
    if env.get("VAPI_AGENT_CONFIG"):
        return Path(env["VAPI_AGENT_CONFIG"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vapi-agent" / "config.toml"


def _read_config_file(path: Path) -> dict[str, Any]:
    """The parsed TOML file ({} when absent); at most 1 MiB is read (``/dev/zero`` cannot exhaust memory)."""
    from agent.files import read_small_text

    what, hint = f"config file {path}", "fix or remove the file"
    text = read_small_text(path, what, hint=hint, missing_ok=True)  # absent: empty, so {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot read {what}: {exc}", hint=hint) from None
    except RecursionError:
        raise ConfigError(f"cannot read {what}: nested too deeply", hint=hint) from None


def _given(value: Any) -> bool:
    """A flag the user actually gave: not None, not an unset boolean, not an empty list (0 and 0.0 count)."""
    return not (value is None or value is False or (isinstance(value, (tuple, list)) and not value))


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> Settings:
    """Merge flags > env > config file profile > config file top level > defaults into ``Settings``.

    ``flags`` holds only options the user actually gave (None/False/empty means "not given").
    A bad value anywhere is a ``ConfigError`` naming the setting and where it came from.
    """
    env = os.environ if env is None else env
    given = {name: value for name, value in (flags or {}).items() if _given(value)}
    file_path = path or config_path(env)
    where = f"config file {file_path}"
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    top = _read_config_file(file_path)
    profiles = top.pop("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(table, dict) for table in profiles.values()):
        raise ConfigError(f"'profiles' in {where} must hold tables", hint='write [profiles.NAME] sections')
    _layer(values, sources, top, where)

    profile, profile_source = values.get("profile"), sources.get("profile", where)
    if env.get("VAPI_AGENT_PROFILE"):
        profile, profile_source = env["VAPI_AGENT_PROFILE"], "VAPI_AGENT_PROFILE"
    if "profile" in given:
        profile, profile_source = given["profile"], "--profile"
    if profile is not None:
        if not isinstance(profile, str) or profile not in profiles:
            choices = ", ".join(sorted(profiles)) or "none defined"
            raise ConfigError(f"unknown profile {profile!r} (from {profile_source})",
                              hint=f"profiles in {file_path}: {choices}")
        _layer(values, sources, profiles[profile], f"[profiles.{profile}] of {where}")
        values["profile"], sources["profile"] = profile, profile_source

    for other, table in profiles.items():  # a broken profile is reported even before it is chosen
        if other != profile:
            layered, layered_sources = dict(values), dict(sources)
            _layer(layered, layered_sources, table, f"[profiles.{other}] of {where}")
            _validated(layered, layered_sources)

    # Each layer is checked before the next one hides its values: a bad value in the config file is
    # reported even when an environment variable or a flag overrides it.
    _validated(values, sources)
    for name, var in ENV_VARS.items():
        if env.get(var) not in (None, ""):
            values[name], sources[name] = env[var], var
    _validated(values, sources)
    for name, value in given.items():
        values[name], sources[name] = value, FLAG_NAMES.get(name, "--" + name.replace("_", "-"))

    settings = _validated(values, sources)
    for secret_field in SECRET_FIELDS:
        register_secret(getattr(settings, secret_field))
    if settings.queue_url:
        register_secret(_password(settings.queue_url))
    return settings


def _validated(values: dict[str, Any], sources: Mapping[str, str]) -> Settings:
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise _explain(exc, values, sources) from None


def _layer(values: dict[str, Any], sources: dict[str, str], data: Mapping[str, Any], where: str) -> None:
    for key, value in data.items():
        values[key], sources[key] = value, where


def _explain(exc: ValidationError, values: Mapping[str, Any], sources: Mapping[str, str]) -> ConfigError:
    """One line for the first problem: the setting, its value (secrets masked), its source, the reason."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    name = str(first["loc"][0]) if first["loc"] else "settings"
    source = sources.get(name, "the defaults")
    more = f"; {len(errors) - 1} more problem(s) after this one" if len(errors) > 1 else ""
    if first["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        close = difflib.get_close_matches(name, SETTING_NAMES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "`vapi-agent config show` lists every setting"
        what = "key" if "config file" in source else "setting"
        return ConfigError(f"unknown {what} {name!r} in {source}", hint=hint + more)
    value = values.get(name)
    if name == "queue_url" and isinstance(value, str):
        value = _mask_password(value)
    shown = MASK if name in SECRET_FIELDS else redact(repr(value))
    if len(shown) > 80:
        shown = shown[:77] + "..."
    reason = first["msg"].removeprefix("Value error, ")
    reason = reason[:1].lower() + reason[1:]
    return ConfigError(f"setting {name} = {shown} from {source}: {reason}", hint=f"fix {_fix_where(source)}{more}")


def _fix_where(source: str) -> str:
    if source.startswith("--"):
        return f"the {source} flag"
    if "config file" in source:
        return "the config file"
    return f"or unset {source}"
