import pytest
import torch

from taste.swap.spans import (SPAN_RULES, SwapError, all_except, mismatch_codes, mismatch_sources, span_indices,
                              swap_codes)


def slow_swap(recipient, donor, words):
    """Plain-Python reference: row by row, element by element."""
    out = [list(row) for row in recipient.tolist()]
    donor_rows = donor.tolist()
    for i in range(len(out)):
        if i in set(words):
            for q in range(len(out[i])):
                out[i][q] = donor_rows[i][q]
    return out


@pytest.mark.parametrize("n_words,n_q", [(1, 1), (5, 2), (9, 4), (14, 4)])
@pytest.mark.parametrize("rule", SPAN_RULES)
def test_swap_matches_slow_reference(n_words, n_q, rule):
    g = torch.Generator().manual_seed(n_words * 10 + n_q)
    recipient = torch.randint(0, 512, (n_words, n_q), generator=g)
    donor = torch.randint(0, 512, (n_words, n_q), generator=g)
    words = span_indices(n_words, rule, seed=n_words)
    out = swap_codes(recipient, donor, words)
    assert out.tolist() == slow_swap(recipient, donor, words)
    for i in range(n_words):  # whole words move (every codebook of a row), the rest is untouched
        expected = donor[i] if i in words else recipient[i]
        assert torch.equal(out[i], expected)
    assert recipient.data_ptr() != out.data_ptr()


def test_identity_swap_and_inputs_unchanged():
    recipient = torch.arange(12).reshape(6, 2)
    donor = recipient + 100
    before = recipient.clone()
    assert torch.equal(swap_codes(recipient, donor, []), recipient)
    assert torch.equal(swap_codes(recipient, recipient.clone(), range(6)), recipient)
    assert torch.equal(swap_codes(recipient, donor, range(6)), donor)
    swap_codes(recipient, donor, [1, 2])
    assert torch.equal(recipient, before)


def test_mismatched_word_counts_rejected():
    with pytest.raises(SwapError, match="word counts differ: recipient has 5 words, donor 6"):
        swap_codes(torch.zeros(5, 4, dtype=torch.long), torch.zeros(6, 4, dtype=torch.long), [0])
    with pytest.raises(SwapError, match="codebook depths differ"):
        swap_codes(torch.zeros(5, 4, dtype=torch.long), torch.zeros(5, 2, dtype=torch.long), [0])
    with pytest.raises(SwapError, match="out of range"):
        swap_codes(torch.zeros(5, 4, dtype=torch.long), torch.zeros(5, 4, dtype=torch.long), [5])
    with pytest.raises(SwapError, match=r"\[N_words, n_q\]"):
        swap_codes(torch.zeros(5), torch.zeros(5), [0])


def test_mismatch_takes_codes_of_another_word():
    recipient = torch.zeros(7, 2, dtype=torch.long)
    donor = torch.arange(7)[:, None].repeat(1, 2) + 10
    words = [1, 2, 3]
    out = mismatch_codes(recipient, donor, words, seed=3)
    sources = mismatch_sources(words, 7, seed=3)
    assert all(s != w for s, w in zip(sources, words))
    for w, s in zip(words, sources):
        assert out[w].tolist() == donor[s].tolist()
    assert out[[0, 4, 5, 6]].abs().sum() == 0
    with pytest.raises(SwapError, match="at least two words"):
        mismatch_sources([0], 1, 0)


def test_span_rules():
    assert span_indices(9, "first_third") == [0, 1, 2]
    assert span_indices(9, "middle_third") == [3, 4, 5]
    assert span_indices(10, "first_third") == [0, 1, 2, 3]
    assert span_indices(7, "every_other") == [0, 2, 4, 6]
    singles = {span_indices(9, "single", seed=s)[0] for s in range(30)}
    assert singles <= set(range(1, 8)) and len(singles) > 3  # inner words, seeded
    assert span_indices(9, "single", seed=4) == span_indices(9, "single", seed=4)
    assert span_indices(1, "single") == [0]
    assert all_except(4, 2) == [0, 1, 3]
    with pytest.raises(SwapError, match="unknown span rule"):
        span_indices(5, "last_word")
