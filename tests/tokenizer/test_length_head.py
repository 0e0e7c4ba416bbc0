"""The unit decoder's length head (tokenizer.decoder.length_head): targets, no leak of the length it predicts,
word ends placed exactly at the chosen counts, batch-independent sampling, training and save/load."""

from dataclasses import replace

import pytest
import torch

from taste.tokenizer import TasteConfig, TasteTokenizer, TokenizerConfigError
from taste.tokenizer.config import DecoderConfig
from taste.tokenizer.streams import build_stream, parse_stream, stream_word_lengths
from taste.tokenizer.unit_decoder import UnitDecoder

from tk_helpers import make_tokenizer

N_UNITS = 16


def _decoder(length_head: bool = True, seed: int = 0) -> UnitDecoder:
    torch.manual_seed(seed)
    cfg = DecoderConfig(n_units=N_UNITS, d_model=32, layers=2, n_heads=2, max_len=128, max_word_units=12,
                        max_words=8, max_tokens=32, dropout=0.0, length_head=length_head)
    return UnitDecoder(cfg, "word_sync", text_vocab=40, taste_dim=8).eval()


def _stream(counts: list[int]) -> list[int]:
    units = [(3 * j + i) % N_UNITS for j, c in enumerate(counts) for i in range(c)]
    bounds = [sum(counts[:j]) for j in range(len(counts))]
    return build_stream(units, bounds, "word_sync", N_UNITS)


def _reference_lengths(stream: list[int]) -> list[int]:
    out, word = [], -1
    counts = parse_stream(stream, N_UNITS)[1]
    for tok in stream:
        word += tok == N_UNITS
        out.append(counts[word] if word >= 0 else 0)
    return out


@pytest.mark.parametrize("counts", [[1], [3, 1, 4], [2, 7, 1, 1, 5]])
def test_stream_word_lengths_match_a_python_reference(counts):
    s, other = _stream(counts), _stream([2, 2])
    width = max(len(s), len(other)) + 2
    padded = torch.tensor([s + [-1] * (width - len(s)), other + [-1] * (width - len(other))])
    got = stream_word_lengths(padded, N_UNITS)
    assert got[0, : len(s)].tolist() == _reference_lengths(s)
    assert got[1, : len(other)].tolist() == _reference_lengths(other) == [2, 2, 2, 2, 2, 2, 2]


def _conditioning(dec: UnitDecoder, n_words: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    token_ids = torch.randint(1, 40, (1, n_words))
    word_index = torch.arange(n_words)[None]
    taste = torch.randn(1, n_words, 8, generator=g)
    return dec.condition(token_ids, word_index, torch.tensor([n_words]), taste)


def test_length_targets_are_the_unit_counts_at_each_boundary():
    dec = _decoder()
    fused, mask = _conditioning(dec, 3)
    stream = torch.tensor([_stream([2, 5, 3])])
    _, length_logits, targets = dec(fused, mask, torch.zeros(1, 256), stream, return_lengths=True)
    inputs = stream[0, :-1]
    assert targets[0][inputs == N_UNITS].tolist() == [2, 5, 3]
    assert bool((targets[0][inputs != N_UNITS] == -1).all())
    assert length_logits.shape == (1, inputs.shape[0], 12)
    assert torch.isinf(length_logits[..., 0]).all()  # a word never has 0 units


def test_the_head_never_sees_the_length_it_predicts():
    # same words, word 1 spoken with 2 or with 6 units: the head's logits at word 1's BND (and before) must not move
    dec = _decoder()
    fused, mask = _conditioning(dec, 3)
    short, long = _stream([3, 2, 4]), _stream([3, 6, 4])
    at = [i for i, t in enumerate(short) if t == N_UNITS][1]  # word 1's BND
    outs = [dec(fused, mask, torch.zeros(1, 256), torch.tensor([s]), return_lengths=True)[1] for s in (short, long)]
    torch.testing.assert_close(outs[0][:, : at + 1], outs[1][:, : at + 1])
    assert not torch.allclose(outs[0][:, at + 3], outs[1][:, at + 3])  # later positions do see word 1's units


def test_generation_gives_each_word_exactly_the_chosen_count(monkeypatch):
    dec = _decoder()
    fused, mask = _conditioning(dec, 4)
    chosen = iter([3, 1, 5, 2])
    monkeypatch.setattr(dec, "choose_lengths",
                        lambda hidden, median, gen: torch.full((hidden.shape[0],), next(chosen), dtype=torch.long))
    stream = dec.generate(fused, mask, torch.zeros(1, 256), seed=0)[0]
    assert parse_stream(stream, N_UNITS)[1] == [3, 1, 5, 2]


def test_median_length_is_the_heads_median():
    dec = _decoder()
    hidden = torch.randn(5, 32)
    with torch.no_grad():
        probs = torch.softmax(dec.length_logits(hidden), -1)
        got = dec.choose_lengths(hidden, True, [])
    for p, n in zip(probs, got.tolist()):
        assert float(p[:n].sum()) < 0.5 <= float(p[: n + 1].sum())


@pytest.mark.parametrize("boundary", ["median", "sample"])
def test_a_rows_stream_does_not_depend_on_its_batch(boundary):
    dec = _decoder()
    rows = [_conditioning(dec, n, seed=n) for n in (2, 5, 3)]
    width = 5
    fused = torch.zeros(3, width, 32)
    mask = torch.zeros(3, width, dtype=torch.bool)
    for i, (f, m) in enumerate(rows):
        fused[i, : f.shape[1]], mask[i, : f.shape[1]] = f[0], m[0]
    together = dec.generate(fused, mask, torch.zeros(3, 256), seed=[7, 8, 9], boundary=boundary)
    for i, (f, m) in enumerate(rows):
        alone = dec.generate(f, m, torch.zeros(1, 256), seed=[7 + i], boundary=boundary)[0]
        assert alone == together[i]
        assert len(parse_stream(alone, N_UNITS)[1]) == f.shape[1]


def test_length_head_needs_word_sync():
    with pytest.raises(TokenizerConfigError, match="length_head"):
        TasteConfig(decoder=DecoderConfig(length_head=True), conditioning="prefix")


def _with_head(asr, bpe) -> TasteTokenizer:
    base = make_tokenizer(asr, bpe)
    cfg = replace(base.cfg, decoder=replace(base.cfg.decoder, length_head=True))
    torch.manual_seed(0)
    return TasteTokenizer.from_asr(cfg, asr, bpe, stage="rvq").eval()


def test_loss_fn_trains_the_head_only_when_weighted(asr, bpe, mel):
    from taste.tokenizer.data import Collate
    from taste.tokenizer.train import loss_fn
    from test_duration_loss import _item

    model = _with_head(asr, bpe)
    batch = Collate(model.cfg.conditioning, model.cfg.decoder.n_units, model.cfg.encoder_rate_hz)(
        [_item(model, mel, "the cat sat", (0.1, 0.3, 0.2))])
    _, logs_off = loss_fn(model, batch)
    loss, logs_on = loss_fn(model, batch, length_weight=1.0)
    assert "length" not in logs_off and logs_on["length"] > 0
    loss.backward()
    assert float(model.decoder.length_mlp[0].weight.grad.abs().sum()) > 0


def test_save_load_round_trip_keeps_the_head(asr, bpe, mel, tmp_path):
    model = _with_head(asr, bpe)
    model.save_pretrained(tmp_path / "tk")
    again = TasteTokenizer.from_pretrained(tmp_path / "tk")
    assert again.cfg.decoder.length_head
    codes = model.encode(mel, "the cat sat").codes
    a = model.decode("the cat sat", codes, torch.zeros(256), seed=3)
    b = again.decode("the cat sat", codes, torch.zeros(256), seed=3)
    assert a.units.tolist() == b.units.tolist() and list(a.word_durations_s) == list(b.word_durations_s)


def test_a_word_longer_than_the_heads_classes_is_no_target():
    dec = _decoder()  # max_word_units 12: classes 1..11
    fused, mask = _conditioning(dec, 2)
    stream = torch.tensor([_stream([14, 3])])
    _, _, targets = dec(fused, mask, torch.zeros(1, 256), stream, return_lengths=True)
    assert targets[0][stream[0, :-1] == N_UNITS].tolist() == [-1, 3]


def test_params_switch_reaches_the_word_sync_config_only(asr):
    from taste.config import load_params
    from taste.tokenizer.config import config_from_params

    params = load_params("params.yaml")
    assert params["tokenizer"]["decoder"]["length_head"] is False  # the default until a dev A/B says otherwise
    params["tokenizer"]["decoder"]["length_head"] = True
    assert config_from_params(params, asr.config, conditioning="word_sync").decoder.length_head
    # the stage's prefix-mode ablation has no word ends to place: built without the head, not refused
    assert not config_from_params(params, asr.config, conditioning="prefix").decoder.length_head


def test_fingerprint_names_the_head_only_when_on(asr, bpe):
    from taste.tokenizer.train import substage_fingerprint

    off = substage_fingerprint(make_tokenizer(asr, bpe), [], "no_vq", 1.0, 1.0, length_weight=1.0)
    assert "length_head" not in off["model"]["decoder"] and "length_weight" not in off  # runs from before keep theirs
    on = substage_fingerprint(_with_head(asr, bpe), [], "no_vq", 1.0, 1.0, length_weight=1.0)
    assert on["model"]["decoder"]["length_head"] is True and on["length_weight"] == 1.0
