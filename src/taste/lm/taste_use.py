"""Does TASLM use its TASTE input? Continue the same prompts with the TASTE input of every word zeroed.

TASLM fuses each token's text embedding with its word's TASTE vector (a learned softmax weight; in the default study
it stays near 0.015 for TASTE). If the model ignores that input, continuing a prompt without it changes nothing:
the same text, the same generated codes, the same speaking rate. The ablation keeps everything else fixed (prompt
text, seed, sampling, the unit decoder that speaks prompt + continuation from the real prompt codes and the codes
the LM generated), so a difference comes from the LM's TASTE input alone. Measured per prompt: the continuation's
speaking rate (words per second of the decoder's output) and how far it is from the prompt's own rate.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from taste.lm.continuation import PreparedPrompt, Systems, decode_drafts, generate_continuation, prompt_seed
from taste.lm.generate import Sampling


class ZeroTasteInput:
    """A codebook whose vectors are all zero (what the LM reads), while its quantiser is the real one (so the codes
    the LM predicts are the tokenizer's codes and the unit decoder speaks them as usual)."""

    def __init__(self, codebook: Any):
        self.codebook = codebook

    def codes_to_vectors(self, codes: Tensor) -> Tensor:
        return torch.zeros_like(self.codebook.codes_to_vectors(codes))

    def quantize(self, vectors: Tensor) -> Tensor:
        return self.codebook.quantize(vectors)


def finite_or_none(x) -> float | None:
    """A float for JSON: None where it is NaN or infinite (a bootstrap of a degenerate resample, a constant series)."""
    x = float(x)
    return x if np.isfinite(x) else None


def continuation_rate(n_words: int, seconds: float) -> float:
    """Words per second of a continuation (NaN when it has no words or no speech)."""
    return n_words / seconds if n_words > 0 and seconds > 0 else float("nan")


def zeroed_continuations(variant: str, prepared: Sequence[PreparedPrompt], systems: Systems, s: Sampling,
                         target_words: int, seed: int, decode_batch: int = 16) -> list[dict]:
    """Continue every prompt with TASLM `variant` reading zero TASTE vectors; the same per-prompt seeds as
    `continuation.run_system` (`prompt_seed(seed, prompt_id)`), decoded by the real unit decoder.
    -> one record per prompt: prompt_id, text, n_words, generated_seconds."""
    zero = ZeroTasteInput(systems.taste)
    drafts = [generate_continuation(f"taslm_{variant}", pp, systems, s, target_words, 0,
                                    prompt_seed(seed, pp.prompt.prompt_id), taste_input=zero) for pp in prepared]
    decode_drafts(drafts, systems, seed, decode_batch)
    return [{"prompt_id": d.prepared.prompt.prompt_id, "text": d.text, "n_words": len(d.text.split()),
             "generated_seconds": len(d.units) / systems.unit_rate_hz} for d in drafts]


def taste_use_table(prepared: Sequence[PreparedPrompt], with_taste: Sequence[dict], zeroed: Sequence[dict]
                    ) -> pd.DataFrame:
    """Per prompt: prompt rate (its true words over its seconds: a measurement, not a system input), continuation rate with the real and the zeroed TASTE
    input, whether the text changed. with_taste: the stage's continuation records of the same variant."""
    real = {r["prompt_id"]: r for r in with_taste}
    rows = []
    for pp, z in zip(prepared, zeroed):
        r = real.get(pp.prompt.prompt_id)
        if r is None:
            raise ValueError(f"prompt {pp.prompt.prompt_id}: no continuation with the TASTE input to compare with")
        rows.append({"prompt_id": pp.prompt.prompt_id,
                     "prompt_rate": continuation_rate(len(pp.prompt.gt_text.split()), pp.prompt.end_s),  # the judge may read the truth
                     "rate_with_taste": continuation_rate(r["n_words"], r["generated_seconds"]),
                     "rate_zeroed": continuation_rate(z["n_words"], z["generated_seconds"]),
                     "same_text": r["continuation_text"] == z["text"]})
    return pd.DataFrame(rows)


def taste_use_summary(table: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """Paired over prompts, 95% bootstrap CIs: the mean |log(continuation rate / prompt rate)| with and without the
    TASTE input and their difference, the correlation of continuation rate with prompt rate in each arm, and the
    share of prompts whose continuation text did not change."""
    from scipy import stats

    t = table.dropna(subset=["prompt_rate", "rate_with_taste", "rate_zeroed"])
    if len(t) < 3:
        return {"n_prompts": int(len(t))}
    p, a, z = (t[c].to_numpy(dtype=np.float64) for c in ("prompt_rate", "rate_with_taste", "rate_zeroed"))
    gap_a, gap_z = np.abs(np.log(a / p)), np.abs(np.log(z / p))

    def ci(statistic, *data) -> dict:
        res = stats.bootstrap(data, statistic, paired=True, vectorized=False, n_resamples=n_boot,
                              random_state=np.random.default_rng(seed), method="percentile")
        return {"value": finite_or_none(statistic(*data)), "ci_lo": finite_or_none(res.confidence_interval.low),
                "ci_hi": finite_or_none(res.confidence_interval.high)}

    def corr(x, y):
        return float(np.corrcoef(x, y)[0, 1]) if np.std(x) > 0 and np.std(y) > 0 else float("nan")

    return {"n_prompts": int(len(t)),
            "rate_gap_with_taste": ci(np.mean, gap_a),
            "rate_gap_zeroed": ci(np.mean, gap_z),
            "rate_gap_zeroed_minus_with": ci(lambda x, y: float(np.mean(x - y)), gap_z, gap_a),
            "rate_corr_with_taste": ci(corr, p, a),
            "rate_corr_zeroed": ci(corr, p, z),
            "same_text_share": float(t.same_text.mean()),
            "measure": "rate = words / seconds of the unit decoder's output; gap = |log(continuation / prompt rate)|; "
                       "CIs resample prompts (paired)"}
