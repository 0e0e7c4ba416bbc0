"""Which words to swap, and the swap itself: TASTE codes of chosen words move from a donor to a recipient.

Codes are one row per WORD (`[N_words, n_q]`), so swapping whole rows moves whole words, never sub-words.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

SPAN_RULES = ("single", "first_third", "middle_third", "every_other")


class SwapError(ValueError):
    """Recipient and donor cannot be swapped (word counts or codebook depths differ, bad word index)."""


def _check_pair(recipient: Tensor, donor: Tensor) -> None:
    if recipient.ndim != 2 or donor.ndim != 2:
        raise SwapError(f"codes must be [N_words, n_q]; got recipient {tuple(recipient.shape)}, "
                        f"donor {tuple(donor.shape)}")
    if recipient.shape[0] != donor.shape[0]:
        raise SwapError(f"word counts differ: recipient has {recipient.shape[0]} words, donor {donor.shape[0]}; "
                        "a swap needs two renditions of the same sentence")
    if recipient.shape[1] != donor.shape[1]:
        raise SwapError(f"codebook depths differ: recipient n_q={recipient.shape[1]}, donor n_q={donor.shape[1]}")


def _check_indices(word_indices: Sequence[int], n_words: int) -> list[int]:
    idx = sorted({int(i) for i in word_indices})
    bad = [i for i in idx if not 0 <= i < n_words]
    if bad:
        raise SwapError(f"word indices {bad} out of range for {n_words} words")
    return idx


def swap_codes(recipient: Tensor, donor: Tensor, word_indices: Sequence[int]) -> Tensor:
    """recipient, donor: Long[N_words, n_q] -> a copy of recipient whose rows `word_indices` are the donor's."""
    recipient, donor = torch.as_tensor(recipient), torch.as_tensor(donor)
    _check_pair(recipient, donor)
    idx = _check_indices(word_indices, recipient.shape[0])
    out = recipient.clone()
    if idx:
        rows = torch.tensor(idx, dtype=torch.long)
        out[rows] = donor[rows].to(out.dtype)
    return out


def mismatch_sources(word_indices: Sequence[int], n_words: int, seed: int) -> list[int]:
    """For each swapped word, a DIFFERENT donor word to take codes from (content-mismatch ablation).

    A seeded derangement over all words: source != target for every swapped word (needs n_words >= 2).
    """
    idx = _check_indices(word_indices, n_words)
    if n_words < 2:
        raise SwapError("content-mismatch swap needs at least two words")
    rng = np.random.default_rng(seed)
    out = []
    for i in idx:
        choices = [k for k in range(n_words) if k != i]
        out.append(int(rng.choice(choices)))
    return out


def mismatch_codes(recipient: Tensor, donor: Tensor, word_indices: Sequence[int], seed: int = 0) -> Tensor:
    """Like swap_codes, but word i gets the donor's codes of another word (mismatch_sources)."""
    recipient, donor = torch.as_tensor(recipient), torch.as_tensor(donor)
    _check_pair(recipient, donor)
    idx = _check_indices(word_indices, recipient.shape[0])
    out = recipient.clone()
    for i, src in zip(idx, mismatch_sources(idx, recipient.shape[0], seed)):
        out[i] = donor[src].to(out.dtype)
    return out


def span_indices(n_words: int, rule: str, seed: int = 0) -> list[int]:
    """Word indices to swap in an N-word sentence under a span rule.

    single: one word, chosen by `seed` among the inner words when there are any (edge words carry pauses);
    first_third / middle_third: ceil(N/3) consecutive words from the start / centred; every_other: 0, 2, 4, ...
    """
    if n_words < 1:
        raise SwapError("span_indices: a sentence needs at least one word")
    k = max(1, -(-n_words // 3))
    if rule == "single":
        pool = list(range(1, n_words - 1)) or list(range(n_words))
        return [int(np.random.default_rng(seed).choice(pool))]
    if rule == "first_third":
        return list(range(k))
    if rule == "middle_third":
        start = (n_words - k) // 2
        return list(range(start, start + k))
    if rule == "every_other":
        return list(range(0, n_words, 2))
    raise SwapError(f"unknown span rule {rule!r}; expected one of {SPAN_RULES}")


def all_except(n_words: int, j: int) -> list[int]:
    """The control span of a local pair: every word but j."""
    if not 0 <= j < n_words:
        raise SwapError(f"changed word {j} out of range for {n_words} words")
    return [i for i in range(n_words) if i != j]
