"""Target streams of the unit decoder: ground-truth word boundaries -> [BND u u .. BND u .. EOS] and back.

Boundary convention (documented choice): word j owns the units from its own start to the next word's start,
so a pause belongs to the word BEFORE it; silence before the first word belongs to the first word (b_0 = 0).
Every word keeps at least one unit so the decoder never has to emit an empty word.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def word_boundaries(word_starts_s: Sequence[float], n_units: int, rate_hz: float) -> list[int]:
    """Unit index where each word begins (b_0 = 0, strictly increasing, all < n_units).

    Raises ValueError when there are more words than units (no room for one unit per word)."""
    n = len(word_starts_s)
    if n == 0:
        raise ValueError("no words: cannot place word boundaries")
    if n > n_units:
        raise ValueError(f"{n} words but only {n_units} units: cannot give each word a unit")
    bounds = [0]
    for j, start in enumerate(word_starts_s[1:], start=1):
        b = max(int(round(start * rate_hz)), bounds[-1] + 1)
        bounds.append(min(b, n_units - (n - j)))  # leave one unit for each later word
    return bounds


def word_unit_counts(boundaries: Sequence[int], n_units: int) -> list[int]:
    """Units per word from boundaries (the last word runs to the end)."""
    ends = list(boundaries[1:]) + [n_units]
    return [e - b for b, e in zip(boundaries, ends)]


def build_stream(units: Sequence[int], boundaries: Sequence[int], mode: str, n_codes: int) -> list[int]:
    """Target stream. word_sync: BND before each word's units; prefix: units only. EOS closes both.

    BND = n_codes, EOS = n_codes + 1 (unit ids are 0..n_codes-1)."""
    bnd, eos = n_codes, n_codes + 1
    units = [int(u) for u in units]
    if mode == "prefix":
        return units + [eos]
    out: list[int] = []
    for j, (b, count) in enumerate(zip(boundaries, word_unit_counts(boundaries, len(units)))):
        out.append(bnd)
        out.extend(units[b : b + count])
    return out + [eos]


def parse_stream(stream: Sequence[int], n_codes: int) -> tuple[list[int], list[int]]:
    """Generated stream -> (units, unit count per word). Stops at EOS; tokens before the first BND
    (prefix mode) form one pseudo-word."""
    bnd, eos = n_codes, n_codes + 1
    units: list[int] = []
    counts: list[int] = []
    for tok in stream:
        tok = int(tok)
        if tok == eos:
            break
        if tok == bnd:
            counts.append(0)
            continue
        if not counts:
            counts.append(0)
        units.append(tok)
        counts[-1] += 1
    return units, counts


def stream_word_features(stream: Tensor, n_codes: int, max_in_word: int) -> tuple[Tensor, Tensor]:
    """Per input position of a word_sync stream: index of the current word and the position inside it.

    stream: Long[B, S] -> (word Long[B, S] (-1 before the first BND), in_word Long[B, S] (0 at a BND))."""
    is_b = stream == n_codes
    word = torch.cumsum(is_b.long(), dim=1) - 1
    idx = torch.arange(stream.shape[1], device=stream.device).expand_as(stream)
    last_b = torch.cummax(torch.where(is_b, idx, torch.full_like(idx, -1)), dim=1).values
    in_word = torch.where(last_b >= 0, idx - last_b, idx + 1)
    return word, in_word.clamp(max=max_in_word - 1)


def stream_word_lengths(stream: Tensor, n_codes: int) -> Tensor:
    """Per position of a word_sync stream: the unit count of the word the position belongs to.

    stream: Long[B, S] (-1 = pad) -> Long[B, S] (0 before the first BND; a BND counts for the word it opens; positions
    after EOS read the last word's count, which callers mask)."""
    is_b = stream == n_codes
    slot = torch.cumsum(is_b.long(), dim=1)  # 0 before the first BND, j + 1 inside word j
    is_unit = (stream >= 0) & (stream < n_codes)
    counts = torch.zeros(stream.shape[0], int(slot.max()) + 1, dtype=torch.long, device=stream.device)
    counts.scatter_add_(1, slot, is_unit.long())
    counts[:, 0] = 0
    return counts.gather(1, slot)
