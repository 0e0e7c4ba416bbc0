"""Residual VQ over word vectors (vector-quantize-pytorch), projected D -> codebook_dim -> D."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from vector_quantize_pytorch import ResidualVQ

from taste.tokenizer.config import RVQConfig


class WordQuantizer(nn.Module):
    """RVQ with EMA codebooks, k-means init, quantizer dropout and dead-code restarts."""

    def __init__(self, cfg: RVQConfig, dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.rvq = ResidualVQ(
            dim=dim, num_quantizers=cfg.n_quantizers, codebook_size=cfg.codebook_size, codebook_dim=cfg.codebook_dim,
            decay=cfg.decay, kmeans_init=cfg.kmeans_init, kmeans_iters=10,
            threshold_ema_dead_code=cfg.dead_code_threshold, quantize_dropout=cfg.quantizer_dropout,
            commitment_weight=cfg.commitment_weight,
        )

    def forward(self, vectors: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """vectors: Tensor[B, N, D], mask: Bool[B, N] -> (quantized [B, N, D], codes Long[B, N, n_q], commit loss scalar)."""
        quantized, codes, commit = self.rvq(vectors, mask=mask)
        return quantized, codes, commit.sum()

    @torch.no_grad()
    def quantize(self, vectors: Tensor) -> Tensor:
        """Nearest codes, no codebook update. vectors: Tensor[..., D] -> LongTensor[..., n_q]."""
        was_training = self.training
        self.eval()
        flat = vectors.reshape(1, -1, vectors.shape[-1])
        _, codes, _ = self.rvq(flat, freeze_codebook=True)
        self.train(was_training)
        return codes.reshape(*vectors.shape[:-1], self.cfg.n_quantizers)

    def codes_to_vectors(self, codes: Tensor, n_layers: int | None = None) -> Tensor:
        """Sum of the first `n_layers` codebook entries, projected back. codes: Long[..., k] (k <= n_q) -> Tensor[..., D]."""
        n_q = self.cfg.n_quantizers
        if codes.shape[-1] > n_q:
            raise ValueError(f"codes have {codes.shape[-1]} layers; this quantizer has {n_q}")
        if codes.numel() and (codes.max() >= self.cfg.codebook_size or codes.min() < -1):
            raise ValueError(f"codes outside [0, {self.cfg.codebook_size})")
        used = codes.shape[-1] if n_layers is None else min(n_layers, codes.shape[-1])
        codes = codes.clone()
        codes[..., used:] = -1  # -1 = dropped layer: contributes zero (as in quantizer dropout)
        codes = torch.nn.functional.pad(codes, (0, n_q - codes.shape[-1]), value=-1)
        lead = codes.shape[:-1]
        out = self.rvq.get_output_from_indices(codes.reshape(1, -1, n_q))
        return out.reshape(*lead, out.shape[-1])
