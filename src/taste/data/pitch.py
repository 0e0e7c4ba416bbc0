"""F0 tracking with YIN (de Cheveigné & Kawahara 2002), vectorised over frames with FFT autocorrelation and aligned
with the log-mel features: one value per hop, frame i centred at sample i * hop_length, 0.0 Hz where unvoiced.
`reference_track_pitch` is the same algorithm written as a plain per-frame loop, for tests."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PitchConfig:
    sample_rate: int = 16000
    hop_length: int = 160        # 100 frames/s, as MelConfig
    frame_length: int = 768      # analysis frame in samples: YIN window + the longest lag
    f0_min: float = 60.0
    f0_max: float = 500.0
    threshold: float = 0.35      # voiced when the cumulative mean normalised difference dips below this
    silence_db: float = -45.0    # frames this far below the utterance's loudest frame (RMS) are unvoiced

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.hop_length <= 0:
            raise ValueError(f"PitchConfig: sample_rate ({self.sample_rate}) and hop_length ({self.hop_length}) "
                             "must be positive")
        if not 0 < self.f0_min < self.f0_max <= self.sample_rate / 2:
            raise ValueError(f"PitchConfig: need 0 < f0_min ({self.f0_min}) < f0_max ({self.f0_max}) <= "
                             f"sample_rate / 2 ({self.sample_rate / 2})")
        if self.frame_length < 2 * self.tau_max + 1:
            raise ValueError(f"PitchConfig: frame_length {self.frame_length} must cover two periods at f0_min "
                             f"{self.f0_min} Hz (>= {2 * self.tau_max + 1} samples)")
        if not 0 < self.threshold < 1:
            raise ValueError(f"PitchConfig: threshold must lie in (0, 1), got {self.threshold}")
        if not self.silence_db < 0:
            raise ValueError(f"PitchConfig: silence_db must be negative (dB below the loudest frame), "
                             f"got {self.silence_db}")

    @classmethod
    def from_dict(cls, d: dict) -> "PitchConfig":
        """From params["shared"]["pitch"] (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def tau_min(self) -> int:
        """Shortest lag searched (samples), the period at f0_max."""
        return int(self.sample_rate // self.f0_max)

    @property
    def tau_max(self) -> int:
        """Longest lag searched (samples), the period at f0_min."""
        return int(math.ceil(self.sample_rate / self.f0_min))

    @property
    def window(self) -> int:
        """YIN integration window W: the frame minus lags 0..tau_max + 1 (one extra for interpolation)."""
        return self.frame_length - self.tau_max - 1


def _check_wav(wav: np.ndarray | torch.Tensor, cfg: PitchConfig) -> torch.Tensor:
    """-> float32 Tensor[T], or ValueError naming the problem."""
    x = torch.as_tensor(np.asarray(wav) if not isinstance(wav, torch.Tensor) else wav).to(torch.float32)
    if x.ndim != 1:
        raise ValueError(f"track_pitch expects mono audio of shape [T], got shape {tuple(x.shape)}")
    if x.shape[0] < cfg.hop_length:
        raise ValueError(f"track_pitch: audio of {x.shape[0]} samples is shorter than one hop ({cfg.hop_length})")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("track_pitch: audio contains non-finite samples (NaN or inf)")
    return x


def _frames(x: torch.Tensor, cfg: PitchConfig) -> torch.Tensor:
    """Tensor[T] -> Tensor[F, frame_length], F = T // hop, frame i centred at sample i * hop (reflect padding,
    zeros when the audio is shorter than half a frame)."""
    half = cfg.frame_length // 2
    mode = "reflect" if x.shape[0] > half else "constant"
    padded = F.pad(x[None, None], (half, half), mode=mode)[0, 0]
    return padded.unfold(0, cfg.frame_length, cfg.hop_length)[: x.shape[0] // cfg.hop_length]


def _difference(frames: torch.Tensor, cfg: PitchConfig) -> torch.Tensor:
    """YIN difference d(tau) = sum_{j<W} (x_j - x_{j+tau})^2 for tau = 0..tau_max+1: Tensor[F, N] -> [F, tau_max+2].

    Expanded as E(0) + E(tau) - 2 r(tau); r is the cross-correlation of the window with the frame (one rFFT of size
    N = W + tau_max + 1, no wrap-around), the energies come from a cumulative sum of squares.
    """
    n, w, n_lags = cfg.frame_length, cfg.window, cfg.tau_max + 2
    spec = torch.fft.rfft(frames[:, :w], n=n).conj() * torch.fft.rfft(frames, n=n)
    r = torch.fft.irfft(spec, n=n)[:, :n_lags]
    cs = F.pad(torch.cumsum(frames * frames, 1), (1, 0))
    energy = cs[:, w: w + n_lags] - cs[:, :n_lags]
    return (energy[:, :1] + energy - 2 * r).clamp_min(0.0)


def _cmnd(d: torch.Tensor) -> torch.Tensor:
    """Cumulative mean normalised difference d'(tau) = d(tau) * tau / sum_{j=1..tau} d(j), d'(0) = 1 (1 where the
    sum is 0, e.g. digital silence): Tensor[F, L] -> [F, L]."""
    tau = torch.arange(1, d.shape[1], dtype=d.dtype)
    cum = torch.cumsum(d[:, 1:], 1)
    out = torch.where(cum > 0, d[:, 1:] * tau / cum.clamp_min(1e-30), torch.ones_like(cum))
    return torch.cat([torch.ones_like(d[:, :1]), out], 1)


def _pick_lag(cm: torch.Tensor, cfg: PitchConfig) -> torch.Tensor:
    """Per frame the lag (Long[F]) in [tau_min, tau_max]: the first dip of d' below threshold followed down to its
    local minimum, else the global minimum of d' in the range."""
    lo, hi = cfg.tau_min, cfg.tau_max
    body, nxt = cm[:, lo: hi + 1], cm[:, lo + 1: hi + 2]
    below = body < cfg.threshold
    first = below.to(torch.int8).argmax(1, keepdim=True)
    stops = body <= nxt  # d' stops falling here
    stops[:, -1] = True
    idx = torch.arange(body.shape[1])
    trough = (stops & (idx >= first)).to(torch.int8).argmax(1)
    return torch.where(below.any(1), trough, body.argmin(1)) + lo


def _refine(cm: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Parabolic interpolation of d' around each lag: -> fractional lag Tensor[F]."""
    a, b, c = (cm.gather(1, (tau + k)[:, None])[:, 0] for k in (-1, 0, 1))
    den = a - 2 * b + c
    shift = torch.where(den > 0, (a - c) / (2 * den.clamp_min(1e-30)), torch.zeros_like(den))
    return tau + shift.clamp(-1.0, 1.0)


def _loud(frames: torch.Tensor, cfg: PitchConfig) -> torch.Tensor:
    """Silence gate: Bool[F], frame RMS within silence_db of the loudest frame."""
    db = 10 * torch.log10(frames.pow(2).mean(1) + 1e-20)
    return db >= db.max() + cfg.silence_db


def _median3(f0: torch.Tensor) -> torch.Tensor:
    """Median of 3 at frames whose two neighbours are voiced as well; other frames unchanged."""
    if f0.shape[0] < 3:
        return f0
    prev, cur, nxt = f0[:-2], f0[1:-1], f0[2:]
    med = torch.stack([prev, cur, nxt]).median(0).values
    out = f0.clone()
    out[1:-1] = torch.where((prev > 0) & (cur > 0) & (nxt > 0), med, cur)
    return out


def track_pitch(wav: np.ndarray | torch.Tensor, cfg: PitchConfig = PitchConfig()) -> torch.Tensor:
    """wav: [T] float in [-1, 1] at cfg.sample_rate -> F0 in Hz, float32 Tensor[T // hop_length], 0.0 = unvoiced."""
    frames = _frames(_check_wav(wav, cfg), cfg)
    cm = _cmnd(_difference(frames, cfg))
    tau = _pick_lag(cm, cfg)
    voiced = (cm.gather(1, tau[:, None])[:, 0] < cfg.threshold) & _loud(frames, cfg)
    f0 = torch.where(voiced, cfg.sample_rate / _refine(cm, tau), torch.zeros(()))
    return _median3(f0).to(torch.float32)


def track_pitch_batch(wavs: Sequence[np.ndarray | torch.Tensor],
                      cfg: PitchConfig = PitchConfig()) -> list[torch.Tensor]:
    """track_pitch on each wav [T_b] -> list of float32 Tensor[T_b // hop_length]."""
    return [track_pitch(w, cfg) for w in wavs]


def reference_track_pitch(wav: np.ndarray | torch.Tensor, cfg: PitchConfig = PitchConfig()) -> torch.Tensor:
    """The same YIN as track_pitch, written as a slow per-frame numpy loop with the difference function summed
    directly (no FFT): [T] -> float32 Tensor[T // hop_length]."""
    x = _check_wav(wav, cfg).numpy().astype(np.float64)
    half, n, w = cfg.frame_length // 2, cfg.frame_length, cfg.window
    padded = np.pad(x, half, mode="reflect" if len(x) > half else "constant")
    f0, rms_db = [], []
    for i in range(len(x) // cfg.hop_length):
        frame = padded[i * cfg.hop_length: i * cfg.hop_length + n]
        rms_db.append(10 * np.log10(np.mean(frame ** 2) + 1e-20))
        d = np.array([np.sum((frame[:w] - frame[tau: tau + w]) ** 2) for tau in range(cfg.tau_max + 2)])
        cm = np.ones_like(d)
        running = 0.0
        for tau in range(1, len(d)):
            running += d[tau]
            cm[tau] = d[tau] * tau / running if running > 0 else 1.0
        tau = _reference_lag(cm, cfg)
        if cm[tau] >= cfg.threshold:
            f0.append(0.0)
            continue
        a, b, c = cm[tau - 1], cm[tau], cm[tau + 1]
        shift = (a - c) / (2 * (a - 2 * b + c)) if a - 2 * b + c > 0 else 0.0
        f0.append(cfg.sample_rate / (tau + min(1.0, max(-1.0, shift))))
    loudest = max(rms_db)
    f0 = [f if db >= loudest + cfg.silence_db else 0.0 for f, db in zip(f0, rms_db)]
    out = list(f0)
    for i in range(1, len(f0) - 1):
        if f0[i - 1] > 0 and f0[i] > 0 and f0[i + 1] > 0:
            out[i] = sorted(f0[i - 1: i + 2])[1]
    return torch.tensor(out, dtype=torch.float32)


def _reference_lag(cm: np.ndarray, cfg: PitchConfig) -> int:
    """First tau in [tau_min, tau_max] with cm < threshold, followed while cm keeps falling; else the argmin."""
    for tau in range(cfg.tau_min, cfg.tau_max + 1):
        if cm[tau] < cfg.threshold:
            while tau < cfg.tau_max and cm[tau + 1] < cm[tau]:
                tau += 1
            return tau
    return cfg.tau_min + int(np.argmin(cm[cfg.tau_min: cfg.tau_max + 1]))


def voiced_median(f0: torch.Tensor, start: int, end: int) -> float:
    """Median F0 (Hz) of the voiced (> 0) frames in [start, end) of f0 Tensor[F]; NaN when none is voiced."""
    if start < 0 or end < start:
        raise ValueError(f"voiced_median: need 0 <= start <= end, got start={start}, end={end}")
    seg = torch.as_tensor(f0)[start:end]
    voiced = seg[seg > 0]
    return float(np.median(voiced.double().numpy())) if voiced.numel() else float("nan")
