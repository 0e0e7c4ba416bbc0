"""Unit streams: batch extraction from stored log-mels, data/units/{split}.safetensors I/O, and audio input checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor

from taste.training.checkpoint import save_safetensors_atomic
from taste.data.loaders import MelSource
from taste.units.data import pad_mels
from taste.units.model import UnitTokenizer


class AudioInputError(ValueError):
    """Audio that cannot be tokenised: wrong sample rate, too short, silent, or not a mono float signal."""


def check_audio(wav: np.ndarray, sr: int, *, expected_sr: int = 16000, min_seconds: float = 0.25,
                silence_rms: float = 1e-4, name: str = "audio") -> np.ndarray:
    """Validate a waveform before tokenising it; returns it as float32 [T] or raises AudioInputError naming `name`."""
    wav = np.asarray(wav)
    if sr != expected_sr:
        raise AudioInputError(f"{name}: sample rate {sr} Hz, expected {expected_sr} Hz (resample first)")
    if wav.ndim != 1:
        raise AudioInputError(f"{name}: expected mono audio [T], got shape {wav.shape}")
    if wav.shape[0] < min_seconds * sr:
        raise AudioInputError(f"{name}: {wav.shape[0] / sr:.3f} s is shorter than the minimum {min_seconds} s")
    wav = wav.astype(np.float32)
    if not np.isfinite(wav).all():
        raise AudioInputError(f"{name}: contains NaN or infinite samples")
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
    if rms < silence_rms:
        raise AudioInputError(f"{name}: silence only (RMS {rms:.2e} < {silence_rms:.0e}); there is no speech to tokenise")
    return wav


def units_from_audio(model: UnitTokenizer, wav: np.ndarray, sr: int, mel_cfg, *, name: str = "audio") -> Tensor:
    """A checked 16 kHz waveform -> LongTensor[U] units at model.cfg.rate_hz. mel_cfg: taste.data.features.MelConfig."""
    from taste.data.features import log_mel

    wav = check_audio(wav, sr, expected_sr=getattr(mel_cfg, "sample_rate", 16000), name=name)
    mel = log_mel(torch.from_numpy(wav), mel_cfg).float()
    units, lengths = model.encode(mel[None], torch.tensor([mel.shape[-1]]))
    return units[0, : int(lengths[0])]


def extract_units(model: UnitTokenizer, features: MelSource, ids: Sequence[str], batch_size: int = 16) -> dict[str, Tensor]:
    """Utterance id -> int16 Tensor[U] units. Sorted by length so batches waste little padding."""
    order = sorted(ids, key=lambda i: features.get(i).shape[-1])
    out: dict[str, Tensor] = {}
    for start in range(0, len(order), batch_size):
        chunk = order[start: start + batch_size]
        mel, lengths = pad_mels([features.get(i).float() for i in chunk])
        units, unit_lengths = model.encode(mel, lengths)
        for i, u, n in zip(chunk, units, unit_lengths.tolist()):
            out[i] = u[:n].to(torch.int16).clone()
    return {i: out[i] for i in ids}


def save_units(units: dict[str, Tensor], path: str | os.PathLike) -> None:
    """data/units/{split}.safetensors: utterance id -> int16 [U] (written atomically)."""
    save_safetensors_atomic({k: v.to(torch.int16) for k, v in units.items()}, path)


def load_units(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a unit file -> {id: LongTensor[U]}; raises FileNotFoundError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: unit file not found (run the units stage)")
    return {k: v.long() for k, v in load_file(str(path)).items()}
