"""The run log: every run's prompt, messages, tool calls, outcome, usage and waits, plus workflow checkpoints.

One SQLite file, ``data_dir()/runs.sqlite3`` by default (mode 0600 in a 0700 directory, WAL, safe
for several processes at once). Everything is redacted before it is written.

- ``schema``: tables, migrations (versioned, idempotent) and the connection settings;
- ``records``: the record types and the redacting JSON encoder;
- ``runs``: ``RunStore`` (runs, prefix lookup, listing, prune, checkpoints) and ``RunHandle``;
- ``render``: what ``vapi-agent logs`` prints (table rows, JSON detail, transcript);
- ``timeutil``: fixed-width UTC timestamps and ``parse_age("30d")``.
"""

from __future__ import annotations

from agent.store.records import MessageRecord, RunRecord, ToolCallRecord, WaitRecord
from agent.store.render import RUNS_TABLE_COLUMNS, command_line, run_detail, run_transcript_lines, runs_table_rows
from agent.store.runs import STORE_FILENAME, RunHandle, RunStore, default_store_path
from agent.store.schema import SCHEMA_VERSION
from agent.store.timeutil import parse_age

__all__ = [
    "RUNS_TABLE_COLUMNS",
    "SCHEMA_VERSION",
    "STORE_FILENAME",
    "MessageRecord",
    "RunHandle",
    "RunRecord",
    "RunStore",
    "ToolCallRecord",
    "WaitRecord",
    "command_line",
    "default_store_path",
    "parse_age",
    "run_detail",
    "run_transcript_lines",
    "runs_table_rows",
]
