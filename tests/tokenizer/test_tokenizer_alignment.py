"""The aggregator's alignment loss: word-span targets against a slow reference, its gradient, the location prior."""

from __future__ import annotations

import pytest
import torch

from taste.tokenizer.data import word_frame_spans
from taste.tokenizer.train import alignment_loss, alignment_targets


def _targets_reference(word_index: list[list[int]], spans: list[list[tuple[int, int]]], n_frames: int) -> torch.Tensor:
    out = torch.zeros(len(word_index), len(word_index[0]), n_frames)
    for b, row in enumerate(word_index):
        for t, w in enumerate(row):
            if w < 0:
                continue
            a, e = spans[b][w]
            for f in range(a, e):
                out[b, t, f] = 1.0 / (e - a)
    return out


def test_alignment_targets_match_reference():
    word_index = [[0, 0, 1, 2, -1], [0, 1, 1, -1, -1]]
    spans = [[(0, 3), (3, 4), (4, 9)], [(1, 5), (5, 8)]]
    frames = torch.full((2, 3, 2), -1, dtype=torch.long)
    for b, s in enumerate(spans):
        frames[b, : len(s)] = torch.tensor(s)
    got = alignment_targets(torch.tensor(word_index), frames, 10)
    torch.testing.assert_close(got, _targets_reference(word_index, spans, 10))
    assert torch.allclose(got.sum(-1), torch.tensor([[1.0, 1, 1, 1, 0], [1, 1, 1, 0, 0]]))


@pytest.mark.parametrize("starts, durs, n", [([0.0, 0.2, 0.41], [0.2, 0.21, 0.3], 40), ([0.0, 0.001], [0.001, 0.0], 5),
                                             ([0.5, 0.9], [0.4, 5.0], 30)])
def test_word_frame_spans_are_clipped_and_never_empty(starts, durs, n):
    spans = word_frame_spans(starts, durs, n, 50.0)
    assert len(spans) == len(starts)
    for a, b in spans:
        assert 0 <= a < b <= n


def test_alignment_loss_prefers_attention_inside_the_span():
    targets = alignment_targets(torch.tensor([[0, 1]]), torch.tensor([[[0, 2], [2, 4]]]), 4)
    inside = torch.tensor([[[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]])
    swapped = inside.flip(1)
    uniform = torch.full((1, 2, 4), 0.25)
    assert alignment_loss(inside, targets) < alignment_loss(uniform, targets) < alignment_loss(swapped, targets)
    assert float(alignment_loss(inside, targets)) == pytest.approx(float(torch.log(torch.tensor(2.0))), abs=1e-5)


def test_loss_fn_trains_the_attention_only_when_asked(tokenizer, mel):
    from taste.tokenizer.data import Collate, TasteItem
    from taste.tokenizer.train import loss_fn

    text = "the cat sat"
    tk = tokenizer
    batch_text = tk.tokenize([text])
    lengths = torch.tensor([mel.shape[-1]])
    keys, values, frames = tk.encoder_states(mel.unsqueeze(0), lengths)
    t = int(frames[0])
    item = TasteItem(id="u", text=text, token_ids=tuple(batch_text.token_ids[0].tolist()),
                     word_index=tuple(batch_text.word_index[0].tolist()), keys=keys[0, :t], values=values[0, :t],
                     speaker=torch.randn(256), units=torch.arange(12) % tk.cfg.decoder.n_units, boundaries=(0, 4, 8),
                     word_starts_s=(0.0, t / 150, 2 * t / 150), word_durations_s=(t / 150, t / 150, t / 150))
    batch = Collate(tk.cfg.conditioning, tk.cfg.decoder.n_units, tk.cfg.encoder_rate_hz)([item])
    tk.train()
    _, logs = loss_fn(tk, batch, align_weight=1.0)
    assert "align" in logs and logs["align"] > 0
    _, logs = loss_fn(tk, batch, align_weight=0.0)
    assert "align" not in logs
    tk.set_stage("text_only")
    _, logs = loss_fn(tk, batch, align_weight=1.0)
    assert "align" not in logs  # no aggregator at this stage


def test_location_prior_pulls_attention_towards_the_word(tokenizer, mel):
    """With a strong location prior the last layer's attention of word j peaks near j's share of the utterance."""
    agg = tokenizer.aggregator
    text = "one two three four"
    batch = tokenizer.tokenize([text])
    keys, values, frames = tokenizer.encoder_states(mel.unsqueeze(0), torch.tensor([mel.shape[-1]]))
    with torch.no_grad():
        for layer in agg.layers:
            layer.location_weight.fill_(6.0)
        _, _, att = agg(batch.token_ids, batch.word_index, batch.n_words, keys, values, frames, return_attention=True)
    t = int(frames[0])
    peaks = att[0].argmax(-1).float() / t
    expected = (batch.word_index[0].float() + 0.5) / 4
    assert torch.all((peaks - expected).abs() < 0.2)
