"""Common options in both placements, settings precedence, redaction, and the CLI's exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.errors import ConfigError
from agent.redact import redact, redact_data, register_secret
from cli.argv import split_common_options

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("argv", "flags", "rest"),
    [
        (["--json", "tools", "list"], {"json": True}, ["tools", "list"]),
        (["tools", "list", "--json"], {"json": True}, ["tools", "list"]),
        (["-vv", "x", "--verbose"], {"verbose": 3}, ["x"]),
        (["x", "--mcp-url=http://h/mcp", "--read-only"], {"mcp_url": "http://h/mcp", "read_only": True}, ["x"]),
        (["x", "--allow", "a", "--allow", "b"], {"allow": ("a", "b")}, ["x"]),
        (["x", "--tools", "list_*,get_*"], {"tools": ("list_*", "get_*")}, ["x"]),
        (["ask", "--", "--json"], {}, ["ask", "--", "--json"]),
    ],
)
def test_common_options_anywhere(argv: list[str], flags: dict, rest: list[str]) -> None:
    assert split_common_options(argv) == (flags, rest)


def test_common_option_missing_value_is_config_error() -> None:
    with pytest.raises(ConfigError):
        split_common_options(["x", "--model"])


def test_settings_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('model = "file-model"\nread_only = true\n[profiles.prod]\nmodel = "prod-model"\n')
    env = {"VAPI_AGENT_MODEL": "env-model"}
    assert load_settings({}, env={}, path=cfg).model == "file-model"
    assert load_settings({"profile": "prod"}, env={}, path=cfg).model == "prod-model"
    assert load_settings({"profile": "prod"}, env=env, path=cfg).model == "env-model"
    assert load_settings({"model": "flag", "profile": "prod"}, env=env, path=cfg).model == "flag"
    assert load_settings({}, env={}, path=cfg).read_only is True
    with pytest.raises(ConfigError, match="unknown profile"):
        load_settings({"profile": "nope"}, env={}, path=cfg)


def test_bad_config_file_is_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("model = = 1\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings({}, env={}, path=cfg)
    cfg.write_text('colour = "red"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings({}, env={}, path=cfg)


def test_redaction_patterns() -> None:
    register_secret("sk-SENTINEL-redact-1")
    text = (
        "POST https://api.truto.one/mcp/tok_ABCDEFGH12345 Bearer sk-SENTINEL-redact-1 "
        "https://b.s3.amazonaws.com/a.wav?X-Amz-Expires=900&X-Amz-Signature=0123abcd&X-Amz-Credential=AKIA/x"
    )
    out = redact(text)
    for secret in ("tok_ABCDEFGH12345", "sk-SENTINEL-redact-1", "0123abcd", "AKIA/x"):
        assert secret not in out
    assert "a.wav?X-Amz-Expires=***&X-Amz-Signature=***&" in out  # every query value is masked, names stay
    assert redact_data({"a": [text]})["a"][0] == out


@pytest.mark.parametrize(("text", "expected"), [
    ("--mcp-url http://user:SENTINEL-pw@host.example/mcp", "--mcp-url http://***@host.example/mcp"),
    ("https://host.example/x?key=SENTINEL&limit=2#top", "https://host.example/x?key=***&limit=***#top"),
    ("https://host.example/x?SENTINEL-bare-token", "https://host.example/x?***"),
    ('{"url": "wss://a:b@h.example:8443/p?t=SENTINEL"}', '{"url": "wss://***@h.example:8443/p?t=***"}'),
    ("see https://host.example/docs, ok", "see https://host.example/docs, ok"),
])
def test_url_userinfo_and_query_values_are_secrets(text: str, expected: str) -> None:
    assert redact(text) == expected and redact(expected) == expected


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, "XDG_CONFIG_HOME": "/nonexistent-config", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", *args],
        cwd=ROOT, capture_output=True, text=True, env=full_env, timeout=60,
    )


def test_version_and_usage_errors() -> None:
    assert _cli("--version").stdout.startswith("vapi-agent ")
    bad = _cli("no-such-command")
    assert bad.returncode == 2 and "No such command" in bad.stderr and "Traceback" not in bad.stderr
    missing = _cli("config", "show", "--model")
    assert missing.returncode == 2 and "needs a value" in missing.stderr


def test_config_show_redacts_and_accepts_both_placements() -> None:
    env = {"OPENAI_API_KEY": "sk-SENTINEL-config-show"}
    before = _cli("--json", "config", "show", env=env)
    after = _cli("config", "show", "--json", env=env)
    assert before.returncode == after.returncode == 0
    assert json.loads(before.stdout) == json.loads(after.stdout)
    assert "sk-SENTINEL-config-show" not in before.stdout + before.stderr
    envelope = json.loads(before.stdout)
    assert (envelope["workflow"], envelope["status"], envelope["errors"]) == ("config.show", "ok", [])
    assert envelope["result"]["settings"]["openai_api_key"] == "***"
