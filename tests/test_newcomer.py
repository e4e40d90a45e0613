"""Issue 14: a newcomer's first day. One test (or a few) per numbered item, through ``cli.main``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

import cli
from agent.store import RunStore


@dataclass
class Ran:
    """One in-process CLI run: exit code, stdout, stderr."""

    code: int
    out: str
    err: str

    def envelope(self) -> dict[str, Any]:
        """The ``--json`` envelope on stdout."""
        return dict(json.loads(self.out))


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Ran]:
    """``vapi-agent ARGV`` in-process (no terminal: stdin empty, stdout captured)."""
    import io

    def go(*argv: str, stdin: str = "") -> Ran:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return go


# ---------------------------------------------------------------- 1. logs list|show|prune
def test_logs_subcommands_and_the_short_forms(run: Callable[..., Ran]) -> None:
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    with RunStore(now=lambda: clock[0]) as store:
        old = store.start_run("report", ["report", "--since", "7d"])
        old.finish("ok", 0)
        clock[0] = datetime.now(tz=UTC)
        new = store.start_run("qa-grade", ["qa-grade", "--assistant", "Support"])
        new.finish("ok", 0)

    listed = run("logs", "--json")
    assert listed.code == 0 and [r["workflow"] for r in listed.envelope()["result"]["runs"]] == ["qa-grade", "report"]
    assert run("logs", "list", "--limit", "1", "--json").envelope()["result"]["runs"][0]["workflow"] == "qa-grade"
    assert run("logs", "--limit", "1", "--json").envelope()["result"]["runs"][0]["workflow"] == "qa-grade"
    for argv in (("logs", new.id[:6]), ("logs", "show", new.id[:6])):
        shown = run(*argv, "--json")
        assert shown.code == 0 and shown.envelope()["result"]["run"]["id"] == new.id

    help_text = run("logs", "prune", "--help")
    assert help_text.code == 0 and "--older-than" in help_text.out and "logs prune" in help_text.out
    pruned = run("logs", "prune", "--older-than", "30d")
    assert pruned.code == 0 and "deleted 1 run(s) older than 30d" in pruned.out
    assert [r["workflow"] for r in run("logs", "--json").envelope()["result"]["runs"]] == ["qa-grade"]

    unknown = run("logs", "show", "fffffff")
    assert unknown.code == 2 and "no run id starts with" in unknown.err
    group_help = run("logs", "--help").out
    assert all(name in group_help for name in ("list", "show", "prune"))
