"""Text from servers (and models) made safe to print on a terminal.

A name, a transcript or an error body is data, never terminal commands: an assistant named
``Evil\\e[2J\\e]0;PWNED\\a`` must not clear the screen or retitle the window when an error line
names it. ``printable`` is the one function every renderer and error line passes such text through.

What it removes: whole ANSI escape sequences (CSI ``ESC [ ... final``, OSC ``ESC ] ... BEL|ST``,
DCS/PM/APC/SOS strings and two-character escapes), then every remaining C0 control except tab and
newline, DEL, every C1 control (U+0080-U+009F: 8-bit CSI/OSC/ST), and the Unicode bidirectional
overrides and isolates, which reorder how a line reads (a tool name can look like another).
``one_line=True`` also turns tabs and newlines into spaces, so a server string cannot forge the
next line of an error message.
"""

from __future__ import annotations

import re

# ESC-introduced sequences, removed whole so no residue like "[2J" is left on screen.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: ESC [ params intermediates final
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # OSC, DCS, SOS, PM, APC: up to BEL or ST
    r"|\x1b[ -/]*[0-~]",  # two-character and nF escapes (ESC c resets the terminal)
)
# Every control left after that: C0 but tab and newline, DEL, C1, bidi embeddings/overrides/isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"[\t\n]+")


def printable(text: object, *, one_line: bool = False) -> str:
    """``text`` (``str()`` of anything) without terminal control codes; see the module docstring."""
    value = text if isinstance(text, str) else str(text)
    if value.isprintable():  # the common case: nothing to strip (isprintable is false for \t and \n too)
        return value
    value = _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", value))
    return _LINE_BREAKS.sub(" ", value) if one_line else value


def escape_c1_in_json(text: str) -> str:
    """JSON text with C1 controls written as ``\\u0080``-style escapes.

    ``json.dumps(..., ensure_ascii=False)`` escapes C0 controls but writes C1 ones (8-bit CSI, OSC)
    raw; they can only occur inside JSON strings, where the escape means the same character, so the
    document parses to the same value.
    """
    return re.sub("[\x80-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", text)
