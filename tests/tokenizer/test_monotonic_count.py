"""The monotonic-count duration feature (issue 13): each word's frames in the best monotonic segmentation of the
encoder frames into the words, read off the aggregator's frame assignment (aggregator.word_monotonic_counts).
Padding independence and the save/load round trip are test_frame_count's, parametrised over both count features."""

import itertools

import pytest
import torch

from test_frame_count import block_attention, frame_count_tokenizer


def brute_force_counts(log_assign: torch.Tensor, n_frames: int, n_words: int) -> list[int]:
    """Every split of frames 0..n_frames-1 into n_words non-empty runs in order; the one with the highest summed
    log assignment."""
    best = None
    for cuts in itertools.combinations(range(1, n_frames), n_words - 1):
        bounds = [0, *cuts, n_frames]
        score = sum(float(log_assign[w, bounds[w]: bounds[w + 1]].sum()) for w in range(n_words))
        if best is None or score > best[0]:
            best = (score, [bounds[w + 1] - bounds[w] for w in range(n_words)])
    return best[1]


def random_batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    frame_lengths = torch.tensor([9, 7, 6])
    attention = torch.rand(3, 7, 9, generator=g) ** 3
    for i, t in enumerate(frame_lengths.tolist()):
        attention[i, :, t:] = 0
    attention = attention / attention.sum(-1, keepdim=True)
    word_index = torch.tensor([[0, 0, 1, 2, 3, 3, -1], [0, 1, 1, 2, -1, -1, -1], [0, 1, 2, 2, 3, 4, 4]])
    return attention, word_index, torch.tensor([4, 3, 5]), frame_lengths


@pytest.mark.parametrize("seed", range(8))
def test_counts_are_the_best_monotonic_segmentation(seed):
    from taste.tokenizer.aggregator import frame_assignment, word_attention, word_monotonic_counts

    attention, word_index, n_words, frame_lengths = random_batch(seed)
    counts = word_monotonic_counts(attention, word_index, n_words, frame_lengths)
    log_assign = frame_assignment(word_attention(attention, word_index, 5)).clamp(min=1e-12).log()
    for i in range(3):
        n, t = int(n_words[i]), int(frame_lengths[i])
        assert counts[i, :n].long().tolist() == brute_force_counts(log_assign[i], t, n)
        assert counts[i, n:].abs().sum() == 0  # absent words
        assert counts[i].sum().item() == t  # every real frame to one word, padded frames to none


def test_disjoint_attention_gives_each_word_its_frames_and_unattended_frames_to_a_neighbour():
    from taste.tokenizer.aggregator import word_monotonic_counts, word_frame_counts

    attention, word_index = block_attention([(0, 5), (5, 25), (25, 28)], 28, [1, 2, 1])
    counts = word_monotonic_counts(attention, word_index, torch.tensor([3]), torch.tensor([28]))
    assert counts[0].tolist() == [5.0, 20.0, 3.0]
    # trailing frames nobody attends to go to the last word (the soft count drops them)
    attention, word_index = block_attention([(0, 5), (5, 25), (25, 28)], 40, [1, 2, 1])
    counts = word_monotonic_counts(attention, word_index, torch.tensor([3]), torch.tensor([40]))
    assert counts[0].tolist() == [5.0, 20.0, 15.0]
    assert word_frame_counts(attention, word_index, 3)[0].tolist() == pytest.approx([5.0, 20.0, 3.0])


def test_a_blurred_stretched_word_keeps_its_frames_where_the_soft_count_loses_them():
    """Neighbours whose attention spills over a long word take a share of its frames in the soft count; the
    segmentation gives each shared frame to the word that attends to it most, so the long word keeps them."""
    from taste.tokenizer.aggregator import word_frame_counts, word_monotonic_counts

    t = 40
    rows = torch.zeros(3, t)
    rows[0, 0:5], rows[1, 5:35], rows[2, 35:40] = 1.0, 1.0, 1.0
    rows[0, 5:20] += 0.15  # the short neighbours spill weak attention over the long word
    rows[2, 20:35] += 0.15
    attention = (rows / rows.sum(-1, keepdim=True))[None]
    word_index = torch.tensor([[0, 1, 2]])
    soft = word_frame_counts(attention, word_index, 3)[0]
    hard = word_monotonic_counts(attention, word_index, torch.tensor([3]), torch.tensor([t]))[0]
    assert hard.tolist() == [5.0, 30.0, 5.0]
    assert soft[1] < 25.0


def test_one_word_takes_every_frame_and_a_wordless_row_takes_none():
    """Edge rows in one batch: a single word gets all its utterance's frames, an utterance without words (a
    hand-built batch; tokenize refuses one) counts nothing, and frame lengths beyond the attention's frames are
    clipped to them."""
    from taste.tokenizer.aggregator import word_monotonic_counts

    attention, word_index = block_attention([(0, 6), (6, 10)], 10)
    attention = attention.repeat(3, 1, 1)
    word_index = torch.tensor([[0, 0], [0, 1], [-1, -1]])
    counts = word_monotonic_counts(attention, word_index, torch.tensor([1, 2, 0]), torch.tensor([8, 50, 10]))
    assert counts.tolist() == [[8.0, 0.0], [6.0, 4.0], [0.0, 0.0]]


def test_too_few_frames_fall_back_to_soft_counts():
    from taste.tokenizer.aggregator import word_frame_counts, word_monotonic_counts

    attention, word_index = block_attention([(0, 1), (1, 2), (1, 2)], 2)
    counts = word_monotonic_counts(attention, word_index, torch.tensor([3]), torch.tensor([2]))
    torch.testing.assert_close(counts, word_frame_counts(attention, word_index, 3))


def test_monotonic_count_model_changes_with_a_stretch(asr, bpe, mel):
    base, tk = frame_count_tokenizer(asr, bpe, "monotonic_count")
    text = "the cat sat"
    short = mel[:, :90]
    added = []
    for m in (short, short.repeat_interleave(2, dim=-1)):
        batch = tk.tokenize([text])
        states = tk.encoder_states(m[None], torch.tensor([m.shape[-1]]))
        with torch.no_grad():
            added.append(tk.word_vectors(batch, *states)[0] - base.word_vectors(batch, *states)[0])
    assert not torch.allclose(added[0], added[1], atol=1e-3)
