"""Command bodies of `calls list` and `calls recording`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.errors import ConfigError
from agent.terminal import printable
from cli.runner import Body, CommandContext, Outcome


def calls_list_body(assistant: str, since: str | None, limit: int) -> Body:
    """``calls list --assistant X [--since 7d]``: the newest calls of an assistant."""

    async def body(ctx: CommandContext) -> Outcome:
        from datetime import UTC, datetime

        from agent.runtime import open_runtime
        from agent.timeparse import parse_duration

        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice, store=None) as rt:
            found = await rt.vapi.resolve_assistant(assistant)
            since_dt = datetime.now(tz=UTC) - parse_duration(since, option="--since") if since else None
            calls = []
            async for call in rt.vapi.iter_calls(assistant_id=found["id"], created_at_ge=since_dt):
                calls.append({k: call.get(k) for k in ("id", "status", "endedReason", "startedAt", "endedAt", "cost")})
                if len(calls) >= limit:
                    break
        return Outcome(result={"assistant": {"id": found["id"], "name": found.get("name")}, "calls": calls})

    return body


def calls_list_render(outcome: Outcome, ctx: CommandContext) -> None:
    """A table of calls."""
    from rich.table import Table

    from cli.console import terminal_console

    table = Table(title=f"calls of {outcome.result['assistant']['name']}")
    for column in ("id", "status", "ended", "started", "cost"):
        table.add_column(column)
    for call in outcome.result["calls"]:
        table.add_row(call["id"], str(call["status"]), str(call["endedReason"] or ""), str(call["startedAt"] or ""),
                      "" if call["cost"] is None else f"${call['cost']:.4f}")
    terminal_console().print(table)


def calls_recording_body(call_id: str, kind: str, out: str | None) -> Body:
    """``calls recording ID [--kind mono] [--out FILE]``: download through the 302, atomically."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.media import download_recording
        from agent.runtime import open_runtime

        kinds = ("mono", "stereo", "customer", "assistant", "video")
        if kind not in kinds:
            raise ConfigError(f"--kind {kind!r} is not one of {', '.join(kinds)}")
        from agent.files import is_safe_name

        if out is None and not is_safe_name(call_id):
            raise ConfigError(f"the call id {call_id!r} cannot name a file", hint="give the file with --out FILE")
        dest = Path(out or f"{call_id}-{kind}.{'mp4' if kind == 'video' else 'wav'}")
        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice, store=None) as rt:
            progress = _byte_progress(rt.show_progress)
            saved = await download_recording(lambda: rt.vapi.recording_link(call_id, kind), dest, rt.media_http,
                                             max_bytes=ctx.settings.max_download_bytes, progress=progress)
        return Outcome(result=saved.to_dict())

    return body


def _byte_progress(show: bool) -> Callable[[int, int | None], None] | None:
    if not show:
        return None
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), transient=True)
    task = bar.add_task("downloading", total=None)
    bar.start()

    def update(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)
        if total is not None and done >= total:
            bar.stop()

    return update


def recording_render(outcome: Outcome, ctx: CommandContext) -> None:
    """One line: where it went, size, duration, sha256."""
    r = outcome.result
    duration = f", {r['duration_seconds']:.1f} s" if r.get("duration_seconds") else ""
    print(printable(f"saved {r['path']} ({r['bytes']} bytes{duration}, sha256 {r['sha256'][:16]}…)"))
