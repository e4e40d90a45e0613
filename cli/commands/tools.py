"""Command bodies of `tools list` and `tools call`."""

from __future__ import annotations

import json
from typing import Any

from agent.errors import ConfigError
from agent.terminal import escape_c1_in_json
from cli.runner import Body, CommandContext, Outcome


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
    """A table of tools that fits the terminal: names whole, descriptions cut at a word."""
    from agent.display import TEXT, WHOLE, Column, console, fit_table

    columns = (Column("name", WHOLE, keep=100), Column("access", WHOLE, keep=90),
               Column("server", TEXT, keep=40, min_width=8), Column("description", TEXT, keep=60, min_width=12))
    out = console()
    rows = [[t["name"], t["access"], t["server"], t["description"]] for t in outcome.result["tools"]]
    out.print(fit_table(columns, rows, out.width, title=f"{outcome.result['count']} tools"))


MAX_ARGS_DEPTH = 32  # real tool arguments nest a few levels; deeper only exhausts the stack later on


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (iteratively: the check itself cannot overflow)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            pending.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def tools_call_body(name: str, args_json: str) -> Body:
    """``tools call NAME --args JSON``: one gated call; prints the decoded result."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.redact import redact_data
        from agent.runtime import open_runtime

        try:
            args = json.loads(args_json)
        except ValueError as exc:
            raise ConfigError(f"--args is not valid JSON: {exc}") from None
        except RecursionError:
            raise ConfigError("--args nests too deeply", hint="tool arguments are a flat-ish JSON object") from None
        if not isinstance(args, dict):
            raise ConfigError("--args must be a JSON object")
        if _depth(args) > MAX_ARGS_DEPTH:
            raise ConfigError(f"--args nests deeper than {MAX_ARGS_DEPTH} levels",
                              hint="tool arguments are a flat-ish JSON object")
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
    print(escape_c1_in_json(json.dumps(outcome.result, indent=2, ensure_ascii=False, default=str)))
