"""The leads CSV as untrusted input (issue 13, items 10 and 11): bounded, encoding-aware, strictly quoted.

Library cases read files written here; the CLI cases show that a bad file is exit 2 with one line,
before any connection (no server is configured: reading the file is the only thing that happens).
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cli
from agent.errors import ConfigError
from workflows.campaign import leads as leads_module
from workflows.campaign.leads import read_leads

MAX_FILE_BYTES, MAX_LINE_CHARS = 32 * 1024 * 1024, 128 * 1024  # the documented caps

ANN, BO, CY = "+14155552671", "+16502530000", "+12025550173"


def write(tmp_path: Path, data: bytes | str, name: str = "leads.csv") -> Path:
    """A leads file holding ``data`` (text is written as UTF-8)."""
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def numbers(path: Path) -> list[str]:
    """The accepted numbers."""
    return [c["number"] for c in read_leads(path).customers]


# ---------------------------------------------------------------- quoting (item 11)
def test_an_unterminated_quote_rejects_its_row_and_swallows_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, f'number,name\n{ANN},"Ann\n{BO},Bo\n{CY},Cy\n')
    leads = read_leads(path)
    assert leads.rejected == [{"line": 2, "reason": "a quoted field opened on this line is never closed"}]
    assert [c["number"] for c in leads.customers] == [BO, CY]


def test_text_after_a_closing_quote_rejects_its_row(tmp_path: Path) -> None:
    leads = read_leads(write(tmp_path, f'number,name\n{ANN},"Ann"Lee\n{BO},Bo\n'))
    [rejected] = leads.rejected
    assert rejected["line"] == 2 and "not valid CSV" in rejected["reason"]
    assert [c["number"] for c in leads.customers] == [BO]


def test_a_quoted_field_over_several_lines_is_one_row_numbered_by_its_first_line(tmp_path: Path) -> None:
    leads = read_leads(write(tmp_path, f'number,name,note\n{ANN},Ann,"two\nlines"\n{BO},Bo,x\nnope,Cy,y\n'))
    assert leads.customers[0]["assistantOverrides"]["variableValues"] == {"note": "two\nlines"}
    assert [r["line"] for r in leads.rejected] == [5]


def test_a_duplicated_header_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"line 1: column 'number' appears twice \(columns 1 and 3\)"):
        read_leads(write(tmp_path, f"number,name,number\n{ANN},Ann,{BO}\n"))
    with pytest.raises(ConfigError, match="column 'plan' appears twice"):
        read_leads(write(tmp_path, f"number, plan ,name,plan\n{ANN},a,Ann,b\n"))


def test_a_broken_header_is_refused_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 1: the header row is not readable: a quoted field"):
        read_leads(write(tmp_path, f'number,"name\n{ANN},Ann\n'))


# ---------------------------------------------------------------- encodings (item 11)
@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_bom_and_utf16_files_are_read(tmp_path: Path, codec: str) -> None:
    path = write(tmp_path, f"number,name\r\n{ANN},Zoë\r\n{BO},Bo\r\n".encode(codec))
    leads = read_leads(path)
    assert [c["number"] for c in leads.customers] == [ANN, BO] and leads.customers[0]["name"] == "Zoë"
    assert leads.rejected == []


def test_a_line_that_is_not_utf8_rejects_its_row(tmp_path: Path) -> None:
    path = write(tmp_path, f"number,name\n{ANN},Jos\xe9\n{BO},Bo\n".encode("latin-1"))
    leads = read_leads(path)
    assert leads.rejected == [{"line": 2, "reason": "not UTF-8 text (byte 0xe9 at column 17): save it as CSV UTF-8"}]
    assert [c["number"] for c in leads.customers] == [BO]


def test_a_header_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 1: the header row is not readable: not UTF-8 text"):
        read_leads(write(tmp_path, "number,prénom\n".encode("latin-1") + f"{ANN},Ann\n".encode()))


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01",
    b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00",  # an .xlsx
    b"number,name\n+14155552671,Ann\x00\n",
])
def test_a_binary_file_is_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(ConfigError, match=r"holds a NUL byte .*a binary file, not a CSV"):
        read_leads(write(tmp_path, data))


# ---------------------------------------------------------------- bounds (item 10)
def test_dev_zero_is_refused_from_its_first_bytes() -> None:
    with pytest.raises(ConfigError, match="holds a NUL byte"):
        read_leads("/dev/zero")


def test_a_file_over_the_size_cap_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = write(tmp_path, f"number,name\n{ANN},Ann\n")
    with path.open("r+b") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written, nothing need be read
    with pytest.raises(ConfigError, match="is larger than 32 MiB"):
        read_leads(path)


def test_an_endless_stream_stops_at_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leads_module, "MAX_FILE_BYTES", 4096)
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    written: list[int] = []

    def produce() -> None:  # rows forever, until the reader hangs up
        try:
            with fifo.open("wb") as out:
                out.write(b"number,name\n")
                while True:
                    written.append(out.write(f"{ANN},Ann\n".encode() * 64))
                    out.flush()
        except BrokenPipeError:
            pass

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    with pytest.raises(ConfigError, match="is larger than"):
        read_leads(fifo)
    producer.join(timeout=30)
    assert not producer.is_alive() and sum(written) > 4096


def test_an_overlong_line_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, f"number,name\n{ANN}," + "x" * MAX_LINE_CHARS + "\n")
    with pytest.raises(ConfigError, match="line 2 is longer than 131,072 characters"):
        read_leads(path)


# ---------------------------------------------------------------- through the CLI: exit 2, one line, no connection
@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``vapi-agent campaign create ... --leads PATH EXTRA`` in-process, headless."""

    def run(leads: str, *extra: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        capsys.readouterr()
        code = cli.main(["campaign", "create", "--name", "Q1", "--assistant", "Renewal Outreach",
                         "--phone-number", "primary", "--leads", leads, *extra])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_strict_refuses_an_unterminated_quote(run: Callable[..., Any], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def no_connection(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the runtime was opened for a file that is refused")

    monkeypatch.setattr("agent.runtime.open_runtime", no_connection)
    path = write(tmp_path, f'number,name\n{ANN},"Ann\n{BO},Bo\n')
    code, out, err = run(str(path), "--strict", "--json")
    assert code == 2 and err.count("\n") == 1
    envelope = json.loads(out)
    assert envelope["status"] == "error"
    [error] = envelope["errors"]
    assert "--strict: 1 invalid row(s)" in error["message"] and "(lines 2)" in error["message"]
    assert error["rejected"] == [{"line": 2, "reason": "a quoted field opened on this line is never closed"}]

    code, out, err = run("/dev/zero")
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert "--leads /dev/zero holds a NUL byte" in err
