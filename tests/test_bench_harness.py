"""The benchmarks' shared harness: interleaved order, median and spread, the JSON a bar reads (nothing timed)."""

from __future__ import annotations

import json

import pytest

from bench import harness


def test_rounds_alternate_the_order_of_the_contenders() -> None:
    assert [harness.order("ABC", i) for i in range(3)] == [list("ABC"), list("CBA"), list("ABC")]


def test_summary_is_median_and_spread_of_every_sample() -> None:
    assert harness.summary([3.0, 1.0, 2.0, 10.0]) == {
        "median": 2.5, "min": 1.0, "max": 10.0, "spread": 9.0, "spread_pct": 360.0, "values": [3.0, 1.0, 2.0, 10.0]}


def test_a_scenario_runs_every_contender_once_per_round_and_reports_the_load(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "load_average", lambda: [0.5, 0.25, 0.125])
    seen: list[tuple[str, int]] = []

    def measure(name: str, index: int) -> dict[str, float]:
        seen.append((name, index))
        return {"seconds": float(len(seen))}

    scenario = harness.Scenario("s", workload={"n": 1}, ideal={"seconds": 0.0}, contenders=["a", "b"],
                                columns={"seconds": "seconds"}).run(3, measure)
    assert seen == [("a", 0), ("b", 0), ("b", 1), ("a", 1), ("a", 2), ("b", 2)]
    result = harness.Result("bench", quick=False, rounds=3, scenarios=[scenario])
    document = json.loads(json.dumps(result.to_json()))
    (entry,) = document["scenarios"]
    a, b = entry["contenders"]
    assert entry["rounds"] == 3 and a["figures"]["seconds"]["values"] == [1.0, 4.0, 5.0]
    assert b["figures"]["seconds"]["median"] == 3.0 and a["load_1min"] == [0.5, 0.5, 0.5]
    assert len(document["load_average"]["start"]) == 3 and document["load_average"]["samples_1min"]["max"] == 0.5
    table = harness.markdown(document)
    assert "| a | 4 [1-5] | 0.5 0.5 0.5 |" in table and "| b | 3 [2-6] | 0.5 0.5 0.5 |" in table


def test_fewer_than_three_rounds_is_refused() -> None:
    args = harness.parser("x").parse_args(["--rounds", "2"])
    with pytest.raises(SystemExit, match="at least 3"):
        harness.check_rounds(args)
