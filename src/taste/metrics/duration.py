"""Per-word duration measures: consistency between two renditions of the same words (the paper's 25 ms criterion)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from taste.data.records import WordAlignment


def word_durations(words: Sequence[WordAlignment]) -> np.ndarray:
    """Durations in seconds of an alignment -> float [N_words]."""
    return np.array([w.duration for w in words], dtype=np.float64)


def matched_durations(ref: Sequence[WordAlignment], hyp: Sequence[WordAlignment]) -> tuple[np.ndarray, np.ndarray]:
    """Durations of two alignments of the same word sequence -> (ref [N], hyp [N]); raises if the words differ."""
    ref_words, hyp_words = [w.word for w in ref], [w.word for w in hyp]
    if ref_words != hyp_words:
        raise ValueError(f"alignments cover different words: {ref_words} vs {hyp_words}")
    return word_durations(ref), word_durations(hyp)


def duration_consistency(ref_durations: Sequence[float], hyp_durations: Sequence[float]) -> dict[str, float]:
    """Agreement of per-word durations (seconds) -> {"within_25ms", "within_50ms", "pearson_r", "n"}.

    within_X = share of words whose |hyp - ref| <= X; pearson_r is NaN when either side is constant or n < 2.
    """
    ref = np.asarray(ref_durations, dtype=np.float64).ravel()
    hyp = np.asarray(hyp_durations, dtype=np.float64).ravel()
    if ref.shape != hyp.shape:
        raise ValueError(f"duration_consistency: {ref.size} reference vs {hyp.size} hypothesis durations")
    if ref.size == 0:
        raise ValueError("duration_consistency: no durations")
    diff = np.abs(hyp - ref)
    eps = 1e-9  # durations come in 10 ms frames; keep exactly-25 ms differences inside
    r = float("nan")
    if ref.size >= 2 and ref.std() > 0 and hyp.std() > 0:
        r = float(np.corrcoef(ref, hyp)[0, 1])
    return {"within_25ms": float(np.mean(diff <= 0.025 + eps)), "within_50ms": float(np.mean(diff <= 0.050 + eps)),
            "pearson_r": r, "n": int(ref.size)}


def alignment_consistency(ref: Sequence[WordAlignment], hyp: Sequence[WordAlignment]) -> dict[str, float]:
    """duration_consistency of two alignments of the same words."""
    return duration_consistency(*matched_durations(ref, hyp))
