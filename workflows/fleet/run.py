"""``fleet qa-grade|report``, ``fleet status``, ``fleet resume`` and ``worker``: the fleet's entry points.

Each one is a plain ``async`` function over ``workflows.fleet.durable``: resolve the accounts, enqueue
one durable job per account, wait (in-process: this process runs them, ``--concurrency`` at a time;
with ``--queue-url``: the workers do) and build the fleet result, with the summary files under
``--out``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.config import Settings
from agent.errors import ConfigError
from workflows.fleet.durable import RunInfo, engine, job_args, new_run_id, read_run
from workflows.fleet.job import WORKFLOWS, JobEnvironment, check_params
from workflows.fleet.render import write_files
from workflows.fleet.result import FleetResult

DEFAULT_CONCURRENCY = 8  # accounts at a time in-process (settings.fleet_concurrency overrides)

Notice = Callable[[str], None]


@dataclass
class FleetParams:
    """One fleet run: the workflow and its options, where the accounts come from, how to run."""

    workflow: str
    params: dict[str, Any]
    source: dict[str, Any] = field(default_factory=dict)  # accounts_file, truto_api, sandbox_accounts
    tenant: str | None = None
    status: str | None = None
    names: tuple[str, ...] = ()
    concurrency: int = DEFAULT_CONCURRENCY
    out: str | None = None
    detach: bool = False

    def validate(self) -> None:
        """Bad values are exit 2 before anything is enqueued."""
        if self.workflow not in WORKFLOWS:
            raise ConfigError(f"unknown fleet workflow {self.workflow!r}", hint=f"one of {', '.join(WORKFLOWS)}")
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be at least 1 (got {self.concurrency})")
        check_params(self.workflow, self.params)


def _store() -> Any:
    from agent.store import RunStore

    return RunStore()


def _progress(notice: Notice) -> Callable[[RunInfo], None]:
    reported: set[str] = set()

    def show(info: RunInfo) -> None:
        for job in info.jobs:
            if job.workflow_id in reported or not isinstance(job.output, dict):
                continue
            reported.add(job.workflow_id)
            entry = job.output
            notice(f"  {entry['account']}: {entry['status']} ({len(reported)}/{len(info.jobs)})")

    return show


async def run_fleet(settings: Settings, fleet: FleetParams, *, notice: Notice, sandbox: Any = None) -> FleetResult:
    """Run ``fleet.workflow`` on every account (see the module docstring)."""
    from agent.runtime import fleet_source

    fleet.validate()
    queued = bool(settings.queue_url)
    source = fleet_source(settings, accounts_file=fleet.source.get("accounts_file"),
                          truto_api=fleet.source.get("truto_api"),
                          sandbox_accounts=fleet.source.get("sandbox_accounts"), sandbox=sandbox, notice=notice)
    if queued and source.kind == "sandbox":
        raise ConfigError("--queue-url needs accounts the workers can reach: the embedded sandbox lives in this "
                          "process", hint="serve one with `vapi-agent sandbox serve --accounts N` and pass --truto-api")
    if fleet.detach and not queued:
        raise ConfigError("--detach needs --queue-url (workers run the jobs)")
    accounts = await source.accounts(tenant=fleet.tenant, status=fleet.status, names=fleet.names)
    if not accounts:
        raise ConfigError("no account matches", hint="`vapi-agent fleet accounts` lists them")
    env = JobEnvironment(settings, source, store=None if queued else _store(), notice=notice)
    run_id = new_run_id()
    out_dir = str(_absolute(fleet.out)) if fleet.out else None
    async with engine(settings, None if queued else env, runs_jobs=not queued, role="run",
                      concurrency=None if queued else fleet.concurrency, notice=notice) as durable:
        await durable.enqueue(run_id, fleet.workflow, fleet.params, accounts, source.ref(), out_dir, settings.deadline)
        where = "the workers" if queued else f"{fleet.concurrency} at a time"
        notice(f"fleet run {run_id}: {fleet.workflow} on {len(accounts)} accounts ({where})")
        if fleet.detach:
            return FleetResult(run_id, fleet.workflow, [], pending=[a.name for a in accounts])
        info = await durable.wait(run_id, on_change=_progress(notice))
    return _finish(info, out_dir)


def _absolute(path: str) -> Any:
    from pathlib import Path

    return Path(path).expanduser().absolute()


def _finish(info: RunInfo, out_dir: str | None) -> FleetResult:
    result = info.result()
    if out_dir and not result.pending:
        write_files(result, out_dir)
    return result


async def fleet_status(settings: Settings, run_id: str, *, watch: bool, interval: float, notice: Notice) -> FleetResult:
    """The run as it stands (from any machine); ``watch``: until every job has ended."""
    info = await asyncio.to_thread(read_run, settings, run_id)
    show = _progress(notice)
    while watch and info.result().pending:
        show(info)
        await asyncio.sleep(interval)
        info = await asyncio.to_thread(read_run, settings, run_id)
    return info.result()


async def fleet_resume(settings: Settings, run_id: str, *, notice: Notice, sandbox: Any = None) -> FleetResult:
    """Finish a run whose process or workers stopped: recover its jobs, wait, write the summary."""
    from agent.runtime import fleet_source

    queued = bool(settings.queue_url)
    first = await asyncio.to_thread(read_run, settings, run_id)
    env = None
    if not queued:
        args = job_args(first.jobs[0]) if first.jobs else None
        ref = args[4] if args else {}
        source = fleet_source(settings, accounts_file=ref.get("accounts_file"),
                              truto_api=None if ref.get("kind") == "sandbox" else ref.get("truto_api"),
                              sandbox_accounts=ref.get("sandbox_accounts"), sandbox=sandbox, notice=notice)
        env = JobEnvironment(settings, source, store=_store(), notice=notice)
    async with engine(settings, env, runs_jobs=not queued, role="resume", notice=notice) as durable:
        resumed = await durable.resume(run_id)
        info = await durable.info(run_id)
        notice(f"fleet run {run_id}: {len(info.result().pending)} job(s) left"
               + (f", {len(resumed)} cancelled job(s) resumed" if resumed else ""))
        info = await durable.wait(run_id, on_change=_progress(notice))
    return _finish(info, first.out_dir)


async def worker(settings: Settings, *, concurrency: int | None, notice: Notice,
                 stop: asyncio.Event | None = None) -> None:
    """Join the fleet queue and run jobs until stopped (Ctrl-C, SIGTERM); recovers dead workers' jobs."""
    from agent.fleet.source import FleetSource
    from agent.fleet.truto import DEFAULT_TRUTO_API

    if concurrency is not None and concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1 (got {concurrency})")
    source = FleetSource("truto", settings.truto_api or DEFAULT_TRUTO_API, token=settings.truto_api_token)
    env = JobEnvironment(settings, source, store=_store(), notice=notice)
    stop = stop or asyncio.Event()
    _stop_on_sigterm(stop)
    async with engine(settings, env, runs_jobs=True, role="worker", concurrency=concurrency,
                      notice=notice) as durable:
        notice(f"worker {durable.executor_id} joined the fleet queue" +
               (f" ({concurrency} jobs at a time)" if concurrency else ""))
        while not stop.is_set():
            await durable.sweep()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=2.0)
        notice("worker stopping")


def _stop_on_sigterm(stop: asyncio.Event) -> None:
    import signal

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread (tests)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
