"""The unit tokenizer trains through taste.training.train, uses its codebook, and resumes exactly."""

import numpy as np
import pytest
import torch

from taste.training import TrainConfig, train
from taste.units.data import MelPhoneDataset, collate_mel_phones, unit_tokenizer_loss
from taste.units.evaluate import evaluate_unit_tokenizer
from taste.units.extract import extract_units, load_units, save_units
from taste.units.model import UnitTokenizer, build_debug_unit_tokenizer

from unit_fakes import VOCAB, fake_corpus


def _model():
    torch.manual_seed(0)
    return build_debug_unit_tokenizer(n_phones=VOCAB.n_phones, codebook_size=16, rate_hz=50)


def test_trains_uses_codebook_and_learns_phones(tmp_path):
    utts, feats = fake_corpus(16)
    model = _model()
    cfg = TrainConfig(steps=150, batch_size=8, lr=3e-3, warmup_steps=5, checkpoint_every=1000, log_every=10)
    result = train(model, MelPhoneDataset(utts, feats, VOCAB), collate_mel_phones, unit_tokenizer_loss, cfg,
                   tmp_path, progress=False)
    assert result.history[-1]["ctc"] < 0.5 * result.history[0]["ctc"]
    after = evaluate_unit_tokenizer(model, utts, feats, VOCAB)["metrics"]
    assert after["usage_share"] >= 0.5            # dead-code restart keeps the codebook alive
    assert after["phone_purity"] > 0.8 and after["pnmi"] > 0.5
    assert 0.0 <= after["per"] <= 1.0 and "inter_ctc" in result.history[-1]


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    utts, feats = fake_corpus(8)
    data = MelPhoneDataset(utts, feats, VOCAB)
    cfg = TrainConfig(steps=12, batch_size=4, lr=3e-3, warmup_steps=2, checkpoint_every=6, log_every=3)

    reference = _model()
    train(reference, data, collate_mel_phones, unit_tokenizer_loss, cfg, tmp_path / "ref", progress=False)

    calls = {"n": 0}

    def crashing_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 9:  # after the step-6 checkpoint
            raise KeyboardInterrupt("simulated interruption")
        return unit_tokenizer_loss(model, batch)

    with pytest.raises(KeyboardInterrupt):
        train(_model(), data, collate_mel_phones, crashing_loss, cfg, tmp_path / "run", progress=False)
    resumed = _model()
    result = train(resumed, data, collate_mel_phones, unit_tokenizer_loss, cfg, tmp_path / "run", progress=False)
    assert result.resumed_from == 6
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_unit_streams_save_load_round_trip(tmp_path):
    utts, feats = fake_corpus(5)
    model = _model().eval()
    model.train()(collate_mel_phones([MelPhoneDataset(utts, feats, VOCAB)[i] for i in range(5)])["mel"],
                  torch.tensor([f.shape[-1] for f in feats.values()]))
    units = extract_units(model.eval(), feats, [u.id for u in utts], batch_size=2)
    save_units(units, tmp_path / "test.safetensors")
    loaded = load_units(tmp_path / "test.safetensors")
    assert list(loaded) == sorted(units) or set(loaded) == set(units)
    for uid, u in units.items():
        assert u.dtype == torch.int16 and torch.equal(loaded[uid], u.long())
        assert len(u) == int(np.ceil(feats[uid].shape[-1] / model.cfg.stride))
        alone, n = model.encode(feats[uid][None], torch.tensor([feats[uid].shape[-1]]))
        assert torch.equal(alone[0, : int(n)], u.long())
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_units(tmp_path / "nope.safetensors")


def test_frame_phone_loss_is_trained_only_when_weighted(tmp_path):
    """frame_phone_weight > 0 adds a frame-level phone cross-entropy (aligned labels) that falls during training."""
    utts, feats = fake_corpus(16)
    torch.manual_seed(0)
    model = build_debug_unit_tokenizer(n_phones=VOCAB.n_phones, codebook_size=16, rate_hz=50, frame_phone_weight=1.0)
    data = MelPhoneDataset(utts, feats, VOCAB, model.cfg.stride, model.cfg.rate_hz)
    item = data[0]
    assert len(item["frame_labels"]) == int(np.ceil(item["mel"].shape[-1] / model.cfg.stride))
    assert (item["frame_labels"] >= 0).any()
    cfg = TrainConfig(steps=60, batch_size=8, lr=3e-3, warmup_steps=5, checkpoint_every=1000, log_every=10)
    result = train(model, data, collate_mel_phones, unit_tokenizer_loss, cfg, tmp_path, progress=False)
    assert result.history[-1]["frame_ce"] < 0.7 * result.history[0]["frame_ce"]
    _, logs = unit_tokenizer_loss(_model(), collate_mel_phones([data[i] for i in range(4)]))
    assert "frame_ce" not in logs  # weight 0: no frame head, no term
