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


def test_stage_table_lists_lm_pretrain_between_tokenizer_and_taslm(tmp_path):
    for stage in ("taslm", "lm_pretrain", "tokenizer"):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "stage_time.json").write_text(json.dumps({"stage": stage, "wall_time_s": 10.0,
                                                                      "peak_memory_mb": 100.0}))
    assert [r["stage"] for r in stage_table(tmp_path)] == ["tokenizer", "lm_pretrain", "taslm", "total"]


def test_stage_table_of_a_study_that_has_not_run_has_only_an_empty_total(tmp_path):
    assert [(r["stage"], r["wall_time_s"]) for r in stage_table(tmp_path)] == [("total", 0.0)]


def test_cell_profile_ranks_cells_by_papermill_duration(tmp_path):
    from taste.stages import cell_profile

    def cell(src, seconds=None, kind="code"):
        meta = {} if seconds is None else {"papermill": {"duration": seconds}}
        return {"cell_type": kind, "source": src, "metadata": meta}

    nb = {"cells": [cell("# setup\nimport json", 1.0), cell("notes", None, "markdown"),
                    cell(["# train\n", "model = fit()\n"], 9.0), cell("x = 1")]}
    path = tmp_path / "stage.ipynb"
    path.write_text(json.dumps(nb))
    rows = cell_profile(path)
    assert [(r["cell"], r["seconds"], r["first_line"]) for r in rows] == [(2, 9.0, "model = fit()"),
                                                                        (0, 1.0, "import json")]
    assert [r["share"] for r in rows] == pytest.approx([0.9, 0.1])
    assert len(cell_profile(path, top=1)) == 1
    path.write_text(json.dumps({"cells": [cell("x = 1")]}))
    with pytest.raises(ValueError, match="no papermill cell durations"):
        cell_profile(path)
