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
