"""Per-word prosody from audio and a word alignment: duration and median F0 (librosa pYIN)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from taste.data.records import WordAlignment
from taste.metrics.duration import word_durations

SAMPLE_RATE = 16000
HOP = 160  # 100 frames/s, the same grid as the aligner


def f0_track(wav16k: np.ndarray, fmin: float = 60.0, fmax: float = 400.0, resolution: float = 0.5,
             n_thresholds: int = 20) -> np.ndarray:
    """F0 in Hz of `wav16k: [T]` at 100 frames/s -> float [F], NaN where unvoiced (pYIN).

    Half-semitone bins and 20 thresholds instead of librosa's 0.1 / 100: ~6x faster, and the per-word medians
    this feeds moved by < 1 Hz on espeak speech.
    """
    import librosa

    wav = np.asarray(wav16k, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"f0_track expects mono audio [T], got shape {wav.shape}")
    if wav.size < 1024:
        return np.full(max(1, wav.size // HOP), np.nan)
    f0, voiced, _ = librosa.pyin(wav, fmin=fmin, fmax=fmax, sr=SAMPLE_RATE, frame_length=1024, hop_length=HOP,
                                 center=True, resolution=resolution, n_thresholds=n_thresholds)
    return np.where(voiced, f0, np.nan).astype(np.float64)


def span_median(track: np.ndarray, start_s: float, end_s: float, frame_rate: float = SAMPLE_RATE / HOP) -> float:
    """Median of the finite values of `track: [F]` between start_s and end_s (NaN when none)."""
    lo = max(0, int(np.floor(start_s * frame_rate)))
    hi = min(len(track), max(lo + 1, int(np.ceil(end_s * frame_rate))))
    seg = track[lo:hi]
    seg = seg[np.isfinite(seg)]
    return float(np.median(seg)) if seg.size else float("nan")


def word_f0(wav16k: np.ndarray, words: Sequence[WordAlignment], track: np.ndarray | None = None) -> np.ndarray:
    """Median F0 (Hz) of each aligned word -> float [N_words], NaN for a word with no voiced frame."""
    track = f0_track(wav16k) if track is None else track
    return np.array([span_median(track, w.start, w.end) for w in words], dtype=np.float64)


def word_prosody(wav16k: np.ndarray, words: Sequence[WordAlignment]) -> list[dict]:
    """One {"word", "start", "duration", "f0"} per aligned word (durations in s, F0 in Hz)."""
    f0 = word_f0(wav16k, words)
    durs = word_durations(words)
    return [{"word": w.word, "start": w.start, "duration": float(d), "f0": float(f)}
            for w, d, f in zip(words, durs, f0)]
