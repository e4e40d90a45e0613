"""Per-user directories of vapi-agent: data (the run log), state and cache.

Resolution order for each directory:

1. an explicit override: ``VAPI_AGENT_DATA_DIR`` / ``VAPI_AGENT_STATE_DIR`` / ``VAPI_AGENT_CACHE_DIR``;
2. for state and cache only: ``$VAPI_AGENT_DATA_DIR/state`` / ``.../cache`` when the data dir is
   overridden, so one variable is enough to keep everything of a test or a container in one place;
3. platformdirs, which honours ``XDG_DATA_HOME`` / ``XDG_STATE_HOME`` / ``XDG_CACHE_HOME`` on Linux
   (``~/.local/share/vapi-agent`` etc. otherwise). Per the XDG spec a *relative* ``XDG_*`` value is
   ignored; platformdirs does that, so we do too.

Directories are created with mode 0700 because the data dir holds conversation text and tool
arguments (redacted, but still private to the user).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from agent.errors import ConfigError

APP_NAME = "vapi-agent"
DATA_DIR_ENV = "VAPI_AGENT_DATA_DIR"
STATE_DIR_ENV = "VAPI_AGENT_STATE_DIR"
CACHE_DIR_ENV = "VAPI_AGENT_CACHE_DIR"
PRIVATE_DIR_MODE = 0o700


def _dirs() -> platformdirs.PlatformDirs:
    # appauthor=False: no "<author>/" level on Windows; ensure_exists stays False because we create
    # the directory ourselves with a private mode (platformdirs would honour the umask instead).
    return platformdirs.PlatformDirs(APP_NAME, appauthor=False)


def _override(variable: str) -> Path | None:
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    # A relative override is taken relative to the working directory (unlike XDG_*), because it is
    # our own variable and users set it as a path they can see.
    return Path(value).expanduser().absolute()


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing, the leaf with mode 0700; returns ``path``.

    An existing directory is left as it is (it may be a directory the user chose and shares on
    purpose); a path that exists but is not a directory, or cannot be created, is a ConfigError.
    """
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=False)
    except FileExistsError:
        if not path.is_dir():
            raise ConfigError(
                f"{path} exists and is not a directory", hint=f"remove it or set {DATA_DIR_ENV}"
            ) from None
        return path
    except OSError as exc:
        raise ConfigError(
            f"cannot create directory {path}: {exc.strerror or exc}", hint=f"set {DATA_DIR_ENV} to a writable path"
        ) from None
    # mkdir's mode is filtered by the umask (0o277 would leave 0o500, unusable); set it exactly.
    os.chmod(path, PRIVATE_DIR_MODE)
    return path


def _resolve(override_env: str, sub: str | None, platform_path: str, create: bool) -> Path:
    path = _override(override_env)
    if path is None and sub is not None:
        data_override = _override(DATA_DIR_ENV)
        if data_override is not None:
            path = data_override / sub
    if path is None:
        path = Path(platform_path)
    return ensure_private_dir(path) if create else path


def data_dir(*, create: bool = True) -> Path:
    """The user data directory (holds ``runs.sqlite3``): ``VAPI_AGENT_DATA_DIR`` or the XDG data dir."""
    return _resolve(DATA_DIR_ENV, None, _dirs().user_data_dir, create)


def state_dir(*, create: bool = True) -> Path:
    """The user state directory (locks, last-run markers): ``VAPI_AGENT_STATE_DIR`` or the XDG state dir."""
    return _resolve(STATE_DIR_ENV, "state", _dirs().user_state_dir, create)


def cache_dir(*, create: bool = True) -> Path:
    """The user cache directory (downloads that may be re-fetched): ``VAPI_AGENT_CACHE_DIR`` or the XDG cache dir."""
    return _resolve(CACHE_DIR_ENV, "cache", _dirs().user_cache_dir, create)
