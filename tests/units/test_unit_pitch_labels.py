"""Pitch classes per unit against a slow reference, speaker references, and the pitch loss of the unit tokenizer."""

import numpy as np
import pytest
import torch

from taste.training import TrainConfig, train
from taste.units.data import MelPhoneDataset, collate_mel_phones, unit_tokenizer_loss
from taste.units.evaluate import pitch_information
from taste.units.model import build_debug_unit_tokenizer
from taste.units.pitch_labels import PitchClasses, speaker_reference_f0, unit_pitch_labels

from unit_fakes import VOCAB, DictStore, fake_corpus


def slow_unit_pitch_labels(f0, n_units, stride, ref, classes):
    out = []
    for u in range(n_units):
        frames = [float(f0[i]) for i in range(u * stride, (u + 1) * stride) if i < len(f0)]
        if not frames:
            out.append(-1)
            continue
        voiced = [x for x in frames if x > 0]
        if not voiced or 2 * len(voiced) < len(frames):
            out.append(0)
            continue
        st = 12 * np.log2(sorted(voiced)[(len(voiced) - 1) // 2] / ref)   # lower middle for even counts
        out.append(int(min(max(np.floor(st / classes.step_semitones) + classes.n_bins // 2, 0), classes.n_bins - 1)) + 1)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_unit_pitch_labels_match_slow_reference(seed):
    rng = np.random.default_rng(seed)
    n_frames = int(rng.integers(5, 40))
    f0 = rng.uniform(60, 400, n_frames) * (rng.random(n_frames) > 0.3)
    stride, classes = int(rng.choice([2, 4])), PitchClasses(int(rng.integers(3, 10)), float(rng.choice([2.0, 3.0])))
    n_units = -(-n_frames // stride) + int(rng.integers(0, 2))   # sometimes one unit beyond the track
    got = unit_pitch_labels(torch.tensor(f0, dtype=torch.float32), n_units, stride, 150.0, classes).tolist()
    assert got == slow_unit_pitch_labels(f0.astype(np.float32), n_units, stride, 150.0, classes)


def test_pitch_classes_are_relative_to_the_speaker():
    stride, classes = 4, PitchClasses(8, 3.0)
    at_ref = unit_pitch_labels(torch.full((8,), 200.0), 2, stride, 200.0, classes)
    octave_up = unit_pitch_labels(torch.full((8,), 400.0), 2, stride, 200.0, classes)
    silent = unit_pitch_labels(torch.zeros(8), 2, stride, 200.0, classes)
    assert at_ref.tolist() == [classes.n_bins // 2 + 1] * 2
    assert octave_up.tolist() == [classes.n_bins] * 2          # +12 semitones: clipped to the top bin
    assert silent.tolist() == [0, 0]
    assert unit_pitch_labels(torch.full((4,), 200.0), 3, stride, 200.0, classes).tolist()[1:] == [-1, -1]
    with pytest.raises(ValueError, match="reference F0"):
        unit_pitch_labels(torch.zeros(4), 1, stride, 0.0, classes)
    with pytest.raises(ValueError, match="n_classes"):
        PitchClasses(1)


def _with_pitch(utts, feats):
    """F0 per utterance: speaker 0 at 120 Hz, speaker 1 at 240 Hz, rising on odd utterances; unvoiced first frames."""
    pitch = DictStore()
    for i, u in enumerate(utts):
        n = feats[u.id].shape[-1]
        base = 120.0 if u.speaker == "spk0" else 240.0
        track = base * (1.0 + 0.5 * (i % 2) * torch.linspace(0, 1, n))
        track[:3] = 0.0
        pitch[u.id] = track
    return pitch


def test_speaker_reference_is_the_median_voiced_f0():
    utts, feats = fake_corpus(6)
    pitch = _with_pitch(utts, feats)
    refs = speaker_reference_f0(utts, pitch)
    assert set(refs) == {"spk0", "spk1"}
    assert refs["spk0"] == pytest.approx(np.median(np.concatenate(
        [pitch[u.id][pitch[u.id] > 0].numpy() for u in utts if u.speaker == "spk0"])))
    assert refs["spk0"] == pytest.approx(120.0) and 240.0 < refs["spk1"] < 360.0   # spk1's utterances rise


def test_pitch_loss_is_trained_only_when_weighted(tmp_path):
    """frame_pitch_weight > 0 adds a pitch-class cross-entropy on the quantised states that falls in training."""
    utts, feats = fake_corpus(16)
    pitch = _with_pitch(utts, feats)
    refs = speaker_reference_f0(utts, pitch)
    torch.manual_seed(0)
    model = build_debug_unit_tokenizer(n_phones=VOCAB.n_phones, codebook_size=16, rate_hz=50, frame_pitch_weight=1.0)
    data = MelPhoneDataset(utts, feats, VOCAB, model.cfg.stride, model.cfg.rate_hz, pitch=pitch, pitch_refs=refs)
    item = data[1]
    assert len(item["pitch_labels"]) == int(np.ceil(item["mel"].shape[-1] / model.cfg.stride))
    assert item["pitch_labels"][0] == 0 and (item["pitch_labels"] > 0).any()
    batch = collate_mel_phones([data[i] for i in range(4)])
    assert batch["pitch_labels"].shape[0] == 4
    cfg = TrainConfig(steps=40, batch_size=8, lr=3e-3, warmup_steps=5, checkpoint_every=1000, log_every=10)
    result = train(model, data, collate_mel_phones, unit_tokenizer_loss, cfg, tmp_path, progress=False)
    assert result.history[-1]["pitch_ce"] < 0.8 * result.history[0]["pitch_ce"]
    plain = build_debug_unit_tokenizer(n_phones=VOCAB.n_phones, codebook_size=16, rate_hz=50)
    _, logs = unit_tokenizer_loss(plain, batch)
    assert "pitch_ce" not in logs  # weight 0: no pitch head, no term
    with pytest.raises(ValueError, match="no reference F0"):
        MelPhoneDataset(utts, feats, VOCAB, 2, 50, pitch=pitch, pitch_refs={"spk0": 120.0})


def test_pitch_information_separates_pitch_coding_units():
    """Codes that follow the pitch class have pitch PNMI 1; codes independent of it have PNMI near 0."""
    rng = np.random.default_rng(0)
    utts, feats = fake_corpus(8)
    pitch = DictStore({u.id: torch.from_numpy(rng.choice([0.0, 100.0, 200.0, 400.0], size=40)).float() for u in utts})
    refs = speaker_reference_f0(utts, pitch)
    labels = [unit_pitch_labels(pitch[u.id], 20, 2, refs[u.speaker]).numpy() for u in utts]
    following = pitch_information([np.maximum(lab, 0) for lab in labels], utts, pitch, 2, 16)
    independent = pitch_information([rng.integers(0, 16, 20) for _ in utts], utts, pitch, 2, 16)
    assert following["pitch_pnmi"] == pytest.approx(1.0)
    assert independent["pitch_pnmi"] < 0.3
    silent = DictStore({u.id: torch.zeros(40) for u in utts})
    assert pitch_information([np.zeros(20, int) for _ in utts], utts, silent, 2, 16)["pitch_pnmi"] is None
