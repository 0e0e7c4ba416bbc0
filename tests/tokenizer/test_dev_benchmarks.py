"""The issue-13 diagnosis scripts' own parts: ContinuousVectors (a no-VQ model through the swap code's codes
interface) and the duration probe's ridge fit and pooled slope."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tk_helpers import make_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

TEXT = "she sells sea shells"


def test_continuous_vectors_swap_a_word_s_vector_exactly(asr, bpe, mel):
    from tokenizer_variants_dev import ContinuousVectors

    model = make_tokenizer(asr, bpe, stage="no_vq")
    cv = ContinuousVectors(model)
    other = mel.flip(-1)
    a, b = cv.encode(mel, TEXT), cv.encode(other, TEXT)
    assert a.codes.shape == (4, 1) and a.codes.dtype == torch.long
    assert torch.equal(a.vectors, model.encode(mel, TEXT).vectors)
    swapped = a.codes.clone()
    swapped[2] = b.codes[2]  # word j = 2 takes the other rendition's code, as the swap stage does
    got = cv.codes_to_vectors(swapped)
    assert torch.equal(got[2], b.vectors[2]) and torch.equal(got[[0, 1, 3]], a.vectors[[0, 1, 3]])
    spk = torch.randn(256)
    direct = model.decode_batch([TEXT], [got], spk[None], seed=3)[0]
    via = cv.decode(TEXT, swapped, spk, seed=3)
    assert torch.equal(direct.units, via.units) and direct.word_units == via.word_units
    assert cv.stage == "no_vq"  # everything else is the model's


def test_continuous_vectors_refuse_a_quantised_model(asr, bpe):
    from tokenizer_variants_dev import ContinuousVectors

    with pytest.raises(ValueError, match="no-VQ"):
        ContinuousVectors(make_tokenizer(asr, bpe, stage="rvq"))


def test_probe_recovers_a_linear_duration_and_the_pooled_slope_its_factor():
    from duration_probe_dev import fit_ridge, pair_slope, predict, r2

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 8))
    y = x @ rng.normal(size=8) + 0.5
    probe = fit_ridge(x, y, alpha=1e-3)
    assert r2(y, predict(probe, x)) > 0.999
    delta = rng.normal(size=40)
    value, lo, hi = pair_slope(delta, 0.25 * delta, np.array([f"b{i // 2}" for i in range(40)]), 200, 0)
    assert value == lo == hi == 0.25
    noisy = pair_slope(delta, 0.25 * delta + rng.normal(scale=0.5, size=40), np.arange(40).astype(str), 200, 0)
    assert noisy[1] < noisy[0] < noisy[2]


def test_location_prior_off_zeroes_the_prior_and_restores_it(tokenizer):
    """duration_probe_dev.location_prior_off: softplus(w) ~ 0 in every aggregator layer inside, the exact weights after
    (also when the body raises)."""
    import torch.nn.functional as F

    from duration_probe_dev import location_prior_off

    before = [layer.location_weight.detach().clone() for layer in tokenizer.aggregator.layers]
    with location_prior_off(tokenizer):
        assert all(float(F.softplus(layer.location_weight).max()) < 1e-9 for layer in tokenizer.aggregator.layers)
    assert all(torch.equal(layer.location_weight, w) for layer, w in zip(tokenizer.aggregator.layers, before))
    assert all(layer.location_weight.requires_grad for layer in tokenizer.aggregator.layers)  # trains again
    with pytest.raises(RuntimeError):
        with location_prior_off(tokenizer):
            raise RuntimeError("measurement failed")
    assert all(torch.equal(layer.location_weight, w) for layer, w in zip(tokenizer.aggregator.layers, before))


def test_encode_with_widths_gives_each_word_its_frame_count(tokenizer, mel):
    """duration_probe_dev.encode_with_widths: one entry per word in each output; its log frame counts are those of
    tokenizer.aggregator.word_frame_counts on the model's own attention, its monotonic ones those of
    word_monotonic_counts."""
    from duration_probe_dev import encode_with_widths

    from taste.tokenizer.aggregator import word_frame_counts, word_monotonic_counts

    tokenizer.eval()
    text = "the cat sat on the mat"
    vectors, width, width_no_prior, log_counts, log_monotonic = encode_with_widths(tokenizer, mel, text)
    assert vectors.shape[0] == len(width) == len(width_no_prior) == len(log_counts) == len(log_monotonic) == 6
    batch = tokenizer.tokenize([text])
    with torch.no_grad():
        states = tokenizer.encoder_states(mel[None], torch.tensor([mel.shape[-1]]))
        _, _, attention = tokenizer.word_vectors(batch, *states, return_attention=True)
    expected = word_frame_counts(attention, batch.word_index, 6)[0].clamp(min=1.0).log()
    assert log_counts == pytest.approx(expected.tolist(), abs=1e-5)
    monotonic = word_monotonic_counts(attention, batch.word_index, batch.n_words, states[2])[0]
    assert log_monotonic == pytest.approx(monotonic.clamp(min=1.0).log().tolist(), abs=1e-6)
    assert monotonic.sum().item() == int(states[2][0])  # every frame to one word


def test_switch_off_location_prior_fixes_and_freezes_the_prior(tokenizer):
    """tokenizer_variants_dev's `_no_location_prior`: softplus(w) ~ 0 in every layer, and w no longer trains."""
    import torch.nn.functional as F
    from tokenizer_variants_dev import switch_off_location_prior

    switch_off_location_prior(tokenizer)
    for layer in tokenizer.aggregator.layers:
        assert float(F.softplus(layer.location_weight.detach()).max()) < 1e-9
        assert not layer.location_weight.requires_grad


def _length_head_tokenizer(asr, bpe):
    from dataclasses import replace

    from taste.tokenizer import TasteTokenizer

    base = make_tokenizer(asr, bpe)
    torch.manual_seed(0)
    cfg = replace(base.cfg, decoder=replace(base.cfg.decoder, length_head=True))
    return TasteTokenizer.from_asr(cfg, asr, bpe, stage="rvq").eval()


@pytest.mark.parametrize("rule", ["mean", "mean_log"])
def test_length_rule_gives_each_word_that_point_of_the_head_s_distribution(asr, bpe, rule):
    """tokenizer_variants_dev's `_length_rule`: in median mode every generated word gets the rounded mean / geometric
    mean of the head's count distribution (a sum written out here), not its median; sampling mode is the decoder's."""
    from taste.tokenizer.streams import parse_stream
    from tokenizer_variants_dev import use_length_rule

    model = _length_head_tokenizer(asr, bpe)
    dec = model.decoder
    with torch.no_grad():  # the same wide, skewed distribution at every BND: one count for every word
        dec.length_mlp[-1].weight.zero_()
        dec.length_mlp[-1].bias.copy_(torch.linspace(0.0, 3.0, dec.cfg.max_word_units))
    hidden = torch.randn(3, dec.cfg.d_model)
    probs = torch.softmax(dec.length_logits(hidden[0]).float(), -1).tolist()
    if rule == "mean":
        point = sum(c * p for c, p in enumerate(probs))
    else:
        point = float(np.exp(sum(np.log(c) * p for c, p in enumerate(probs) if c > 0)))
    want = min(max(round(point), 1), dec.cfg.max_word_units - 1)
    median = int(dec.choose_lengths(hidden, True, [])[0])
    sampled = dec.choose_lengths(hidden, False, [torch.Generator().manual_seed(i) for i in range(3)])
    assert want != median

    def decode_counts() -> list[int]:
        text = model.tokenize(["the cat sat"])
        with torch.no_grad():
            fused, mask = dec.condition(text.token_ids, text.word_index, text.n_words,
                                        torch.randn(1, 3, model.cfg.aggregator.d_model))
            stream = dec.generate(fused, mask, torch.zeros(1, dec.cfg.speaker_dim), seed=0)[0]
        return parse_stream(stream, dec.cfg.n_units)[1]

    assert decode_counts() == [median] * 3
    use_length_rule(model, rule)
    assert dec.choose_lengths(hidden, True, []).tolist() == [want] * 3
    assert decode_counts() == [want] * 3
    assert torch.equal(dec.choose_lengths(hidden, False, [torch.Generator().manual_seed(i) for i in range(3)]),
                       sampled)


def test_length_rule_refuses_a_decoder_without_the_head_and_unknown_rules(asr, bpe):
    from tokenizer_variants_dev import use_length_rule

    with pytest.raises(SystemExit, match="length head"):
        use_length_rule(make_tokenizer(asr, bpe), "mean")
    with pytest.raises(SystemExit, match="one of"):
        use_length_rule(_length_head_tokenizer(asr, bpe), "mode")
