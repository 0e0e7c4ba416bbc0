"""Audio I/O: 16-bit PCM WAV on disk, float32 mono in [-1, 1] in memory (soundfile, never torchaudio.load)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


class AudioReadError(ValueError):
    """The file exists but cannot be decoded as audio."""


class SampleRateError(ValueError):
    """The file's sample rate is not the expected one."""


def read_audio(path: str | Path, expected_sr: int | None = 16000, *, mono: bool = True) -> np.ndarray:
    """Read a sound file -> float32 [T] (mono) or [T, C].

    Raises FileNotFoundError (missing), AudioReadError (undecodable), SampleRateError (rate != expected_sr,
    unless expected_sr is None). Stereo is averaged to mono when `mono` is set.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError variants
        raise AudioReadError(f"{path}: cannot decode audio ({e})") from e
    if expected_sr is not None and sr != expected_sr:
        raise SampleRateError(f"{path}: sample rate {sr} Hz, expected {expected_sr} Hz")
    return wav.mean(axis=1).astype(np.float32) if mono else wav


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """(sample_rate, frames, channels) from the header; raises like read_audio."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
    except Exception as e:
        raise AudioReadError(f"{path}: cannot read audio header ({e})") from e
    return int(info.samplerate), int(info.frames), int(info.channels)


def resample(wav: np.ndarray, from_sr: int, to_sr: int) -> np.ndarray:
    """float audio [T] at `from_sr` -> float32 [T'] at `to_sr` (polyphase, scipy's resample_poly; the input unchanged
    when the rates agree). The one resampler of taste.data: validation, the forced aligner and the synthesiser."""
    if int(from_sr) == int(to_sr):
        return np.asarray(wav, dtype=np.float32)
    from scipy.signal import resample_poly

    g = np.gcd(int(from_sr), int(to_sr))
    return resample_poly(wav, int(to_sr) // g, int(from_sr) // g).astype(np.float32)


def write_audio(path: str | Path, wav: np.ndarray, sr: int = 16000) -> None:
    """Write float audio [T] (or [T, C]) as 16-bit PCM WAV; values are clipped to [-1, 1]."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    sf.write(str(path), wav, sr, subtype="PCM_16", format="WAV")
