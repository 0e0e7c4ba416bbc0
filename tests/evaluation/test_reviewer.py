"""Reviewer: metric flattening and comparison on small metric files, the table, the exit status."""

from __future__ import annotations

import json
import math
import subprocess

import pytest

from taste.evaluation.reviewer import (
    MetricsFileError,
    compare,
    compare_trees,
    flatten,
    format_table,
    main,
    read_metrics,
)

COMMITTED = {"cascade": {"embed_sim": 0.40, "probe_storycloze": 0.80}, "ordering": {"x": 1.2},
             "run": {"wall_time_s": 300.0, "note": "ok"}}


def _write(root, stage, data):
    path = root / "outputs" / stage / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


def test_compare_within_and_beyond_tolerance():
    rerun = {"cascade": {"embed_sim": 0.41, "probe_storycloze": 0.70}, "ordering": {"x": 1.2, "y": 2.0},
             "run": {"wall_time_s": 900.0, "note": "ok"}}
    diffs = {d.key: d for d in compare(COMMITTED, rerun, tolerance=0.05)}
    assert diffs["cascade.embed_sim"].status == "ok"  # 2.5% off
    assert diffs["cascade.probe_storycloze"].status == "DIFF"  # 12.5% off
    assert diffs["cascade.probe_storycloze"].rel_diff == pytest.approx(0.125)
    assert diffs["ordering.x"].status == "ok" and diffs["ordering.y"].status == "new"
    assert diffs["run.wall_time_s"].status == "skipped"  # machine-dependent, never compared
    assert diffs["run.note"].status == "ok"
    assert not diffs["ordering.y"].failed and diffs["cascade.probe_storycloze"].failed


def test_compare_missing_nan_and_zero():
    diffs = {d.key: d for d in compare({"a": 1.0, "b": float("nan"), "c": 0.0, "d": "x"},
                                        {"b": float("nan"), "c": 0.0, "d": "y"}, 0.05)}
    assert diffs["a"].status == "MISSING" and diffs["b"].status == "ok" and diffs["c"].status == "ok"
    assert diffs["d"].status == "DIFF"
    assert compare({"c": 0.0}, {"c": 0.5}, 0.05)[0].status == "DIFF"
    with pytest.raises(ValueError):
        compare({}, {}, -1)


def test_table_is_readable(tmp_path):
    diffs = compare(COMMITTED, {"cascade": {"embed_sim": 0.5}}, 0.05, "outputs/evaluate/metrics.json")
    table = format_table(diffs, 0.05)
    assert "cascade.embed_sim" in table and "DIFF" in table and "MISSING" in table and "25.00%" in table
    assert "differ or are missing" in table.splitlines()[-1]


def test_main_with_given_copy(tmp_path, capsys):
    repo, copy = tmp_path / "repo", tmp_path / "copy"
    _write(repo, "evaluate", COMMITTED)
    _write(copy, "evaluate", COMMITTED)
    assert main(["--repo", str(repo), "--copy", str(copy), "--tolerance", "0.01"]) == 0
    assert "all within tolerance" in capsys.readouterr().out
    changed = json.loads(json.dumps(COMMITTED))
    changed["cascade"]["embed_sim"] = 0.2
    _write(copy, "evaluate", changed)
    assert main(["--repo", str(repo), "--copy", str(copy), "--tolerance", "0.01"]) == 1
    out = capsys.readouterr().out
    assert "cascade.embed_sim" in out and "DIFF" in out


def test_missing_stage_in_copy_fails(tmp_path):
    _write(tmp_path / "repo", "evaluate", COMMITTED)
    _write(tmp_path / "repo", "swap", {"t": 1.0})
    _write(tmp_path / "copy", "evaluate", COMMITTED)
    diffs = compare_trees(tmp_path / "repo", tmp_path / "copy", 0.05)
    assert any(d.failed and "swap" in d.file for d in diffs)
    with pytest.raises(MetricsFileError, match="no committed"):
        compare_trees(tmp_path / "copy" / "nothing", tmp_path / "copy", 0.05)


def test_bad_metrics_files(tmp_path):
    (tmp_path / "m.json").write_text("[1, 2]")
    with pytest.raises(MetricsFileError, match="JSON object"):
        read_metrics(tmp_path / "m.json")
    (tmp_path / "m.json").write_text("{oops")
    with pytest.raises(MetricsFileError, match="not valid JSON"):
        read_metrics(tmp_path / "m.json")
    with pytest.raises(MetricsFileError, match="not found"):
        read_metrics(tmp_path / "none.json")


def test_rerun_in_clean_git_clone(tmp_path, capsys):
    # A toy "study" whose rerun command rewrites the metric: the review reruns it in a clone and sees the change.
    repo = tmp_path / "repo"
    _write(repo, "evaluate", {"acc": 0.5})
    (repo / "params.yaml").write_text("evaluation:\n  tolerance: 0.05\n")
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "toy")
    same = "python3 -c \"open('outputs/evaluate/metrics.json','w').write('{\\\"acc\\\": 0.5}')\""
    assert main(["--repo", str(repo), "--command", same]) == 0
    drift = "python3 -c \"open('outputs/evaluate/metrics.json','w').write('{\\\"acc\\\": 0.9}')\""
    assert main(["--repo", str(repo), "--command", drift]) == 1
    assert "80.00%" in capsys.readouterr().out
    # A rerun that writes nothing must not pass on the committed copy that git carried into the clone.
    assert main(["--repo", str(repo), "--command", "true && rm -f nothing"]) == 1
    assert "MISSING" in capsys.readouterr().out


def test_deterministic_metrics_compare_exactly():
    from taste.evaluation.reviewer import compare_values

    diffs = {d.key: d for d in compare({"wer": 0.25, "n": 10, "ci": {"lo": 0.1}},
                                       {"wer": 0.25 + 1e-12, "n": 10, "ci": {"lo": 0.1}})}
    assert diffs["wer"].status == "DIFF" and diffs["n"].status == "ok" and diffs["ci.lo"].status == "ok"
    assert compare_values(0.0, 1e-15, 0.0) == (math.inf, False)  # no absolute slack near zero either
    assert compare({"wer": 0.25}, {"wer": 0.26}, tolerance=0.05)[0].status == "ok"  # an explicit global tolerance


def test_per_metric_tolerance_only_where_listed():
    from taste.evaluation.reviewer import TOLERANCES, metric_tolerance

    assert all(len(reason) > 20 and t > 0 for _, t, reason in TOLERANCES)  # every entry says why
    table = (("*.dnsmos", 1e-3, "onnxruntime's float sums may be reordered"),)
    old, new = {"a": {"dnsmos": 3.0, "wer": 0.5}}, {"a": {"dnsmos": 3.002, "wer": 0.5000001}}
    diffs = {d.key: d for d in compare(old, new, tolerances=table)}
    assert diffs["a.dnsmos"].status == "ok" and diffs["a.wer"].status == "DIFF"
    assert compare({"a": {"dnsmos": 3.0}}, {"a": {"dnsmos": 3.01}}, tolerances=table)[0].status == "DIFF"
    assert metric_tolerance("a.dnsmos", 0.0, table) == 1e-3 and metric_tolerance("a.wer", 0.0, table) == 0.0
    assert metric_tolerance("a.dnsmos", 0.05, table) == 0.05
    with pytest.raises(ValueError):
        compare(old, new, tolerances=(("*", -1.0, "negative"),))


@pytest.mark.parametrize("key", [
    "fit_s", "timings_s.encoder_states_s", "timings_s.training_s", "timings_s.model_rows_s",
    "timings_s.audio_rows_s", *(f"continuation.per_system.taslm_embed.{k}" for k in (
        "lm_s_per_speech_s", "end_to_end_s_per_speech_s", "share_asr", "share_encode", "share_lm", "share_decode",
        "share_vocoder")),
    "train_wall_s", "training.rvq.peak_memory_mb", "test_rtf"])
def test_volatile_keys_are_shown_not_compared(key):
    from taste.evaluation.reviewer import is_volatile

    assert is_volatile(key)
    (d,) = compare(flatten_inverse(key, 1.0), flatten_inverse(key, 2.0))
    assert d.status == "skipped" and not d.failed


@pytest.mark.parametrize("key", ["dev_wer", "continuation.per_system.cascade.seconds_per_prompt",
                                 "continuation.per_system.cascade.lm_steps_per_speech_s", "final_train_loss"])
def test_deterministic_keys_are_compared(key):
    from taste.evaluation.reviewer import is_volatile

    assert not is_volatile(key)
    assert compare(flatten_inverse(key, 1.0), flatten_inverse(key, 2.0))[0].status == "DIFF"


def flatten_inverse(key: str, value: float) -> dict:
    out: dict = {}
    node = out
    *parents, leaf = key.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return out
