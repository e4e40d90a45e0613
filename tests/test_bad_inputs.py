"""Every bad input is refused the same way (issue 13 items 13 and 10, issue 14 item 9).

A table of bad flags, environment variables, config files, ``mcpServers`` files, leads CSVs, URLs,
fleet options and accounts files, and ``sandbox serve`` options. Each runs in-process through
``cli.main`` (with and without ``--json``) against a loopback sandbox and a loopback "model API"
(also the fleet's Truto API) that both record every request, and must end with: the documented exit
code, exactly one line on stderr (``error: ...``), no traceback, nothing written (the working
directory, the case's input files and the config folder unchanged; the data dir may only gain the run
log, holding the refused run marked as an error), and no request sent: neither server saw one, no
socket connected anywhere, no host name was resolved, no process (stdio server) was spawned, and
the embedded sandbox (or sandbox fleet) was never even built. With ``--json`` stdout holds exactly
one envelope, ``status: "error"``. A few cases go through the real entry point in a subprocess.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import cli
from sandbox.app import Sandbox
from sandbox.serve import ServerThread
from sandbox.world.config import SandboxConfig

ROOT = Path(__file__).resolve().parents[1]
DEEP_JSON = "[" * 5000 + "]" * 5000
DEEP_ARGS = '{"a": ' + "[" * 100 + "]" * 100 + "}"


# ---------------------------------------------------------------- the recording servers
class _Counter(BaseHTTPRequestHandler):
    server: CountingServer

    def log_message(self, *args: Any) -> None:
        pass

    def _count(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        self.send_response(500)
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_DELETE = _count


class CountingServer(ThreadingHTTPServer):
    """A loopback "model API" that answers 500 to everything and remembers every request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Counter)
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@dataclass
class Servers:
    sandbox: Sandbox
    model: CountingServer
    busy_port: int

    def traffic(self) -> tuple[int, int]:
        return len(self.sandbox.log.entries()), len(self.model.requests)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    # Imported up front: croniter (through dbos) runs `file -b python` at import to learn the word size,
    # a probe of the interpreter that the spawn guard would otherwise count as the command's.
    import workflows.fleet.run  # noqa: F401

    sandbox = Sandbox(SandboxConfig(calls=30, seed=7))
    thread = ServerThread(sandbox, host="127.0.0.1", port=0).start()
    model = CountingServer()
    threading.Thread(target=model.serve_forever, daemon=True).start()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        yield Servers(sandbox, model, busy.getsockname()[1])
    finally:
        busy.close()
        model.shutdown()
        model.server_close()
        thread.stop()


class Outbound:
    """Records (and refuses) every outbound connection, name lookup and process spawn of the code under test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[str] = []

        def connect(sock: socket.socket, address: Any) -> None:
            self.seen.append(f"connect {address}")
            raise ConnectionRefusedError("refused by the test: no request may be sent")

        def connect_ex(sock: socket.socket, address: Any) -> int:
            self.seen.append(f"connect {address}")
            return 111  # ECONNREFUSED

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            self.seen.append(f"resolve {host}")
            raise socket.gaierror(socket.EAI_NONAME, "refused by the test")

        def popen(self_: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
            self.seen.append(f"spawn {args}")
            raise FileNotFoundError("refused by the test: no process may be spawned")

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(subprocess.Popen, "__init__", popen)


# ---------------------------------------------------------------- the table
@dataclass
class Bad:
    """One bad input: the command line, environment, files to create, and the expected exit code.

    In ``argv``, ``env`` and file contents: ``{in}`` is the folder holding the case's files,
    ``{mcp}`` the served sandbox's MCP URL, ``{api}`` the counting server's origin (a would-be Truto
    API), ``{busy}`` a port something already listens on.
    ``config`` is the config file's text (``VAPI_AGENT_CONFIG`` points at it).
    """

    id: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str | bytes] = field(default_factory=dict)
    config: str | None = None
    code: int = 2

    def __str__(self) -> str:
        return self.id


# Commands the settings cases run: each would connect (to the served sandbox) if nothing stopped it.
RUNS = [["tools", "list"], ["doctor"], ["calls", "list", "--assistant", "Support"], ["report"],
        ["qa-grade", "--assistant", "Support", "--recordings", "none"], ["ask", "list my assistants"],
        ["campaign", "list"], ["tools", "call", "list_all_vapi_assistants"]]


def _settings_cases() -> list[Bad]:
    flags: list[tuple[str, list[str]]] = [
        ("deadline-negative", ["--deadline", "-5"]), ("deadline-zero", ["--deadline", "0"]),
        ("deadline-nan", ["--deadline", "nan"]), ("deadline-inf", ["--deadline", "inf"]),
        ("deadline-word", ["--deadline", "soon"]), ("deadline-overflow", ["--deadline", "99999999999d"]),
        ("deadline-two-years", ["--deadline", "800d"]), ("deadline-negative-unit", ["--deadline=-5s"]),
        ("mcp-kind-weird", ["--mcp-kind", "weird"]), ("mcp-kind-empty", ["--mcp-kind", ""]),
        ("mcp-url-ftp", ["--mcp-url", "ftp://127.0.0.1/mcp"]), ("mcp-url-file", ["--mcp-url", "file:///etc/passwd"]),
        ("mcp-url-no-host", ["--mcp-url", "http:///mcp"]),
        ("mcp-url-port-99999", ["--mcp-url", "http://127.0.0.1:99999/mcp"]),
        ("mcp-url-port-0", ["--mcp-url", "http://127.0.0.1:0/mcp"]),
        ("max-download-0", ["--max-download-bytes", "0"]), ("max-download-word", ["--max-download-bytes", "lots"]),
        ("max-download-neg", ["--max-download-bytes=-1"]),
        ("mcp-url-port-word", ["--mcp-url", "http://h:port/mcp"]),
        ("mcp-url-crlf", ["--mcp-url", "http://127.0.0.1/mcp\r\nX-Injected: 1"]),
        ("mcp-url-lf", ["--mcp-url", "http://127.0.0.1/m\ncp"]),
        ("mcp-url-space", ["--mcp-url", "http://127.0.0.1/a b"]),
        ("mcp-url-tab", ["--mcp-url", "http://127.0.0.1/\tmcp"]),
        ("mcp-url-nul", ["--mcp-url", "http://127.0.0.1/\x00"]),
        ("mcp-url-esc", ["--mcp-url", "http://127.0.0.1/\x1b[2J"]),
        ("mcp-url-bad-ipv6", ["--mcp-url", "http://[::1/mcp"]),
        ("mcp-url-words", ["--mcp-url", "not a url"]), ("mcp-url-javascript", ["--mcp-url", "javascript:alert(1)"]),
        ("mcp-url-empty", ["--mcp-url", ""]), ("mcp-url-relative", ["--mcp-url", "/mcp"]),
        ("server-unknown", ["--server", "nosuch"]), ("server-empty", ["--server", ""]),
        ("profile-unknown", ["--profile", "nosuch"]), ("model-empty", ["--model", ""]),
        ("model-newline", ["--model", "gpt\nx"]), ("json-with-value", ["--json=1"]),
        ("read-only-with-value", ["--read-only=yes"]), ("tools-missing-value", ["--tools"]),
        ("mcp-config-missing-file", ["--mcp-config", "{in}/nope.json"]),
    ]
    env: list[tuple[str, dict[str, str]]] = [
        ("env-concurrency-0", {"VAPI_AGENT_CONCURRENCY": "0"}),
        ("env-concurrency-neg", {"VAPI_AGENT_CONCURRENCY": "-2"}),
        ("env-concurrency-word", {"VAPI_AGENT_CONCURRENCY": "many"}),
        ("env-concurrency-float", {"VAPI_AGENT_CONCURRENCY": "1.5"}),
        ("env-concurrency-huge", {"VAPI_AGENT_CONCURRENCY": "100000"}),
        ("env-max-attempts-0", {"VAPI_AGENT_MAX_ATTEMPTS": "0"}),
        ("env-max-attempts-neg", {"VAPI_AGENT_MAX_ATTEMPTS": "-3"}),
        ("env-max-attempts-word", {"VAPI_AGENT_MAX_ATTEMPTS": "x"}),
        ("env-max-attempts-huge", {"VAPI_AGENT_MAX_ATTEMPTS": "1000000"}),
        ("env-wait-request-nan", {"VAPI_AGENT_MAX_WAIT_PER_REQUEST": "nan"}),
        ("env-wait-request-neg", {"VAPI_AGENT_MAX_WAIT_PER_REQUEST": "-1"}),
        ("env-wait-request-inf", {"VAPI_AGENT_MAX_WAIT_PER_REQUEST": "inf"}),
        ("env-wait-request-word", {"VAPI_AGENT_MAX_WAIT_PER_REQUEST": "long"}),
        ("env-wait-run-nan", {"VAPI_AGENT_MAX_WAIT_PER_RUN": "nan"}),
        ("env-wait-run-neg", {"VAPI_AGENT_MAX_WAIT_PER_RUN": "-1"}),
        ("env-wait-run-huge", {"VAPI_AGENT_MAX_WAIT_PER_RUN": "1e300"}),
        ("env-deadline-neg", {"VAPI_AGENT_DEADLINE": "-5"}), ("env-deadline-nan", {"VAPI_AGENT_DEADLINE": "nan"}),
        ("env-log-level-shout", {"VAPI_AGENT_LOG_LEVEL": "SHOUT"}),
        ("env-log-level-number", {"VAPI_AGENT_LOG_LEVEL": "10"}),
        ("env-mcp-kind", {"VAPI_AGENT_MCP_KIND": "weird"}), ("env-mcp-url-ftp", {"VAPI_AGENT_MCP_URL": "ftp://x/mcp"}),
        ("env-mcp-url-port", {"VAPI_AGENT_MCP_URL": "http://127.0.0.1:99999/mcp"}),
        ("env-mcp-url-crlf", {"VAPI_AGENT_MCP_URL": "http://127.0.0.1/mcp\r\n"}),
        ("env-read-only-maybe", {"VAPI_AGENT_READ_ONLY": "maybe"}), ("env-sandbox-2", {"VAPI_AGENT_SANDBOX": "2"}),
        ("env-openai-ftp", {"OPENAI_BASE_URL": "ftp://127.0.0.1/v1"}),
        ("env-openai-file", {"OPENAI_BASE_URL": "file:///tmp/x"}),
        ("env-openai-gopher", {"OPENAI_BASE_URL": "gopher://127.0.0.1/"}),
        ("env-openai-port", {"OPENAI_BASE_URL": "http://127.0.0.1:99999/v1"}),
        ("env-openai-lf", {"OPENAI_BASE_URL": "http://127.0.0.1/v1\n"}),
        ("env-openai-no-host", {"OPENAI_BASE_URL": "https://"}),
        ("env-openai-key-lf", {"OPENAI_API_KEY": "sk-test\nX: y"}), ("env-vapi-key-space", {"VAPI_API_KEY": "abc def"}),
        ("env-truto-token-crlf", {"TRUTO_API_TOKEN": "tok\r\n"}),
        ("env-max-message-0", {"VAPI_AGENT_MAX_MESSAGE_BYTES": "0"}),
        ("env-max-message-small", {"VAPI_AGENT_MAX_MESSAGE_BYTES": "12"}),
        ("env-max-message-unit", {"VAPI_AGENT_MAX_MESSAGE_BYTES": "10XB"}),
        ("env-max-message-neg", {"VAPI_AGENT_MAX_MESSAGE_BYTES": "-1"}),
        ("env-max-download-unit", {"VAPI_AGENT_MAX_DOWNLOAD_BYTES": "5 parsecs"}),
        ("env-max-download-huge", {"VAPI_AGENT_MAX_DOWNLOAD_BYTES": "2TiB"}),
        ("env-profile-unknown", {"VAPI_AGENT_PROFILE": "nosuch"}),
        ("env-server-unknown", {"VAPI_AGENT_SERVER": "nosuch"}),
        ("env-mcp-config-missing", {"VAPI_AGENT_MCP_CONFIG": "/nonexistent/servers.json"}),
        ("env-config-dev-zero", {"VAPI_AGENT_CONFIG": "/dev/zero"}),
        ("env-config-directory", {"VAPI_AGENT_CONFIG": "{in}"}),
    ]
    config: list[tuple[str, str]] = [
        ("config-syntax", "model = = 1\n"),
        ("config-unknown-key", 'colour = "red"\n'),
        ("config-typo-key", 'modle = "x"\n'),
        ("config-concurrency-0", "concurrency = 0\n"), ("config-concurrency-text", 'concurrency = "x"\n'),
        ("config-concurrency-bool", "concurrency = true\n"), ("config-deadline-neg", "deadline = -5\n"),
        ("config-deadline-text", 'deadline = "5 parsecs"\n'), ("config-max-attempts-0", "max_attempts = 0\n"),
        ("config-wait-nan", "max_wait_per_request = nan\n"), ("config-wait-inf", "max_wait_per_run = inf\n"),
        ("config-wait-neg", "max_wait_per_request = -1\n"), ("config-log-level", 'log_level = "SHOUT"\n'),
        ("config-mcp-kind", 'mcp_kind = "weird"\n'), ("config-mcp-url-ftp", 'mcp_url = "ftp://x/mcp"\n'),
        ("config-openai-file", 'openai_base_url = "file:///x"\n'), ("config-tools-number", "tools = 5\n"),
        ("config-read-only-text", 'read_only = "maybe"\n'), ("config-model-number", "model = 5\n"),
        ("config-profiles-number", "profiles = 3\n"), ("config-profile-unknown", 'profile = "nosuch"\n'),
        ("config-profile-bad-value", "[profiles.p]\nconcurrency = 0\n"),
        ("config-profile-bad-key", '[profiles.p]\ncolour = "red"\n'), ("config-unknown-table", "[weird]\na = 1\n"),
        ("config-deep", "a = " + DEEP_JSON + "\n"), ("config-max-message", 'max_message_bytes = "huge"\n'),
        ("config-max-download-bool", "max_download_bytes = true\n"), ("config-write-dirs-number", "write_dirs = 5\n"),
        ("config-sandbox-options", "sandbox_options = 5\n"), ("config-date", "deadline = 2024-01-01\n"),
    ]
    cases = [Bad(f"flag-{name}", [*RUNS[i % len(RUNS)], *extra]) for i, (name, extra) in enumerate(flags)]
    cases += [Bad(name, RUNS[i % len(RUNS)], env=variables) for i, (name, variables) in enumerate(env)]
    cases += [Bad(name, RUNS[i % len(RUNS)], config=text) for i, (name, text) in enumerate(config)]
    cases += [
        Bad("config-not-utf8", ["tools", "list"], files={"config.toml": b"model = '\xff\xfe'\n"},
            env={"VAPI_AGENT_CONFIG": "{in}/config.toml"}),
        Bad("config-too-big", ["tools", "list"], files={"config.toml": "# x\n" * 300_000},
            env={"VAPI_AGENT_CONFIG": "{in}/config.toml"}),
        # --server on the embedded sandbox (no URL): refused before the sandbox is built
        Bad("sandbox-server-unknown", ["--sandbox", "--server", "nosuch", "tools", "list"]),
        Bad("sandbox-kind-server-unknown", ["--mcp-kind", "sandbox", "--server", "other", "doctor"],
            env={"VAPI_AGENT_MCP_URL": ""}),
    ]
    return cases


def _servers_file_cases() -> list[Bad]:
    py = sys.executable
    entries: list[tuple[str, Any]] = [
        ("args-string", {"a": {"command": py, "args": "-m sandbox stdio"}}),
        ("args-numbers", {"a": {"command": py, "args": [1, 2]}}),
        ("env-number", {"a": {"command": py, "env": {"A": 1}}}),
        ("env-list", {"a": {"command": py, "env": ["A=1"]}}),
        ("headers-number", {"a": {"url": "{mcp}", "headers": {"X": 1}}}),
        ("headers-list", {"a": {"url": "{mcp}", "headers": ["X: 1"]}}),
        ("url-number", {"a": {"url": 5}}), ("url-ftp", {"a": {"url": "ftp://127.0.0.1/mcp"}}),
        ("url-port", {"a": {"url": "http://127.0.0.1:99999/mcp"}}), ("url-crlf", {"a": {"url": "{mcp}\r\nX: 1"}}),
        ("url-file", {"a": {"url": "file:///etc/passwd"}}),
        ("command-missing", {"a": {"command": "vapi-agent-no-such-program"}}),
        ("command-missing-path", {"a": {"command": "/nonexistent/bin/server"}}),
        ("command-not-executable", {"a": {"command": "{in}/server.sh"}}),
        ("command-number", {"a": {"command": 7}}), ("cwd-missing", {"a": {"command": py, "cwd": "/nonexistent/dir"}}),
        ("neither", {"a": {"name": "x"}}), ("entry-string", {"a": "http://127.0.0.1/mcp"}),
        ("type-weird", {"a": {"url": "{mcp}", "type": "carrier-pigeon"}}),
        ("kind-weird", {"a": {"url": "{mcp}", "kind": "weird"}}), ("tools-number", {"a": {"url": "{mcp}", "tools": 5}}),
        ("disabled-text", {"a": {"url": "{mcp}", "disabled": "perhaps"}}),
        ("all-disabled", {"a": {"url": "{mcp}", "disabled": True}}), ("empty-servers", {}),
        ("unset-variable", {"a": {"url": "${VAPI_AGENT_TEST_UNSET_VARIABLE}"}}),
        ("server-flag-unknown", {"a": {"url": "{mcp}"}}),
    ]
    cases = [Bad(f"mcp-config-{name}", ["--mcp-config", "{in}/servers.json",
                                        *(["--server", "nosuch"] if name == "server-flag-unknown" else []),
                                        *RUNS[i % len(RUNS)]],
                 files={"servers.json": json.dumps({"mcpServers": servers}), "server.sh": "echo not executable\n"})
             for i, (name, servers) in enumerate(entries)]
    raw: list[tuple[str, str | bytes]] = [
        ("not-json", "{mcpServers: }"), ("root-list", "[]"), ("servers-list", '{"mcpServers": []}'),
        ("no-servers-key", '{"servers": {}}'), ("deep", '{"mcpServers": {"a": ' + DEEP_JSON + "}}"),
        ("not-utf8", b'{"mcpServers": {"\xff": {}}}'),
        ("too-big", '{"mcpServers": {}, "x": "' + "a" * 1_100_000 + '"}'),
        ("empty-file", ""),
    ]
    cases += [Bad(f"mcp-config-{name}", ["--mcp-config", "{in}/servers.json", "tools", "list"],
                  files={"servers.json": text}) for name, text in raw]
    cases += [Bad("mcp-config-directory", ["--mcp-config", "{in}", "tools", "list"]),
              Bad("mcp-config-dev-zero", ["--mcp-config", "/dev/zero", "doctor"])]
    return cases


def _command_cases() -> list[Bad]:
    qa = ["qa-grade", "--assistant", "Support"]
    rows: list[tuple[str, list[str]]] = [
        ("qa-missing-assistant", ["qa-grade"]), ("qa-typo-option", ["qa-grade", "--asistant", "Support"]),
        ("qa-last-word", [*qa, "--last", "abc"]),
        ("qa-last-zero", [*qa, "--last", "0"]),
        ("qa-last-neg", [*qa, "--last", "-3"]),
        ("qa-threshold-nan", [*qa, "--threshold", "nan"]), ("qa-threshold-inf", [*qa, "--threshold", "inf"]),
        ("qa-threshold-neg-inf", [*qa, "--threshold", "-inf"]), ("qa-threshold-word", [*qa, "--threshold", "high"]),
        ("qa-since-overflow", [*qa, "--since", "99999999999d"]), ("qa-since-zero", [*qa, "--since", "0d"]),
        ("qa-since-word", [*qa, "--since", "lately"]), ("qa-since-cron", [*qa, "--since", "7d\n* * * * * touch x"]),
        ("qa-recordings-weird", [*qa, "--recordings", "some"]), ("qa-unknown-argument", [*qa, "extra"]),
        ("report-from-year-1", ["report", "--from", "0001-01-01"]),
        ("report-from-to-year-1", ["report", "--from", "0001-01-01", "--to", "0001-01-08"]),
        ("report-as-of-year-1", ["report", "--as-of", "0001-01-03"]),
        ("report-from-word", ["report", "--from", "monday"]),
        ("report-to-before-from", ["report", "--from", "2026-01-02", "--to", "2026-01-01"]),
        ("report-since-and-from", ["report", "--since", "7d", "--from", "2026-01-01"]),
        ("report-since-overflow", ["report", "--since", "99999999999d"]),
        ("report-since-century", ["report", "--since", "30000d"]),
        ("report-tz-mars", ["report", "--tz", "Mars/Olympus_Mons"]),
        ("report-group-by", ["report", "--group-by", "colour"]),
        ("report-format", ["report", "--format", "docx"]), ("report-source", ["report", "--source", "crystal-ball"]),
        ("report-as-of-word", ["report", "--as-of", "tomorrow"]),
        ("report-worse-nan", ["report", "--worse-success-pp", "nan"]),
        ("report-worse-inf", ["report", "--worse-cost-pct", "inf"]),
        ("report-worse-neg", ["report", "--worse-cost-pct", "-1"]),
        ("report-min-calls-neg", ["report", "--min-calls", "-1"]),
        ("campaign-status-interval-nan", ["campaign", "status", "x", "--interval", "nan"]),
        ("campaign-status-interval-zero", ["campaign", "status", "x", "--interval", "0"]),
        ("campaign-status-missing-id", ["campaign", "status"]),
        ("tools-call-args-not-json", ["tools", "call", "x", "--args", "{"]),
        ("tools-call-args-list", ["tools", "call", "x", "--args", "[]"]),
        ("tools-call-args-string", ["tools", "call", "x", "--args", '"x"']),
        ("tools-call-args-deep", ["tools", "call", "list_all_vapi_assistants", "--args", DEEP_ARGS]),
        ("tools-call-args-very-deep", ["tools", "call", "x", "--args", '{"a": ' + DEEP_JSON + "}"]),
        ("calls-list-limit-zero", ["calls", "list", "--assistant", "Support", "--limit", "0"]),
        ("calls-list-limit-word", ["calls", "list", "--assistant", "Support", "--limit", "ten"]),
        ("calls-list-since", ["calls", "list", "--assistant", "Support", "--since", "99999999999d"]),
        ("logs-limit-zero", ["logs", "list", "--limit", "0"]),
        ("logs-prune-overflow", ["logs", "prune", "--older-than", "99999999999d"]),
        ("logs-prune-word", ["logs", "prune", "--older-than", "old"]),
        ("ask-max-turns-zero", ["ask", "--max-turns", "0", "hi"]),
        ("ask-max-cost-nan", ["ask", "--max-cost", "nan", "hi"]),
        ("ask-max-cost-neg", ["ask", "--max-cost", "-1", "hi"]),
        ("ask-max-tool-calls-neg", ["ask", "--max-tool-calls", "-1", "hi"]),
        ("schedule-run-grace-nan", ["schedule", "run", "--grace", "nan"]),
        ("schedule-run-grace-neg", ["schedule", "run", "--grace", "-1"]),
        ("unknown-command", ["frobnicate"]), ("unknown-subcommand", ["campaign", "frobnicate"]),
        # an output folder or file named, then a bad value: nothing may appear in the working directory
        ("report-out-format", ["report", "--out", "out", "--format", "docx"]),
        ("report-out-year-1", ["report", "--out", "out", "--from", "0001-01-01"]),
        ("report-out-bad-setting", ["report", "--out", "out", "--deadline", "-1"]),
        ("qa-out-last-zero", [*qa, "--out", "qa.md", "--last", "0"]),
        ("qa-recordings-dir-since", [*qa, "--recordings", "all", "--recordings-dir", "recs", "--since", "lately"]),
    ]
    cases = [Bad(name, argv) for name, argv in rows]
    campaign = ["campaign", "create", "--name", "Spring", "--assistant", "Support", "--phone-number", "primary"]
    leads: list[tuple[str, list[str], str | bytes | None]] = [
        ("leads-missing-file", ["--leads", "{in}/nope.csv"], None),
        ("leads-directory", ["--leads", "{in}"], None),
        ("leads-dev-zero", ["--leads", "/dev/zero"], None),
        ("leads-binary", ["--leads", "{in}/leads.csv"], b"number\n\x00\x01\x02\x03"),
        ("leads-no-valid-row", ["--leads", "{in}/leads.csv"], "number,name\nnot-a-number,Ann\n"),
        ("leads-empty", ["--leads", "{in}/leads.csv"], ""),
        ("leads-header-only", ["--leads", "{in}/leads.csv"], "number,name\n"),
        ("leads-strict-bad-row", ["--leads", "{in}/leads.csv", "--strict"], "number\n+14155550100\nnope\n"),
        ("leads-region", ["--leads", "{in}/leads.csv", "--region", "XX"], "number\n+14155550100\n"),
        ("leads-max-duration-overflow", ["--leads", "{in}/leads.csv", "--max-duration", "99999999999d"],
         "number\n+14155550100\n"),
        ("leads-max-duration-zero", ["--leads", "{in}/leads.csv", "--max-duration", "0s"], "number\n+14155550100\n"),
        ("leads-start-word", ["--leads", "{in}/leads.csv", "--start", "soon"], "number\n+14155550100\n"),
        ("leads-missing-option", [], None),
    ]
    cases += [Bad(f"campaign-{name}", [*campaign, *extra], files={} if text is None else {"leads.csv": text})
              for name, extra, text in leads]
    serve: list[tuple[str, list[str]]] = [
        ("port-99999", ["--port", "99999"]), ("port-negative", ["--port", "-1"]), ("port-word", ["--port", "http"]),
        ("port-in-use", ["--port", "{busy}"]),
        ("calls-negative", ["--calls", "-5"]),
        ("calls-huge", ["--calls", "10000000000"]),
        ("latency-negative", ["--latency", "-1"]), ("latency-nan", ["--latency", "nan"]),
        ("time-scale-zero", ["--time-scale", "0"]), ("time-scale-inf", ["--time-scale", "inf"]),
        ("link-ttl-negative", ["--link-ttl", "-5"]), ("expires-in-zero", ["--expires-in", "0"]),
        ("error-rate-two", ["--error-rate", "2"]), ("page-cap-zero", ["--page-cap", "0"]),
        ("rate-limit-word", ["--rate-limit", "lots"]), ("anchor-word", ["--anchor", "yesterday"]),
        ("write-fault-count-neg", ["--write-fault-count", "-1"]), ("unknown-flag", ["--frobnicate"]),
        ("tool-exposure", ["--tool-exposure", "some"]),
    ]
    # with --json: refused as a whole (a foreground server has no envelope form), exit 2, one envelope
    cases += [Bad(f"sandbox-serve-{name}", ["sandbox", "serve", "--calls", "5", *extra] if name != "calls-negative"
                  and name != "calls-huge" else ["sandbox", "serve", *extra])
              for name, extra in serve]
    return cases


def _fleet_cases() -> list[Bad]:
    """Fleet options and settings: a would-be Truto API at ``{api}`` (the counting server) with a token, so
    anything let through calls it and is counted."""
    truto = {"TRUTO_API_TOKEN": "truto-test-token"}
    api = ["--truto-api", "{api}"]
    grade = ["fleet", "qa-grade", "--assistant", "Support", *api]
    report = ["fleet", "report", *api]
    rows: list[tuple[str, list[str], dict[str, str]]] = [
        ("truto-api-ftp", ["fleet", "accounts", "--truto-api", "ftp://127.0.0.1/"], truto),
        ("truto-api-port", ["fleet", "accounts", "--truto-api", "http://127.0.0.1:99999"], truto),
        ("truto-api-crlf", ["fleet", "cleanup", "--truto-api", "{api}\r\nX: 1"], truto),
        ("truto-api-words", ["fleet", "accounts", "--truto-api", "api.truto.one"], truto),
        ("env-truto-api-file", ["fleet", "accounts"], {**truto, "VAPI_AGENT_TRUTO_API": "file:///etc/passwd"}),
        ("env-truto-token-space", ["fleet", "accounts", *api], {"TRUTO_API_TOKEN": "tok en"}),
        ("queue-url-mysql", [*grade, "--queue-url", "mysql://127.0.0.1/fleet"], truto),
        ("queue-url-port", [*grade, "--queue-url", "postgresql://u:secret@127.0.0.1:99999/db"], truto),
        ("queue-url-lf", [*report, "--queue-url", "postgresql://127.0.0.1/db\n"], truto),
        ("env-queue-url-sqlite", ["fleet", "status", "fleet-x"], {"VAPI_AGENT_QUEUE_URL": "sqlite:///x.db"}),
        ("status-queue-url-http", ["fleet", "status", "fleet-x", "--queue-url", "{api}"], {}),
        ("status-interval-nan", ["fleet", "status", "fleet-x", "--interval", "nan"], {}),
        ("resume-queue-url-word", ["fleet", "resume", "fleet-x", "--queue-url", "fleet"], {}),
        ("worker-concurrency-zero", ["worker", "--concurrency", "0"], {}),
        ("worker-queue-url-ftp", ["worker", "--queue-url", "ftp://127.0.0.1/q"], {}),
        ("qa-last-zero", [*grade, "--last", "0"], truto), ("qa-threshold-nan", [*grade, "--threshold", "nan"], truto),
        ("qa-since-overflow", [*grade, "--since", "99999999999d"], truto),
        ("qa-recordings-weird", [*grade, "--recordings", "some"], truto),
        ("qa-concurrency-zero", [*grade, "--concurrency", "0"], truto),
        ("qa-sandbox-accounts-zero", ["fleet", "qa-grade", "--assistant", "Support", "--sandbox-accounts", "0"], {}),
        ("qa-missing-assistant", ["fleet", "qa-grade", *api], truto),
        ("report-from-year-1", [*report, "--from", "0001-01-01"], truto),
        ("report-tz-mars", [*report, "--tz", "Mars/Olympus_Mons"], truto),
        ("report-group-by", [*report, "--group-by", "colour"], truto),
        ("report-format", [*report, "--format", "docx"], truto),
        ("report-since-overflow", [*report, "--since", "99999999999d"], truto),
        ("report-out-tz", [*report, "--out", "fleet-out", "--tz", "Mars/Olympus_Mons"], truto),
        ("qa-out-threshold", [*grade, "--out", "fleet-out", "--threshold", "inf"], truto),
        ("config-truto-api", ["fleet", "accounts"], truto),
        ("config-queue-url", ["fleet", "status", "fleet-x"], {}),
    ]
    configs = {"config-truto-api": 'truto_api = "gopher://127.0.0.1/"\n',
               "config-queue-url": 'queue_url = "redis://127.0.0.1/0"\n'}
    cases = [Bad(f"fleet-{name}", argv, env=env, config=configs.get(name)) for name, argv, env in rows]
    # The fleet's settings (issue 16): the Truto API and its token, the queue's database URL, --concurrency.
    settings: list[tuple[str, list[str], dict[str, str], str | None]] = [
        ("concurrency-negative", [*report, "--concurrency", "-2"], truto, None),
        ("concurrency-huge", [*grade, "--concurrency", "100000"], truto, None),
        ("concurrency-word", [*grade, "--concurrency", "many"], truto, None),
        ("concurrency-env", grade, {**truto, "VAPI_AGENT_FLEET_CONCURRENCY": "0"}, None),
        ("concurrency-config", grade, truto, "fleet_concurrency = true\n"),
        ("truto-api-ftp", ["fleet", "qa-grade", "--assistant", "Support", "--truto-api", "ftp://127.0.0.1/api"],
         truto, None),
        ("truto-api-crlf", ["fleet", "accounts", "--truto-api", "{api}\r\nX: 1"], truto, None),
        ("truto-api-no-host", ["fleet", "cleanup", "--truto-api", "http:///api"], truto, None),
        ("truto-api-env", ["fleet", "accounts"], {**truto, "VAPI_AGENT_TRUTO_API": "api.truto.one"}, None),
        ("truto-token-newline", grade, {"TRUTO_API_TOKEN": "tok\nX-Evil: 1"}, None),
        ("queue-url-mysql", [*grade, "--queue-url", "mysql://fleet@127.0.0.1/fleet"], truto, None),
        ("queue-url-port", [*grade, "--queue-url", "postgresql://127.0.0.1:99999/fleet"], truto, None),
        ("queue-url-env", grade, {**truto, "VAPI_AGENT_QUEUE_URL": "sqlite:///fleet.db"}, None),
        ("queue-url-space", ["fleet", "status", "fleet-x", "--queue-url", "postgresql://h/fleet db"], {}, None),
        ("resume-queue-url", ["fleet", "resume", "fleet-x", "--queue-url", "redis://127.0.0.1/0"], {}, None),
        ("worker-concurrency-zero", ["worker", "--queue-url", "postgresql://127.0.0.1:{busy}/x", "--concurrency",
                                     "0"], {}, None),
        ("worker-queue-url", ["worker", "--queue-url", "http://{busy}"], {}, None),
    ]
    cases += [Bad(f"fleet-settings-{name}", argv, env=env, config=config) for name, argv, env, config in settings]
    accounts: list[tuple[str, str | bytes | None, str]] = [
        ("missing", None, "{in}/nope.toml"), ("directory", None, "{in}"), ("dev-zero", None, "/dev/zero"),
        ("not-toml", "[[account]\nname = 1\n", "{in}/accounts.toml"),
        ("not-utf8", b'[[account]]\nname = "\xff"\n', "{in}/accounts.toml"),
        ("no-accounts", 'title = "x"\n', "{in}/accounts.toml"),
        ("no-name", '[[account]]\nmcp_url = "{mcp}"\n', "{in}/accounts.toml"),
        ("twice", '[[account]]\nname = "a"\nmcp_url = "{mcp}"\n[[account]]\nname = "a"\nmcp_url = "{mcp}"\n',
         "{in}/accounts.toml"),
        ("two-credentials", '[[account]]\nname = "a"\nmcp_url = "{mcp}"\nvapi_api_key = "k"\n', "{in}/accounts.toml"),
        ("unknown-key", '[[account]]\nname = "a"\nmcp_url = "{mcp}"\ncolour = "red"\n', "{in}/accounts.toml"),
        ("mcp-url-ftp", '[[account]]\nname = "a"\nmcp_url = "ftp://127.0.0.1/mcp"\n', "{in}/accounts.toml"),
        ("mcp-url-port", '[[account]]\nname = "a"\nmcp_url = "http://127.0.0.1:99999/mcp"\n',
         "{in}/accounts.toml"),
        ("too-big", '[[account]]\nname = "a"\nmcp_url = "{mcp}"\n' + "# x\n" * 300_000, "{in}/accounts.toml"),
    ]
    for i, (name, text, where) in enumerate(accounts):
        command = [["fleet", "accounts"], ["fleet", "qa-grade", "--assistant", "Support"], ["fleet", "report"]][i % 3]
        cases.append(Bad(f"fleet-accounts-{name}", [*command, "--accounts", where],
                         files={} if text is None else {"accounts.toml": text}))
    return cases


CASES = _settings_cases() + _servers_file_cases() + _command_cases() + _fleet_cases()


def test_the_table_is_large_and_unique() -> None:
    assert len(CASES) >= 150
    assert len({case.id for case in CASES}) == len(CASES)
    kinds = {"env": [c for c in CASES if c.env and not c.files and c.config is None],
             "config file": [c for c in CASES if c.config is not None],
             "mcpServers file": [c for c in CASES if c.id.startswith("mcp-config-")],
             "CSV": [c for c in CASES if "--leads" in c.argv],
             "URL": [c for c in CASES if "url" in c.id or "openai" in c.id or "truto-api" in c.id],
             "fleet": [c for c in CASES if c.id.startswith("fleet-")]}
    assert all(len(cases) >= 10 for cases in kinds.values()), {k: len(v) for k, v in kinds.items()}


# ---------------------------------------------------------------- running one case
def _fill(text: str, where: Path, servers: Servers) -> str:
    return (text.replace("{in}", str(where)).replace("{mcp}", servers.sandbox.mcp_url)
            .replace("{api}", servers.model.url.removesuffix("/v1"))
            .replace("{busy}", str(servers.busy_port)))


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder`` with its size and modification time."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.parametrize("json_mode", [False, True], ids=["plain", "json"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_is_refused_cleanly(case: Bad, json_mode: bool, servers: Servers, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    inputs, work = tmp_path / "in", tmp_path / "work"
    inputs.mkdir()
    work.mkdir()
    for name, content in case.files.items():
        target = inputs / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(_fill(content, inputs, servers), encoding="utf-8")
    monkeypatch.chdir(work)
    monkeypatch.setenv("VAPI_AGENT_MCP_URL", servers.sandbox.mcp_url)
    monkeypatch.setenv("OPENAI_BASE_URL", servers.model.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-bad-inputs")
    if case.config is not None:
        (inputs / "config.toml").write_text(case.config, encoding="utf-8")
        monkeypatch.setenv("VAPI_AGENT_CONFIG", str(inputs / "config.toml"))
    for name, value in case.env.items():
        if value:
            monkeypatch.setenv(name, _fill(value, inputs, servers))
        else:
            monkeypatch.delenv(name, raising=False)
    built: list[Any] = []
    monkeypatch.setattr("agent.runtime._build_sandbox", lambda settings: built.append(settings) or pytest.fail(
        "the embedded sandbox was built"))
    monkeypatch.setattr("agent.runtime.build_sandbox_fleet", lambda *args: built.append(args) or pytest.fail(
        "the embedded sandbox fleet was built"))
    import uvicorn

    async def never_serve(self: Any, sockets: Any = None) -> None:
        raise AssertionError("sandbox serve started serving")

    monkeypatch.setattr(uvicorn.Server, "serve", never_serve)
    argv = [_fill(arg, inputs, servers) for arg in case.argv]
    if json_mode:  # before the command for some cases, after it for the others
        argv = ["--json", *argv] if len(case.id) % 2 else [*argv, "--json"]
    traffic = servers.traffic()
    data_dir = Path(os.environ["VAPI_AGENT_DATA_DIR"])
    config_dir = Path(os.environ["XDG_CONFIG_HOME"])
    data_before, inputs_before, config_before = _files_under(data_dir), _snapshot(inputs), _snapshot(config_dir)
    with pytest.MonkeyPatch.context() as guard:  # the guards are off again before the checks run
        outbound = Outbound(guard)
        code = cli.main(argv)
    out, err = capfd.readouterr()

    assert code == case.code, f"exit {code}\nstderr: {err}\nstdout: {out}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in err and "internal error" not in err
    if json_mode or "--json=1" in argv:
        envelope = json.loads(out)  # exactly one JSON document: nothing else on stdout
        assert envelope["status"] == "error" and envelope["errors"], envelope
        assert envelope["errors"][0]["code"] in ("usage", "config"), envelope
    else:
        assert out == ""
    assert servers.traffic() == traffic, "a request was sent"
    assert outbound.seen == [], "a request was attempted"
    assert not built
    assert _files_under(work) == []
    assert _snapshot(inputs) == inputs_before and _snapshot(config_dir) == config_before
    _only_refused_runs(data_dir, data_before)


def test_the_guards_see_a_request(servers: Servers, monkeypatch: pytest.MonkeyPatch,
                                  capfd: pytest.CaptureFixture[str]) -> None:
    """The checks can fail: a good command line is seen by the counting servers and by the guards."""
    monkeypatch.setenv("VAPI_AGENT_MCP_URL", servers.sandbox.mcp_url)
    traffic = servers.traffic()
    with pytest.MonkeyPatch.context() as guard:
        outbound = Outbound(guard)
        code = cli.main(["tools", "list"])
    assert code == 3 and any(seen.startswith("connect ('127.0.0.1'") for seen in outbound.seen), outbound.seen
    assert servers.traffic() == traffic  # refused by the guard before it reached the sandbox
    assert cli.main(["--json", "tools", "list"]) == 0 and servers.traffic()[0] > traffic[0]
    capfd.readouterr()


def _only_refused_runs(data_dir: Path, before: list[str]) -> None:
    """The data dir may only have gained the run log, recording refused runs (status error), and job locks."""
    added = sorted(set(_files_under(data_dir)) - set(before))
    locks = ("state", "state/locks")
    assert all(name.startswith("runs.sqlite3") or name in locks or (name.startswith("state/locks/")
               and name.endswith(".lock")) for name in added), added
    if any(name == "runs.sqlite3" for name in added):
        from agent.store import RunStore

        with RunStore(data_dir / "runs.sqlite3") as store:
            assert {run.status for run in store.list_runs(limit=None)} <= {"error"}


# ---------------------------------------------------------------- the real entry point
def _entry_point(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=full, timeout=120)


@pytest.mark.parametrize(("args", "env"), [
    (["tools", "list"], {"VAPI_AGENT_CONCURRENCY": "0"}),
    (["qa-grade", "--json", "--last", "abc", "--assistant", "Support"], {}),
    (["--json", "doctor"], {"OPENAI_BASE_URL": "file:///etc/passwd"}),
    (["sandbox", "serve", "--port", "99999"], {}),
])
def test_the_real_entry_point_refuses_the_same_way(args: list[str], env: dict[str, str], servers: Servers) -> None:
    traffic = servers.traffic()
    done = _entry_point(*args, env={"VAPI_AGENT_MCP_URL": servers.sandbox.mcp_url, **env})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    if "--json" in args:
        assert json.loads(done.stdout)["status"] == "error"
    else:
        assert done.stdout == ""
    assert servers.traffic() == traffic


# ---------------------------------------------------------------- --json on the paths that are not errors
@pytest.mark.parametrize("argv", [
    ["--json", "--help"], ["-h", "--json"], ["tools", "list", "--help", "--json"], ["fleet", "--json", "-h"],
    ["campaign", "create", "--json", "--help"],
])
def test_help_with_json_is_one_envelope(argv: list[str], capfd: pytest.CaptureFixture[str]) -> None:
    code = cli.main(argv)
    out, err = capfd.readouterr()
    envelope = json.loads(out)
    assert code == 0 and envelope["status"] == "ok" and envelope["result"]["help"].startswith("Usage: vapi-agent")
    assert err == ""


def test_version_with_json_is_one_envelope(capfd: pytest.CaptureFixture[str]) -> None:
    from agent import __version__

    assert cli.main(["--version", "--json"]) == 0
    assert json.loads(capfd.readouterr().out)["result"] == {"version": __version__}


@pytest.mark.parametrize("argv", [["tools", "--json"], ["--json"], ["--json", "fleet"]])
def test_a_group_alone_shows_its_help_on_stderr_and_one_envelope(argv: list[str],
                                                                capfd: pytest.CaptureFixture[str]) -> None:
    code = cli.main(argv)
    out, err = capfd.readouterr()
    envelope = json.loads(out)
    assert code == 2 and envelope["status"] == "error" and envelope["errors"][0]["code"] == "usage"
    assert err.startswith("Usage: vapi-agent")


def test_an_argument_that_looks_like_help_still_runs_the_command(capfd: pytest.CaptureFixture[str]) -> None:
    # "-h" is the value of --args here: the command runs (and refuses it), its own envelope comes out
    code = cli.main(["--json", "tools", "call", "x", "--args", "-h"])
    out, _err = capfd.readouterr()
    envelope = json.loads(out)
    assert code == 2 and envelope["status"] == "error" and "help" not in envelope["result"]
