"""Settings validated in one place (issue 13 item 13): every source, every value, one clear line.

The table in ``test_bad_inputs.py`` drives the CLI; these check the loader itself: what each message
names, that flag values 0 and 0.0 are kept, that every layer is checked even when a higher one
overrides it, and that a valid ``mcpServers`` file keeps working (other clients' keys ignored,
``${VAR}`` substitution).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agent.config import Settings, check_http_url, load_settings
from agent.errors import ConfigError
from agent.mcp.servers import ServerSpec, load_mcp_config, resolve_servers


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_flag_values_zero_are_kept(tmp_path: Path) -> None:
    path = _config(tmp_path, "max_wait_per_request = 30\nmax_wait_per_run = 60\n")
    settings = load_settings({"max_wait_per_request": 0.0, "max_wait_per_run": 0, "verbose": 0}, env={}, path=path)
    assert (settings.max_wait_per_request, settings.max_wait_per_run) == (0.0, 0.0)


def test_values_are_typed_from_every_source(tmp_path: Path) -> None:
    path = _config(tmp_path, 'concurrency = 3\ndeadline = "2m"\nlog_level = "info"\ntools = ["list_*"]\n')
    env = {"VAPI_AGENT_MAX_ATTEMPTS": "5", "VAPI_AGENT_MAX_MESSAGE_BYTES": "2MiB", "VAPI_AGENT_READ_ONLY": "yes",
           "VAPI_AGENT_EXCLUDE_TOOLS": "delete_*, update_*"}
    settings = load_settings({"deadline": "90"}, env=env, path=path)
    assert (settings.concurrency, settings.max_attempts, settings.deadline, settings.log_level) == (3, 5, 90.0, "INFO")
    assert settings.max_message_bytes == 2 * 1024 * 1024 and settings.read_only is True
    assert settings.tools == ("list_*",) and settings.exclude_tools == ("delete_*", "update_*")


@pytest.mark.parametrize(("flags", "env", "text", "expected"), [
    ({}, {"VAPI_AGENT_CONCURRENCY": "0"}, "",
     "setting concurrency = '0' from VAPI_AGENT_CONCURRENCY: input should be greater than or equal to 1 "
     "(fix or unset VAPI_AGENT_CONCURRENCY)"),
    ({"deadline": "-5"}, {}, "", "setting deadline = '-5' from --deadline: "),
    ({}, {}, "deadline = -5\n", "setting deadline = -5 from config file {path}: input should be greater than 0"),
    ({}, {}, "[profiles.fast]\nmax_attempts = 0\n",
     "setting max_attempts = 0 from [profiles.fast] of config file {path}: "),
    ({}, {"OPENAI_BASE_URL": "ftp://models.example/v1"}, "", "from OPENAI_BASE_URL: is not an http(s) URL"),
    ({}, {"VAPI_AGENT_LOG_LEVEL": "SHOUT"}, "",
     "setting log_level = 'SHOUT' from VAPI_AGENT_LOG_LEVEL: input should be"),
    ({}, {}, 'modle = "x"\n', "unknown key 'modle' in config file {path} (did you mean 'model'?)"),
    # a bad value hidden by a higher source is still reported: the file is broken either way
    ({"mcp_kind": "truto"}, {"VAPI_AGENT_MCP_KIND": "vapi"}, 'mcp_kind = "weird"\n', "from config file {path}"),
    ({"mcp_kind": "truto"}, {"VAPI_AGENT_MCP_KIND": "weird"}, "", "from VAPI_AGENT_MCP_KIND"),
])
def test_a_bad_value_names_the_setting_and_its_source(tmp_path: Path, flags: dict, env: dict, text: str,
                                                       expected: str) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(flags, env=env, path=path)
    line = caught.value.line()
    assert expected.format(path=path) in line and "\n" not in line


def test_secrets_are_never_shown_in_the_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({}, env={"OPENAI_API_KEY": "sk-SENTINEL-settings\nX"}, path=_config(tmp_path, ""))
    assert "SENTINEL" not in caught.value.line() and "openai_api_key = ***" in caught.value.line()


@pytest.mark.parametrize(("url", "reason"), [
    ("mysql://u:SENTINEL-pw@h/fleet", "is not a postgresql:// URL"),
    ("postgresql://u:SENTINEL-pw@h:99999/fleet", "port out of range"),
    ("postgresql://u:SENTINEL-pw@[::1/fleet", "invalid ipv6 url"),
    ("postgresql://u:SENTINEL-pw@h/fleet\n", "control character"),
])
def test_a_bad_queue_url_is_refused_without_its_password(tmp_path: Path, url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"queue_url": url}, env={}, path=_config(tmp_path, ""))
    line = caught.value.line()
    assert line.startswith("setting queue_url = ") and "from --queue-url" in line and reason in line, line
    assert "SENTINEL" not in line and "***@" in line
    good = "postgresql://u:SENTINEL-pw@127.0.0.1:5432/fleet"
    assert load_settings({"queue_url": good}, env={}, path=_config(tmp_path, "")).queue_url == good


@pytest.mark.parametrize("url", ["ftp://h/x", "file:///etc/passwd", "http://h:99999/", "http://h:0/", "http://",
                                 "http://h/\r\n", "http://h /", "http://[::1/", "h/mcp"])
def test_check_http_url_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        check_http_url(url)


def test_settings_built_directly_are_validated() -> None:
    assert Settings(concurrency=4).concurrency == 4
    with pytest.raises(ValueError):
        Settings(concurrency=0)


def test_server_on_the_sandbox_must_exist() -> None:
    assert [s.name for s in resolve_servers(Settings(sandbox=True, server="sandbox"), env={})] == ["sandbox"]
    with pytest.raises(ConfigError, match="unknown --server 'nosuch'"):
        resolve_servers(Settings(sandbox=True, server="nosuch"), env={})


def test_a_valid_servers_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"globalShortcut": "x", "mcpServers": {
        "local": {"command": Path(sys.executable).name, "args": ["-m", "sandbox", "stdio", "--calls", "${CALLS}"],
                  "env": {"TOKEN": "${TOKEN}"}, "autoApprove": ["x"], "timeout": 30},
        "remote": {"url": "http://127.0.0.1:9/mcp/${TOKEN}", "headers": {"Authorization": "Bearer ${TOKEN}"},
                   "tools": "list_*", "type": "streamable-http"},
        "off": {"url": "ftp://ignored", "disabled": True},
    }}))
    env = {"CALLS": "40", "TOKEN": "tok-123456", "PATH": str(Path(sys.executable).parent)}
    local, remote = load_mcp_config(str(path), env)
    assert isinstance(local, ServerSpec) and local.transport == "stdio"
    assert local.args == ["-m", "sandbox", "stdio", "--calls", "40"] and local.env == {"TOKEN": "tok-123456"}
    assert remote.url == "http://127.0.0.1:9/mcp/tok-123456" and remote.allow == ("list_*",)
    assert remote.headers == {"Authorization": "Bearer tok-123456"} and remote.transport == "http"
