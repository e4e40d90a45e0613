"""Leads CSV for a campaign: one customer per row, numbers normalised to E.164, bad rows reported.

Rules: a header row; ``number`` is required, ``name`` optional, every other column becomes the
customer's ``assistantOverrides.variableValues``. National numbers are read in ``region``. Duplicates
(after normalisation) are removed; invalid rows are skipped and reported with their line number and
reason. Empty cells of extra columns are left out of the variable values.

The file is untrusted input, read within bounds and strictly:

- at most ``MAX_FILE_BYTES``, lines of at most ``MAX_LINE_CHARS``: beyond either the file is refused
  (ConfigError, exit 2) without reading further, so ``--leads /dev/zero`` costs nothing;
- UTF-8 (a BOM is skipped), UTF-16 or UTF-32 with a BOM, and UTF-16 without one (recognised by its
  zero bytes); any other NUL byte means a binary file, refused;
- a line that is not UTF-8 makes its row rejected (line number, byte, column);
- quoting is checked by the csv module's ``strict`` mode: a row whose quoted field is never closed
  (it would swallow every row after it) or has text after its closing quote is rejected at the line
  where it starts, and reading resumes on the next line;
- the header names ``number`` and no column twice, else the file is refused.

Rejected rows are refused by ``campaign create --strict`` (exit 2) and reported otherwise.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_LINE_CHARS = 128 * 1024  # as long as the csv module's default field limit
_SNIFF_BYTES = 64 * 1024
# longest first: the UTF-32-LE mark begins with the UTF-16-LE one
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_SAVE_AS_UTF8 = "save it as CSV UTF-8"
_EXPORT_AS_CSV = "export the leads from your spreadsheet as CSV UTF-8"


@dataclass
class Leads:
    """Accepted customers (``CreateCustomerDto`` dicts), rejected rows and removed duplicates."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The envelope's ``leads`` object."""
        return {"accepted": len(self.customers), "rejected": self.rejected, "duplicates": self.duplicates}


def normalise_number(raw: str, region: str) -> tuple[str | None, str | None]:
    """(E.164, None) for a valid number, else (None, reason)."""
    import phonenumbers

    text = (raw or "").strip()
    if not text:
        return None, "number is empty"
    try:
        parsed = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException as exc:
        return None, f"{text!r} is not a phone number ({exc})"
    if not phonenumbers.is_valid_number(parsed):
        return None, f"{text!r} is not a valid number for its region"
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None


# ---------------------------------------------------------------- bytes -> lines
def _read_bounded(path: str | Path) -> bytes:
    """The file's bytes: a size cap, and a binary file refused from its first bytes (``/dev/zero``)."""
    try:
        with Path(path).open("rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > MAX_FILE_BYTES:
                raise _too_big(path)
            head = handle.read(min(_SNIFF_BYTES, MAX_FILE_BYTES + 1))
            _encoding(head, path)
            data = head + handle.read(MAX_FILE_BYTES + 1 - len(head))  # one byte more than allowed: too big
    except OSError as exc:
        raise ConfigError(f"cannot read --leads {path}: {exc.strerror or exc}", hint="check the path") from None
    if len(data) > MAX_FILE_BYTES:
        raise _too_big(path)
    return data


def _too_big(path: str | Path) -> ConfigError:
    return ConfigError(f"--leads {path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                       hint="split the leads into several campaigns")


def _encoding(head: bytes, path: str | Path) -> str:
    """The codec of a file starting with ``head``: its BOM, else UTF-16 by its zero bytes, else UTF-8."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec
    if b"\0" not in head:
        return "utf-8"
    # mostly-ASCII text in UTF-16 has a zero in every other byte; a binary file has them anywhere
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > len(odd) * 0.4 and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) > len(even) * 0.4 and odd.count(0) == 0:
        return "utf-16-be"
    raise _binary(path, head.count(b"\n", 0, head.index(b"\0")) + 1)


def _binary(path: str | Path, line: int) -> ConfigError:
    return ConfigError(f"--leads {path} holds a NUL byte (line {line}): a binary file, not a CSV", hint=_EXPORT_AS_CSV)


def _lines(data: bytes, path: str | Path) -> tuple[list[str], dict[int, str]]:
    """The file as text lines (ends kept, split as ``open(newline="")`` does) and the undecodable ones.

    UTF-8 is decoded line by line, so one bad line costs one row; a bad UTF-16/32 file is refused whole.
    """
    codec = _encoding(data[:_SNIFF_BYTES], path)
    undecodable: dict[int, str] = {}
    if codec == "utf-8" or codec == "utf-8-sig":
        if b"\0" in data:
            raise _binary(path, data.count(b"\n", 0, data.index(b"\0")) + 1)
        lines = []
        for number, raw in enumerate(data.removeprefix(codecs.BOM_UTF8).splitlines(keepends=True), start=1):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                undecodable[number] = (f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}): "
                                       f"{_SAVE_AS_UTF8}")
                lines.append(raw.decode("utf-8", errors="replace"))
    else:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError as exc:
            at = data[:exc.start].decode(codec, errors="replace").count("\n") + 1
            raise ConfigError(f"--leads {path} line {at}: not valid {codec.upper()} text ({exc.reason})",
                              hint=_SAVE_AS_UTF8) from None
        if "\0" in text:
            raise _binary(path, text.count("\n", 0, text.index("\0")) + 1)
        lines = list(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE_CHARS:
            raise ConfigError(f"--leads {path} line {number} is longer than {MAX_LINE_CHARS:,} characters",
                              hint=_EXPORT_AS_CSV)
    return lines, undecodable


# ---------------------------------------------------------------- lines -> records
Record = tuple[int, int, list[str] | None, str | None]


def _records(lines: list[str]) -> Iterator[Record]:
    """(first line, last line, cells, None) for each record, or (first, last, None, reason) for a broken one.

    The csv module's strict mode finds the broken quoting. A quoted field still open at the end of
    the file held no closing quote at all, so each line after its first is read again as a row of
    its own; after any other error the reader goes on from the line after the one that failed.
    """
    start = 0  # index of the first line the current reader reads
    while start < len(lines):
        reader = csv.reader(itertools.islice(lines, start, None), strict=True)
        while True:
            first = start + reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                last = start + reader.line_num
                if last >= len(lines) and "unexpected end of data" in str(exc):
                    yield first, first, None, "a quoted field opened on this line is never closed"
                    start = first  # the next line, as its own row
                    break
                where = "" if last == first else f" (line {last})"
                yield first, last, None, f"not valid CSV{where}: {exc}"
                continue
            yield first, start + reader.line_num, cells, None


def _header(records: Iterator[Record], undecodable: dict[int, str], path: str | Path) -> list[str]:
    """The header row's column names (the first row that is not blank), checked."""
    for line, last, cells, reason in records:
        reason = reason or next((undecodable[n] for n in range(line, last + 1) if n in undecodable), None)
        if reason is not None:
            raise ConfigError(f"--leads {path} line {line}: the header row is not readable: {reason}",
                              hint="fix the header row")
        if not cells:
            continue  # blank lines before the header
        headers = [cell.strip() for cell in cells]
        if "number" not in headers:
            break
        for position, name in enumerate(headers):
            if name and name in headers[:position]:
                raise ConfigError(f"--leads {path} line {line}: column {name!r} appears twice "
                                  f"(columns {headers.index(name) + 1} and {position + 1})",
                                  hint="rename or remove one of them")
        return headers
    raise ConfigError(f"--leads {path} has no 'number' column",
                      hint="the first row must be a header, e.g. number,name,plan")


def read_leads(path: str | Path, *, region: str = "US") -> Leads:
    """Read and validate the CSV (see the module docstring); an unreadable or unsafe file is a ConfigError."""
    import phonenumbers

    if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"--region {region!r} is not a region code", hint="use an ISO code such as US, GB, DE")
    lines, undecodable = _lines(_read_bounded(path), path)
    records = _records(lines)
    headers = _header(records, undecodable, path)
    leads = Leads()
    seen: dict[str, int] = {}
    for line, last, cells, reason in records:
        if cells == []:
            continue  # a blank line
        reason = reason or next((undecodable[n] for n in range(line, last + 1) if n in undecodable), None)
        if reason is None and cells is not None and len(cells) > len(headers):
            reason = "more cells than header columns"
        if reason is not None or cells is None:
            leads.rejected.append({"line": line, "reason": reason})
            continue
        row = dict(zip(headers, cells, strict=False))
        number, reason = normalise_number(row.get("number") or "", region)
        if number is None:
            leads.rejected.append({"line": line, "reason": reason})
            continue
        if number in seen:
            leads.duplicates.append({"line": line, "number": number, "duplicate_of": seen[number]})
            continue
        seen[number] = line
        customer: dict[str, Any] = {"number": number}
        if (row.get("name") or "").strip():
            customer["name"] = row["name"].strip()
        extra = {k: v.strip() for k, v in row.items() if k not in ("number", "name") and k and v.strip()}
        if extra:
            customer["assistantOverrides"] = {"variableValues": extra}
        leads.customers.append(customer)
    return leads

