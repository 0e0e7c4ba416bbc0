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


def bootstrap_ci(values: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean, n: int = 1000,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of `statistic` over `values: [N]` -> (lo, hi); n resamples, seeded."""
    arr = _as_array(values)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n, arr.size))
    stats = np.array([statistic(arr[row]) for row in idx])
    return _percentiles(stats, level)


def paired_bootstrap_ci(a: Sequence[float], b: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean,
                        n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """CI of statistic(a) - statistic(b), resampling the PAIRS (a_i, b_i) together (same items, two systems)."""
    xa, xb = _as_array(a, "a"), _as_array(b, "b")
    if xa.size != xb.size:
        raise ValueError(f"paired bootstrap: {xa.size} vs {xb.size} values; pairs must align")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, xa.size, size=(n, xa.size))
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
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(groups), size=(n, len(groups)))
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
