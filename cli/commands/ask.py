"""Command bodies of the agent-level commands (ask, tools, calls, doctor, logs).

Each returns an async ``body(ctx) -> Outcome`` for ``agent.runner.run_command`` and, where the
terminal needs more than the envelope, a ``render(outcome, ctx)``. The CLI only parses flags.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.runner import CommandContext, Outcome

Body = Callable[[CommandContext], Awaitable[Outcome]]


# ---------------------------------------------------------------- ask
@dataclass
class AskOptions:
    """Flags of ``vapi-agent ask``."""

    prompt: str | None
    max_turns: int = 20
    max_tool_calls: int = 60
    max_cost: float | None = None
    price: str | None = None


def read_prompt(prompt: str | None) -> str:
    """The prompt argument, or stdin when it is ``-`` or absent and stdin is not a terminal."""
    if prompt not in (None, "-"):
        return str(prompt)
    if prompt is None and sys.stdin.isatty():
        raise ConfigError("ask needs a prompt", hint='vapi-agent ask "list my assistants" (or pipe it on stdin)')
    text = sys.stdin.read().strip()
    if not text:
        raise ConfigError("the prompt read from stdin is empty")
    return text


def parse_price(text: str | None) -> tuple[float, float] | None:
    """``--price IN,OUT`` in USD per 1M tokens."""
    if text is None:
        return None
    try:
        a, b = (float(p) for p in text.split(","))
    except ValueError:
        raise ConfigError(f"--price {text!r} is not IN,OUT (USD per 1M input and output tokens)") from None
    return a, b


def ask_body(options: AskOptions, *, model: Any = None, sandbox: Any = None) -> Body:
    """``vapi-agent ask``: one prompt through the tool-calling loop; the answer streams on a terminal."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.loop import AgentEvent, Limits, run_agent
        from agent.model import require_model
        from agent.runtime import open_runtime

        prompt = read_prompt(options.prompt)
        if model is None:
            require_model(ctx.settings)
        price = parse_price(options.price)
        limits = Limits(max_turns=options.max_turns, max_tool_calls=options.max_tool_calls,
                        max_cost=options.max_cost, deadline=ctx.settings.deadline)
        streaming = not ctx.settings.json and sys.stdout.isatty()

        def show(event: AgentEvent) -> None:
            if event.kind == "token" and streaming:
                print(event.data["text"], end="", flush=True)
            elif event.kind == "tool_start" and not ctx.settings.json:
                args = json.dumps(event.data["arguments"], ensure_ascii=False)
                ctx.notice(f"→ {event.data['name']} {args[:120]}")
            elif event.kind == "tool_end" and not ctx.settings.json and not event.data["ok"]:
                ctx.notice(f"  {event.data['name']} failed")

        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice, model=model,
                                sandbox=sandbox) as rt:
            rt.price = price or rt.price  # the runtime priced the model from the table; --price overrides
            if options.max_cost is not None and rt.price is None:
                raise ConfigError(f"no known price for model {rt.model.name if rt.model else '?'}, so --max-cost "
                                  "cannot be enforced", hint="give --price IN,OUT (USD per 1M tokens)")
            if rt.price is None:
                rt.usage.cost_usd = None
            from agent.runlog import CURRENT_RUN
            from workflows.tools import workflow_tools

            # The runner records this run (outcome, usage, tool calls); the loop adds the conversation.
            result = await run_agent(rt, prompt, limits=limits, on_event=show, run_log=CURRENT_RUN.get(),
                                     local_tools=workflow_tools(rt))
            if streaming and result.answer:
                print(flush=True)
            outcome = Outcome(result=result, status="ok")
            if result.stop_error is not None:
                outcome.errors = [result.stop_error.to_dict()]
                outcome.exit_code = result.stop_error.exit_code
                outcome.status = "partial" if result.stopped_by != "approval" else "error"
            return outcome

    return body


def ask_render(outcome: Outcome, ctx: CommandContext) -> None:
    """Print the answer when it was not streamed (stdout not a terminal)."""
    if not sys.stdout.isatty() and outcome.result is not None:
        print(outcome.result.answer)
    for error in outcome.errors:
        ctx.notice(f"stopped: {error['message']}")


# ---------------------------------------------------------------- tools
def tools_list_body() -> Body:
    """``tools list``: the catalogue with each tool's access class."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.runtime import open_runtime

        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice, store=None) as rt:
            tools = [{"name": t.name, "server": t.server, "access": rt.hub.access(t.name).value,
                      "description": t.description.split("\n")[0][:200]} for t in rt.hub.catalogue]
        return Outcome(result={"tools": tools, "count": len(tools)})

    return body


def tools_list_render(outcome: Outcome, ctx: CommandContext) -> None:
    """A table of tools."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{outcome.result['count']} tools")
    for column in ("name", "access", "server", "description"):
        table.add_column(column, overflow="fold")
    for tool in outcome.result["tools"]:
        table.add_row(tool["name"], tool["access"], tool["server"], tool["description"][:80])
    Console().print(table)


def tools_call_body(name: str, args_json: str) -> Body:
    """``tools call NAME --args JSON``: one gated call; prints the decoded result."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.redact import redact_data
        from agent.runtime import open_runtime

        try:
            args = json.loads(args_json)
        except ValueError as exc:
            raise ConfigError(f"--args is not valid JSON: {exc}") from None
        if not isinstance(args, dict):
            raise ConfigError("--args must be a JSON object")
        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice, store=None) as rt:
            output = await rt.hub.call(rt.hub.tool(name).name, args)
        output.raise_for_error()
        result = {"tool": name, "data": redact_data(output.data) if output.data is not None else None,
                  "text": None if output.data is not None else redact_data(output.text),
                  "media": [m.placeholder() for m in output.media]}
        return Outcome(result=result)

    return body


def print_json_result(outcome: Outcome, ctx: CommandContext) -> None:
    """Pretty JSON of the result on stdout."""
    print(json.dumps(outcome.result, indent=2, ensure_ascii=False, default=str))


# ---------------------------------------------------------------- calls
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
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"calls of {outcome.result['assistant']['name']}")
    for column in ("id", "status", "ended", "started", "cost"):
        table.add_column(column)
    for call in outcome.result["calls"]:
        table.add_row(call["id"], str(call["status"]), str(call["endedReason"] or ""), str(call["startedAt"] or ""),
                      "" if call["cost"] is None else f"${call['cost']:.4f}")
    Console().print(table)


def calls_recording_body(call_id: str, kind: str, out: str | None) -> Body:
    """``calls recording ID [--kind mono] [--out FILE]``: download through the 302, atomically."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.media import download_recording
        from agent.runtime import open_runtime

        kinds = ("mono", "stereo", "customer", "assistant", "video")
        if kind not in kinds:
            raise ConfigError(f"--kind {kind!r} is not one of {', '.join(kinds)}")
        dest = Path(out or f"{call_id}-{kind}.{'mp4' if kind == 'video' else 'wav'}")
        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice, store=None) as rt:
            progress = _byte_progress(rt.show_progress)
            saved = await download_recording(lambda: rt.vapi.recording_link(call_id, kind), dest, rt.media_http,
                                             progress=progress)
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
    print(f"saved {r['path']} ({r['bytes']} bytes{duration}, sha256 {r['sha256'][:16]}…)")


# ---------------------------------------------------------------- doctor
def doctor_body() -> Body:
    """``doctor``: reachability, auth, tool count, and which workflows this server supports."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.runtime import open_runtime
        from agent.vapi import WORKFLOW_NEEDS

        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice, store=None) as rt:
            servers: list[dict[str, Any]] = [{"name": c.spec.name, "kind": c.spec.kind, "transport": c.spec.transport,
                        "endpoint": c.spec.display, "server_name": c.server_name,
                        "protocol": c.protocol_version, "tools": sum(1 for t in rt.hub.catalogue
                                                                     if t.server == c.spec.name)}
                       for c in rt.hub.connections]
            matrix: dict[str, Any] = {}
            for workflow in WORKFLOW_NEEDS:
                missing = rt.vapi.missing_for(workflow)
                matrix[workflow] = {"supported": not missing, "missing": missing}
        result = {"servers": servers, "tool_count": sum(s["tools"] for s in servers), "workflows": matrix,
                  "model": {"configured": ctx.settings.has_model, "name": ctx.settings.effective_model}}
        return Outcome(result=result)

    return body


def doctor_render(outcome: Outcome, ctx: CommandContext) -> None:
    """Servers, then the capability matrix."""
    from rich.console import Console

    console = Console()
    for server in outcome.result["servers"]:
        console.print(f"[green]✓[/green] {server['name']} ({server['kind']}, {server['transport']}) at "
                      f"{server['endpoint']}: {server['tools']} tools, protocol {server['protocol']}")
    for workflow, info in outcome.result["workflows"].items():
        if info["supported"]:
            console.print(f"  [green]✓[/green] {workflow}")
        else:
            console.print(f"  [red]✗[/red] {workflow}: " + "; ".join(f"{k} ({v})" for k, v in info["missing"].items()))
    model = outcome.result["model"]
    console.print(f"model: {model['name'] if model['configured'] else 'not configured (set OPENAI_API_KEY)'}")
