"""log-mel -> waveform: pseudo-inverse of the mel filterbank, then torchaudio's Griffin-Lim phase reconstruction."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torchaudio
from torch import Tensor

from taste.data.features import MelConfig


def default_mel_config() -> MelConfig:
    return MelConfig()


@lru_cache(maxsize=8)
def _inverse_filterbank(cfg: MelConfig) -> Tensor:
    """Tensor[n_freqs, n_mels]: least-squares inverse of the filterbank taste.data.features.log_mel applies."""
    fb = torchaudio.functional.melscale_fbanks(
        cfg.n_fft // 2 + 1, float(cfg.f_min), float(cfg.f_max), cfg.n_mels, cfg.sample_rate,
        norm="slaney", mel_scale="slaney")                  # (n_freqs, n_mels): mel = fb.T @ spec
    return torch.linalg.pinv(fb.T.double()).float()


@lru_cache(maxsize=8)
def _griffin_lim(cfg: MelConfig, n_iter: int) -> torchaudio.transforms.GriffinLim:
    return torchaudio.transforms.GriffinLim(n_fft=cfg.n_fft, n_iter=n_iter, win_length=cfg.n_fft,
                                            hop_length=cfg.hop_length, power=2.0, momentum=0.99)


def mel_to_linear(mel: Tensor, cfg: MelConfig) -> Tensor:
    """log-mel Tensor[n_mels, F] (natural log of power mel) -> power spectrogram Tensor[n_fft // 2 + 1, F], >= 0."""
    if mel.dim() != 2 or mel.shape[0] != cfg.n_mels:
        raise ValueError(f"mel_to_wave expects a log-mel Tensor[{cfg.n_mels}, F], got shape {tuple(mel.shape)}")
    power_mel = torch.exp(mel.float()) - 1e-5      # undo log(max(mel, 1e-5)); floor values become ~0
    return (_inverse_filterbank(cfg) @ power_mel.clamp_min(0.0)).clamp_min(0.0)


def mel_to_wave(mel: Tensor, cfg: MelConfig | None = None, n_iter: int = 32, seed: int = 0) -> np.ndarray:
    """log-mel Tensor[n_mels, F] at 100 fps -> float32 waveform [F * hop] in [-1, 1] (deterministic given seed)."""
    cfg = cfg or default_mel_config()
    spec = mel_to_linear(mel.detach().cpu(), cfg)
    if spec.shape[-1] < 2:
        raise ValueError(f"mel_to_wave: need at least 2 frames, got {spec.shape[-1]}")
    # log_mel drops the centred STFT's last frame: add it back (a copy) so the istft length matches F * hop
    spec = torch.cat([spec, spec[:, -1:]], dim=-1)
    gl = _griffin_lim(cfg, int(n_iter))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)                       # GL starts from random phases
        wav = torchaudio.functional.griffinlim(
            spec, gl.window, gl.n_fft, gl.hop_length, gl.win_length, gl.power, gl.n_iter, gl.momentum,
            length=(spec.shape[-1] - 1) * cfg.hop_length, rand_init=True)
    return wav.clamp(-1.0, 1.0).numpy().astype(np.float32)
