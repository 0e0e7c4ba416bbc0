import math

import numpy as np
import pytest
import torch

from taste.data.features import n_frames
from taste.data.pitch import PitchConfig, reference_track_pitch, track_pitch, track_pitch_batch, voiced_median

SR = 16000
HOP = 160


def _t(seconds):
    return np.arange(int(seconds * SR)) / SR


def _sine(f0=150.0, seconds=2.0, amp=0.5):
    return (amp * np.sin(2 * np.pi * f0 * _t(seconds))).astype(np.float32)


def _pulse_train(f0=110.0, seconds=2.0):
    """Band-limited pulse train: every harmonic below 4 kHz at equal amplitude."""
    t = _t(seconds)
    x = sum(np.cos(2 * np.pi * f0 * k * t) for k in range(1, int(4000 / f0) + 1))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def _voiced(f0):
    return f0[f0 > 0].double()


@pytest.mark.parametrize("wav,f0", [(_sine(150.0), 150.0), (_pulse_train(110.0), 110.0)])
def test_steady_tones_are_voiced_at_their_f0(wav, f0):
    est = track_pitch(wav)
    assert est.dtype == torch.float32 and est.shape == (len(wav) // HOP,)
    assert (est > 0).float().mean() > 0.9
    assert torch.all((_voiced(est) / f0 - 1).abs() < 0.01)


def test_glide_is_tracked_monotonically():
    t = _t(2.0)
    inst = 100.0 + 50.0 * t  # 100 -> 200 Hz over 2 s
    wav = (0.5 * np.sin(2 * np.pi * np.cumsum(inst) / SR)).astype(np.float32)
    est = track_pitch(wav).numpy()
    truth = 100.0 + 50.0 * np.arange(len(est)) * HOP / SR
    voiced = est > 0
    assert voiced.mean() > 0.9
    assert np.all(np.diff(est[voiced]) >= 0)
    assert np.all(np.abs(est[voiced] / truth[voiced] - 1) < 0.02)


def test_silence_and_noise_are_unvoiced():
    assert torch.count_nonzero(track_pitch(np.zeros(SR, np.float32))) == 0
    noise = 0.3 * np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32)
    assert (track_pitch(noise) > 0).float().mean() < 0.02


def test_quiet_frames_are_gated_by_silence_db():
    wav = np.concatenate([_sine(seconds=1.0), _sine(seconds=1.0, amp=1e-4)])  # second half ~74 dB quieter
    est = track_pitch(wav)
    assert (est[5:90] > 0).all() and torch.count_nonzero(est[110:]) == 0


@pytest.mark.parametrize("n", [160, 161, 400, 513, 1000, 1599, 16000, 16159, 24321])
def test_frame_count_matches_the_log_mel_features(n):
    wav = 0.1 * np.random.default_rng(n).standard_normal(n).astype(np.float32)
    assert track_pitch(wav).shape == (n_frames(n),) == (n // HOP,)


def test_vectorised_matches_the_reference_loop():
    rng = np.random.default_rng(3)
    t = _t(0.5)
    f0 = 130.0 + 20.0 * t  # harmonics with random amplitudes and phases, a slight glide and some noise
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wav = sum(rng.uniform(0.2, 1.0) * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 8))
    wav = (0.2 * wav + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    wav[3000:4500] = 0.05 * rng.standard_normal(1500)  # an unvoiced stretch
    fast, ref = track_pitch(wav), reference_track_pitch(wav)
    assert fast.shape == ref.shape
    assert torch.equal(fast > 0, ref > 0) and 0.5 < (ref > 0).float().mean() < 1.0
    both = ref > 0
    assert torch.all((fast[both] / ref[both] - 1).abs() < 0.005)


def test_batch_equals_single_calls():
    wavs = [_sine(150.0, 0.3), _pulse_train(110.0, 0.5)]
    for got, wav in zip(track_pitch_batch(wavs), wavs):
        assert torch.equal(got, track_pitch(wav))


@pytest.mark.parametrize("wav,message", [
    (np.zeros((2, SR), np.float32), "shape"),
    (np.zeros(HOP - 1, np.float32), "shorter than one hop"),
    (np.where(np.arange(SR) == 5, np.nan, 0.0), "non-finite"),
    (np.where(np.arange(SR) == 5, np.inf, 0.0), "non-finite"),
])
def test_bad_input_raises(wav, message):
    with pytest.raises(ValueError, match=message):
        track_pitch(wav)


@pytest.mark.parametrize("kw,message", [
    ({"f0_min": 0.0}, "f0_min"), ({"f0_min": 300.0, "f0_max": 200.0}, "f0_min"),
    ({"frame_length": 400}, "two periods"), ({"threshold": 1.5}, "threshold"), ({"silence_db": 10.0}, "silence_db"),
    ({"hop_length": 0}, "hop_length"),
])
def test_bad_config_raises(kw, message):
    with pytest.raises(ValueError, match=message):
        PitchConfig(**kw)


def test_config_from_dict_ignores_unknown_keys():
    cfg = PitchConfig.from_dict({"f0_min": 70, "threshold": 0.15, "comment": "x"})
    assert cfg == PitchConfig(f0_min=70, threshold=0.15)


def test_voiced_median():
    f0 = torch.tensor([0.0, 100.0, 0.0, 120.0, 300.0, 0.0, 0.0])
    assert voiced_median(f0, 0, 7) == 120.0
    assert voiced_median(f0, 1, 4) == 110.0  # even count: mean of the middle two
    assert math.isnan(voiced_median(f0, 5, 7)) and math.isnan(voiced_median(f0, 2, 2))
    assert math.isnan(voiced_median(torch.zeros(5), 0, 5))
    with pytest.raises(ValueError):
        voiced_median(f0, 3, 1)


def test_espeak_speech_has_plausible_pitch():
    from taste.data.synth import synthesise

    words = tuple("in the end the old captain walked slowly to the harbour".split())
    low, high = (synthesise(words, (None,) * len(words), "en+m3", 170, p, dither=3e-4, dither_seed=1) for p in (20, 80))
    for s in (low, high):
        est = track_pitch(s.wav)
        assert est.shape == (n_frames(len(s.wav)),) and 0.15 < (est > 0).float().mean() < 0.9
        assert 60 < _voiced(est).median() < 250
        spans = [(round(w.start * 100), round((w.start + w.duration) * 100)) for w in s.words]
        assert sum(not math.isnan(voiced_median(est, a, b)) for a, b in spans) >= len(words) - 2
    assert _voiced(track_pitch(high.wav)).median() > 1.3 * _voiced(track_pitch(low.wav)).median()
