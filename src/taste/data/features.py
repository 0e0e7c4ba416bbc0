"""Whisper-style log-mel features shared by every model: 100 frames/s, natural log of max(mel, 1e-5)."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
import torch
import torchaudio

MEL_PAD_VALUE = math.log(1e-5)  # log-mel of digital silence: padding looks like silence, not like loud zeros


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0

    @classmethod
    def from_dict(cls, d: dict, sample_rate: int = 16000) -> "MelConfig":
        """From params["shared"]["features"] (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw.setdefault("sample_rate", sample_rate)
        return cls(**kw)

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length


@lru_cache(maxsize=8)
def _mel_transform(cfg: MelConfig) -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
        f_min=float(cfg.f_min), f_max=float(cfg.f_max), power=2.0, norm="slaney", mel_scale="slaney",
        center=True)


def n_frames(n_samples: int, cfg: MelConfig = MelConfig()) -> int:
    """Frames log_mel returns for n_samples: one per hop (Whisper drops the centred STFT's last frame)."""
    return n_samples // cfg.hop_length


def log_mel(wav: torch.Tensor | np.ndarray, cfg: MelConfig = MelConfig()) -> torch.Tensor:
    """wav: Tensor[T] or [B, T] float in [-1, 1] -> log-mel Tensor[n_mels, F] or [B, n_mels, F], F = T // hop."""
    wav = torch.as_tensor(wav, dtype=torch.float32)
    if wav.ndim not in (1, 2):
        raise ValueError(f"log_mel expects [T] or [B, T] audio, got shape {tuple(wav.shape)}")
    if wav.shape[-1] < cfg.hop_length:
        raise ValueError(f"log_mel: audio of {wav.shape[-1]} samples is shorter than one hop ({cfg.hop_length})")
    mel = _mel_transform(cfg)(wav)[..., :-1]  # (..., n_mels, T // hop)
    return torch.log(torch.clamp(mel, min=1e-5))
