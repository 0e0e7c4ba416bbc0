"""S3-style supervised unit tokenizer: log-mel -> conv subsampling -> Transformer -> VQ bottleneck -> head -> CTC phones.

The VQ indices are the speech units (CosyVoice's S3 tokens are built the same way: an ASR-trained encoder with a
vector-quantised bottleneck in the middle). Reads from leaf blocks up to the whole model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from vector_quantize_pytorch import VectorQuantize

from taste.data.features import MEL_PAD_VALUE
from taste.training.saved_model import SavedModel



class UnitModelError(ValueError):
    """A unit tokenizer folder or input tensor is malformed."""


@dataclass(frozen=True)
class UnitTokenizerConfig:
    n_mels: int = 80
    frame_rate_hz: int = 100          # log-mel frames per second (hop 160 at 16 kHz)
    rate_hz: int = 25                 # units per second; frame_rate_hz / rate_hz must be an integer
    d_model: int = 192
    encoder_layers: int = 4
    head_layers: int = 2
    n_heads: int = 4
    ffn_mult: int = 4
    dropout: float = 0.1
    codebook_size: int = 512
    commitment_weight: float = 0.25
    ema_decay: float = 0.95           # fast EMA: the study trains ~1.5k steps, not 100k+
    dead_code_threshold: float = 2.0  # codes with EMA cluster size below this are restarted from batch vectors
    n_phones: int = 64                # CTC classes excluding blank (blank = 0, phone i -> i + 1)
    inter_ctc_weight: float = 0.3     # CTC on the pre-VQ states too: they become phonetic sooner, so do the codes
    frame_phone_weight: float = 0.0   # cross-entropy of the phone under each unit frame (forced alignments), on the
                                      # pre-VQ states; 0 = CTC only (what S3 does)
    frame_pitch_weight: float = 0.0   # cross-entropy of each unit's pitch class (taste.units.pitch_labels) on the
                                      # QUANTISED states, so the codes themselves keep pitch; 0 = off
    pitch_classes: int = 8            # unvoiced + bins of pitch_step_semitones around the speaker's median F0
    pitch_step_semitones: float = 3.0

    def __post_init__(self) -> None:
        if self.frame_rate_hz % self.rate_hz:
            raise UnitModelError(f"frame_rate_hz {self.frame_rate_hz} is not a multiple of rate_hz {self.rate_hz}")

    @property
    def stride(self) -> int:
        """Mel frames per unit (4 at 25 Hz, 2 at 50 Hz)."""
        return self.frame_rate_hz // self.rate_hz


def debug_config(**overrides) -> UnitTokenizerConfig:
    """A 2-layer, 32-dim tokenizer that builds and runs in milliseconds (tests)."""
    base = dict(d_model=32, encoder_layers=1, head_layers=1, n_heads=2, codebook_size=32, n_phones=8, dropout=0.0)
    base.update(overrides)
    return UnitTokenizerConfig(**base)


def sinusoids(length: int, dim: int) -> Tensor:
    """Fixed sinusoidal positions, Tensor[length, dim] (no max length to outgrow)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    inv = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * inv)
    table[:, 1::2] = torch.cos(pos * inv[: dim // 2])
    return table


def transformer_stack(cfg: UnitTokenizerConfig, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        cfg.d_model, cfg.n_heads, cfg.ffn_mult * cfg.d_model, cfg.dropout, activation="gelu",
        batch_first=True, norm_first=True)
    # nested tensors would make padded outputs depend on the fast path; keep one code path
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(cfg.d_model), enable_nested_tensor=False)


class ConvSubsampler(nn.Module):
    """log-mel Tensor[B, n_mels, F] -> Tensor[B, U, D], U = ceil(F / stride)."""

    def __init__(self, cfg: UnitTokenizerConfig):
        super().__init__()
        self.stride = cfg.stride
        self.conv1 = nn.Conv1d(cfg.n_mels, cfg.d_model, kernel_size=3)
        self.conv2 = nn.Conv1d(cfg.d_model, cfg.d_model, kernel_size=cfg.stride, stride=cfg.stride)

    def forward(self, mel: Tensor) -> Tensor:
        # pad with log-silence, not zeros, so a batch-padded utterance sees exactly what it sees alone
        pad = (-mel.shape[-1]) % self.stride
        mel = F.pad(mel, (1, pad + 1), value=MEL_PAD_VALUE)
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x))       # (B, D, U)
        return x.transpose(1, 2)        # (B, U, D)


def unit_lengths_for(lengths: Tensor, stride: int) -> Tensor:
    """Valid units per utterance for `lengths` valid mel frames (ceil division)."""
    return torch.div(lengths + stride - 1, stride, rounding_mode="floor")


def padding_mask(lengths: Tensor, max_len: int) -> Tensor:
    """Bool Tensor[B, max_len], True at valid positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class UnitTokenizer(SavedModel, nn.Module):
    """Encoder -> VectorQuantize (k-means init, EMA, dead-code restart) -> head -> CTC logits over phones."""

    saved_name, load_error = "unit tokenizer", UnitModelError

    def __init__(self, cfg: UnitTokenizerConfig):
        super().__init__()
        self.cfg = cfg
        self.subsample = ConvSubsampler(cfg)
        self.encoder = transformer_stack(cfg, cfg.encoder_layers)
        self.vq = VectorQuantize(
            dim=cfg.d_model, codebook_size=cfg.codebook_size, decay=cfg.ema_decay, kmeans_init=True,
            kmeans_iters=10, threshold_ema_dead_code=cfg.dead_code_threshold, commitment_weight=cfg.commitment_weight)
        self.head = transformer_stack(cfg, cfg.head_layers)
        self.ctc_proj = nn.Linear(cfg.d_model, cfg.n_phones + 1)
        self.inter_ctc_proj = nn.Linear(cfg.d_model, cfg.n_phones + 1) if cfg.inter_ctc_weight > 0 else None
        self.frame_proj = nn.Linear(cfg.d_model, cfg.n_phones) if cfg.frame_phone_weight > 0 else None
        self.pitch_proj = nn.Linear(cfg.d_model, cfg.pitch_classes) if cfg.frame_pitch_weight > 0 else None

    def _encode(self, mel: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """-> pre-quantisation states Tensor[B, U, D], unit_lengths [B], valid mask [B, U]."""
        if mel.dim() != 3 or mel.shape[1] != self.cfg.n_mels:
            raise UnitModelError(f"expected mel Tensor[B, {self.cfg.n_mels}, F], got shape {tuple(mel.shape)}")
        x = self.subsample(mel)
        unit_lengths = unit_lengths_for(lengths.to(mel.device), self.cfg.stride)
        mask = padding_mask(unit_lengths, x.shape[1])
        x = x + sinusoids(x.shape[1], x.shape[2]).to(x)
        return self.encoder(x, src_key_padding_mask=~mask), unit_lengths, mask

    def forward(self, mel: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        """mel: Tensor[B, n_mels, F], lengths: [B] valid frames.

        Returns logits [B, U, n_phones + 1] (CTC, blank 0), units [B, U] (-1 at padding), unit_lengths [B],
        commit_loss (scalar), and inter_logits [B, U, n_phones + 1] (CTC on the pre-VQ states), frame_logits
        [B, U, n_phones] (phone under each unit frame) and pitch_logits [B, U, pitch_classes] (pitch class of each
        unit, read from the quantised states) when enabled.
        """
        h, unit_lengths, mask = self._encode(mel, lengths)
        q, units, commit_loss = self.vq(h, mask=mask)
        logits = self.ctc_proj(self.head(q, src_key_padding_mask=~mask))
        out = {"logits": logits, "units": units, "unit_lengths": unit_lengths, "commit_loss": commit_loss.sum()}
        if self.inter_ctc_proj is not None:
            out["inter_logits"] = self.inter_ctc_proj(h)
        if self.frame_proj is not None:
            out["frame_logits"] = self.frame_proj(h)
        if self.pitch_proj is not None:
            out["pitch_logits"] = self.pitch_proj(q)
        return out

    def unit_vectors(self, units: Tensor) -> Tensor:
        """Codebook vectors of units: LongTensor[B, U] -> Tensor[B, U, D] (the inverse of quantisation)."""
        return self.vq.get_output_from_indices(units.clamp_min(0))

    @torch.no_grad()
    def encode(self, mel: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """mel: Tensor[B, n_mels, F] -> (units LongTensor[B, U], -1 at padding; unit_lengths [B]). No codebook update."""
        was_training = self.training
        self.eval()
        try:
            h, unit_lengths, mask = self._encode(mel, lengths)
            _, units, _ = self.vq(h, mask=mask)
        finally:
            self.train(was_training)
        return units.masked_fill(~mask, -1), unit_lengths

    # --- persistence (taste.training.saved_model.SavedModel: config.json + model.safetensors) ----------------------
    def config_payload(self) -> dict:
        return dataclasses.asdict(self.cfg)

    @classmethod
    def from_payload(cls, payload: dict, directory: Path) -> "UnitTokenizer":
        return cls(UnitTokenizerConfig(**payload))


def build_debug_unit_tokenizer(**overrides) -> UnitTokenizer:
    return UnitTokenizer(debug_config(**overrides))


def ctc_loss(out: dict[str, Tensor], targets: Tensor, target_lengths: Tensor, key: str = "logits") -> Tensor:
    """Mean CTC loss of out[key]; targets: concatenated LongTensor[sum(target_lengths)] of phone ids + 1 (blank 0)."""
    log_probs = out[key].float().log_softmax(-1).transpose(0, 1)   # (U, B, C)
    return F.ctc_loss(log_probs, targets, out["unit_lengths"], target_lengths, blank=0, zero_infinity=True)
