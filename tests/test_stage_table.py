"""The stage table that benchmarks/bench_stage_table.py prints: pipeline order, shares, total, peak memory."""
import json

import pytest

from taste.stages import stage_table


def test_stage_table_orders_stages_and_sums_them(tmp_path):
    for stage, wall, mem in [("taslm", 300.0, 2000.0), ("prepare", 100.0, 1500.0)]:
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "stage_time.json").write_text(json.dumps({"stage": stage, "wall_time_s": wall,
                                                                      "peak_memory_mb": mem}))
    rows = stage_table(tmp_path)
    assert [r["stage"] for r in rows] == ["prepare", "taslm", "total"]
    assert [r["share"] for r in rows] == pytest.approx([0.25, 0.75, 1.0])
    assert rows[-1]["wall_time_s"] == 400.0 and rows[-1]["peak_memory_mb"] == 2000.0


def test_stage_table_of_a_study_that_has_not_run_has_only_an_empty_total(tmp_path):
    assert [(r["stage"], r["wall_time_s"]) for r in stage_table(tmp_path)] == [("total", 0.0)]
