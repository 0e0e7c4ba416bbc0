"""Top-k sampling of discrete units: THE one implementation, for the tokenizer's unit decoder and the S3-unit LM.

It lives in `tokenizer` because `lm` may import `tokenizer` but not the other way round (tests/test_layers.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def sample_top_k(logits: Tensor, k: int, generator: torch.Generator | Sequence[torch.Generator], *,
                 always_draw: bool = False) -> Tensor:
    """logits: [B, V] (-inf = forbidden) -> Long[B], or [V] -> a 0-d Long; k = 1 is greedy.

    generator: one for the batch, or one per row (then row i draws only from its own generator, so its sample
    does not depend on the other rows of the batch).
    always_draw: also draw from the generator when k <= 1 (the pick is then the top id, but the generator advances
    by one draw, as the S3-unit LM's sampling always did; k must then be >= 1). Without it k <= 1 is an argmax and
    the generator is left untouched, as in the unit decoder.
    Softmax runs in the logits' dtype: pass `.float()` logits for float32 probabilities."""
    if k <= 1 and not always_draw:
        return logits.argmax(-1)
    values, idx = logits.topk(min(k, logits.shape[-1]), dim=-1)
    probs = torch.softmax(values, dim=-1)
    if isinstance(generator, torch.Generator):
        choice = torch.multinomial(probs, 1, generator=generator)
    else:
        if len(generator) != probs.shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {probs.shape[0]} rows")
        choice = torch.cat([torch.multinomial(p[None], 1, generator=g) for p, g in zip(probs, generator)])
    return idx.gather(-1, choice).squeeze(-1)
