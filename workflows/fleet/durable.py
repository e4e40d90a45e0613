"""Fleet runs on DBOS Transact: one durable workflow per (fleet run, account) on a partitioned queue.

The queue ``fleet`` is partitioned by the account's org (``partition_concurrency=1``: at most one job
per Vapi org at a time, across every worker) and capped per worker (``worker_concurrency``: DBOS keeps
it in the database, so it is fleet-wide: the last ``--concurrency`` registered wins). Each job is one
workflow with one step, ``run_account_job``; qa-grade's own per-call checkpoints make a re-run cheap
(we chose those over per-call DBOS steps: one mechanism, not two). Workflow inputs and outputs are
stored (pickled) in the system database, so they hold names, ids, options and summaries only: the
Truto token comes from each process's environment, minted URLs live in memory and are minted again
on recovery.

System database: SQLite under the data dir (everything in-process, the default), or PostgreSQL with
``--queue-url`` (the command enqueues and waits; ``vapi-agent worker`` processes run the jobs). Every
process has a unique executor id and a liveness lock (``workflows.fleet.recovery``); a worker's
sweeper, ``fleet resume`` and an in-process run recover the jobs of dead executors.

DBOS is imported with this module only (``vapi-agent --help`` and non-fleet commands never load it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from dbos import DBOS, DBOSClient, SetEnqueueOptions, SetWorkflowID

from agent.config import Settings
from agent.errors import ConfigError
from agent.fleet.accounts import Account
from agent.fleet.source import FleetSource
from agent.paths import data_dir
from workflows.fleet.job import JobEnvironment, run_account_job
from workflows.fleet.recovery import FileLiveness, PostgresLiveness, recover_executors
from workflows.fleet.result import FleetResult

log = logging.getLogger(__name__)

APP_NAME = "vapi-agent-fleet"
QUEUE = "fleet"
# Pinned: DBOS's default version is a hash of the workflow code, and a job enqueued by one version is
# run (and recovered) only by processes of that version. Bump when the job's inputs change shape.
APP_VERSION = "1"
TERMINAL = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")
SWEEP_EVERY = 2.0

# The jobs of this process run with this environment (set by ``Engine``; never stored).
_ENVIRONMENT: dict[str, JobEnvironment] = {}


def system_database_url(settings: Settings) -> str:
    """``--queue-url`` (PostgreSQL), else the SQLite file under the data dir."""
    url = settings.queue_url
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("--queue-url must be a postgresql:// URL", hint="e.g. postgresql://user@host:5432/fleet")
        return url
    return f"sqlite:///{data_dir() / 'fleet.sqlite'}"


def new_run_id() -> str:
    """A readable, unique fleet run id: ``fleet-20260101-083000-a1b2c3``."""
    return time.strftime("fleet-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


def executor_id(role: str) -> str:
    """Unique per process (two live processes must never share one: DBOS would re-run the other's jobs)."""
    return f"{role}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def _environment(source_ref: dict[str, Any]) -> JobEnvironment:
    env = _ENVIRONMENT.get("current")
    if env is None:
        raise RuntimeError("a fleet job ran in a process without a fleet environment")
    if source_ref.get("kind") == env.source.kind and source_ref.get("truto_api") == env.source.truto_api and \
            source_ref.get("accounts_file") == env.source.accounts_file:
        return env
    if source_ref.get("kind") == "sandbox":
        raise ConfigError("this job belongs to a run on an embedded sandbox of another process",
                          hint="run it again with `fleet resume` from the process's machine")
    source = FleetSource(source_ref["kind"], source_ref["truto_api"], accounts_file=source_ref.get("accounts_file"),
                         token=env.settings.truto_api_token)
    return JobEnvironment(env.settings, source, env.store, env.notice)


@DBOS.step()
async def account_step(run_id: str, workflow: str, params: dict[str, Any], account: dict[str, Any],
                       source_ref: dict[str, Any], out_dir: str | None, deadline: float | None) -> dict[str, Any]:
    """The job's one step: the whole account job (its output, a summary, is checkpointed)."""
    return await run_account_job(_environment(source_ref), Account.from_dict(account), workflow, params,
                                 run_id=run_id, out_dir=out_dir, deadline=deadline)


@DBOS.workflow()
async def fleet_account(run_id: str, workflow: str, params: dict[str, Any], account: dict[str, Any],
                        source_ref: dict[str, Any], out_dir: str | None, deadline: float | None) -> dict[str, Any]:
    """One durable job: ``workflow`` on one account of fleet run ``run_id``."""
    return await account_step(run_id, workflow, params, account, source_ref, out_dir, deadline)


def job_id(run_id: str, account: Account) -> str:
    """The job's workflow id: ``<run id>:<account name>`` (so a run's jobs share a prefix)."""
    return f"{run_id}:{account.name}"


@dataclass
class RunInfo:
    """A fleet run read back from the system database."""

    run_id: str
    workflow: str
    out_dir: str | None
    jobs: list[Any] = field(default_factory=list)  # dbos WorkflowStatus

    def result(self) -> FleetResult:
        """The fleet result so far: finished accounts, and the names of the pending ones."""
        done, pending = [], []
        for job in self.jobs:
            args = job_args(job)
            account = Account.from_dict(args[3]) if args else None
            name = account.name if account else job.workflow_id.split(":", 1)[-1]
            if job.status == "SUCCESS" and isinstance(job.output, dict):
                done.append(job.output)
            elif job.status in TERMINAL:
                message = f"the job ended {job.status}" + (f": {job.error}" if job.error else "")
                done.append({"account": name, "tenant": account.tenant if account else None, "status": "error",
                             "summary": {}, "error": {"code": job.status.lower(), "message": message}, "notes": [],
                             "files": [], "server": None})
            else:
                pending.append(name)
        return FleetResult(self.run_id, self.workflow, done, pending=pending)


def job_args(job: Any) -> tuple[Any, ...] | None:
    """A job's stored inputs: (run_id, workflow, params, account, source_ref, out_dir, deadline)."""
    inputs = job.input
    if not inputs:
        return None
    args = inputs.get("args") if isinstance(inputs, dict) else getattr(inputs, "args", None)
    return tuple(args) if args is not None else None


def _run_info(run_id: str, jobs: list[Any]) -> RunInfo:
    if not jobs:
        raise ConfigError(f"no fleet run {run_id!r} in the queue", hint="check the run id (and --queue-url)")
    args = job_args(jobs[0]) or (run_id, "qa-grade", {}, {}, {}, None, None)
    return RunInfo(run_id, args[1], args[5], jobs)


class Engine:
    """DBOS launched in this process for fleet work (see the module docstring).

    ``runs_jobs``: this process executes jobs (in-process SQLite runs, workers); otherwise it only
    enqueues, watches and recovers (``--queue-url`` commands).
    """

    def __init__(self, settings: Settings, env: JobEnvironment | None, *, runs_jobs: bool, role: str,
                 concurrency: int | None = None, notice: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.url = system_database_url(settings)
        self.postgres = not self.url.startswith("sqlite")
        self.env = env
        self.runs_jobs = runs_jobs
        self.concurrency = concurrency
        self.executor_id = executor_id(role)
        self.notice = notice or (lambda message: None)
        self.liveness: FileLiveness | PostgresLiveness = (
            PostgresLiveness(self.url) if self.postgres else FileLiveness(data_dir() / "fleet-executors"))

    async def start(self) -> None:
        """Create the database and queue if needed, launch DBOS, hold the liveness lock."""
        await asyncio.to_thread(self._prepare)
        if self.env is not None:
            _ENVIRONMENT["current"] = self.env
        DBOS(config={
            "name": APP_NAME, "system_database_url": self.url, "application_version": APP_VERSION,
            "executor_id": self.executor_id, "log_level": "WARNING",
            "notification_listener_polling_interval_sec": 0.05,
        })
        DBOS.listen_queues([QUEUE] if self.runs_jobs else [])
        try:
            DBOS.launch()  # on this event loop: the async jobs run here
        except Exception as exc:
            DBOS.destroy(workflow_completion_timeout_sec=0)
            raise ConfigError(f"cannot open the fleet queue: {type(exc).__name__}: {exc}",
                              hint="check --queue-url and that PostgreSQL is reachable") from None
        await asyncio.to_thread(self.liveness.hold, self.executor_id)

    def _prepare(self) -> None:
        try:
            DBOS.migrate(self.url)
            client = DBOSClient(system_database_url=self.url, application_name=APP_NAME)
        except Exception as exc:
            raise ConfigError(f"cannot open the fleet queue: {type(exc).__name__}",
                              hint="check --queue-url and that PostgreSQL is reachable") from None
        try:
            # Registered before launch, so the queue runner sees it at once (else about a second later).
            # Without a --concurrency, an existing queue keeps its settings (workers share them).
            options: dict[str, Any] = {"partition_concurrency": 1, "polling_interval_sec": 0.1}
            if self.concurrency is not None:
                options["worker_concurrency"] = self.concurrency
            client.register_queue(QUEUE, on_conflict="always_update" if self.concurrency else "never_update",
                                  **options)
        finally:
            client.destroy()

    async def stop(self) -> None:
        """Stop DBOS (jobs still running stay PENDING, for a later recovery) and drop the liveness lock."""
        from concurrent.futures import ThreadPoolExecutor

        DBOS.destroy(workflow_completion_timeout_sec=0)
        # DBOS made its thread pool this loop's default executor and has just shut it down: give the
        # loop a working one back (asyncio.to_thread after a fleet run must still work).
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())
        self.liveness.release()
        _ENVIRONMENT.pop("current", None)

    # ------------------------------------------------------------ runs
    async def enqueue(self, run_id: str, workflow: str, params: dict[str, Any], accounts: list[Account],
                      source_ref: dict[str, Any], out_dir: str | None, deadline: float | None) -> None:
        """One job per account, partitioned by the account's org."""
        for account in accounts:
            with SetWorkflowID(job_id(run_id, account)), \
                    SetEnqueueOptions(queue_partition_key=account.partition_key, app_version=APP_VERSION):
                await DBOS.enqueue_workflow_async(QUEUE, fleet_account, run_id, workflow, params, account.to_dict(),
                                                  source_ref, out_dir, deadline)

    async def info(self, run_id: str) -> RunInfo:
        """The run's jobs as the system database has them now."""
        jobs = await DBOS.list_workflows_async(workflow_id_prefix=f"{run_id}:", load_input=True, load_output=True)
        return _run_info(run_id, list(jobs))

    async def wait(self, run_id: str, *, poll: float = 0.2,
                   on_change: Callable[[RunInfo], None] | None = None) -> RunInfo:
        """Until every job of the run has ended; recovers jobs of dead executors on the way."""
        seen = -1
        last_sweep = 0.0
        while True:
            info = await self.info(run_id)
            finished = sum(1 for job in info.jobs if job.status in TERMINAL)
            if finished != seen:
                seen = finished
                if on_change is not None:
                    on_change(info)
            if finished == len(info.jobs):
                return info
            if time.monotonic() - last_sweep >= SWEEP_EVERY:
                last_sweep = time.monotonic()
                await self.sweep()
            await asyncio.sleep(poll)

    async def sweep(self) -> list[str]:
        """Recover the PENDING jobs of executors that are no longer alive; the job ids recovered."""
        pending = await DBOS.list_workflows_async(status="PENDING", queue_name=QUEUE, load_input=False,
                                                  load_output=False)
        others = {job.executor_id for job in pending if job.executor_id and job.executor_id != self.executor_id}
        if not others:
            return []
        dead = await asyncio.to_thread(self.liveness.dead, others)
        if not dead:
            return []
        recovered = await asyncio.to_thread(recover_executors, dead)
        if recovered:
            self.notice(f"recovered {len(recovered)} job(s) of {len(dead)} stopped process(es)")
        return recovered

    async def resume(self, run_id: str) -> list[str]:
        """Put the run's unfinished jobs back to work: dead executors' jobs, and cancelled ones."""
        await self.sweep()
        info = await self.info(run_id)
        cancelled = [job.workflow_id for job in info.jobs if job.status == "CANCELLED"]
        if cancelled:
            await DBOS.resume_workflows_async(cancelled, queue_name=QUEUE)
        return cancelled


@asynccontextmanager
async def engine(settings: Settings, env: JobEnvironment | None, *, runs_jobs: bool, role: str,
                 concurrency: int | None = None, notice: Callable[[str], None] | None = None) -> AsyncIterator[Engine]:
    """A started ``Engine``, stopped on exit."""
    started = Engine(settings, env, runs_jobs=runs_jobs, role=role, concurrency=concurrency, notice=notice)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


def read_run(settings: Settings, run_id: str) -> RunInfo:
    """A run's jobs through a plain client (no launch: ``fleet status`` from any machine)."""
    url = system_database_url(settings)
    try:
        client = DBOSClient(system_database_url=url, application_name=APP_NAME)
    except Exception as exc:
        raise ConfigError(f"cannot open the fleet queue: {type(exc).__name__}", hint="check --queue-url") from None
    try:
        jobs = client.list_workflows(workflow_id_prefix=f"{run_id}:", load_input=True, load_output=True)
    except Exception as exc:
        raise ConfigError(f"cannot read the fleet queue: {type(exc).__name__}",
                          hint="check --queue-url (no fleet run has used this database yet?)") from None
    finally:
        client.destroy()
    return _run_info(run_id, list(jobs))
