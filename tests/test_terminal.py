"""Server text reaches the terminal without control codes; streamed text is redacted like the rest."""

from __future__ import annotations

import json
import random
import re

import pytest

from agent.redact import MASK, StreamRedactor, redact, register_secret
from agent.terminal import escape_c1_in_json, printable

HOSTILE_NAME = "Evil\x1b[2J\x1b]0;PWNED\x07"


@pytest.mark.parametrize(("text", "expected"), [
    (HOSTILE_NAME, "Evil"),  # clear screen, set the window title
    ("a\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),  # OSC 8 hyperlink, ST-terminated
    ("reset\x1bc!", "reset!"),  # ESC c: full terminal reset
    ("8-bit\x9b2Jcsi\x9d0;t\x9c", "8-bit2Jcsi0;t"),  # C1 CSI / OSC / ST (their parameters stay visible)
    ("bell\x07 back\x08space\rcr\x00nul\x7fdel", "bell backspacecrnuldel"),
    ("bidi \u202eevil\u202c \u2066iso\u2069", "bidi evil iso"),
    ("keeps\ttabs\nand newlines", "keeps\ttabs\nand newlines"),
    ("plain ascii, üñíçødé, 日本語 and emoji 🎉", "plain ascii, üñíçødé, 日本語 and emoji 🎉"),
    ("\x1b]0;unterminated title", "0;unterminated title"),  # no terminator: only the ESC goes
])
def test_printable_strips_terminal_controls(text: str, expected: str) -> None:
    assert printable(text) == expected
    assert printable(expected) == expected  # idempotent


def test_one_line_turns_line_breaks_into_spaces() -> None:
    assert printable("name\nerror: all fine\tok", one_line=True) == "name error: all fine ok"
    assert printable(404) == "404"


def test_json_keeps_its_value_without_raw_c1() -> None:
    value = {"name": "x\x9b2J\x1b[0m\u0085y"}
    text = escape_c1_in_json(json.dumps(value, ensure_ascii=False))
    assert not any(0x80 <= ord(ch) <= 0x9F or ord(ch) < 0x20 for ch in text)
    assert json.loads(text) == value


def test_stream_redactor_masks_secrets_split_across_pieces() -> None:
    secret = "sk-SENTINEL-stream-0123456789"
    register_secret(secret)
    text = (f"the key is {secret}, the header Bearer abcdef0123456789 and the link "
            "https://user:pw@host.example/a.wav?sig=SENTINELSIG&x=1 end")
    rng = random.Random(5)
    for _ in range(50):
        stream, shown, i = StreamRedactor(), [], 0
        while i < len(text):
            step = rng.randint(1, 6)
            shown.append(stream.feed(text[i:i + step]))
            i += step
        shown.append(stream.flush())
        assert "".join(shown) == redact(text)
    assert secret not in redact(text) and "abcdef0123456789" not in redact(text) and "SENTINELSIG" not in redact(text)
    assert redact(text).count(MASK) == 5  # the key, the bearer token, the userinfo, two query values


def test_the_commands_console_shows_data_as_written_and_harmless() -> None:
    import io

    from rich.table import Table
    from rich.text import Text

    from agent.display import console as terminal_console

    out = io.StringIO()
    console = terminal_console(file=out, force_terminal=True, width=120, color_system="standard")
    table = Table(title=HOSTILE_NAME)
    table.add_column("name")
    table.add_row(HOSTILE_NAME)
    table.add_row("[link=https://evil.example]click[/link] [/bold]")  # markup in data: shown, not obeyed
    console.print(table)
    console.print(Text.assemble(("ok ", "green"), HOSTILE_NAME))  # Text pieces are cleaned too
    console.print(f"plain {HOSTILE_NAME}\x9b2J")
    shown = out.getvalue()
    assert "[link=https://evil.example]click[/link] [/bold]" in shown and "\x1b]8;" not in shown
    assert "\x1b[32m" in shown  # rich's own styling still works, and it is the only escape left
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", re.sub(r"\x1b\[[0-9;]*m", "", shown))


def test_error_lines_logs_and_debug_tracebacks_are_printable_and_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import logging

    from agent.config import Settings
    from agent.errors import UpstreamError
    from cli.runner import CommandContext, Outcome, run_command

    secret = "sk-SENTINEL-traceback-0123456789"
    register_secret(secret)

    async def body(ctx: CommandContext) -> Outcome:
        logging.getLogger("mcp").warning("server said %s", HOSTILE_NAME)
        try:
            raise ValueError(f"model error body: {{'key': '{secret}'}}")
        except ValueError as exc:
            raise UpstreamError(f"assistant {HOSTILE_NAME} failed\nerror: forged line") from exc

    code = run_command("test", Settings(debug=True), body, record=False)
    err = capsys.readouterr().err
    assert code == 3
    assert "error: assistant Evil failed error: forged line" in err  # one line, no control codes
    assert "server said Evil" in err and "Traceback" in err and "model error body" in err
    assert secret not in err and "\x1b" not in err and "\x07" not in err
