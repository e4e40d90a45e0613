"""Command bodies of the agent-level commands (ask, tools, calls, doctor, logs).

Each returns an async ``body(ctx) -> Outcome`` for ``cli.runner.run_command`` and, where the
terminal needs more than the envelope, a ``render(outcome, ctx)``. The CLI only parses flags.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from agent.errors import ConfigError
from agent.redact import StreamRedactor, redact
from agent.terminal import printable
from cli.runner import Body, CommandContext, Outcome


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
        stream = StreamRedactor()  # the answer is shown redacted, as the envelope and the run log hold it

        def show(event: AgentEvent) -> None:
            if event.kind == "token" and streaming:
                print(printable(stream.feed(event.data["text"])), end="", flush=True)
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
            from agent.store.runlog import CURRENT_RUN
            from workflows.chat_tools import workflow_tools

            # The runner records this run (outcome, usage, tool calls); the loop adds the conversation.
            result = await run_agent(rt, prompt, limits=limits, on_event=show, run_log=CURRENT_RUN.get(),
                                     local_tools=workflow_tools(rt))
            if streaming and result.answer:
                print(printable(stream.flush()), flush=True)
            outcome = Outcome(result=result, status="ok")
            if result.stop_error is not None:
                outcome.errors = [result.stop_error.to_dict()]
                outcome.exit_code = result.stop_error.exit_code
                outcome.status = "error" if result.stopped_by in ("approval", "error") else "partial"
            return outcome

    return body


def ask_render(outcome: Outcome, ctx: CommandContext) -> None:
    """Print the answer when it was not streamed (stdout not a terminal)."""
    if not sys.stdout.isatty() and outcome.result is not None:
        print(printable(redact(outcome.result.answer)))
    for error in outcome.errors:
        ctx.notice(f"stopped: {error['message']}")


