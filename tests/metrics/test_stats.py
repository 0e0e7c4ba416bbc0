import numpy as np
import pytest

from taste.metrics.stats import bootstrap_ci, paired_bootstrap_ci, summarise


def test_ci_contains_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 2000)
    lo_s, hi_s = bootstrap_ci(small, n=500)
    lo_l, hi_l = bootstrap_ci(large, n=500)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 4  # ~ 1/sqrt(100) = 10x narrower in theory
    assert lo_l < 1.0 < hi_l


def test_ci_is_seeded_and_level_widens():
    x = np.arange(30, dtype=float)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    lo90, hi90 = bootstrap_ci(x, level=0.90)
    lo99, hi99 = bootstrap_ci(x, level=0.99)
    assert lo99 < lo90 and hi99 > hi90


def test_median_statistic_and_constant_data():
    assert bootstrap_ci([2.0] * 10, statistic=np.median) == (2.0, 2.0)


def test_paired_bootstrap_detects_shift_that_unpaired_noise_hides():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 5, 50)
    a, b = base + 0.5 + rng.normal(0, 0.1, 50), base
    lo, hi = paired_bootstrap_ci(a, b)
    assert 0.3 < lo < 0.5 < hi < 0.7
    with pytest.raises(ValueError, match="pairs must align"):
        paired_bootstrap_ci(a, b[:-1])


def test_bad_inputs():
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.5)


def test_summarise_drops_nan():
    s = summarise([1.0, 2.0, float("nan"), 3.0], n=100)
    assert s["value"] == 2.0 and s["n"] == 3 and s["ci_lo"] <= 2.0 <= s["ci_hi"]
    assert summarise([float("nan")])["n"] == 0


def test_cluster_bootstrap_of_singletons_is_the_plain_bootstrap():
    from taste.metrics.stats import cluster_bootstrap_ci

    x = np.random.default_rng(3).normal(size=40)
    assert cluster_bootstrap_ci(x, np.arange(40), np.mean, n=300, seed=5) == bootstrap_ci(x, np.mean, n=300, seed=5)


def test_cluster_bootstrap_keeps_correlated_values_together():
    """Ten pairs, each contributing 30 copies of one value: the words of a pair are one unit, so the CI must be as wide
    as a bootstrap over the ten pair values, far wider than a bootstrap that treats the 300 words as independent."""
    from taste.metrics.stats import cluster_bootstrap_ci, summarise

    per_pair = np.random.default_rng(4).normal(size=10)
    values, pairs = np.repeat(per_pair, 30), np.repeat(np.arange(10), 30)
    lo_c, hi_c = cluster_bootstrap_ci(values, pairs, np.mean, n=500, seed=0)
    lo_w, hi_w = bootstrap_ci(values, np.mean, n=500, seed=0)
    lo_p, hi_p = bootstrap_ci(per_pair, np.mean, n=500, seed=0)
    assert hi_c - lo_c > 3 * (hi_w - lo_w)
    assert (hi_c - lo_c) == pytest.approx(hi_p - lo_p, rel=0.3)
    s = summarise(np.append(values, np.nan), np.mean, n=200, clusters=np.append(pairs, 99))
    assert s["n"] == 300 and s["n_clusters"] == 10  # the NaN and its cluster label are dropped together
    with pytest.raises(ValueError, match="cluster labels"):
        cluster_bootstrap_ci(values, pairs[:5])
