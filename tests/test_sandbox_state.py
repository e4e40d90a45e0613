"""A sandbox workspace over time and across processes: living history, the persisted journal, reset.

The history of a living workspace is a function of (seed, anchor, absolute time): two workspaces
observed at different moments agree on every call that had ended by the earlier one. A persisted
workspace (``Sandbox.persistent``) replays its journal, so other processes see every write, and
concurrent writers never lose one. The CLI side (real commands in real processes) is in
``tests/test_embedded_sandbox.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox.app import Sandbox, StateError, reset_workspaces
from sandbox.world.calljson import ms_of
from sandbox.world.clock import SandboxClock
from sandbox.world.config import SandboxConfig
from sandbox.world.groundtruth import ground_truth
from sandbox.world.ids import parse_iso
from sandbox.world.state import WorkspaceReset
from sandbox.world.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
ANCHOR = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CALLS = 300  # 10 a day: a few days after the anchor bring a few dozen new calls


class FakeTime:
    """A settable wall clock (epoch seconds)."""

    def __init__(self, moment: datetime) -> None:
        self.t = moment.timestamp()

    def __call__(self) -> float:
        return self.t

    def set(self, moment: datetime) -> None:
        """Move the clock to ``moment``."""
        self.t = moment.timestamp()


def living(at: FakeTime, *, seed: int = 5, calls: int = CALLS, anchor: datetime = ANCHOR) -> Workspace:
    """A living workspace (as a process started at ``at`` builds it), not persisted."""
    return Workspace(SandboxConfig(seed=seed, calls=calls, living=True), SandboxClock(real=at), anchor=anchor)


def by_id(calls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Calls keyed by id."""
    return {c["id"]: c for c in calls}


# ---------------------------------------------------------------- living history
def test_a_living_workspace_at_its_anchor_is_the_seeded_dataset() -> None:
    """Observed at the anchor, nothing has arrived yet and every ended call is the frozen dataset's."""
    at_anchor = FakeTime(ANCHOR)
    frozen = Workspace(SandboxConfig(seed=5, calls=CALLS), SandboxClock(real=at_anchor), anchor=ANCHOR)
    alive = living(at_anchor)
    frozen_calls, living_calls = frozen.list_calls(limit=None), alive.list_calls(limit=None)
    assert [c["id"] for c in living_calls] == [c["id"] for c in frozen_calls]
    assert ([c for c in living_calls if c["status"] == "ended"]
            == [c for c in frozen_calls if c["status"] == "ended"])
    live = [c for c in living_calls if c["status"] != "ended"]
    assert live and all(parse_iso(c["createdAt"]) < ANCHOR for c in live)
    truth = ground_truth(alive, recordings="none")
    assert truth["calls"] == CALLS and truth["counts"] == ground_truth(frozen, recordings="none")["counts"]


def test_ended_calls_never_change_and_new_ones_keep_arriving() -> None:
    """Two "processes" started 3 days apart agree on every call that had ended when the first looked,
    down to the recording; the calls live then have ended since, and new calls have arrived."""
    t1, t2 = ANCHOR + timedelta(hours=2), ANCHOR + timedelta(days=3, hours=5)
    first_clock = FakeTime(t1)
    first = living(first_clock)
    seen = by_id(first.list_calls(limit=None))
    later = by_id(living(FakeTime(t2)).list_calls(limit=None))

    ended_then = {cid: call for cid, call in seen.items() if call["status"] == "ended"}
    assert len(ended_then) >= CALLS - 6
    assert {cid: later[cid] for cid in ended_then} == ended_then
    assert all(later[cid]["status"] == "ended" for cid in seen)  # the live ones went on and ended
    arrived = [c for c in later.values() if parse_iso(c["createdAt"]) > t1]
    assert 15 <= len(arrived) <= 60  # 10 a day for ~3 days
    assert all(parse_iso(c["createdAt"]) <= t2 for c in arrived)
    assert any(c["status"] == "ended" and c["assistantId"] for c in arrived)

    # The first process, watching time pass, sees the same world as the one started later.
    first_clock.set(t2)
    assert by_id(first.list_calls(limit=None)) == later
    # Recordings are rendered from the same conversation: byte for byte the same.
    recorded = [cid for cid, c in ended_then.items() if c.get("artifact", {}).get("recordingUrl")][:2]
    assert recorded
    again = living(FakeTime(t2 + timedelta(days=1)))
    for cid in recorded:
        assert again.call_recording(cid, "mono") == first.call_recording(cid, "mono")


def test_arrivals_do_not_depend_on_when_the_process_started() -> None:
    """The calls of a day after the anchor are the same whether a process reaches that day step by step or
    starts after it; a different anchor gives a different history (the anchor is part of the identity)."""
    stepping = FakeTime(ANCHOR)
    ws = living(stepping)
    for hours in range(0, 80, 7):
        stepping.set(ANCHOR + timedelta(hours=hours))
        ws.list_calls(limit=5)
    stepping.set(ANCHOR + timedelta(hours=80))
    direct = living(FakeTime(ANCHOR + timedelta(hours=80)))
    assert ws.list_calls(limit=None) == direct.list_calls(limit=None)
    assert ground_truth(ws, recordings="none") == ground_truth(direct, recordings="none")
    other = living(FakeTime(ANCHOR + timedelta(hours=80)), anchor=ANCHOR + timedelta(hours=1))
    assert {c["id"] for c in other.list_calls(limit=None)} != {c["id"] for c in direct.list_calls(limit=None)}


def test_past_analytics_totals_agree_across_moments() -> None:
    """The columns analytics and reports read give the same totals for a past period at any later moment."""
    def totals(moment: datetime) -> tuple[int, float, float]:
        cols = living(FakeTime(moment)).calls_frame_columns()
        lo, hi = ms_of(ANCHOR - timedelta(days=7)), ms_of(ANCHOR + timedelta(hours=20))
        inside = (cols.created_ms >= lo) & (cols.created_ms < hi)
        cost, seconds = float(cols.cost[inside].sum()), float(cols.duration_s[inside].sum())
        return int(inside.sum()), round(cost, 4), round(seconds, 3)

    assert totals(ANCHOR + timedelta(days=1)) == totals(ANCHOR + timedelta(days=6))


# ---------------------------------------------------------------- the journal
def persisted(directory: Path, at: FakeTime | None = None, **config: Any) -> Sandbox:
    """A persisted sandbox in ``directory`` (a living one, like the embedded sandbox)."""
    return Sandbox.persistent(SandboxConfig(**{"seed": 5, "calls": 60, "living": True, **config}), directory,
                              real=at)


def test_every_write_is_replayed_in_a_new_process(tmp_path: Path) -> None:
    """Created, updated and deleted objects, calls, campaigns and chats come back, with the same ids."""
    clock = FakeTime(ANCHOR)
    first = persisted(tmp_path, clock).workspace
    support = next(a for a in first.list_objects("assistants") if a["name"] == "Support")
    phone = first.list_objects("phone_numbers")[0]
    owl = first.create_object("assistants", {"name": "Night Owl", "firstMessage": "Night desk."})
    first.update_object("assistants", owl["id"], {"firstMessage": "Owl here."})
    scratch = first.create_object("tools", {"type": "function", "function": {"name": "scratch"}})
    first.delete_object("tools", scratch["id"])
    clock.set(ANCHOR + timedelta(minutes=5))
    campaign = first.create_object("campaigns", {
        "name": "Spring", "assistantId": support["id"], "phoneNumberId": phone["id"],
        "customers": [{"number": "+14155550123"}, {"number": "+14155550124"}]})
    made = first.create_call({"assistantId": owl["id"], "customer": {"number": "+14155550125"}})
    generated = first.list_calls(limit=3)[-1]
    first.update_call(generated["id"], {"name": "renamed"})
    doomed = first.list_calls(limit=10)[-1]
    first.delete_call(doomed["id"])
    chat = first.create_object("chats", {"assistantId": owl["id"], "input": "hi", "output": []})
    clock.set(ANCHOR + timedelta(minutes=30))

    second = persisted(tmp_path, FakeTime(ANCHOR + timedelta(minutes=30))).workspace
    for kind in ("assistants", "tools", "campaigns", "chats", "phone_numbers"):
        assert second.list_objects(kind) == first.list_objects(kind), kind
    assert second.get_object("assistants", owl["id"])["firstMessage"] == "Owl here."
    assert second.get_object("campaigns", campaign["id"])["status"] == "ended"  # dialled and done by now
    assert second.get_call(made["id"]) == first.get_call(made["id"])
    assert second.get_call(generated["id"])["name"] == "renamed"
    assert second.get_object("chats", chat["id"])["input"] == "hi"
    assert second.list_calls(limit=None) == first.list_calls(limit=None)
    with pytest.raises(Exception, match="not found"):
        second.get_call(doomed["id"])
    # The next id either process mints is the same one: the journal fixed the creation order.
    assert persisted(tmp_path, clock).workspace.new_id("tools") == second.new_id("tools")


def test_two_processes_see_each_others_writes_and_never_mint_one_id_twice(tmp_path: Path) -> None:
    one, two = persisted(tmp_path).workspace, persisted(tmp_path).workspace
    a = one.create_object("assistants", {"name": "From one"})
    assert two.get_object("assistants", a["id"])["name"] == "From one"  # read without writing: caught up
    b = two.create_object("assistants", {"name": "From two"})
    c = one.create_object("assistants", {"name": "One again"})
    assert len({a["id"], b["id"], c["id"]}) == 3
    assert [o["name"] for o in one.list_objects("assistants")][:3] == ["One again", "From two", "From one"]
    assert one.list_objects("assistants") == two.list_objects("assistants")


WRITER = """
import sys
import time
from pathlib import Path
from sandbox.app import Sandbox
from sandbox.world.config import SandboxConfig
directory, who, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
Path(directory, f"ready-{who}").touch()
while len(list(directory.glob("ready-*"))) < int(sys.argv[4]):  # start together
    time.sleep(0.01)
ws = Sandbox.persistent(SandboxConfig(seed=5, calls=60, living=True), directory / "state").workspace
for j in range(count):
    ws.create_object("assistants", {"name": f"{who}-{j}"})
"""


def test_concurrent_processes_lose_no_write(tmp_path: Path) -> None:
    """Four processes write into one workspace at once: every write is there once, ids are distinct,
    and the journal is intact."""
    persisted(tmp_path / "state")  # the header exists before the race (creating it is tested below)
    writers, per_writer = 4, 12
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"w{k}", str(per_writer), str(writers)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True) for k in range(writers)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    names = [a["name"] for a in persisted(tmp_path / "state").workspace.list_objects("assistants")]
    expected = {f"w{k}-{j}" for k in range(writers) for j in range(per_writer)}
    assert expected <= set(names) and len([n for n in names if n in expected]) == len(expected)
    ids = [a["id"] for a in persisted(tmp_path / "state").workspace.list_objects("assistants")]
    assert len(ids) == len(set(ids))
    (journal,) = (tmp_path / "state").glob("*.jsonl")
    lines = journal.read_text().splitlines()
    assert len(lines) == 1 + writers * per_writer and all(json.loads(line) for line in lines)


def test_processes_racing_to_create_the_state_agree_on_one_anchor(tmp_path: Path) -> None:
    first = persisted(tmp_path, FakeTime(ANCHOR))
    second = persisted(tmp_path, FakeTime(ANCHOR + timedelta(hours=5)))
    assert second.anchor == first.anchor == ANCHOR
    assert second.workspace.data.anchor_ms == ms_of(ANCHOR)


def test_reset_starts_over_and_a_process_still_holding_the_old_workspace_is_told(tmp_path: Path) -> None:
    holder = persisted(tmp_path).workspace
    holder.create_object("assistants", {"name": "Before"})
    assert reset_workspaces(tmp_path) == ["seed5-calls60"]
    with pytest.raises(WorkspaceReset, match="was reset"):
        holder.create_object("assistants", {"name": "After"})
    with pytest.raises(WorkspaceReset):
        holder.list_objects("assistants")
    fresh = persisted(tmp_path).workspace
    assert "Before" not in {a["name"] for a in fresh.list_objects("assistants")}
    assert reset_workspaces(tmp_path / "missing") == []


def test_a_corrupt_or_foreign_state_is_a_clear_error(tmp_path: Path) -> None:
    persisted(tmp_path).workspace.create_object("assistants", {"name": "x"})
    (journal,) = tmp_path.glob("*.jsonl")
    with journal.open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(StateError, match="corrupt line"):
        persisted(tmp_path)
    journal.write_text('{"format": "something else"}\n')
    with pytest.raises(StateError, match="not a usable sandbox state"):
        persisted(tmp_path)
    journal.write_text('{"format":"vapi-agent-sandbox-state","version":1,"seed":9,"calls":60,'
                       '"anchor":"2026-01-01T00:00:00.000Z"}\n')
    with pytest.raises(StateError, match="seed 9"):
        persisted(tmp_path)


def test_a_write_that_no_longer_applies_is_skipped_and_the_rest_replayed(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A journal written by another version (here: a call id that does not exist) does not block the rest."""
    ws = persisted(tmp_path).workspace
    ws.create_object("assistants", {"name": "kept"})
    (journal,) = tmp_path.glob("*.jsonl")
    lines = journal.read_text().splitlines()
    stale = json.dumps({"at": json.loads(lines[1])["at"], "op": "delete_call", "args": ["no-such-call"], "ids": []})
    journal.write_text("\n".join([lines[0], stale, *lines[1:]]) + "\n")
    replayed = persisted(tmp_path).workspace
    assert "kept" in {a["name"] for a in replayed.list_objects("assistants")}
    assert "no longer applies" in caplog.text
