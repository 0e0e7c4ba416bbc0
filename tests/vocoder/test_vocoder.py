import numpy as np
import pandas as pd
import pytest
import torch

from taste.data.features import MelConfig, log_mel
from taste.training import TrainConfig, train
from taste.vocoder.data import UnitMelDataset, collate_units_mel, vocoder_loss
from taste.vocoder.griffin_lim import mel_to_wave
from taste.vocoder.model import UnitVocoder, VocoderError, build_debug_vocoder
from taste.vocoder.resynthesis import Judges, judge_utterances, summarise_table


def _tone(seconds=1.0, f0=220.0):
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * f0 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)


def _fake_data(n=8, n_units=32, seed=0):
    """Each unit is a fixed mel column; speakers shift the level. -> (ids, units, speakers, feats)."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(n_units, 80, generator=g) * 2 - 4
    ids = [f"u{i}" for i in range(n)]
    units = {i: torch.randint(0, n_units, (int(torch.randint(5, 12, (1,), generator=g)),), generator=g) for i in ids}
    speakers = {i: torch.randn(16, generator=g) for i in ids}
    feats = {i: table[units[i]].T.repeat_interleave(4, dim=1)[:, :-1] for i in ids}  # F = 4U - 1
    return ids, units, speakers, feats


@pytest.mark.parametrize("rate", [25, 50])
def test_units_to_mel_shapes(rate):
    model = build_debug_vocoder(unit_rate_hz=rate).eval()
    units = torch.randint(0, 32, (2, 7))
    mel = model.units_to_mel(units, torch.randn(2, 16), torch.tensor([7, 4]))
    assert mel.shape == (2, 80, 7 * 100 // rate)
    assert (mel[1, :, 4 * 100 // rate:] == mel[1, 0, -1]).all()   # padding frames are log-silence


def test_padding_does_not_change_output():
    torch.manual_seed(0)
    model = build_debug_vocoder().eval()
    units, spk = torch.randint(0, 32, (1, 6)), torch.randn(1, 16)
    alone = model.units_to_mel(units, spk)
    padded = model.units_to_mel(torch.cat([units, torch.full((1, 3), -1)], 1), spk, torch.tensor([6]))
    assert torch.allclose(alone, padded[..., :24], atol=1e-5)


def test_bad_inputs_raise():
    model = build_debug_vocoder()
    with pytest.raises(VocoderError, match="out of range"):
        model.units_to_mel(torch.tensor([[1, 99]]), torch.randn(1, 16))
    with pytest.raises(VocoderError, match="speaker"):
        model.units_to_mel(torch.tensor([[1, 2]]), torch.randn(1, 8))
    with pytest.raises(VocoderError, match="no units"):
        model.synthesise(torch.tensor([], dtype=torch.long), torch.randn(16))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_debug_vocoder()
    model.save_pretrained(tmp_path / "voc")
    loaded = UnitVocoder.from_pretrained(tmp_path / "voc")
    units, spk = torch.randint(0, 32, (2, 9)), torch.randn(2, 16)
    assert torch.equal(model.units_to_mel(units, spk), loaded.units_to_mel(units, spk))
    wav = loaded.synthesise(units[0], spk[0])
    assert wav.dtype == np.float32 and wav.shape == (9 * 4 * 160,)
    np.testing.assert_array_equal(wav, model.synthesise(units[0], spk[0]))
    with pytest.raises(FileNotFoundError, match="config.json"):
        UnitVocoder.from_pretrained(tmp_path / "nothing")


def test_griffin_lim_inverts_log_mel():
    cfg = MelConfig()
    wav = _tone(1.0)
    mel = log_mel(torch.from_numpy(wav), cfg)
    out = mel_to_wave(mel, cfg, n_iter=32)
    assert out.shape == wav.shape
    err = (log_mel(torch.from_numpy(out), cfg) - mel).abs().mean()
    assert err < 0.1 * (mel - mel.mean()).abs().mean()
    with pytest.raises(ValueError, match="Tensor\\[80, F\\]"):
        mel_to_wave(mel[:40], cfg)


def test_training_fits_and_resumes(tmp_path):
    ids, units, speakers, feats = _fake_data()
    data = UnitMelDataset(ids, units, speakers, feats)
    collate = lambda items: collate_units_mel(items, 4)  # noqa: E731
    cfg = TrainConfig(steps=60, batch_size=4, lr=3e-3, warmup_steps=5, checkpoint_every=30, log_every=10)
    torch.manual_seed(0)
    ref = build_debug_vocoder(dropout=0.0)
    hist = train(ref, data, collate, vocoder_loss, cfg, tmp_path / "ref", progress=False).history
    assert hist[-1]["l1"] < 0.75 * hist[0]["l1"]   # the start is already near the mean level (bias init)

    calls = {"n": 0}

    def crash(model, batch):
        calls["n"] += 1
        if calls["n"] == 40:
            raise KeyboardInterrupt
        return vocoder_loss(model, batch)

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(build_debug_vocoder(dropout=0.0), data, collate, crash, cfg, tmp_path / "run", progress=False)
    torch.manual_seed(0)
    resumed = build_debug_vocoder(dropout=0.0)
    assert train(resumed, data, collate, vocoder_loss, cfg, tmp_path / "run", progress=False).resumed_from == 30
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_dataset_requires_units():
    ids, units, speakers, feats = _fake_data(3)
    del units["u1"]
    with pytest.raises(KeyError, match="u1"):
        UnitMelDataset(ids, units, speakers, feats)


def test_resynthesis_table_with_fake_judges():
    wavs = [_tone(1.0), _tone(2.0)]
    systems = {"original": wavs, "half": [w[: len(w) // 2] for w in wavs]}
    judges = Judges(transcribe=lambda w: "a b" if len(w) >= 16000 else "a", dnsmos=lambda w: 3.0,
                    speaker_embed=lambda w: np.array([1.0, len(w) / 32000.0]))
    per_utt = judge_utterances(["x", "y"], ["a b", "a b"], systems, judges)
    assert len(per_utt) == 4
    table = summarise_table(per_utt, n_boot=20)
    assert table.loc["original", "wer"] == 0 and table.loc["original", "speaker_sim"] == pytest.approx(1.0)
    assert table.loc["half", "wer"] == pytest.approx(0.25) and table.loc["half", "duration_ratio"] == pytest.approx(0.5)
    assert isinstance(table, pd.DataFrame)
    with pytest.raises(ValueError, match="original"):
        judge_utterances(["x"], ["a"], {"half": wavs[:1]}, judges)


def _fake_pitch(units):
    """F0 per frame from the unit id: even units unvoiced, odd ones at 80 + 10 x id Hz (4 frames per unit)."""
    return {i: torch.where(u % 2 == 1, 80.0 + 10.0 * u.float(), torch.zeros(len(u))).repeat_interleave(4)[:-1]
            for i, u in units.items()}


def test_pitch_head_learns_voicing_and_f0_from_units(tmp_path):
    """With F0 targets, the loss adds voicing BCE + log-F0 L1; both fall, and predicted F0 follows the units."""
    ids, units, speakers, feats = _fake_data(16)
    pitch = _fake_pitch(units)
    data = UnitMelDataset(ids, units, speakers, feats, pitch)
    batch = collate_units_mel([data[i] for i in range(4)], 4)
    assert batch["f0"].shape == batch["mel"].shape[::2] and (batch["f0"][:, -1] == 0).all()
    cfg = TrainConfig(steps=150, batch_size=8, lr=3e-3, warmup_steps=5, checkpoint_every=1000, log_every=10)
    torch.manual_seed(0)
    model = build_debug_vocoder(dropout=0.0)
    hist = train(model, data, lambda items: collate_units_mel(items, 4), vocoder_loss, cfg, tmp_path,
                 progress=False).history
    assert hist[-1]["voicing_bce"] < 0.5 * hist[0]["voicing_bce"]
    assert hist[-1]["log_f0_l1"] < 0.5 * hist[0]["log_f0_l1"]
    from taste.vocoder.pipeline import f0_accuracy
    acc = f0_accuracy(model, data)
    assert acc["voicing_error"] < 0.1 and acc["f0_abs_error_cents"] < 100
    # weight 0 or no targets: the mel L1 alone
    loss, logs = vocoder_loss(model, batch, pitch_weight=0.0)
    assert set(logs) == {"l1"} and float(loss.detach()) == pytest.approx(logs["l1"])


def test_source_filter_synthesis_speaks_the_predicted_f0():
    """synthesise() = predicted mel + predicted F0 through the source-filter synthesiser (same length as the
    Griffin-Lim path); mel_f0_to_wave with an explicit F0 puts that F0 in the audio."""
    from taste.data.pitch import track_pitch
    torch.manual_seed(0)
    sf, gl = build_debug_vocoder(), build_debug_vocoder(synthesis="griffin_lim")
    with torch.no_grad():   # a pitch head that always says "voiced at 180 Hz"
        sf.to_pitch.weight.zero_()
        sf.to_pitch.bias.copy_(torch.tensor([5.0, float(np.log2(180.0 / sf.cfg.f0_ref_hz))]))
    gl.load_state_dict(sf.state_dict())
    units, spk = torch.randint(0, 32, (30,)), torch.randn(16)
    spoken = sf.synthesise(units, spk)
    assert spoken.shape == gl.synthesise(units, spk).shape == (30 * 4 * 160,)
    assert torch.allclose(sf.units_to_f0(units[None], spk[None]), torch.tensor(180.0))
    heard = track_pitch(spoken).numpy()
    assert (heard > 0).mean() > 0.5 and np.median(heard[heard > 0]) == pytest.approx(180.0, rel=0.02)
    heard_gl = track_pitch(gl.synthesise(units, spk)).numpy()   # Griffin-Lim of a random mel: no 180 Hz voice
    assert (heard_gl > 0).mean() < 0.5 or abs(np.median(heard_gl[heard_gl > 0]) - 180.0) > 5.0
    mel = log_mel(torch.from_numpy(_tone(1.2, 150.0)))
    wav = sf.mel_f0_to_wave(mel, torch.full((mel.shape[-1],), 150.0))
    tracked = track_pitch(wav).numpy()
    assert (tracked > 0).mean() > 0.5 and np.median(tracked[tracked > 0]) == pytest.approx(150.0, rel=0.02)
    with pytest.raises(VocoderError, match="synthesis"):
        build_debug_vocoder(synthesis="wavenet")


def test_predict_zeroes_f0_at_padding_and_unvoiced_frames():
    torch.manual_seed(0)
    model = build_debug_vocoder().eval()
    units, spk, lengths = torch.randint(0, 32, (2, 5)), torch.randn(2, 16), torch.tensor([5, 3])
    mel, f0 = model.predict(units, spk, lengths)
    out = model(units, spk, lengths)
    assert mel.shape[-1] == f0.shape[-1] == 20 and (f0[1, 12:] == 0).all()
    unvoiced = out["voiced_logit"] <= 0
    assert unvoiced.any() and (~unvoiced).any()           # a random head says both
    assert (f0[unvoiced] == 0).all()
    expected = model.cfg.f0_ref_hz * torch.exp2(out["log_f0"][~unvoiced])
    assert torch.allclose(f0[~unvoiced], expected)
