"""JudgePool: the parallel audio judging equals report.measure_audio (same rows, values, order), and refuses a leaky
recogniser before any worker starts."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import pytest

from taste.evaluation import report
from taste.evaluation.audio_judges import JudgePool, JudgeSettings
from taste.metrics.recognizer import JudgeLeakError


class _StatefulRecognizer:
    """Like pocketsphinx, its output depends on every call before it (so a reordered stream would show)."""

    def __init__(self):
        self.state = 0.0
        self.calls = 0

    def transcribe(self, wav: np.ndarray) -> str:
        self.calls += 1
        self.state = 0.5 * self.state + float(np.abs(wav).mean())
        return " ".join(["word"] * (1 + int(self.state * 37) % 4)) + f" n{self.calls}"

    @property
    def real_time_factor(self) -> float:
        return 0.5


def _embed(wav: np.ndarray) -> np.ndarray:
    return np.array([np.abs(wav).mean(), wav.std(), len(wav) / 16000.0, 1.0], dtype=np.float32)


def _quality(wav: np.ndarray) -> dict:
    return {"ovrl": 1 + float(wav.std()), "sig": 2.0, "bak": 3 + len(wav) / 1e6, "p808": 4.0}


def _utmos(wav: np.ndarray) -> float:
    return 2 + float(np.abs(wav).max())


@dataclass(frozen=True)
class FakeSettings:
    """The JudgeSettings protocol with fake judges (module-level: the spawned workers unpickle it)."""

    leak: bool = False

    def check(self) -> None:
        if self.leak:
            raise JudgeLeakError("leaked")

    def recognizer(self):
        return _StatefulRecognizer()

    def stateless(self):
        return _embed, _quality, _utmos


def _study(tmp_path):
    rng = np.random.default_rng(0)
    audio = {}
    items = []
    for p in range(3):
        audio[f"prompt{p}.wav"] = rng.normal(0, 0.1, 16000 + 4000 * p).astype(np.float32)
        for s, n in zip(report.SYSTEMS, (24000, 800, 9000 + 1000 * p, 12000)):  # s3_lm's clip is inaudible
            audio[f"{s}{p}.wav"] = rng.normal(0, 0.05 * (p + 1), n).astype(np.float32)
            items.append(report.Continuation(s, f"p{p}", f"story{p}", "the prompt text", f"prompt{p}.wav",
                                             "some intended words", f"{s}{p}.wav"))
    return items, audio.__getitem__


def _asr(wavs):
    return [f"asr {len(w)}" if len(w) > 1000 else "" for w in wavs]


def _measure(workers: int, items, read):
    with JudgePool(FakeSettings(), workers=workers) as pool:
        floor = pool.transcribe([read("prompt0.wav"), read("prompt2.wav")])  # the stream goes on after the floor
        return floor, pool.measure_audio(items, read, _asr, quality_prompts={"p0", "p2"})


@pytest.mark.slow
def test_parallel_equals_sequential(tmp_path):
    items, read = _study(tmp_path)
    floor_1, seq = _measure(1, items, read)
    threads = torch.get_num_threads()
    floor_3, par = _measure(3, items, read)
    assert torch.get_num_threads() == threads  # the caller's 1-thread spell ends with the pool
    assert floor_1 == floor_3
    pd.testing.assert_frame_equal(seq, par, check_exact=True)
    assert seq["ps_text"].str.endswith(f"n{2 + 9}").any()  # 9 audible continuations after 2 floor clips
    assert seq.loc[seq["system"] == "s3_lm", "speaker_sim"].isna().all()
    assert seq.loc[seq["prompt_id"] == "p1", "dnsmos_ovrl"].isna().all()


def test_sequential_pool_is_report_measure_audio(tmp_path):
    items, read = _study(tmp_path)
    ps = _StatefulRecognizer()
    direct = report.measure_audio(items, read=read, asr=_asr, recognizer=ps.transcribe, speaker_embed=_embed,
                                  quality=_quality, utmos=_utmos, quality_prompts={"p0", "p2"})
    with JudgePool(FakeSettings(), workers=1) as pool:
        pd.testing.assert_frame_equal(direct, pool.measure_audio(items, read, _asr, {"p0", "p2"}), check_exact=True)


def test_leak_is_refused_before_workers_start():
    with pytest.raises(JudgeLeakError):
        JudgePool(FakeSettings(leak=True), workers=2)
    with pytest.raises(JudgeLeakError):
        JudgeSettings(("the cat sat",), ("The cat sat.",)).check()
