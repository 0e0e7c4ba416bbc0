"""Per-model peak memory for models trained one after another in one process.

The training loop reports ru_maxrss, the process's peak so far: the second model trained in a notebook would report
the first one's peak. The process's high-water mark must not be reset to fix that (on Linux writing "5" to
/proc/self/clear_refs does reset it, and the stage's own peak, which its parent reads as the child's ru_maxrss at
exit, would then lose every earlier peak), so each model's peak is sampled instead: a thread reads the process's
resident set (/proc/self/statm) every `interval_s` while the model trains and keeps the largest value. Where /proc
is not there (macOS, Windows) the peak stays the process's, and the result says so.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from taste.training.loop import TrainResult

STATM = Path("/proc/self/statm")
RESUMED_FINISHED = "not trained in this run"  # scope of a run resumed at its last step: its time and peak are not its training's
SAMPLE_INTERVAL_S = 0.02


def current_rss_mb() -> float | None:
    """The process's resident set now, in MiB; None without /proc."""
    try:
        resident_pages = int(STATM.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRssSampler:
    """Context manager: `.peak_mb` is the largest resident set seen between enter and exit (sampled every
    interval_s, plus once at enter and at exit); a peak shorter than the interval can be missed."""

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S):
        self.interval_s, self.peak_mb = interval_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss-sampler", daemon=True)

    def _sample(self) -> None:
        now = current_rss_mb()
        if now is not None and now > self.peak_mb:
            self.peak_mb = now

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> "PeakRssSampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


@dataclass
class OwnPeakTrainResult(TrainResult):
    """A TrainResult whose peak_memory_mb is the peak resident set sampled while this model trained ("model"), or
    the process's peak so far ("process") where it could not be sampled."""

    peak_memory_scope: str = "process"


def train_with_own_peak(train_fn: Callable[..., TrainResult], *args: Any, **kwargs: Any) -> OwnPeakTrainResult:
    """`train_fn(*args, **kwargs)`'s result with the peak memory of this run alone (scope "model"), or of the process
    so far where the resident set cannot be read (scope "process").

    The peak is the whole process's RSS during the run (the model, its data, the base LM held beside it), not the
    model's bytes alone: what a machine needs to train it."""
    if current_rss_mb() is None:
        result = train_fn(*args, **kwargs)
        return OwnPeakTrainResult(**{f.name: getattr(result, f.name) for f in fields(TrainResult)})
    with PeakRssSampler() as sampler:
        result = train_fn(*args, **kwargs)
    values = {f.name: getattr(result, f.name) for f in fields(TrainResult)}
    if result.final_step and result.resumed_from >= result.final_step:  # a finished run found again: no step ran here
        return OwnPeakTrainResult(**values, peak_memory_scope=RESUMED_FINISHED)
    values["peak_memory_mb"] = sampler.peak_mb
    return OwnPeakTrainResult(**values, peak_memory_scope="model")
