"""The rich console every renderer prints through (made by ``agent.display.console``): server text can
style nothing and control nothing.

Two rules, kept here once instead of at every cell:
- every segment of text it writes passes through ``agent.terminal.printable`` (no ESC, BEL, C1 or
  bidi controls from a name, an id or a transcript reach the terminal); rich's own styling and
  cursor control are not text segments and are untouched;
- markup is off by default: a plain string (a table cell, a printed line) is shown as written, so a
  name like ``[link=https://evil.example]`` neither links nor breaks rendering. A renderer that wants
  markup passes ``markup=True`` and escapes the data it interpolates (``rich.markup.escape``), or
  builds ``rich.text.Text`` pieces.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text

from agent.terminal import printable


class SafeConsole(Console):
    """A ``rich.console.Console`` with the two rules of the module docstring."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("markup", False)
        super().__init__(**options)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        """A plain string to ``Text``, without control codes."""
        return super().render_str(printable(text), **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        """Render as rich does, then drop control codes from every text segment."""
        for segment in super().render(renderable, options):
            if segment.control is None and not segment.text.isprintable():
                yield segment._replace(text=printable(segment.text))
            else:
                yield segment
