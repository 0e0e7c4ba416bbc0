"""Per-model peak memory (the sampled resident set) and the metrics.json entries of the LM stages' trained models."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from taste.training import memory
from taste.lm import pipeline as P
from taste.training import TrainResult

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/statm is Linux's")


def _fake_train(mib: int, hold_s: float = 0.2):
    big = np.ones(mib * 2**20 // 8)  # every page touched
    time.sleep(hold_s)  # several sampling intervals
    del big
    return TrainResult(history=[{"step": 1, "loss": 1.0}], wall_time_s=2.0, peak_memory_mb=1e6, final_step=1)


@linux_only
def test_the_second_model_reports_its_own_peak_not_the_first_ones():
    first = memory.train_with_own_peak(_fake_train, 300)
    second = memory.train_with_own_peak(_fake_train, 10)
    assert first.peak_memory_scope == second.peak_memory_scope == "model"
    assert first.peak_memory_mb > memory.current_rss_mb() + 250
    assert second.peak_memory_mb < first.peak_memory_mb - 250
    assert (second.history, second.wall_time_s, second.final_step) == ([{"step": 1, "loss": 1.0}], 2.0, 1)


_CHILD = ("from tests.lm.test_run_metrics import _fake_train\n"
          "from taste.training import memory\n"
          "print(memory.current_rss_mb(), flush=True)\n"
          "memory.train_with_own_peak(_fake_train, 300)\n"
          "memory.train_with_own_peak(_fake_train, 10)\n")


def _child_peak_over_baseline() -> float:
    """Run _CHILD; -> its own ru_maxrss at exit (what a stage's parent reads) minus its RSS after imports, in MiB."""
    proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    baseline = float(proc.stdout.readline())
    proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    assert status == 0
    return usage.ru_maxrss / 1024 - baseline


@linux_only
def test_per_model_peaks_leave_the_stage_peak_intact():
    """The stage's peak is its process's ru_maxrss as the parent sees it at exit (os.wait4 of that child alone,
    over its RSS after imports): the per-model figures must not reset it, so the 300 MiB model's peak stays."""
    assert _child_peak_over_baseline() > 250


@linux_only
def test_a_finished_run_found_again_reports_no_training_time_or_peak():
    def resumed_at_end():
        return TrainResult(history=[{"step": 9, "loss": 1.0}], wall_time_s=0.2, peak_memory_mb=900.0,
                           resumed_from=10, final_step=10)

    result = memory.train_with_own_peak(resumed_at_end)
    assert result.peak_memory_scope == memory.RESUMED_FINISHED
    entry = P.run_metrics(result)
    assert entry["train_wall_s"] is None and entry["train_peak_memory_mb"] is None
    assert entry["resumed_from_step"] == 10
    partly = memory.train_with_own_peak(lambda: TrainResult(wall_time_s=5.0, resumed_from=4, final_step=10))
    assert partly.peak_memory_scope == "model" and P.run_metrics(partly)["train_wall_s"] == 5.0


def test_without_proc_the_peak_is_the_process_and_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(memory, "STATM", tmp_path / "no" / "statm")
    assert memory.current_rss_mb() is None
    result = memory.train_with_own_peak(_fake_train, 1, 0.0)
    assert result.peak_memory_scope == "process" and result.peak_memory_mb == 1e6


def test_run_metrics_keeps_the_metrics_json_shape():
    result = memory.OwnPeakTrainResult(history=[{"step": 0, "loss": 3.0}, {"step": 9, "lr": 1e-3, "loss": 1.234567,
                                                                       "unit_ce": 2.000049}],
                                  wall_time_s=396.66, peak_memory_mb=1716.94, peak_memory_scope="model")
    dev = {"loss": 1.42099, "unit_ce": 2.51304}
    assert P.run_metrics(result, dev) == {
        "final_train": {"loss": 1.2346, "unit_ce": 2.0}, "train_wall_s": 396.7, "train_peak_memory_mb": 1716.9,
        "train_peak_memory_scope": "model", "resumed_from_step": 0, "dev": {"loss": 1.421, "unit_ce": 2.513}}
    # a plain TrainResult (the training loop's): its peak is the process's; no dev losses, no "dev" key
    plain = P.run_metrics(TrainResult(wall_time_s=1.0, peak_memory_mb=2.0))
    assert plain == {"final_train": {}, "train_wall_s": 1.0, "train_peak_memory_mb": 2.0,
                     "train_peak_memory_scope": "process", "resumed_from_step": 0}
    json.dumps(plain)


def test_text_lm_metrics_trained_and_loaded():
    model = torch.nn.Linear(1000, 1000)  # 1.001 M parameters
    result = memory.OwnPeakTrainResult(history=[{"step": 5, "lr": 1e-3, "loss": 1.64331, "ce": 1.64331}],
                                  wall_time_s=559.94, peak_memory_mb=1598.91, peak_memory_scope="model")
    run = SimpleNamespace(model=model, result=result, heldout_ppl=5.2049, heldout_tokens=34305)
    trained = P.text_lm_metrics(run)
    # the committed outputs/lm_pretrain/metrics.json's keys and order, then the peak's scope
    assert list(trained) == ["parameters_m", "heldout_perplexity", "heldout_tokens", "final_train_loss",
                             "train_wall_s", "train_peak_memory_mb", "final_train", "train_peak_memory_scope",
                             "resumed_from_step"]
    assert trained == {"parameters_m": 1.0, "heldout_perplexity": 5.2, "heldout_tokens": 34305,
                       "final_train_loss": 1.6433, "train_wall_s": 559.9, "train_peak_memory_mb": 1598.9,
                       "final_train": {"loss": 1.6433, "ce": 1.6433}, "train_peak_memory_scope": "model",
                       "resumed_from_step": 0}
    loaded = P.text_lm_metrics(SimpleNamespace(model=model, result=None, heldout_ppl=9.0, heldout_tokens=10))
    assert loaded == {"parameters_m": 1.0, "heldout_perplexity": 9.0, "heldout_tokens": 10,
                      "final_train_loss": None, "train_wall_s": 0.0, "train_peak_memory_mb": None}
