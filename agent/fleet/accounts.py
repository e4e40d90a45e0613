"""The accounts of a fleet: who they are and how to reach each one, with no secret held in the record.

An ``Account`` is plain data (it goes into the durable queue as a job's input): a name, a tenant,
where it comes from, and *references* to its credentials. Sources:

- Truto (``source="truto"``): an integrated account id; the job mints its own MCP server for it
  through the admin API with ``TRUTO_API_TOKEN`` (``agent.fleet.truto``);
- a file (``source="file"``): ``accounts.toml`` with ``[[account]]`` tables holding ``name`` and exactly
  one of ``mcp_url``, ``truto_account_id`` or ``vapi_api_key``, plus an optional ``tenant``. Values may
  be ``${ENV}``; the record keeps the text as written, and ``${...}`` is expanded only when the job
  connects, so a secret kept in the environment never reaches the queue. A literal secret in the file
  is not copied either: the record names the file and the job reads it again.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.config import check_http_url
from agent.errors import ConfigError

SOURCES = ("truto", "file")
CREDENTIAL_FIELDS = ("mcp_url", "truto_account_id", "vapi_api_key")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_ENV_ONLY = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


@dataclass(frozen=True)
class Account:
    """One Vapi account of the fleet (see the module docstring); safe to store and to print."""

    name: str
    source: str
    tenant: str | None = None
    truto_account_id: str | None = None
    status: str = "active"
    is_sandbox: bool = False
    accounts_file: str | None = None
    credential: str | None = None  # file accounts: which field holds the credential

    @property
    def partition_key(self) -> str:
        """What identifies the Vapi org for "one job at a time" (the Truto account, else the name)."""
        return self.truto_account_id or f"{self.source}:{self.name}"

    @property
    def folder(self) -> str:
        """A file-system-safe folder name for the account's files (names are untrusted text)."""
        cleaned = _SAFE.sub("_", self.name).strip("._") or "account"
        return cleaned[:80]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the job's durable input)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Account:
        """Back from ``to_dict`` (unknown keys ignored)."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def load_accounts_file(path: str | Path) -> list[Account]:
    """The ``[[account]]`` tables of an accounts file; ``ConfigError`` naming the line's account on any problem."""
    file = Path(path).expanduser()
    data = _read_toml(file, f"--accounts {file}")
    tables = data.get("account")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"--accounts {file} has no [[account]] table", hint='add [[account]] with name = "..."')
    accounts: list[Account] = []
    seen: set[str] = set()
    for index, table in enumerate(tables, 1):
        where = f"account #{index} in {file}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} is not a table")
        name = table.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where} has no name", hint='add name = "..."')
        where = f"account {name!r} in {file}"
        if name in seen:
            raise ConfigError(f"{where} is defined twice", hint="account names must be unique")
        seen.add(name)
        unknown = set(table) - {"name", "tenant", *CREDENTIAL_FIELDS}
        if unknown:
            raise ConfigError(f"{where} has unknown key(s): {', '.join(sorted(unknown))}",
                              hint=f"known keys: name, tenant, {', '.join(CREDENTIAL_FIELDS)}")
        given = [f for f in CREDENTIAL_FIELDS if table.get(f) not in (None, "")]
        if len(given) != 1:
            raise ConfigError(f"{where} needs exactly one of {', '.join(CREDENTIAL_FIELDS)}",
                              hint='e.g. mcp_url = "${ACME_MCP_URL}", truto_account_id = "..." '
                                   'or vapi_api_key = "${ACME_VAPI_KEY}"')
        field = given[0]
        value = table[field]
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {field} must be a string")
        if field == "mcp_url" and "${" not in value:  # a literal URL is checked now, not when its job connects
            try:
                check_http_url(value)
            except ValueError as exc:
                raise ConfigError(f"{where}: mcp_url {exc}", hint="an http(s) MCP URL") from None
        tenant = table.get("tenant")
        accounts.append(Account(
            name=name, source="file", tenant=str(tenant) if tenant is not None else None,
            truto_account_id=value if field == "truto_account_id" else None,
            accounts_file=str(file.absolute()), credential=field,
        ))
    return accounts


def file_credential(account: Account, env: Mapping[str, str] | None = None) -> str:
    """The credential of a file account, read from its file again and with ``${ENV}`` expanded.

    Called when the job connects (so nothing secret travels with the account record).
    """
    from agent.mcp.servers import substitute_env

    if account.accounts_file is None or account.credential is None:
        raise ConfigError(f"account {account.name!r} has no accounts file")
    table = _table_of(account.accounts_file, account.name)
    raw = table.get(account.credential)
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"account {account.name!r} in {account.accounts_file} has no {account.credential}",
                          hint="the file changed since the run was enqueued")
    return str(substitute_env(raw, os.environ if env is None else env,
                              where=f"account {account.name!r} in {account.accounts_file}"))


def _table_of(path: str, name: str) -> dict[str, Any]:
    data = _read_toml(Path(path), f"the accounts file {path}")
    for table in data.get("account", []):
        if isinstance(table, dict) and table.get("name") == name:
            return table
    raise ConfigError(f"account {name!r} is no longer in {path}", hint="the file changed since the run was enqueued")


def env_only(value: str) -> bool:
    """True when a file value is exactly one ``${ENV}`` reference (the recommended way to keep secrets)."""
    return bool(_ENV_ONLY.match(value.strip()))


def filter_accounts(accounts: list[Account], *, tenant: str | None = None, status: str | None = None,
                    names: tuple[str, ...] = ()) -> list[Account]:
    """Accounts of one tenant / in one status / with one of these names (each filter optional)."""
    out = [a for a in accounts if (tenant is None or a.tenant == tenant) and (status is None or a.status == status)]
    if names:
        wanted = set(names)
        unknown = wanted - {a.name for a in out}
        if unknown:
            raise ConfigError(f"unknown account(s): {', '.join(sorted(unknown))}",
                              hint="`vapi-agent fleet accounts` lists them")
        out = [a for a in out if a.name in wanted]
    return out


def _read_toml(file: Path, what: str) -> dict[str, Any]:
    """The parsed TOML of ``file`` (at most 1 MiB read: ``/dev/zero`` is refused, not read forever)."""
    from agent.files import read_small_text

    text = read_small_text(file, what)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{what} nests too deeply to be an accounts file") from None
