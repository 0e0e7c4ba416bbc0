import numpy as np
import pytest

from taste.data.records import WordAlignment
from taste.metrics.duration import alignment_consistency, duration_consistency, matched_durations, word_durations


def test_against_hand_reference():
    ref = [0.20, 0.30, 0.40, 0.10]
    hyp = [0.22, 0.34, 0.46, 0.125]  # |diff| = 20, 40, 60, 25 ms
    out = duration_consistency(ref, hyp)
    assert out["within_25ms"] == pytest.approx(0.5)   # 20 ms and exactly 25 ms
    assert out["within_50ms"] == pytest.approx(0.75)
    assert out["pearson_r"] == pytest.approx(np.corrcoef(ref, hyp)[0, 1])
    assert out["n"] == 4


def test_identical_and_constant():
    out = duration_consistency([0.1, 0.2], [0.1, 0.2])
    assert out["within_25ms"] == 1.0 and out["pearson_r"] == pytest.approx(1.0)
    assert np.isnan(duration_consistency([0.1, 0.1], [0.1, 0.2])["pearson_r"])


def test_alignment_helpers():
    a = (WordAlignment("a", 0.0, 0.2), WordAlignment("cat", 0.2, 0.3))
    b = (WordAlignment("a", 0.0, 0.25), WordAlignment("cat", 0.25, 0.3))
    assert word_durations(a).tolist() == [0.2, 0.3]
    assert alignment_consistency(a, b)["within_50ms"] == 1.0
    with pytest.raises(ValueError, match="different words"):
        matched_durations(a, (WordAlignment("a", 0, 0.2), WordAlignment("dog", 0.2, 0.3)))


def test_bad_inputs():
    with pytest.raises(ValueError, match="3 reference vs 2"):
        duration_consistency([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="no durations"):
        duration_consistency([], [])
