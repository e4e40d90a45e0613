"""Command bodies of ``vapi-agent chat`` (the REPL) and ``vapi-agent assistant chat`` (talk to an assistant).

Each returns an async ``body(ctx) -> Outcome`` for ``cli.runner.run_command``; the CLI only parses flags.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from agent.errors import AgentError, ConfigError
from agent.redact import StreamRedactor, redact
from agent.terminal import printable
from cli.runner import Body, CommandContext, Outcome


# ---------------------------------------------------------------- chat (the REPL)
@dataclass
class ChatOptions:
    """Flags of ``vapi-agent chat`` (limits apply to each turn; --max-cost to the whole session)."""

    max_turns: int = 20
    max_tool_calls: int = 60
    max_cost: float | None = None
    price: str | None = None


def chat_body(options: ChatOptions, *, model: Any = None, sandbox: Any = None) -> Body:
    """``vapi-agent chat``: the interactive REPL (``cli.repl``); needs a terminal and a model."""

    async def body(ctx: CommandContext) -> Outcome:
        from agent.display import console
        from agent.loop import Limits
        from agent.model import price_for, require_model
        from agent.runtime import open_runtime
        from cli.commands.ask import parse_price
        from cli.repl.session import Repl
        from cli.repl.view import InlineApproval, TurnView
        from workflows.chat_tools import workflow_tools

        if ctx.settings.json:
            raise ConfigError("chat is interactive and has no --json form", hint='use vapi-agent ask --json "..."')
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise ConfigError("chat needs a terminal", hint='in scripts use vapi-agent ask "..."')
        if model is None:
            require_model(ctx.settings)
        price = parse_price(options.price)
        view = TurnView(console(highlight=False))
        approval = InlineApproval(view)
        async with open_runtime(ctx.settings, usage=ctx.usage, notice=view.notice, model=model, sandbox=sandbox,
                                prompt=approval) as rt:
            rt.price = price or (price_for(rt.model.name) if rt.model else None)
            if rt.price is None:
                rt.usage.cost_usd = None
            limits = Limits(max_turns=options.max_turns, max_tool_calls=options.max_tool_calls,
                            max_cost=options.max_cost)
            repl = Repl(rt, view, approval, limits=limits, local_tools=workflow_tools(rt), price_override=price,
                        argv=sys.argv[1:] or ["chat"])
            turns = await repl.run()
        return Outcome(result={"turns": turns})

    return body


# ---------------------------------------------------------------- assistant chat
@dataclass
class AssistantChatOptions:
    """Arguments of ``vapi-agent assistant chat ID_OR_NAME [MESSAGE]``."""

    assistant: str
    message: str | None = None
    previous_chat_id: str | None = None
    via: str = "auto"


def assistant_chat_body(options: AssistantChatOptions, *, sandbox: Any = None, on_event: Any = None,
                        lines: Iterable[str] | None = None) -> Body:
    """``assistant chat``: one turn with MESSAGE; else interactive on a terminal, or one turn per stdin line.

    Deltas are printed as they arrive (not with ``--json``); the chat continues with ``previousChatId``
    from turn to turn. ``on_event`` sees every stream event (tests time them); ``lines`` replaces stdin.
    """

    async def body(ctx: CommandContext) -> Outcome:
        from agent.assistant_chat import DELTA, AssistantChat, ChatEvent, ChatReply
        from agent.runtime import open_runtime

        show = not ctx.settings.json
        stream = StreamRedactor()  # deltas are server text: redacted and printable, like every other line
        streamed: list[str] = []  # what this turn printed as it arrived

        def printer(event: ChatEvent) -> None:
            if on_event is not None:
                on_event(event)
            if show and event.type == DELTA:
                delta = str(event.data.get("delta", ""))
                streamed.append(delta)
                print(printable(stream.feed(delta)), end="", flush=True)

        async with open_runtime(ctx.settings, usage=ctx.usage, notice=ctx.notice, sandbox=sandbox, store=None,
                                prompt=None) as rt:
            found = await rt.vapi.resolve_assistant(options.assistant)
            chat = AssistantChat(rt, found, route=options.via, previous_chat_id=options.previous_chat_id)
            name = str(found.get("name") or found["id"])
            replies: list[ChatReply] = []
            sent: list[str] = []

            async def one(message: str) -> None:
                streamed.clear()
                whole = False
                try:
                    reply = await chat.send(message, printer)
                    replies.append(reply)
                    sent.append(message)
                    if show and not streamed:  # the reply arrived whole (the MCP route): print it now
                        print(printable(redact(reply.text)), end="")
                        whole = True
                finally:
                    if show and (streamed or whole):  # end the reply's line, also after a dropped stream
                        print(printable(stream.flush()), flush=True)

            interactive = options.message is None and lines is None and sys.stdin.isatty() and show
            if options.message is not None:
                await one(_message_arg(options.message))
            elif interactive:
                await _interactive(ctx, name, one)
            else:
                for line in lines if lines is not None else _stdin_lines():
                    await one(line)
                if not replies:
                    raise ConfigError("no message: give MESSAGE, or lines on stdin",
                                      hint='vapi-agent assistant chat Support "hello"')
            if replies and not interactive:
                ctx.notice(f"chat {replies[-1].chat_id} (continue with --previous-chat-id {replies[-1].chat_id})")
        last = replies[-1] if replies else None
        result = {
            "assistant": {"id": found["id"], "name": found.get("name")},
            "route": chat.route,
            "chat_id": chat.chat_id,
            "reply": last.text if last else None,
            "events": [e.summary() for e in last.events] if last else [],
            "turns": [{"message": m, **r.to_dict()} for m, r in zip(sent, replies, strict=True)],
        }
        return Outcome(result=result)

    return body


def _message_arg(message: str) -> str:
    """MESSAGE, or stdin when it is ``-``."""
    if message != "-":
        return message
    text = sys.stdin.read().strip()
    if not text:
        raise ConfigError("the message read from stdin is empty")
    return text


def _stdin_lines() -> list[str]:
    """Each non-empty stdin line is one turn of the same chat."""
    return [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]


async def _interactive(ctx: CommandContext, name: str, one: Callable[[str], Awaitable[None]]) -> None:
    """Type messages until an empty line, /exit or Ctrl-D; a failed turn is shown and the chat goes on."""
    from prompt_toolkit import PromptSession

    session: PromptSession[str] = PromptSession()
    name = printable(name, one_line=True)
    print(f"chatting with {name} (empty line, /exit or Ctrl-D to stop)", file=sys.stderr)
    while True:
        try:
            message = (await session.prompt_async("you> ")).strip()
        except (EOFError, KeyboardInterrupt):
            return
        if not message or message in ("/exit", "/quit"):
            return
        print(f"{name}> ", end="", flush=True)
        try:
            await one(message)
        except AgentError as exc:
            ctx.notice(f"error: {exc.line()}")
        await asyncio.sleep(0)
