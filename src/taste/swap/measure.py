"""Per-word comparison of a swapped decode against the recipient and donor reconstructions.

ratio = (swapped - recipient) / contrast. On global pairs contrast_i = donor_i - recipient_i: the ratio of a swapped
word is its TRANSFER (1 = took the donor's value, 0 = kept its own), of an untouched word its LEAKAGE. On local pairs
only word j differs by design, so every word's movement is expressed in units of word j's contrast
(donor_j - recipient_j); the control (every word but j swapped) then measures how far j moves: ideally 0.
Words whose |contrast| is below `min_contrast` get ratio NaN (a ratio over decoder noise means nothing).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from taste.swap.jobs import SwapJob


def contrasts(set_name: str, recipient: np.ndarray, donor: np.ndarray, changed_word: int | None) -> np.ndarray:
    """Denominator per word -> float [N]: own donor-recipient difference, or word j's on local pairs."""
    diff = np.asarray(donor, dtype=np.float64) - np.asarray(recipient, dtype=np.float64)
    if set_name == "local":
        if changed_word is None:
            raise ValueError("local pairs need changed_word")
        return np.full_like(diff, diff[changed_word])
    return diff


def ratios(recipient: Sequence[float], donor: Sequence[float], swapped: Sequence[float], contrast: Sequence[float],
           min_contrast: float) -> np.ndarray:
    """(swapped - recipient) / contrast per word -> float [N]; NaN where |contrast| < min_contrast or values are NaN."""
    r, s, c = (np.asarray(x, dtype=np.float64) for x in (recipient, swapped, contrast))
    if not (r.shape == s.shape == c.shape == np.shape(donor)):
        raise ValueError(f"per-word arrays differ in length: {r.shape}, {np.shape(donor)}, {s.shape}, {c.shape}")
    ok = np.isfinite(c) & (np.abs(c) >= min_contrast)
    out = np.full(r.shape, np.nan)
    out[ok] = (s[ok] - r[ok]) / c[ok]
    return out


def compare_job(job: SwapJob, measure: str, seed: int, recipient: Sequence[float], donor: Sequence[float],
                swapped: Sequence[float], min_contrast: float) -> list[dict]:
    """One row per word of `job` (a non-reference decode) with the values of the three decodes and its ratio."""
    pair = job.pair
    contrast = contrasts(pair.set, np.asarray(recipient), np.asarray(donor), pair.changed_word)
    rat = ratios(recipient, donor, swapped, contrast, min_contrast)
    swapped_words = set(job.words)
    source = dict(zip(job.words, job.sources))
    # Mismatch ablation: does a word take the timing of the donor word whose codes it got? (same scale, own diff)
    src_donor = np.array([float(donor[source.get(i, i)]) for i in range(len(donor))])
    src_rat = ratios(recipient, src_donor, swapped, src_donor - np.asarray(recipient, dtype=np.float64), min_contrast)
    rows = []
    for i, word in enumerate(pair.text.split()):
        rows.append({
            "set": pair.set, "pair_id": pair.pair_id, "direction": pair.direction, "seed": seed,
            "condition": job.condition, "span": job.span, "measure": measure, "word_index": i, "word": word,
            "swapped": i in swapped_words, "is_changed_word": i == pair.changed_word,
            "source_word": source.get(i, i), "recipient": float(recipient[i]), "donor": float(donor[i]),
            "value": float(swapped[i]), "contrast": float(contrast[i]), "ratio": float(rat[i]),
            "source_ratio": float(src_rat[i]),
        })
    return rows


def compare_pair(jobs: Sequence[SwapJob], values: Sequence[Sequence[float] | None], measure: str, seed: int,
                 min_contrast: float) -> list[dict]:
    """Rows for all non-reference jobs of ONE directed pair, given each job's per-word values (None = failed)."""
    by_condition = {job.condition: v for job, v in zip(jobs, values)}
    r, d = by_condition.get("recon_recipient"), by_condition.get("recon_donor")
    if r is None or d is None:
        return []  # a reference failed (e.g. alignment): nothing to compare against
    rows = []
    for job, v in zip(jobs, values):
        if job.condition in ("recon_recipient", "recon_donor") or v is None:
            continue
        rows.extend(compare_job(job, measure, seed, r, d, v, min_contrast))
    return rows


def noise_rows(jobs: Sequence[SwapJob], values_a: Sequence[Sequence[float] | None],
               values_b: Sequence[Sequence[float] | None], measure: str, seed: int, min_contrast: float) -> list[dict]:
    """Decoder noise floor of ONE directed pair: its recipient reconstruction at another seed (values_b) read as
    if it were a swap at `seed` (values_a). Its ratio is the movement sampling alone causes, on the transfer scale."""
    a = {job.condition: v for job, v in zip(jobs, values_a)}
    b = {job.condition: v for job, v in zip(jobs, values_b)}
    r, d, other = a.get("recon_recipient"), a.get("recon_donor"), b.get("recon_recipient")
    if r is None or d is None or other is None:
        return []
    recon = next(job for job in jobs if job.condition == "recon_recipient")
    noise_job = SwapJob(recon.pair, "noise", "none", (), (), recon.codes)
    return compare_job(noise_job, measure, seed, r, d, other, min_contrast)
