"""The duration loss (tokenizer.duration_weight): its target, its value against a slow reference, where it applies,
and that it trains the aggregator towards carrying each word's duration."""

from __future__ import annotations

import math

import pytest
import torch

from taste.tokenizer.data import Collate, TasteItem
from taste.tokenizer.train import DurationTarget, duration_loss, loss_fn


def _item(tk, mel, text: str, durations: tuple[float, ...], uid: str = "u") -> TasteItem:
    batch_text = tk.tokenize([text])
    keys, values, frames = tk.encoder_states(mel.unsqueeze(0), torch.tensor([mel.shape[-1]]))
    t = int(frames[0])
    starts = tuple(sum(durations[:i]) for i in range(len(durations)))
    n = len(durations)
    return TasteItem(id=uid, text=text, token_ids=tuple(batch_text.token_ids[0].tolist()),
                     word_index=tuple(batch_text.word_index[0].tolist()), keys=keys[0, :t], values=values[0, :t],
                     speaker=torch.randn(256), units=torch.arange(4 * n) % tk.cfg.decoder.n_units,
                     boundaries=tuple(4 * i for i in range(n)), word_starts_s=starts, word_durations_s=durations)


class _Timed:
    def __init__(self, durations):
        self.word_durations_s = durations


def test_target_is_standardised_log_duration():
    items = [_Timed((0.1, 0.2)), _Timed((0.4, 0.8, 0.05))]
    target = DurationTarget.from_items(items)
    logs = [math.log(d) for it in items for d in it.word_durations_s]
    mean = sum(logs) / len(logs)
    std = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    assert target.mean == pytest.approx(mean) and target.std == pytest.approx(std)
    z = target(torch.tensor([0.1, 0.2, 0.4, 0.8, 0.05]))
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-6) and float(z.std()) == pytest.approx(1.0, abs=1e-5)
    assert float(target(torch.tensor([0.0]))) == pytest.approx((math.log(0.01) - mean) / std)  # clamped, finite
    with pytest.raises(ValueError, match="at least two words"):
        DurationTarget.from_items([_Timed((0.3,))])


def test_duration_loss_matches_reference_and_ignores_padding():
    target = DurationTarget(mean=math.log(0.2), std=0.5)
    taste = torch.randn(2, 3, 8)
    durations = torch.tensor([[0.2, 0.1, 0.0], [0.4, 0.3, 0.25]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    ref = [(float(taste[b, w, 0]) - (math.log(float(durations[b, w])) - math.log(0.2)) / 0.5) ** 2
           for b in range(2) for w in range(3) if mask[b, w]]
    assert float(duration_loss(taste, mask, durations, target)) == pytest.approx(sum(ref) / len(ref), rel=1e-5)
    taste2 = taste.clone()
    taste2[0, 2] = 1e6  # a padded word's vector does not count
    assert float(duration_loss(taste2, mask, durations, target)) == pytest.approx(sum(ref) / len(ref), rel=1e-5)


def test_loss_fn_adds_the_duration_term_only_when_asked(tokenizer, mel):
    tk = tokenizer
    item = _item(tk, mel, "the cat sat", (0.1, 0.3, 0.2))
    batch = Collate(tk.cfg.conditioning, tk.cfg.decoder.n_units, tk.cfg.encoder_rate_hz)([item])
    target = DurationTarget.from_items([item])
    tk.set_stage("no_vq")
    tk.eval()  # no dropout: the two passes below see the same vectors
    torch.manual_seed(0)
    plain, logs = loss_fn(tk, batch)
    assert "duration" not in logs
    torch.manual_seed(0)
    both, logs = loss_fn(tk, batch, duration_weight=2.0, duration_target=target)
    assert logs["duration"] > 0
    assert float(both.detach()) == pytest.approx(float(plain.detach()) + 2.0 * logs["duration"], rel=1e-5)
    with pytest.raises(ValueError, match="duration_target"):
        loss_fn(tk, batch, duration_weight=1.0)
    tk.set_stage("text_only")
    _, logs = loss_fn(tk, batch, duration_weight=1.0, duration_target=target)
    assert "duration" not in logs  # no TASTE vectors at this stage


def test_duration_loss_teaches_the_vectors_each_word_s_duration(tokenizer, mel):
    """A few optimiser steps on the duration loss alone bring coordinate 0 of the word vectors toward the words'
    standardised log durations, through the aggregator (the only trainable part here). It checks the loss trains
    the vectors, not that the audio is what tells the durations apart: the debug encoder's random states barely
    depend on its input, so the two items differ by their text."""
    tk = tokenizer
    tk.set_stage("no_vq")
    tk.train()
    items = [_item(tk, mel, "the cat sat", (0.05, 0.4, 0.15), "a"), _item(tk, mel, "a dog ran", (0.3, 0.06, 0.5), "b")]
    batch = Collate(tk.cfg.conditioning, tk.cfg.decoder.n_units, tk.cfg.encoder_rate_hz)(items)
    target = DurationTarget.from_items(items)
    mask = torch.arange(3).unsqueeze(0) < batch.text.n_words.unsqueeze(1)

    def loss() -> torch.Tensor:
        vectors, _ = tk.word_vectors(batch.text, batch.keys, batch.values, batch.frame_lengths)
        return duration_loss(vectors, mask, batch.word_durations[:, :3], target)

    opt = torch.optim.Adam(tk.aggregator.parameters(), lr=3e-3)
    before = float(loss().detach())
    for _ in range(30):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert float(loss().detach()) < 0.5 * before


def test_collate_carries_each_word_s_duration(tokenizer, mel):
    tk = tokenizer
    items = [_item(tk, mel, "the cat sat", (0.1, 0.3, 0.2), "a"), _item(tk, mel, "a dog", (0.25, 0.5), "b")]
    batch = Collate(tk.cfg.conditioning, tk.cfg.decoder.n_units, tk.cfg.encoder_rate_hz)(items)
    torch.testing.assert_close(batch.word_durations, torch.tensor([[0.1, 0.3, 0.2], [0.25, 0.5, 0.0]]))


def test_with_rvq_the_duration_term_trains_the_aggregator_through_the_codes(tokenizer, mel):
    """RVQ stage: the term reads the dequantised codes, and its gradient reaches the aggregator (straight through the
    quantiser) but not the unit decoder."""
    from taste.tokenizer.train import teacher_forced

    tk = tokenizer
    item = _item(tk, mel, "the cat sat", (0.1, 0.3, 0.2))
    batch = Collate(tk.cfg.conditioning, tk.cfg.decoder.n_units, tk.cfg.encoder_rate_hz)([item])
    tk.set_stage("rvq")
    tk.train()
    out = teacher_forced(tk, batch)
    mask = torch.ones(1, 3, dtype=torch.bool)
    duration_loss(out.taste, mask, batch.word_durations, DurationTarget.from_items([item])).backward()
    agg = [p.grad for p in tk.aggregator.parameters() if p.grad is not None]
    assert agg and any(float(g.abs().sum()) > 0 for g in agg)
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in tk.decoder.parameters())
