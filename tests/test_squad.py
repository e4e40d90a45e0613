"""Issue 7, squads: ``vapi-agent squad create`` and the route syntax, on a sandbox served on loopback.

The created squad is read back from the sandbox and validated with the vapi-server-sdk ``Squad``
model; refused routes are checked to have sent nothing (the sandbox's MCP log has no create call).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

import cli
from agent.errors import ConfigError
from sandbox.app import Sandbox
from tests.test_ratelimit_e2e import restore_logging
from tests.test_write_reconcile import mcp_calls
from workflows.squad import Route, parse_route

_FIXTURES = (restore_logging,)  # used by name through ``usefixtures``
pytestmark = pytest.mark.usefixtures("restore_logging")

CREATE_TOOL = "create_a_vapi_squad"
ROUTE = "Front Desk Router -> Technical Fallback: when the caller has a technical problem: e.g. no signal"


@pytest.fixture
def sandbox(serve_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A small sandbox served on loopback."""
    return serve_sandbox(calls=120)


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        sandbox: Sandbox) -> Callable[..., tuple[int, dict[str, Any], str]]:
    """Run ``vapi-agent <argv> --json`` headless: (exit code, envelope, stderr)."""

    def run_(*argv: str) -> tuple[int, dict[str, Any], str]:
        monkeypatch.setenv("VAPI_AGENT_MCP_URL", sandbox.mcp_url)
        monkeypatch.setenv("VAPI_AGENT_MCP_KIND", "sandbox")
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        capsys.readouterr()
        code = cli.main([*argv, "--json"])
        out, err = capsys.readouterr()
        return code, json.loads(out), err

    return run_


def assistant_id(sandbox: Sandbox, name: str) -> str:
    """The id of the sandbox assistant called ``name``."""
    (found,) = sandbox.workspace.list_objects("assistants", name=name)
    return str(found["id"])


# ---------------------------------------------------------------- the route syntax
def test_parse_route_names_with_spaces_and_the_first_colon_after_the_arrow() -> None:
    assert parse_route(ROUTE) == Route("Front Desk Router", "Technical Fallback",
                                       "when the caller has a technical problem: e.g. no signal")
    assert parse_route("A -> B") == Route("A", "B", "")
    for bad in ("Front Desk Router Technical Fallback", " -> B: x", "A -> : x", "A -> B:   "):
        with pytest.raises(ConfigError):
            parse_route(bad)


# ---------------------------------------------------------------- create
def test_squad_with_a_route_validates_against_the_sdk_model(run: Any, sandbox: Sandbox) -> None:
    from vapi.types import Squad

    code, envelope, stderr = run("squad", "create", "--name", "Front desk squad", "--member", "Front Desk Router",
                                 "--member", "Technical Fallback", "--route", ROUTE, "--yes")
    assert code == 0, stderr
    (stored,) = sandbox.workspace.list_objects("squads", name="Front desk squad")
    assert envelope["result"]["squad"] == {"id": stored["id"], "name": "Front desk squad"}
    assert mcp_calls(sandbox, CREATE_TOOL) == 1

    squad = Squad.model_validate(stored)
    first, second = squad.members
    assert first.assistant_id == assistant_id(sandbox, "Front Desk Router")  # the first member starts the call
    assert second.assistant_id == assistant_id(sandbox, "Technical Fallback")
    assert second.assistant_destinations is None
    (destination,) = first.assistant_destinations or []
    assert destination.assistant_name == "Technical Fallback"
    assert destination.description == "when the caller has a technical problem: e.g. no signal"


@pytest.mark.parametrize("route", ["Front Desk Router -> Billing Specialist: when billing",
                                   "Front Desk -> Technical Fallback: when technical"])
def test_a_route_naming_a_non_member_is_refused_before_anything_is_sent(run: Any, sandbox: Sandbox,
                                                                        route: str) -> None:
    code, envelope, _ = run("squad", "create", "--name", "refused", "--member", "Front Desk Router",
                            "--member", "Technical Fallback", "--route", route, "--yes")
    assert code == 2
    assert "not a member" in envelope["errors"][0]["message"]
    assert mcp_calls(sandbox, CREATE_TOOL) == 0
    assert sandbox.workspace.list_objects("squads", name="refused") == []


def test_headless_without_yes_exits_5_and_dry_run_creates_nothing(run: Any, sandbox: Sandbox) -> None:
    argv = ("squad", "create", "--name", "unconfirmed", "--member", "Front Desk Router", "--member",
            "Technical Fallback", "--route", ROUTE)
    code, _, _ = run(*argv)
    assert code == 5
    code, envelope, stderr = run(*argv, "--dry-run")
    assert code == 0, stderr
    body = envelope["result"]["body"]
    assert envelope["result"]["dry_run"] is True and envelope["result"]["squad"] is None
    assert body["members"][0]["assistantDestinations"][0]["assistantName"] == "Technical Fallback"
    assert mcp_calls(sandbox, CREATE_TOOL) == 0
    assert sandbox.workspace.list_objects("squads", name="unconfirmed") == []
