"""log-mel + F0 -> waveform with a source-filter synthesiser.

Griffin-Lim on a smooth (regression-average) predicted mel gives audio with almost no harmonic structure, so
pitch trackers find few voiced frames. Here the source is an explicit excitation built from an F0 track (a
band-limited harmonic series where voiced, Gaussian noise where unvoiced) and the filter is the mel envelope:
the excitation's STFT is flattened per frame, multiplied by the target magnitude sqrt(mel_to_linear(mel)) and
inverted with the excitation's own phase. The output therefore carries the given F0 exactly and (roughly)
the input log-mel envelope.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torchaudio
from torch import Tensor

from taste.data.features import MelConfig
from taste.vocoder.griffin_lim import default_mel_config, mel_to_linear

_EPS = 1e-8


def _check_f0(f0: Tensor, cfg: MelConfig, n_frames: int | None = None) -> None:
    if not isinstance(f0, Tensor) or f0.dim() != 1:
        raise ValueError(f"f0 must be a 1-d Tensor[F] of Hz per frame, got "
                         f"{tuple(f0.shape) if isinstance(f0, Tensor) else type(f0).__name__}")
    if n_frames is not None and f0.shape[0] != n_frames:
        raise ValueError(f"f0 has {f0.shape[0]} frames but the mel has {n_frames}: need Tensor[{n_frames}]")
    if f0.shape[0] < 2:
        raise ValueError(f"need at least 2 frames, got {f0.shape[0]}")
    if not torch.isfinite(f0).all():
        raise ValueError("f0 contains NaN or inf")
    if (f0 < 0).any():
        raise ValueError(f"f0 must be >= 0 Hz (0 = unvoiced), min is {float(f0.min()):.3g}")
    if (f0 >= cfg.sample_rate / 2).any():
        raise ValueError(f"f0 must be below Nyquist ({cfg.sample_rate / 2:g} Hz), max is {float(f0.max()):.3g}")


def _frames_to_samples(x: Tensor, hop: int) -> Tensor:
    """Tensor[F] (float64) -> Tensor[F*hop]: linear interpolation between frame centres i*hop, held at the ends."""
    n_frames = x.shape[0]
    pos = torch.arange(n_frames * hop, dtype=torch.float64) / hop
    lo = pos.floor().long().clamp_max(n_frames - 1)
    hi = (lo + 1).clamp_max(n_frames - 1)
    frac = pos - lo.double()
    return x[lo] * (1 - frac) + x[hi] * frac


def _fill_unvoiced(f0: Tensor) -> Tensor:
    """Replace zeros by the nearest voiced value (ties -> earlier) so phase keeps running through unvoiced gaps."""
    voiced = f0 > 0
    if not voiced.any():
        return f0
    idx = torch.arange(f0.shape[0])
    vidx = idx[voiced]
    # nearest voiced frame for every frame
    right = torch.searchsorted(vidx, idx).clamp_max(vidx.shape[0] - 1)
    left = (right - 1).clamp_min(0)
    pick = torch.where((idx - vidx[left]).abs() <= (vidx[right] - idx).abs(), vidx[left], vidx[right])
    return f0[pick]


def _harmonic_sum(phase: Tensor, n_harm: Tensor) -> Tensor:
    """sum_{k=1..N} cos(k*phase) per sample via the Dirichlet kernel (float64; phase wrapped to [-pi, pi))."""
    phi = torch.remainder(phase + torch.pi, 2 * torch.pi) - torch.pi
    half = phi / 2
    den = torch.sin(half)
    small = den.abs() < 1e-7
    ratio = torch.sin(n_harm * half) * torch.cos((n_harm + 1) * half) / torch.where(small, torch.ones_like(den), den)
    return torch.where(small, n_harm, ratio)


def excitation(f0: Tensor, cfg: MelConfig | None = None, noise_level: float = 0.03, seed: int = 0) -> Tensor:
    """F0 Tensor[F] in Hz per frame (0 = unvoiced) -> float32 excitation Tensor[F * hop].

    Voiced: sum_{k: k*f0 < sr/2} cos(k * phase), phase = cumsum(2*pi*f0/sr) of the sample-rate F0 (linear
    interpolation between frame centres i*hop), scaled to unit power, plus noise_level * N(0, 1). Unvoiced:
    N(0, 1). The voicing mask is interpolated the same way, so voiced/unvoiced crossfade over one hop
    (power-complementary weights). Deterministic given seed; the global RNG is not touched.
    """
    cfg = cfg or default_mel_config()
    _check_f0(f0, cfg)
    f0 = f0.detach().cpu().double()
    if not np.isfinite(noise_level) or noise_level < 0:
        raise ValueError(f"noise_level must be a finite number >= 0, got {noise_level}")
    sr, hop = cfg.sample_rate, cfg.hop_length
    n = f0.shape[0] * hop

    voicing = _frames_to_samples((f0 > 0).double(), hop)              # in [0, 1], ramps over one hop
    f0_s = _frames_to_samples(_fill_unvoiced(f0), hop)                 # Hz per sample (0 only if all unvoiced)
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(n, generator=gen, dtype=torch.float64)

    if (f0_s > 0).any():
        # phase at sample n = 2*pi/sr * sum_{m<=n} f0[m]; float64 so a 10 s utterance has no visible drift
        phase = torch.cumsum(2 * torch.pi * f0_s / sr, dim=0)
        # harmonics k with k*f0 < sr/2 (per sample): N = ceil(sr / (2 f0)) - 1
        n_harm = torch.where(f0_s > 0, torch.ceil(sr / 2 / f0_s.clamp_min(_EPS)) - 1, torch.zeros_like(f0_s))
        harm = _harmonic_sum(phase, n_harm) * torch.sqrt(2.0 / n_harm.clamp_min(1.0))  # power of N cosines is N/2
        harm = torch.where(n_harm > 0, harm, torch.zeros_like(harm))
    else:
        harm = torch.zeros(n, dtype=torch.float64)

    noise_gain = torch.sqrt((1 - voicing) + voicing * float(noise_level) ** 2)
    return (torch.sqrt(voicing) * harm + noise_gain * noise).float()


@lru_cache(maxsize=8)
def _filterbank(cfg: MelConfig) -> Tensor:
    """Tensor[n_freqs, n_mels], the filterbank taste.data.features.log_mel applies (mel = fb.T @ power)."""
    return torchaudio.functional.melscale_fbanks(
        cfg.n_fft // 2 + 1, float(cfg.f_min), float(cfg.f_max), cfg.n_mels, cfg.sample_rate,
        norm="slaney", mel_scale="slaney")


def target_power(mel: Tensor, cfg: MelConfig, n_iter: int = 30) -> Tensor:
    """log-mel Tensor[n_mels, F] -> non-negative power spectrogram Tensor[n_fft // 2 + 1, F] whose mel is ~ the input.

    Starts from mel_to_linear (pseudo-inverse, negatives clamped to 0 - which can leave some bands several
    nats off, e.g. ~1.6 nat around 1.2-1.7 kHz on a smooth formant envelope) and refines it with n_iter
    multiplicative (Richardson-Lucy / KL-NMF) updates P <- P * fb @ (M / fb.T P) / fb @ 1, which keep P >= 0.
    """
    power = mel_to_linear(mel, cfg)
    if n_iter <= 0:
        return power
    fb = _filterbank(cfg)
    target = (torch.exp(mel.float()) - 1e-5).clamp_min(0.0)     # same floor convention as mel_to_linear
    cover = fb.sum(dim=1, keepdim=True)                          # [n_freqs, 1]; 0 for bins no filter sees
    covered = cover > 0
    power = torch.where(covered, power.clamp_min(1e-12), power)  # strictly positive so every bin can move
    for _ in range(int(n_iter)):
        est = fb.T @ power
        ratio = torch.where(est > 0, target / est.clamp_min(1e-30), torch.zeros_like(est))
        power = torch.where(covered, power * (fb @ ratio) / cover.clamp_min(1e-30), power)
    return power


@lru_cache(maxsize=8)
def _window(n_fft: int) -> Tensor:
    return torch.hann_window(n_fft)            # same (periodic) window as torchaudio's MelSpectrogram


def mel_to_wave_source_filter(mel: Tensor, f0: Tensor, cfg: MelConfig | None = None, seed: int = 0,
                              noise_level: float = 0.03, target_iters: int = 30) -> np.ndarray:
    """log-mel Tensor[n_mels, F] + F0 Tensor[F] (Hz, 0 = unvoiced) at 100 fps -> float32 waveform [F * hop] in [-1, 1].

    Same length and level convention as taste.vocoder.griffin_lim.mel_to_wave; deterministic given seed.
    The excitation (see `excitation`) is STFT'd with the feature STFT (hann, n_fft, hop, centred), each frame
    divided by its RMS magnitude over bins, multiplied by sqrt(target_power(mel)) (target_iters refinement
    steps of mel_to_linear; 0 = plain mel_to_linear) and inverted with the excitation's phase.
    """
    cfg = cfg or default_mel_config()
    if not isinstance(mel, Tensor) or mel.dim() != 2 or mel.shape[0] != cfg.n_mels:
        raise ValueError(f"mel_to_wave_source_filter expects a log-mel Tensor[{cfg.n_mels}, F], got shape "
                         f"{tuple(mel.shape) if isinstance(mel, Tensor) else type(mel).__name__}")
    n_frames = mel.shape[1]
    if n_frames < 2:
        raise ValueError(f"mel_to_wave_source_filter: need at least 2 frames, got {n_frames}")
    if not torch.isfinite(mel).all():
        raise ValueError("mel contains NaN or inf")
    _check_f0(f0, cfg, n_frames)

    exc = excitation(f0, cfg, noise_level=noise_level, seed=seed)
    win = _window(cfg.n_fft)
    spec = torch.stft(exc, cfg.n_fft, cfg.hop_length, cfg.n_fft, win, center=True, return_complex=True)
    # spec: [n_freqs, F + 1]; flatten each frame to unit RMS magnitude over bins (keeps harmonic peaks/phase)
    rms = spec.abs().pow(2).mean(dim=0, keepdim=True).sqrt()
    target = target_power(mel.detach().cpu(), cfg, n_iter=target_iters).sqrt()
    # log_mel drops the centred STFT's last frame: add it back (a copy) so the istft length matches F * hop
    target = torch.cat([target, target[:, -1:]], dim=-1)
    out = spec / (rms + _EPS) * target
    wav = torch.istft(out, cfg.n_fft, cfg.hop_length, cfg.n_fft, win, center=True, length=n_frames * cfg.hop_length)
    return wav.clamp(-1.0, 1.0).numpy().astype(np.float32)
