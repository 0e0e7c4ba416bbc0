"""The delay-1 / forward-fill pattern against a plain-Python reference written from its definition."""

import pytest
import torch

from taste.lm.patterns import IGNORE, NO_CODE, delay_codes, is_new_word


def reference(word_index, codes, delay, n_q):
    """Word i's codes attach at the first token of word i+delay; carried forward; predicted one token earlier."""
    T = len(word_index)
    first = {}
    for t, w in enumerate(word_index):
        first.setdefault(w, t)
    attach = {first[i + delay]: i for i in range(len(codes)) if i + delay in first}
    inputs, targets, current = [], [[IGNORE] * n_q for _ in range(T)], None
    for t in range(T):
        current = attach.get(t, current)
        inputs.append(list(codes[current]) if current is not None else [NO_CODE] * n_q)
    for t, i in attach.items():
        if t > 0:
            targets[t - 1] = list(codes[i])
    return inputs, targets


def stream(n_words, seed, trailing_pad=0):
    """bos, 1-3 tokens per word, eos (word index N), optional padding after eos."""
    g = torch.Generator().manual_seed(seed)
    wi = [-1]
    for w in range(n_words):
        wi += [w] * int(torch.randint(1, 4, (1,), generator=g))
    return wi + [n_words] + [n_words + 1] * trailing_pad


@pytest.mark.parametrize("n_words", [0, 1, 2, 5, 13])
@pytest.mark.parametrize("delay", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delay_matches_reference(n_words, delay, seed):
    wi = stream(n_words, seed, trailing_pad=seed)
    codes = torch.randint(0, 50, (n_words, 3), generator=torch.Generator().manual_seed(seed))
    got = delay_codes(wi, codes, delay)
    ref_in, ref_tgt = reference(wi, codes.tolist(), delay, n_q=3)
    assert got.input_codes.tolist() == ref_in
    assert got.target_codes.tolist() == ref_tgt


@pytest.mark.parametrize("n_words", [1, 4, 9])
def test_delay_one_predicts_every_word_once_in_order(n_words):
    wi = stream(n_words, 7)
    codes = torch.arange(n_words).unsqueeze(1)
    got = delay_codes(wi, codes, 1)
    predicted = got.target_codes[got.has_target, 0].tolist()
    assert predicted == list(range(n_words))
    # Causality: a word's codes enter the input strictly after the position that predicts them.
    for t in torch.nonzero(got.has_target).flatten().tolist():
        assert got.input_codes[: t + 1, 0].tolist().count(got.target_codes[t, 0].item()) == 0


def test_truncated_stream_only_targets_complete_words():
    wi = stream(6, 3)[:-4]  # cut mid-sentence, no eos
    got = delay_codes(wi, torch.arange(6).unsqueeze(1), 1)
    last_word = max(wi)
    assert got.target_codes[got.has_target, 0].tolist() == list(range(last_word))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="non-decreasing"):
        delay_codes([-1, 1, 0], torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="delay"):
        delay_codes([-1, 0], torch.zeros(1, 1, dtype=torch.long), delay=0)


def test_is_new_word():
    assert is_new_word("the ca", "the ca t") and not is_new_word("the ca", "the cat")
