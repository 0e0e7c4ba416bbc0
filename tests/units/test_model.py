import math

import pytest
import torch

from taste.units.model import UnitModelError, UnitTokenizer, build_debug_unit_tokenizer, debug_config


def _warm(model, mel, lengths):
    """One training-mode forward initialises the k-means codebook."""
    model.train()
    model(mel, lengths)
    return model.eval()


@pytest.mark.parametrize("rate_hz,frames", [(25, 100), (25, 101), (50, 100), (50, 37)])
def test_unit_rate_and_shapes(rate_hz, frames):
    torch.manual_seed(0)
    model = build_debug_unit_tokenizer(rate_hz=rate_hz)
    mel = torch.randn(2, 80, frames)
    lengths = torch.tensor([frames, frames // 2])
    out = model(mel, lengths)
    stride = 100 // rate_hz
    assert out["logits"].shape == (2, math.ceil(frames / stride), model.cfg.n_phones + 1)
    units, unit_lengths = model.encode(mel, lengths)
    assert unit_lengths.tolist() == [math.ceil(frames / stride), math.ceil(frames // 2 / stride)]
    assert (units[1, unit_lengths[1]:] == -1).all()
    assert (units[:, : unit_lengths[1]] >= 0).all() and units.max() < model.cfg.codebook_size


def test_rate_must_divide_frame_rate():
    with pytest.raises(UnitModelError, match="multiple"):
        debug_config(rate_hz=30)


def test_wrong_mel_shape_is_a_clear_error():
    model = build_debug_unit_tokenizer()
    with pytest.raises(UnitModelError, match="expected mel"):
        model.encode(torch.randn(2, 40, 50), torch.tensor([50, 50]))


def test_batch_padding_does_not_change_units():
    torch.manual_seed(0)
    model = _warm(build_debug_unit_tokenizer(), torch.randn(4, 80, 120), torch.full((4,), 120))
    short, long = torch.randn(1, 80, 41), torch.randn(1, 80, 120)
    batch = torch.cat([torch.nn.functional.pad(short, (0, 79), value=-11.5129), long])
    units, lengths = model.encode(batch, torch.tensor([41, 120]))
    alone, n = model.encode(short, torch.tensor([41]))
    assert torch.equal(units[0, : int(lengths[0])], alone[0, : int(n[0])])


def test_quantiser_round_trip():
    """codes -> codebook vectors -> codes is the identity (the VQ bottleneck is a lookup table)."""
    torch.manual_seed(0)
    model = _warm(build_debug_unit_tokenizer(), torch.randn(4, 80, 200), torch.full((4,), 200))
    units = torch.arange(model.cfg.codebook_size)[None]
    vectors = model.unit_vectors(units)
    assert vectors.shape == (1, model.cfg.codebook_size, model.cfg.d_model)
    _, again, _ = model.vq(vectors)
    assert torch.equal(again, units)


def test_save_load_round_trip_identical_outputs(tmp_path):
    torch.manual_seed(0)
    mel, lengths = torch.randn(3, 80, 90), torch.tensor([90, 70, 33])
    model = _warm(build_debug_unit_tokenizer(rate_hz=50), mel, lengths)
    model.save_pretrained(tmp_path / "units")
    loaded = UnitTokenizer.from_pretrained(tmp_path / "units")
    assert loaded.cfg == model.cfg
    u1, l1 = model.encode(mel, lengths)
    u2, l2 = loaded.encode(mel, lengths)
    assert torch.equal(u1, u2) and torch.equal(l1, l2)
    assert torch.equal(model(mel, lengths)["logits"], loaded(mel, lengths)["logits"])


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        UnitTokenizer.from_pretrained(tmp_path)
    build_debug_unit_tokenizer().save_pretrained(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text('{"d_model": 48, "n_heads": 2, "encoder_layers": 1}')
    with pytest.raises(ValueError, match="do not match"):
        UnitTokenizer.from_pretrained(tmp_path / "a")
