"""Where a fleet's accounts come from, and how one job reaches its account.

A ``FleetSource`` is Truto's admin API (``TRUTO_API_TOKEN`` at ``--truto-api``), an accounts file, or
the embedded sandbox fleet (a simulated Truto with several accounts, in-process). ``ref()`` is what
a durable job stores to rebuild the source on any worker: kinds, URLs and paths, never the token
(a worker reads ``TRUTO_API_TOKEN`` from its own environment). ``agent.runtime.fleet_source`` picks
the source; ``connect_settings`` turns one account (and its minted server) into the ``Settings`` of
an ordinary single-account run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from agent.config import Settings
from agent.errors import ConfigError
from agent.fleet.accounts import Account, file_credential, filter_accounts, load_accounts_file
from agent.fleet.truto import MintedServer, TrutoAdminClient

KINDS = ("truto", "file", "sandbox")


@dataclass
class FleetSource:
    """One source of accounts (see the module docstring); ``token`` and ``sandbox`` live in memory only."""

    kind: str
    truto_api: str
    accounts_file: str | None = None
    sandbox_accounts: int | None = None
    token: str | None = field(default=None, repr=False)
    sandbox: Any = field(default=None, repr=False)

    def ref(self) -> dict[str, Any]:
        """The durable description (no secret): enough for a worker to rebuild the source."""
        return {"kind": self.kind, "truto_api": self.truto_api, "accounts_file": self.accounts_file,
                "sandbox_accounts": self.sandbox_accounts}

    def admin(self) -> TrutoAdminClient:
        """A client of the admin API (in-process for the embedded sandbox)."""
        transport = None
        if self.sandbox is not None:
            import httpx2

            transport = httpx2.ASGITransport(app=self.sandbox.app)
        return TrutoAdminClient(self.truto_api, self.token, transport=transport)

    @property
    def mints(self) -> bool:
        """True when accounts are reached through per-job minted servers (Truto and the sandbox)."""
        return self.kind in ("truto", "sandbox")

    async def accounts(self, *, tenant: str | None = None, status: str | None = None,
                       names: tuple[str, ...] = ()) -> list[Account]:
        """The fleet's accounts, filtered (Truto filters server-side as well)."""
        if self.kind == "file":
            assert self.accounts_file is not None
            found = load_accounts_file(self.accounts_file)
        else:
            async with self.admin() as admin:
                found = await admin.list_accounts(status=status, tenant=tenant)
        return filter_accounts(found, tenant=tenant, status=status, names=names)


def needs_minting(account: Account) -> bool:
    """True when the job mints a server for this account (Truto accounts, and file ones given by Truto id)."""
    return account.source == "truto" or account.credential == "truto_account_id"


def connect_settings(settings: Settings, account: Account, server: MintedServer | None, *,
                     truto_token: str | None) -> Settings:
    """The settings of one account's run: its MCP server (minted, or from the file) and nothing else."""
    base = replace(settings, sandbox=False, mcp_config=None, mcp_url=None, mcp_kind=None, server=None)
    if server is not None:
        return replace(base, mcp_url=server.url, mcp_kind="truto", truto_api_token=truto_token, vapi_api_key=None)
    if account.credential == "mcp_url":
        return replace(base, mcp_url=file_credential(account), vapi_api_key=None)
    if account.credential == "vapi_api_key":
        return replace(base, vapi_api_key=file_credential(account), truto_api_token=None)
    raise ConfigError(f"account {account.name!r} has no way to connect", hint="give it mcp_url, truto_account_id "
                      "or vapi_api_key")
