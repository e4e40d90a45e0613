"""Command bodies of `calls list` and `calls recording`."""

from __future__ import annotations

from collections.abc import Callable

from agent.display import ID, NUMBER, TEXT, WHOLE, Column, byte_size, console, fit_table
from agent.errors import ConfigError, UpstreamError
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


CALL_COLUMNS = (
    Column("id", ID, keep=100),
    Column("status", WHOLE, keep=50),
    Column("ended reason", TEXT, keep=60, min_width=12),
    Column("started (UTC)", WHOLE, keep=80),
    Column("cost", NUMBER, keep=70),
)


def calls_list_render(outcome: Outcome, ctx: CommandContext) -> None:
    """A table of calls that fits the terminal (ids whole, or as prefixes `calls recording` accepts)."""
    out = console()
    rows = [[call["id"], call["status"], call["endedReason"], _utc_seconds(call["startedAt"]),
             "" if call["cost"] is None else f"${call['cost']:,.4f}"] for call in outcome.result["calls"]]
    out.print(fit_table(CALL_COLUMNS, rows, out.width, title=f"calls of {outcome.result['assistant']['name']}"))


def _utc_seconds(iso: str | None) -> str:
    """``2026-12-05T19:03:12.345Z`` -> ``2026-12-05 19:03:12`` (the column header says UTC)."""
    return "" if not iso else str(iso).replace("T", " ")[:19]


def calls_recording_body(call_id: str, kind: str, out: str | None) -> Body:
    """``calls recording ID [--kind mono] [--out FILE|DIR]``: download through the 302, atomically.

    ``ID`` may be a unique prefix; ``--out`` a folder (the default name goes inside) or a file
    (replaced atomically). Where it goes is checked before any request is sent.
    """

    async def body(ctx: CommandContext) -> Outcome:
        from agent.files import is_safe_name, output_file
        from agent.media import download_recording
        from agent.runtime import open_runtime

        kinds = ("mono", "stereo", "customer", "assistant", "video")
        if kind not in kinds:
            raise ConfigError(f"--kind {kind!r} is not one of {', '.join(kinds)}")
        extension = "mp4" if kind == "video" else "wav"
        if out is None and not is_safe_name(call_id):
            raise ConfigError(f"the call id {call_id[:80]!r} cannot name a file", hint="give the file with --out FILE")
        output_file(out or "./", f"{call_id}-{kind}.{extension}", option="--out")  # fail before any request
        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice, store=None) as rt:
            full_id = str((await rt.vapi.resolve_id("call", call_id))["id"])
            if not is_safe_name(full_id):
                raise UpstreamError(f"the server's call id {full_id[:80]!r} cannot be part of a file name",
                                    hint="give --out FILE")
            dest = output_file(out or "./", f"{full_id}-{kind}.{extension}", option="--out")
            progress = _byte_progress(rt.show_progress)
            saved = await download_recording(lambda: rt.vapi.recording_link(full_id, kind), dest, rt.media_http,
                                             max_bytes=ctx.settings.max_download_bytes, progress=progress)
        return Outcome(result={**saved.to_dict(), "call_id": full_id})

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
    print(f"saved {r['path']} ({byte_size(r['bytes'])}{duration}, sha256 {r['sha256'][:16]}…)")
