"""Text for people at a terminal: server strings made harmless, numbers and ids never cut, tables that fit.

Every renderer (the CLI's commands, qa-grade's and the report's terminal output) builds its tables
with ``fit_table`` and formats values with these helpers, so one rule holds everywhere:

- server text passes ``terminal_text`` (no escape sequences, no control or bidi characters) and is
  never read as rich markup;
- an id is shown whole, or, when the terminal is too narrow, as the shortest prefix (at least 8
  characters) that is unique among the rows: every command that takes an id accepts such a prefix;
- a number is never cut; a table too wide for the terminal first shortens its ids, then drops its
  lowest-value columns (named in a note under it), then cuts long text at a word with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ELLIPSIS = "…"
MIN_ID_PREFIX = 8


def terminal_text(value: Any, *, keep_newlines: bool = False) -> str:
    """``value`` as text that cannot drive the terminal (``agent.terminal.printable``: escape sequences,
    control and bidi characters removed), on one line unless ``keep_newlines``; tabs as spaces."""
    from agent.terminal import printable

    text = printable(value, one_line=not keep_newlines)
    return text.replace("\t", " ") if keep_newlines else text


def clip_words(text: str, width: int) -> str:
    """``text`` on one line in at most ``width`` cells, cut after a whole word with an ellipsis.

    A first word longer than the width is cut inside it (there is no word boundary to keep).
    """
    from rich.cells import cell_len, set_cell_size

    flat = " ".join(terminal_text(text).split())
    if cell_len(flat) <= width:
        return flat
    if width <= 1:
        return ELLIPSIS[:width]
    room = set_cell_size(flat, width - 1)  # leave a cell for the ellipsis
    cut = room
    if flat[len(room):][:1] not in _BREAKS:  # the last word did not fit whole: drop it
        breaks = [i for i, char in enumerate(room) if char in _BREAKS]
        if breaks:
            cut = room[: breaks[-1] + (room[breaks[-1]] != " ")]
    cut = cut.rstrip(" ,;:")
    return (cut or room) + ELLIPSIS


_BREAKS = " -/_"  # a word ends at a space, or after a hyphen, slash or underscore (ended-reason tokens)


def byte_size(count: int) -> str:
    """The one byte format of every command: ``1,069,788 bytes``."""
    return f"{count:,} byte" + ("" if count == 1 else "s")


def short_ids(ids: Sequence[str], *, minimum: int = MIN_ID_PREFIX) -> dict[str, str]:
    """Each id's shortest prefix of at least ``minimum`` characters that no other id here shares."""
    out = {}
    for value in ids:
        length = min(minimum, len(value))
        while length < len(value) and any(o != value and o.startswith(value[:length]) for o in ids):
            length += 1
        out[value] = value[:length]
    return out


# ---------------------------------------------------------------- tables that fit
ID, NUMBER, WHOLE, TEXT = "id", "number", "whole", "text"


@dataclass(frozen=True)
class Column:
    """One column: ``kind`` says how it may shrink, ``keep`` how much it is worth (higher stays longer).

    - ``id``: shown whole, or as unique prefixes (never cut further);
    - ``number``: never cut, right-aligned; ``whole``: never cut, left-aligned (times, statuses, tool names);
    - ``text``: names and free text from the server; takes what room is left, cut at a word with an
      ellipsis, never below ``min_width`` (the column is dropped instead).
    """

    header: str
    kind: str = TEXT
    keep: int = 50
    justify: str | None = None
    min_width: int = 10
    style: str | None = None


# Each column costs its padding (one cell either side) and one border cell; the table adds one more.
_PER_COLUMN = 3
_EDGE = 1


def _width(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


@dataclass
class Fitted:
    """What ``fit_table`` decided: the columns shown, their cells, and the columns left out."""

    columns: list[Column]
    rows: list[list[str]]
    hidden: list[str]

    def natural(self, index: int) -> int:
        """The widest cell (or header) of a shown column."""
        return max([_width(self.columns[index].header), *(_width(r[index]) for r in self.rows)])


def fit_cells(columns: Sequence[Column], rows: Sequence[Sequence[Any]], width: int) -> Fitted:
    """Choose columns and cell texts so the table fits in ``width`` cells (see the module docstring)."""
    cells = [[terminal_text("" if c is None else c) for c in row] for row in rows]
    fitted = Fitted(list(columns), cells, [])
    _shorten_ids(fitted, width)
    while _minimum(fitted) > width and len(fitted.columns) > 1:
        drop = min(range(len(fitted.columns)), key=lambda i: (fitted.columns[i].keep, -i))
        fitted.hidden.append(fitted.columns[drop].header)
        del fitted.columns[drop]
        for row in fitted.rows:
            del row[drop]
    _cut_text(fitted, width)
    return fitted


def _overhead(count: int) -> int:
    return _PER_COLUMN * count + _EDGE


def _total(fitted: Fitted) -> int:
    return sum(fitted.natural(i) for i in range(len(fitted.columns))) + _overhead(len(fitted.columns))


def _minimum(fitted: Fitted) -> int:
    total = _overhead(len(fitted.columns))
    for i, column in enumerate(fitted.columns):
        natural = fitted.natural(i)
        if column.kind == TEXT:
            total += min(natural, max(column.min_width, _width(column.header)))
        else:
            total += natural
    return total


def _shorten_ids(fitted: Fitted, width: int) -> None:
    """Full ids when everything fits; otherwise unique prefixes (still accepted by every command)."""
    if _total(fitted) <= width:
        return
    for i, column in enumerate(fitted.columns):
        if column.kind == ID:
            prefixes = short_ids([row[i] for row in fitted.rows if row[i]])
            for row in fitted.rows:
                row[i] = prefixes.get(row[i], row[i])


def _cut_text(fitted: Fitted, width: int) -> None:
    """Give text columns what room is left, taking from the widest first, cutting cells at a word."""
    excess = _total(fitted) - width
    shrinkable = [i for i, c in enumerate(fitted.columns) if c.kind == TEXT]
    while excess > 0 and shrinkable:
        floors = {i: max(fitted.columns[i].min_width, _width(fitted.columns[i].header)) for i in shrinkable}
        widest = max(shrinkable, key=lambda i: fitted.natural(i) - floors[i])
        before = fitted.natural(widest)
        room = before - floors[widest]
        if room <= 0:
            break
        target = before - min(room, excess)
        for row in fitted.rows:
            row[widest] = clip_words(row[widest], target)
        excess -= before - fitted.natural(widest)


def console(file: Any = None, **options: Any) -> Any:
    """The console command output goes through (``agent.console.SafeConsole``: markup off, control codes
    dropped from every text segment). Its width: the terminal's, or off a terminal (a log file, a pipe)
    ``$COLUMNS`` when set, else 160 columns, so every column of every table is kept in logs; ``options``
    are rich ``Console`` options (an explicit ``width`` wins)."""
    import os

    from agent.console import SafeConsole

    probe = SafeConsole(file=file, **options)
    if "width" in options or probe.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return probe
    return SafeConsole(file=file, width=160, **options)


def fit_table(columns: Sequence[Column], rows: Sequence[Sequence[Any]], width: int, *, title: str | None = None,
              bold_rows: Sequence[int] = (), row_styles: Sequence[str | None] | None = None,
              notes: Sequence[str] = ()) -> Any:
    """A rich ``Table`` of ``rows`` that fits in ``width`` cells; cells are plain text (never markup).

    ``notes`` (and the names of hidden columns) are printed as lines under the table (the returned
    renderable is then a group); ``row_styles`` styles whole rows (e.g. red for failing calls).
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    fitted = fit_cells(columns, rows, width)
    footer = [terminal_text(n) for n in notes]
    if fitted.hidden:
        footer.append(f"hidden at this width: {', '.join(fitted.hidden)} (widen the terminal, or use --json)")
    table = Table(title=Text(terminal_text(title)) if title else None, title_justify="left")
    for i, column in enumerate(fitted.columns):
        justify = column.justify or ("right" if column.kind == NUMBER else "left")
        table.add_column(column.header, justify=justify, no_wrap=True, min_width=fitted.natural(i),  # type: ignore[arg-type]
                         max_width=fitted.natural(i), overflow="ellipsis", style=column.style)
    for index, row in enumerate(fitted.rows):
        style = "bold" if index in bold_rows else None
        if row_styles is not None and row_styles[index]:
            style = row_styles[index]
        table.add_row(*(Text(cell) for cell in row), style=style)
    if not footer:
        return table
    return Group(table, *(Text(line, style="dim") for line in footer))  # full width, not the table's
