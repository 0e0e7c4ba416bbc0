"""Non-autoregressive units (+ speaker embedding) -> log-mel and F0 regression model, then a waveform.

A Transformer runs at the unit rate (cheap), frames are upsampled by repetition to 100 fps with a learned
position-within-unit embedding, and a small conv stack smooths the frame sequence before the mel projection and
the pitch head (voicing logit and log-F0 per frame). The waveform comes from a source-filter synthesiser (harmonics
at the predicted F0, shaped by the predicted mel envelope: taste.vocoder.source_filter), or from Griffin-Lim on the
mel alone (`synthesis: griffin_lim`, which loses the harmonics: a regression mel is too smooth to carry pitch).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taste.training.saved_model import SavedModel
from taste.data.features import MEL_PAD_VALUE
from taste.units.model import padding_mask, sinusoids

SYNTHESIS = ("source_filter", "griffin_lim")


class VocoderError(ValueError):
    """A vocoder folder or its input is malformed."""


@dataclass(frozen=True)
class VocoderConfig:
    n_units: int = 512
    unit_rate_hz: int = 25
    frame_rate_hz: int = 100
    n_mels: int = 80
    speaker_dim: int = 256
    d_model: int = 192
    layers: int = 4
    n_heads: int = 4
    ffn_mult: int = 4
    conv_layers: int = 2
    dropout: float = 0.1
    griffin_lim_iters: int = 32
    synthesis: str = "source_filter"   # source_filter (predicted F0 + mel envelope) | griffin_lim (mel only)
    f0_ref_hz: float = 150.0           # log-F0 is predicted in octaves relative to this
    noise_level: float = 0.03          # aperiodic share of the voiced excitation (source_filter)

    def __post_init__(self) -> None:
        if self.frame_rate_hz % self.unit_rate_hz:
            raise VocoderError(f"frame_rate_hz {self.frame_rate_hz} is not a multiple of unit_rate_hz {self.unit_rate_hz}")
        if self.synthesis not in SYNTHESIS:
            raise VocoderError(f"synthesis must be one of {SYNTHESIS}, got {self.synthesis!r}")
        if self.f0_ref_hz <= 0:
            raise VocoderError(f"f0_ref_hz must be > 0, got {self.f0_ref_hz}")

    @property
    def upsample(self) -> int:
        return self.frame_rate_hz // self.unit_rate_hz


def debug_config(**overrides) -> VocoderConfig:
    base = dict(n_units=32, speaker_dim=16, d_model=32, layers=2, n_heads=2, conv_layers=1, dropout=0.0,
                griffin_lim_iters=4)
    base.update(overrides)
    return VocoderConfig(**base)


class ConvSmoother(nn.Module):
    """Residual conv blocks over frames: Tensor[B, F, D] -> Tensor[B, F, D]."""

    def __init__(self, d_model: int, layers: int, kernel_size: int = 5):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, kernel_size, padding=kernel_size // 2) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(layers))

    def forward(self, x: Tensor) -> Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = x + F.gelu(conv(norm(x).transpose(1, 2))).transpose(1, 2)
        return x


class UnitVocoder(SavedModel, nn.Module):
    """units LongTensor[B, U] + speaker Tensor[B, speaker_dim] -> log-mel Tensor[B, n_mels, U * upsample] and, per
    frame, a voicing logit and log2(F0 / f0_ref_hz)."""

    saved_name, load_error = "vocoder", VocoderError

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.cfg = cfg
        self.unit_embed = nn.Embedding(cfg.n_units + 1, cfg.d_model)   # last row = padding
        self.speaker_proj = nn.Linear(cfg.speaker_dim, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.ffn_mult * cfg.d_model, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, norm=nn.LayerNorm(cfg.d_model), enable_nested_tensor=False)
        self.subframe = nn.Embedding(cfg.upsample, cfg.d_model)       # where inside its unit a frame sits
        self.smoother = ConvSmoother(cfg.d_model, cfg.conv_layers)
        self.to_mel = nn.Linear(cfg.d_model, cfg.n_mels)
        nn.init.constant_(self.to_mel.bias, -5.0)   # typical speech log-mel level: start near the data, not at 0
        self.to_pitch = nn.Linear(cfg.d_model, 2)   # voicing logit, log2(F0 / f0_ref_hz)

    def forward(self, units: Tensor, speaker: Tensor, unit_lengths: Tensor) -> dict[str, Tensor]:
        """units: LongTensor[B, U] (values < 0 are padding), speaker: [B, speaker_dim] ->
        {"mel": log-mel [B, n_mels, U*r], "voiced_logit": [B, U*r], "log_f0": [B, U*r] (octaves re f0_ref_hz)}."""
        if units.dim() != 2:
            raise VocoderError(f"expected units LongTensor[B, U], got shape {tuple(units.shape)}")
        if speaker.shape != (units.shape[0], self.cfg.speaker_dim):
            raise VocoderError(f"expected speaker Tensor[{units.shape[0]}, {self.cfg.speaker_dim}], got {tuple(speaker.shape)}")
        if units.numel() and int(units.max()) >= self.cfg.n_units:
            raise VocoderError(f"unit id {int(units.max())} out of range for a codebook of {self.cfg.n_units}")
        mask = padding_mask(unit_lengths.to(units.device), units.shape[1])
        ids = units.masked_fill(~mask | (units < 0), self.cfg.n_units)
        x = self.unit_embed(ids) + self.speaker_proj(F.normalize(speaker.float(), dim=-1))[:, None]  # (B, U, D)
        x = x + sinusoids(x.shape[1], x.shape[2]).to(x)
        x = self.encoder(x, src_key_padding_mask=~mask)
        r = self.cfg.upsample
        x = x.repeat_interleave(r, dim=1) + self.subframe.weight.repeat(units.shape[1], 1)[None]   # (B, U*r, D)
        frame_mask = mask.repeat_interleave(r, dim=1)
        x = self.smoother(x * frame_mask[..., None])
        mel = self.to_mel(x).transpose(1, 2)                                                         # (B, n_mels, F)
        pitch = self.to_pitch(x)                                                                     # (B, F, 2)
        return {"mel": mel.masked_fill(~frame_mask[:, None], MEL_PAD_VALUE),
                "voiced_logit": pitch[..., 0].masked_fill(~frame_mask, -1e4), "log_f0": pitch[..., 1] * frame_mask}

    @torch.no_grad()
    def predict(self, units: Tensor, speaker: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Inference: units LongTensor[B, U], speaker Tensor[B, speaker_dim], lengths [B] ->
        (log-mel Tensor[B, n_mels, U*r], F0 Tensor[B, U*r] in Hz with 0 at unvoiced or padded frames)."""
        was_training = self.training
        self.eval()
        try:
            if lengths is None:
                lengths = torch.full((units.shape[0],), units.shape[1], dtype=torch.long)
            out = self(units.long(), speaker, lengths)
        finally:
            self.train(was_training)
        return out["mel"], f0_from_outputs(out["voiced_logit"], out["log_f0"], self.cfg.f0_ref_hz)

    def units_to_mel(self, units: Tensor, speaker: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Inference: units LongTensor[B, U], speaker Tensor[B, speaker_dim], lengths [B] -> Tensor[B, n_mels, U*r]."""
        return self.predict(units, speaker, lengths)[0]

    def units_to_f0(self, units: Tensor, speaker: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Inference: the predicted F0 track Tensor[B, U*r] (Hz, 0 = unvoiced) the source-filter synthesis speaks."""
        return self.predict(units, speaker, lengths)[1]

    def synthesise(self, units: Tensor, speaker: Tensor, mel_cfg=None, n_iter: int | None = None,
                   seed: int | None = None) -> np.ndarray:
        """One utterance: units LongTensor[U], speaker Tensor[speaker_dim] -> float32 waveform [U*r*hop].

        seed: the synthesis noise's seed (source-filter excitation noise, Griffin-Lim's initial phases). Pass a
        per-item seed, `item_seed(study_seed, item_id)`, so every item gets its own noise whatever the batch or
        order. Default (None): derived from the units alone (`content_seed`), deterministic and different per
        unit sequence."""
        units = torch.as_tensor(units).long().reshape(1, -1)
        speaker = torch.as_tensor(speaker).float().reshape(1, -1)
        if units.shape[1] == 0:
            raise VocoderError("synthesise: no units to speak")
        if seed is None:
            seed = content_seed(units)
        mel, f0 = self.predict(units, speaker)
        return self.mel_f0_to_wave(mel[0], f0[0], mel_cfg, n_iter, seed=seed)

    def mel_f0_to_wave(self, mel: Tensor, f0: Tensor, mel_cfg=None, n_iter: int | None = None,
                       seed: int | None = None) -> np.ndarray:
        """log-mel Tensor[n_mels, F] + F0 Tensor[F] (Hz, 0 = unvoiced) -> waveform [F*hop] by this vocoder's
        synthesis (the F0 is ignored by griffin_lim). seed: see `synthesise`; default (None) derived from the
        mel and F0 values (`content_seed`)."""
        from taste.vocoder.griffin_lim import default_mel_config, mel_to_wave
        from taste.vocoder.source_filter import mel_to_wave_source_filter

        mel_cfg = mel_cfg or default_mel_config()
        if seed is None:
            seed = content_seed(mel, f0)
        if self.cfg.synthesis == "griffin_lim":
            return mel_to_wave(mel, mel_cfg, n_iter or self.cfg.griffin_lim_iters, seed=seed)
        return mel_to_wave_source_filter(mel, f0, mel_cfg, seed=seed, noise_level=self.cfg.noise_level)

    # --- persistence (taste.training.saved_model.SavedModel: config.json + model.safetensors) ----------------------
    def config_payload(self) -> dict:
        return dataclasses.asdict(self.cfg)

    @classmethod
    def from_payload(cls, payload: dict, directory: Path) -> "UnitVocoder":
        return cls(VocoderConfig(**payload))


def content_seed(*tensors: Tensor | None) -> int:
    """A deterministic seed from tensors' values (dtype, shape and bytes; None is skipped): the default per-item
    seed of the synthesis when the caller gives none, so two different inputs never share their noise."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            continue
        a = torch.as_tensor(t).detach().cpu().contiguous()
        if a.dtype == torch.bfloat16:  # numpy has no bfloat16
            a = a.float()
        h.update(f"{a.dtype}{tuple(a.shape)}".encode())
        h.update(a.numpy().tobytes())
    return int.from_bytes(h.digest()[:8], "big") >> 1


def build_debug_vocoder(**overrides) -> UnitVocoder:
    return UnitVocoder(debug_config(**overrides))


def f0_from_outputs(voiced_logit: Tensor, log_f0: Tensor, f0_ref_hz: float) -> Tensor:
    """Voicing logits and log2(F0 / ref) [B, F] -> F0 in Hz [B, F], 0 where the voicing probability is below 1/2."""
    return torch.where(voiced_logit > 0, f0_ref_hz * torch.exp2(log_f0.float()), torch.zeros_like(log_f0.float()))


def masked_l1(pred: Tensor, target: Tensor, lengths: Tensor) -> Tensor:
    """Mean L1 over valid frames. pred, target: Tensor[B, n_mels, F] (same F), lengths: [B] valid frames."""
    mask = padding_mask(lengths.to(pred.device), pred.shape[-1])[:, None, :].to(pred.dtype)
    return ((pred - target).abs() * mask).sum() / (mask.sum() * pred.shape[1]).clamp_min(1.0)
