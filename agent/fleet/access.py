"""Least privilege per job: mint one MCP server for one account and one job, delete it at the end.

``job_server`` mints a server whose methods are what the workflow needs, which requires the Truto API
token as a second factor, and which expires after the job's deadline plus a margin (Truto's expiry is
the backstop when a worker dies); it deletes the server when the block ends, whatever the outcome
(cancellation included). Leftovers of an earlier attempt of the same job (same run, workflow and
account: a crashed worker) are deleted before minting, so a recovered job re-mints cleanly.
``cleanup`` deletes every server our naming marks (``vapi-agent ...``), idempotently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent.errors import UpstreamError
from agent.fleet.accounts import Account
from agent.fleet.truto import MIN_LIFETIME, NAME_PREFIX, MintedServer, ServerInfo, TrutoAdminClient, server_name

log = logging.getLogger(__name__)

# What each workflow may do through its server: reads only for the reporting workflows.
WORKFLOW_METHODS: dict[str, list[str]] = {"qa-grade": ["read"], "report": ["read"]}
EXPIRY_MARGIN = 120.0


@dataclass
class JobServer:
    """The server of one job; ``deleted`` / ``delete_error`` say how its deletion went."""

    server: MintedServer
    deleted: bool = False
    delete_error: str | None = None


def methods_for(workflow: str) -> list[str]:
    """The Truto methods a workflow's server gets (unknown workflows: reads only)."""
    return list(WORKFLOW_METHODS.get(workflow, ["read"]))


def lifetime(deadline: float | None, margin: float = EXPIRY_MARGIN) -> float:
    """Seconds the server lives: the job's deadline plus a margin, at least Truto's 60 s (default 1 h)."""
    return max(MIN_LIFETIME + 1, (deadline if deadline is not None else 3600.0) + margin)


@asynccontextmanager
async def job_server(admin: TrutoAdminClient, account: Account, *, run_id: str, workflow: str,
                     deadline: float | None = None) -> AsyncIterator[JobServer]:
    """Mint the job's server (see the module docstring); yields it; deletes it on the way out."""
    if not account.truto_account_id:
        raise UpstreamError(f"account {account.name!r} has no Truto integrated account id")
    name = server_name(run_id, workflow, account.name)
    for old in await admin.list_servers(account.truto_account_id):
        if old.name == name:  # an earlier attempt of this very job died before deleting it
            await admin.delete_server(account.truto_account_id, old.id)
    expires_at = datetime.fromtimestamp(time.time() + lifetime(deadline), tz=UTC)
    server = await admin.mint(account.truto_account_id, name, methods=methods_for(workflow), expires_at=expires_at)
    held = JobServer(server)
    try:
        yield held
    finally:
        # shielded: a cancelled job still deletes its server before the cancellation goes on
        await asyncio.shield(_delete(admin, held))


async def _delete(admin: TrutoAdminClient, held: JobServer) -> None:
    try:
        await admin.delete_server(held.server.account_id, held.server.id)
        held.deleted = True
    except UpstreamError as exc:
        held.delete_error = f"could not delete MCP server {held.server.id}: {exc.line()} (it expires at " \
                            f"{held.server.expires_at})"
        log.warning("%s", held.delete_error)


@dataclass
class CleanupResult:
    """What ``fleet cleanup`` found and did."""

    found: list[ServerInfo] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict[str, object]:
        """The envelope's ``result``."""
        return {"dry_run": self.dry_run, "deleted": list(self.deleted),
                "servers": [{"id": s.id, "account_id": s.account_id, "name": s.name, "expires_at": s.expires_at}
                            for s in self.found]}


async def cleanup(admin: TrutoAdminClient, accounts: Sequence[Account], *, dry_run: bool = False,
                  run_id: str | None = None, concurrency: int = 8) -> CleanupResult:
    """Delete the servers our naming marks on these accounts (only one run's with ``run_id``)."""
    prefix = NAME_PREFIX + (f"{run_id} " if run_id else "")
    result = CleanupResult(dry_run=dry_run)
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(account: Account) -> None:
        if not account.truto_account_id:
            return
        async with limit:
            ours = [s for s in await admin.list_servers(account.truto_account_id) if s.name.startswith(prefix)]
            result.found.extend(ours)
            for server in ours:
                if not dry_run and await admin.delete_server(server.account_id, server.id):
                    result.deleted.append(server.id)

    async with asyncio.TaskGroup() as group:
        for account in accounts:
            group.create_task(one(account))
    result.found.sort(key=lambda s: (s.account_id, s.created_at or "", s.id))
    return result
