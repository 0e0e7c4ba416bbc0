"""The frame-count duration feature and the frame -> word assignment loss (issue 13): which word each encoder frame
is heard as, read off the aggregator's cross-attention, and how many frames each word gets."""

import math
from dataclasses import replace

import pytest
import torch

from tk_helpers import make_tokenizer


def block_attention(spans, t, n_tokens_per_word=None):
    """Row-normalised attention [1, L, T]: each token uniform over its word's frames [a, b)."""
    n_tokens_per_word = n_tokens_per_word or [1] * len(spans)
    rows, word_index = [], []
    for w, ((a, b), k) in enumerate(zip(spans, n_tokens_per_word)):
        for _ in range(k):
            row = torch.zeros(t)
            row[a:b] = 1.0 / (b - a)
            rows.append(row)
            word_index.append(w)
    return torch.stack(rows)[None], torch.tensor([word_index])


def test_counts_are_the_frames_of_each_word_for_disjoint_attention():
    from taste.tokenizer.aggregator import word_frame_counts

    attention, word_index = block_attention([(0, 5), (5, 25), (25, 28)], 40, [1, 2, 1])
    counts = word_frame_counts(attention, word_index, 3)
    assert counts[0].tolist() == pytest.approx([5.0, 20.0, 3.0])  # frames 28-39: nobody attends, nobody counts


def test_shared_frames_are_split_by_attention_not_double_counted():
    from taste.tokenizer.aggregator import frame_assignment, word_attention, word_frame_counts

    attention, word_index = block_attention([(0, 10), (5, 15)], 15)
    assign = frame_assignment(word_attention(attention, word_index, 2))
    assert assign.sum(1)[0].tolist() == pytest.approx([1.0] * 15)
    counts = word_frame_counts(attention, word_index, 2)[0]
    assert counts.sum().item() == pytest.approx(15.0)
    assert counts.tolist() == pytest.approx([7.5, 7.5])  # 5 own + half of 5 shared each


def test_counts_grow_linearly_with_a_stretched_word():
    """A word twice as long (its attention twice as wide) gets twice the frames; its neighbours keep theirs."""
    from taste.tokenizer.aggregator import word_frame_counts

    a, wi = block_attention([(0, 6), (6, 16), (16, 22)], 40)
    b, _ = block_attention([(0, 6), (6, 26), (26, 32)], 40)
    ca, cb = word_frame_counts(a, wi, 3)[0], word_frame_counts(b, wi, 3)[0]
    assert cb[1].item() == pytest.approx(2 * ca[1].item())
    assert cb[0].item() == pytest.approx(ca[0].item()) and cb[2].item() == pytest.approx(ca[2].item())


def test_frame_labels_mark_each_frame_with_its_word():
    from taste.tokenizer.train import frame_labels

    word_frames = torch.tensor([[[1, 3], [3, 6], [0, 0]], [[0, 2], [0, 0], [0, 0]]])
    labels = frame_labels(word_frames, torch.tensor([2, 1]), 8)
    assert labels.tolist() == [[-1, 0, 0, 1, 1, 1, -1, -1], [0, 0, -1, -1, -1, -1, -1, -1]]


def test_assignment_loss_is_zero_for_a_perfect_assignment_and_positive_otherwise():
    from taste.tokenizer.train import assignment_loss

    word_frames = torch.tensor([[[0, 5], [5, 12]]])
    n_words = torch.tensor([2])
    perfect, word_index = block_attention([(0, 5), (5, 12)], 12)
    assert assignment_loss(perfect, word_index, word_frames, n_words).item() == pytest.approx(0.0, abs=1e-6)
    blurred, _ = block_attention([(0, 8), (4, 12)], 12)
    loss = assignment_loss(blurred, word_index, word_frames, n_words)
    # frames 4-7 are shared half and half: 4 of 12 labelled frames at -log(1/2)
    assert loss.item() == pytest.approx(4 / 12 * math.log(2), abs=1e-5)


def test_assignment_loss_trains_the_attention(asr, bpe, mel):
    """Its gradient reaches the aggregator's cross-attention projections (a training aid, unlike the feature)."""
    from taste.tokenizer.data import Collate
    from taste.tokenizer.train import loss_fn
    from test_duration_loss import _item

    tk = make_tokenizer(asr, bpe)
    tk.set_stage("no_vq")
    tk.train()
    item = _item(tk, mel, "the cat sat", (0.3, 0.5, 0.4))
    batch = Collate(tk.cfg.conditioning, tk.cfg.decoder.n_units, tk.cfg.encoder_rate_hz)([item])
    loss, logs = loss_fn(tk, batch, assign_weight=1.0)
    assert "assign" in logs and logs["assign"] > 0 and "align" not in logs
    loss.backward()
    q = tk.aggregator.layers[-1].encoder_attn.q_proj.weight.grad
    assert q is not None and q.abs().sum() > 0


def frame_count_tokenizer(asr, bpe, feature: str = "frame_count"):
    """The debug tokenizer with duration_feature=`feature` (a frame count) and a random (non-zero) duration
    projection."""
    from taste.tokenizer import TasteTokenizer

    base = make_tokenizer(asr, bpe)
    cfg = replace(base.cfg, aggregator=replace(base.cfg.aggregator, duration_feature=feature))
    tk = TasteTokenizer(cfg, asr=asr, bpe=bpe, stage="rvq")
    missing, unexpected = tk.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("aggregator.duration_embed.") for k in missing)
    with torch.no_grad():
        for p in tk.aggregator.duration_embed.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    return base.eval(), tk.eval()


def test_the_feature_changes_the_vectors_by_the_stretch(asr, bpe, mel):
    """Vectors differ from the model without the feature, and a word's added embedding differs between the
    utterance and the same utterance twice as slow."""
    base, tk = frame_count_tokenizer(asr, bpe)
    text = "the cat sat"
    short = mel[:, :90]
    added = []
    for m in (short, short.repeat_interleave(2, dim=-1)):
        batch = tk.tokenize([text])
        states = tk.encoder_states(m[None], torch.tensor([m.shape[-1]]))
        with torch.no_grad():
            with_feature, _ = tk.word_vectors(batch, *states)
            without, _ = base.word_vectors(batch, *states)
        added.append(with_feature - without)
    assert not torch.allclose(added[0], torch.zeros_like(added[0]), atol=1e-4)
    assert not torch.allclose(added[0], added[1], atol=1e-3)


def soft_counts(attention, batch, frame_lengths):
    from taste.tokenizer.aggregator import word_frame_counts

    return word_frame_counts(attention, batch.word_index, int(batch.n_words.max()))


def monotonic_counts(attention, batch, frame_lengths):
    from taste.tokenizer.aggregator import word_monotonic_counts

    return word_monotonic_counts(attention, batch.word_index, batch.n_words, frame_lengths)


@pytest.mark.parametrize("feature, count", [("frame_count", soft_counts), ("monotonic_count", monotonic_counts)])
def test_the_feature_does_not_depend_on_batch_padding(asr, bpe, mel, feature, count):
    """An utterance alone and padded inside a batch with a longer one gets the same counts and vectors (padded
    frames and padded words take no share)."""
    from taste.asr.features import pad_mels

    _, tk = frame_count_tokenizer(asr, bpe, feature)
    texts = ["the cat sat", "she sells sea shells on the shore"]
    mels = [mel[:, :60], mel]
    batch = tk.tokenize(texts)
    padded, lengths = pad_mels(mels)
    with torch.no_grad():
        states = tk.encoder_states(padded, lengths)
        vectors, _, attention = tk.word_vectors(batch, *states, return_attention=True)
        alone_batch = tk.tokenize(texts[:1])
        alone_states = tk.encoder_states(mels[0][None], torch.tensor([60]))
        alone, _, alone_attention = tk.word_vectors(alone_batch, *alone_states, return_attention=True)
    counts = count(attention, batch, states[2])
    alone_counts = count(alone_attention, alone_batch, alone_states[2])
    torch.testing.assert_close(counts[0, :3], alone_counts[0], atol=1e-4, rtol=1e-4)
    assert counts[0, 3:].abs().max() == 0  # words the first transcript does not have
    torch.testing.assert_close(vectors[0, :3], alone[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("feature", ["frame_count", "monotonic_count"])
def test_frame_count_model_save_load_round_trip(asr, bpe, mel, tmp_path, feature):
    from taste.tokenizer import TasteTokenizer

    _, tk = frame_count_tokenizer(asr, bpe, feature)
    tk.save_pretrained(tmp_path / "m")
    loaded = TasteTokenizer.from_pretrained(tmp_path / "m")
    assert loaded.cfg.aggregator.duration_feature == feature
    text = "the cat sat"
    a, b = tk.encode(mel, text), loaded.encode(mel, text)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.vectors, b.vectors)
