"""Bootstrap confidence intervals (percentile method), single-sample and paired."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def _as_array(values: Sequence[float], name: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"bootstrap: {name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"bootstrap: {name} contains NaN or inf; drop them first")
    return arr


def _percentiles(stats: np.ndarray, level: float) -> tuple[float, float]:
    if not 0.0 < level < 1.0:
        raise ValueError(f"bootstrap: level must be in (0, 1), got {level}")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def resample_indices(n_units: int, n: int, seed: int) -> np.ndarray:
    """The one bootstrap draw of this module: `n` resamples of `n_units` independent units with replacement
    -> Int[n, n_units] (seeded; every CI here uses it, so the same seed resamples the same units)."""
    return np.random.default_rng(seed).integers(0, n_units, size=(n, n_units))


def bootstrap_ci(values: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean, n: int = 1000,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of `statistic` over `values: [N]` -> (lo, hi); n resamples, seeded."""
    arr = _as_array(values)
    idx = resample_indices(arr.size, n, seed)
    stats = np.array([statistic(arr[row]) for row in idx])
    return _percentiles(stats, level)


def paired_bootstrap_ci(a: Sequence[float], b: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean,
                        n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """CI of statistic(a) - statistic(b), resampling the PAIRS (a_i, b_i) together (same items, two systems)."""
    xa, xb = _as_array(a, "a"), _as_array(b, "b")
    if xa.size != xb.size:
        raise ValueError(f"paired bootstrap: {xa.size} vs {xb.size} values; pairs must align")
    idx = resample_indices(xa.size, n, seed)
    stats = np.array([statistic(xa[row]) - statistic(xb[row]) for row in idx])
    return _percentiles(stats, level)


def cluster_bootstrap_ci(values: Sequence[float], clusters: Sequence, statistic: Callable[[np.ndarray], float] = np.median,
                         n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of `statistic` resampling whole CLUSTERS with replacement (`clusters: [N]` labels the independent
    unit of each value, e.g. its sentence pair: words, seeds and directions of one pair stay together) -> (lo, hi)."""
    arr = _as_array(values)
    labels = np.asarray(clusters)
    if labels.shape != arr.shape:
        raise ValueError(f"cluster bootstrap: {labels.size} cluster labels for {arr.size} values")
    _, inverse = np.unique(labels, return_inverse=True)
    groups = [arr[inverse == g] for g in range(inverse.max() + 1)]
    idx = resample_indices(len(groups), n, seed)
    stats = np.array([statistic(np.concatenate([groups[g] for g in row])) for row in idx])
    return _percentiles(stats, level)


def summarise(values: Sequence[float], statistic: Callable[[np.ndarray], float] = np.median, n: int = 1000,
              seed: int = 0, level: float = 0.95, clusters: Sequence | None = None) -> dict[str, float]:
    """{"value", "ci_lo", "ci_hi", "n"} for a metrics.json entry; NaNs are dropped first, empty -> NaNs and n=0.

    clusters: the independent unit of each value; when given, the CI resamples clusters (cluster_bootstrap_ci) and
    the entry also carries "n_clusters"."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    keep = np.isfinite(arr)
    arr = arr[keep]
    if arr.size == 0:
        out = {"value": float("nan"), "ci_lo": float("nan"), "ci_hi": float("nan"), "n": 0}
        return out if clusters is None else {**out, "n_clusters": 0}
    if clusters is None:
        lo, hi = bootstrap_ci(arr, statistic, n=n, seed=seed, level=level)
        return {"value": float(statistic(arr)), "ci_lo": lo, "ci_hi": hi, "n": int(arr.size)}
    labels = np.asarray(clusters).ravel()[keep]
    lo, hi = cluster_bootstrap_ci(arr, labels, statistic, n=n, seed=seed, level=level)
    return {"value": float(statistic(arr)), "ci_lo": lo, "ci_hi": hi, "n": int(arr.size),
            "n_clusters": int(np.unique(labels).size)}


def _ratio_of_sums_inputs(errors: Sequence[float], totals: Sequence[float], clusters: Sequence | None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per independent unit (an utterance, or a cluster of them) the summed errors and totals."""
    e, t = _as_array(errors, "errors"), _as_array(totals, "totals")
    if e.size != t.size:
        raise ValueError(f"ratio of sums: {e.size} error counts for {t.size} totals")
    if clusters is None:
        return e, t
    labels = np.asarray(clusters).ravel()
    if labels.size != e.size:
        raise ValueError(f"ratio of sums: {labels.size} cluster labels for {e.size} values")
    _, inverse = np.unique(labels, return_inverse=True)
    return np.bincount(inverse, weights=e), np.bincount(inverse, weights=t)


def ratio_of_sums_summary(errors: Sequence[float], totals: Sequence[float], clusters: Sequence | None = None,
                          n: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """sum(errors) / sum(totals) (e.g. corpus WER = edits / reference words) with a percentile CI that resamples
    the independent units with replacement and recomputes the ratio of sums: utterances, or `clusters` (labels per
    utterance; the units of one cluster are summed first and resampled together).

    -> {"value", "ci_lo", "ci_hi", "n"} (+ "n_clusters" when clusters are given); empty -> NaNs and n = 0."""
    if len(errors) == 0:
        out = {"value": float("nan"), "ci_lo": float("nan"), "ci_hi": float("nan"), "n": 0}
        return out if clusters is None else {**out, "n_clusters": 0}
    e, t = _ratio_of_sums_inputs(errors, totals, clusters)
    if t.sum() <= 0:
        raise ValueError("ratio of sums: the totals sum to zero")
    idx = resample_indices(e.size, n, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = e[idx].sum(1) / t[idx].sum(1)
    lo, hi = _percentiles(stats[np.isfinite(stats)], level)
    out = {"value": float(e.sum() / t.sum()), "ci_lo": lo, "ci_hi": hi, "n": int(len(errors))}
    return out if clusters is None else {**out, "n_clusters": int(e.size)}


def paired_ratio_of_sums_ratio(errors_a: Sequence[float], errors_b: Sequence[float], totals: Sequence[float],
                               n: int = 1000, seed: int = 0, level: float = 0.95,
                               floor: float = 1e-9) -> dict[str, float]:
    """(sum(errors_a) / sum(totals)) / max(sum(errors_b) / sum(totals), floor): e.g. the corpus WER of system a over
    that of system b on the SAME utterances (totals = their reference word counts), with a paired percentile CI
    that resamples utterances (both systems' counts of one utterance stay together).

    -> {"value", "ci_lo", "ci_hi", "n"}; floor keeps the ratio finite when b makes no errors."""
    ea, t = _ratio_of_sums_inputs(errors_a, totals, None)
    eb, _ = _ratio_of_sums_inputs(errors_b, totals, None)
    if ea.size != eb.size:
        raise ValueError(f"paired ratio: {ea.size} vs {eb.size} utterances; pairs must align")
    if t.sum() <= 0:
        raise ValueError("paired ratio: the totals sum to zero")

    def ratio(a: np.ndarray, b: np.ndarray, tot: np.ndarray) -> np.ndarray:
        return (a / tot) / np.maximum(b / tot, floor)

    idx = resample_indices(ea.size, n, seed)
    stats = ratio(ea[idx].sum(1), eb[idx].sum(1), t[idx].sum(1))
    lo, hi = _percentiles(stats, level)
    return {"value": float(ratio(ea.sum(), eb.sum(), t.sum())), "ci_lo": lo, "ci_hi": hi, "n": int(ea.size)}


def utterance_word_errors(refs: Sequence[str], hyps: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per utterance (word edits, reference words) after normalising both sides: the inputs of corpus WER
    (sum(edits) / sum(reference words), what `wer.wer` computes) and of its utterance bootstrap."""
    from taste.metrics.wer import error_counts

    if len(refs) != len(hyps):
        raise ValueError(f"wer: {len(refs)} references but {len(hyps)} hypotheses")
    counts = [error_counts(r, h) for r, h in zip(refs, hyps)]
    return (np.array([c["sub"] + c["del"] + c["ins"] for c in counts], np.float64),
            np.array([c["n_ref"] for c in counts], np.float64))


def corpus_wer_summary(refs: Sequence[str], hyps: Sequence[str], clusters: Sequence | None = None, n: int = 1000,
                       seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Corpus WER with a 95% CI from the utterance bootstrap (resample utterances, or `clusters` of them, and
    recompute sum(edits) / sum(reference words)) -> {"value", "ci_lo", "ci_hi", "n"[, "n_clusters"]}."""
    errors, words = utterance_word_errors(refs, hyps)
    return ratio_of_sums_summary(errors, words, clusters, n=n, seed=seed, level=level)


def paired_corpus_wer_ratio(per_utt, a: str, b: str, n: int = 1000, seed: int = 0, level: float = 0.95,
                            floor: float = 1e-9) -> dict[str, float]:
    """Corpus WER of system `a` over that of system `b`, paired over the utterances both were judged on.

    per_utt: one row per (system, utterance) with columns system, id, text, hyp (the resynthesis and
    reconstruction tables' frames). The CI resamples utterances, both systems' counts of one utterance together
    (paired_ratio_of_sums_ratio). -> {"value", "ci_lo", "ci_hi", "n"}; NaNs and n = 0 when either row is missing."""
    rows = {s: per_utt[per_utt["system"] == s].drop_duplicates("id").set_index("id") for s in (a, b)}
    ids = [i for i in rows[a].index if i in rows[b].index]
    if not ids:
        return {"value": float("nan"), "ci_lo": float("nan"), "ci_hi": float("nan"), "n": 0}
    refs = list(rows[a].loc[ids, "text"])
    ea, words = utterance_word_errors(refs, list(rows[a].loc[ids, "hyp"]))
    eb, _ = utterance_word_errors(refs, list(rows[b].loc[ids, "hyp"]))
    return paired_ratio_of_sums_ratio(ea, eb, words, n=n, seed=seed, level=level, floor=floor)
