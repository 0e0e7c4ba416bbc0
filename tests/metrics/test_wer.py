import pytest

from taste.metrics.wer import error_counts, per_utterance_wer, wer


def test_wer_normalises_and_pools_over_words():
    refs = ["The cat sat.", "a dog ran home"]
    hyps = ["the cat sat", "a dog ran"]
    assert wer(refs, hyps) == pytest.approx(1 / 7)  # one deletion over seven reference words, not mean of 0 and 1/4
    assert per_utterance_wer(refs, hyps) == pytest.approx([0.0, 0.25])


def test_error_counts():
    c = error_counts("a b c d", "a x c d e")
    assert (c["sub"], c["del"], c["ins"], c["n_ref"]) == (1, 0, 1, 4)


def test_bad_inputs():
    with pytest.raises(ValueError, match="2 references but 1"):
        wer(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty after normalisation"):
        wer(["?!"], ["a"])
    assert wer(["hello there"], [""]) == 1.0
