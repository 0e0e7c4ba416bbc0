"""Word-level delay pattern of TASLM: where each word's TASTE codes enter the input and where they are predicted.

Tokens carry a word index (``-1`` for tokens before the first word, e.g. bos; the eos token carries index N).
Word i's codes attach to the FIRST token of word i+1 (delay 1: the whole of word i's text is known before its
speech token), and later positions carry the most recent codes forward. Targets follow the usual next-token
shift: the position just before word i+1 starts predicts word i's codes, together with that first subword.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

NO_CODE = -1  # input codes before any word's codes are known
IGNORE = -100  # target codes where no TASTE loss is taken


@dataclass(frozen=True)
class DelayedCodes:
    input_codes: Tensor  # LongTensor[T, n_q], NO_CODE where no word's codes are known yet
    target_codes: Tensor  # LongTensor[T, n_q], IGNORE except at positions predicting a new word's codes

    @property
    def has_input(self) -> Tensor:  # BoolTensor[T]
        return self.input_codes[:, 0] != NO_CODE

    @property
    def has_target(self) -> Tensor:  # BoolTensor[T]
        return self.target_codes[:, 0] != IGNORE


def delay_codes(word_index: Sequence[int], codes: Tensor, delay: int = 1) -> DelayedCodes:
    """Place word codes on the token stream with a word-level delay and forward fill.

    word_index: per-token word index, non-decreasing, -1 before the first word; len T.
    codes: LongTensor[N_words, n_q]. Words whose delayed position is beyond the stream get no slot.
    """
    if delay < 1:
        raise ValueError(f"delay must be >= 1 (causality), got {delay}")
    wi = torch.as_tensor(list(word_index), dtype=torch.long)
    if wi.numel() > 1 and bool((wi[1:] < wi[:-1]).any()):
        raise ValueError("word_index must be non-decreasing")
    n_words, n_q = codes.shape
    T = wi.numel()
    # Forward fill: the most recent word with codes, i.e. `delay` words back, capped at the last word.
    source = (wi - delay).clamp(max=n_words - 1)  # (T,)
    valid = source >= 0
    input_codes = torch.full((T, n_q), NO_CODE, dtype=torch.long)
    if n_words > 0:
        input_codes[valid] = codes[source[valid]].long()
    # A new code appears at t+1 where the attached word changes; position t predicts it.
    new_at = torch.zeros(T, dtype=torch.bool)
    if T > 1:
        new_at[1:] = valid[1:] & (source[1:] != source[:-1])
    target_codes = torch.full((T, n_q), IGNORE, dtype=torch.long)
    target_codes[:-1][new_at[1:]] = input_codes[1:][new_at[1:]]
    return DelayedCodes(input_codes, target_codes)


def is_new_word(previous_text: str, text: str) -> bool:
    """Whether appending a token turned ``previous_text`` into text with one more whitespace word."""
    return len(text.split()) > len(previous_text.split())
