"""Unit quality metrics: codebook usage and perplexity, phone purity and PNMI (HuBERT's definitions), CTC PER."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor


def codebook_usage(units: Sequence[np.ndarray], codebook_size: int) -> dict[str, float]:
    """Share of codes used at least once, and perplexity exp(H(code)) of the unit distribution."""
    flat = np.concatenate([np.asarray(u).ravel() for u in units]) if len(units) else np.zeros(0, dtype=np.int64)
    flat = flat[flat >= 0]
    if flat.size == 0:
        return {"usage_share": 0.0, "codes_used": 0, "perplexity": 0.0}
    counts = np.bincount(flat, minlength=codebook_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return {"usage_share": float((counts > 0).sum() / codebook_size), "codes_used": int((counts > 0).sum()),
            "perplexity": float(np.exp(-(p * np.log(p)).sum()))}


def joint_counts(units: np.ndarray, labels: np.ndarray, codebook_size: int, n_labels: int) -> np.ndarray:
    """Count matrix [n_labels, codebook_size] over frames where both unit and label are valid (>= 0)."""
    keep = (units >= 0) & (labels >= 0)
    counts = np.zeros((n_labels, codebook_size), dtype=np.float64)
    np.add.at(counts, (labels[keep], units[keep]), 1.0)
    return counts


def purity_pnmi(units: np.ndarray, labels: np.ndarray, codebook_size: int, n_labels: int) -> dict[str, float]:
    """phone_purity = E_code[max_phone P(phone | code)]; cluster_purity = E_phone[max_code P(code | phone)];
    pnmi = I(phone; code) / H(phone). units, labels: aligned int arrays (frames with -1 are ignored)."""
    counts = joint_counts(np.asarray(units), np.asarray(labels), codebook_size, n_labels)
    total = counts.sum()
    if total == 0:
        raise ValueError("purity_pnmi: no frame has both a unit and a phone label")
    pxy = counts / total
    px, py = pxy.sum(1), pxy.sum(0)                       # phone, code marginals
    nz = pxy > 0
    mutual = (pxy[nz] * np.log(pxy[nz] / (px[:, None] * py[None, :])[nz])).sum()
    h_phone = -(px[px > 0] * np.log(px[px > 0])).sum()
    return {"phone_purity": float(pxy.max(0).sum()), "cluster_purity": float(pxy.max(1).sum()),
            "pnmi": float(mutual / h_phone) if h_phone > 0 else 0.0}


def edit_distance(ref: Sequence[int], hyp: Sequence[int]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def phone_error_rate(refs: Sequence[Sequence[int]], hyps: Sequence[Sequence[int]]) -> float:
    """Corpus PER: total edits / total reference phones."""
    if len(refs) != len(hyps):
        raise ValueError(f"phone_error_rate: {len(refs)} references but {len(hyps)} hypotheses")
    n_ref = sum(len(r) for r in refs)
    if n_ref == 0:
        raise ValueError("phone_error_rate: references are empty")
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / n_ref


def ctc_greedy_decode(logits: Tensor, lengths: Tensor, blank: int = 0) -> list[list[int]]:
    """logits: Tensor[B, U, C] -> per utterance: best path, repeats merged, blanks removed."""
    best = logits.argmax(-1)
    out = []
    for seq, n in zip(best.tolist(), lengths.tolist()):
        path = torch.tensor(seq[:n])
        if path.numel():
            path = torch.unique_consecutive(path)
        out.append([int(t) for t in path if t != blank])
    return out
