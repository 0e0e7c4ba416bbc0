import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import torch

from taste.data.features import MelConfig, log_mel
from taste.vocoder.griffin_lim import mel_to_linear
from taste.vocoder.source_filter import (_filterbank, _harmonic_sum, excitation, mel_to_wave_source_filter,
                                         target_power)

SR = 16000
CFG = MelConfig()
FORMANTS = ((700, 80), (1200, 90), (2600, 120), (3500, 150))


def _vowel(f0=140.0, seconds=1.0):
    """Harmonic series at f0 shaped by four formant bumps and a -3 dB/oct tilt, peak 0.3."""
    t = np.arange(int(SR * seconds)) / SR
    x = np.zeros_like(t)
    for k in range(1, int(SR / 2 / f0) + 1):
        f = k * f0
        amp = sum(1 / (1 + ((f - fc) / bw) ** 2) for fc, bw in FORMANTS) * (f / 100) ** -0.5 + 1e-3
        x += amp * np.cos(2 * np.pi * f * t + 0.3 * k * k)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _smooth_mel(n_frames=100):
    """A smooth hand-made envelope (tilt + three formant bumps), constant over time: like a regression average."""
    b = torch.arange(80.0)
    env = (-2 - 0.06 * b + 3 * torch.exp(-((b - 12) / 4) ** 2) + 2 * torch.exp(-((b - 25) / 5) ** 2)
           + 1.5 * torch.exp(-((b - 45) / 6) ** 2))
    return env[:, None].repeat(1, n_frames)


def _tilt_mel(n_frames=100):
    """Only a spectral tilt, no resonances."""
    return (-3 - 0.04 * torch.arange(80.0))[:, None].repeat(1, n_frames)


def _acf(x):
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    spec = np.fft.rfft(x, 2 * len(x))
    ac = np.fft.irfft(np.abs(spec) ** 2)[: len(x)]
    return ac / ac[0]


def _f0_autocorr(x, lo=60.0, hi=500.0):
    """(F0 in Hz, normalised autocorrelation peak) over lags for lo..hi Hz, parabolic interpolation of the peak."""
    ac = _acf(x)
    a, b = int(SR / hi), int(SR / lo)
    i = a + int(np.argmax(ac[a:b + 1]))
    y0, y1, y2 = ac[i - 1], ac[i], ac[i + 1]
    shift = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
    return SR / (i + shift), float(y1)


def _lpc_residual(x, order=16):
    """Whiten x with an LPC inverse filter, so formant ringing does not look like periodicity."""
    x = np.asarray(x, dtype=np.float64)
    r = _acf(x)[: order + 1]
    a = scipy.linalg.solve_toeplitz(r[:-1], r[1:])
    return scipy.signal.lfilter(np.concatenate([[1.0], -a]), [1.0], x)[order:]


def _band_smoothed(mel, k=5):
    """Average power over k neighbouring mel bands, back to log: the envelope, not the harmonic comb."""
    p = torch.exp(mel).T[None]
    return torch.log(torch.nn.functional.avg_pool1d(p, k, 1, k // 2, count_include_pad=False)[0].T)


def test_length_dtype_range():
    for n_frames in (2, 37, 100):
        mel = _smooth_mel(n_frames)
        f0 = torch.full((n_frames,), 150.0)
        f0[n_frames // 2:] = 0
        wav = mel_to_wave_source_filter(mel, f0, CFG)
        assert wav.shape == (n_frames * CFG.hop_length,) and wav.dtype == np.float32
        assert np.isfinite(wav).all() and np.abs(wav).max() <= 1.0
    loud = mel_to_wave_source_filter(_smooth_mel(20) + 8, torch.full((20,), 100.0))   # clipped, still in range
    assert np.abs(loud).max() <= 1.0
    # level follows the mel: ~+2 nat mel -> ~e x amplitude
    quiet = mel_to_wave_source_filter(_smooth_mel(50) - 4, torch.full((50,), 100.0))
    louder = mel_to_wave_source_filter(_smooth_mel(50) - 2, torch.full((50,), 100.0))   # neither clips
    assert louder.std() / quiet.std() == pytest.approx(np.e, rel=0.05)


@pytest.mark.parametrize("f0", [140.0, 220.0])
@pytest.mark.parametrize("envelope", ["vowel", "smooth"])
def test_output_has_the_given_f0(f0, envelope):
    mel = log_mel(torch.from_numpy(_vowel(140.0)), CFG) if envelope == "vowel" else _smooth_mel()
    wav = mel_to_wave_source_filter(mel, torch.full((mel.shape[1],), f0), CFG)
    est, peak = _f0_autocorr(wav[4000:12000])
    assert est == pytest.approx(f0, rel=0.02)
    assert peak > 0.9


def test_gliding_f0_is_followed():
    n_frames = 150
    f0 = torch.linspace(110.0, 260.0, n_frames)
    wav = mel_to_wave_source_filter(_smooth_mel(n_frames), f0, CFG)
    for centre in range(20, n_frames - 20, 10):
        seg = wav[(centre - 4) * 160:(centre + 4) * 160]             # 80 ms around frame `centre`
        est, _ = _f0_autocorr(seg, lo=80.0, hi=400.0)
        assert est == pytest.approx(float(f0[centre]), rel=0.01), centre   # measured < 0.2%


def test_envelope_is_preserved():
    # a harmonic-rich envelope synthesised at its own F0: the raw log-mel should match
    mel = log_mel(torch.from_numpy(_vowel(140.0)), CFG)
    n_frames = mel.shape[1]
    out = log_mel(torch.from_numpy(mel_to_wave_source_filter(mel, torch.full((n_frames,), 140.0), CFG)), CFG)
    has_energy = mel > mel.max() - 10
    err = (out - mel).abs()[has_energy].mean()
    flat = (mel - mel.mean(0, keepdim=True)).abs()[has_energy].mean()   # right frame level, flat spectrum
    assert err < 0.6 and err < 0.3 * flat                                 # measured 0.33 vs 2.0
    # a smooth (regression-average) envelope at several F0s / unvoiced: compare band-smoothed envelopes, since
    # the output's harmonic comb resolves in the narrow low mel bands and the smooth input has none
    mel = _smooth_mel()
    flat = (mel - mel.mean(0, keepdim=True)).abs().mean()                 # 1.63
    for f0 in (0.0, 140.0, 220.0):                                        # measured ~0.39, 0.18, 0.36
        wav = mel_to_wave_source_filter(mel, torch.full((100,), f0), CFG)
        out = log_mel(torch.from_numpy(wav), CFG)
        err = (_band_smoothed(out) - _band_smoothed(mel)).abs().mean()
        assert err < 0.6 and err < 0.4 * flat, f0
        level = torch.log(torch.exp(out).sum(0) / torch.exp(mel).sum(0))   # per-frame energy, in nats
        assert level[2:-2].mean().abs() < 0.2, f0


def test_target_power_matches_the_mel_better_than_the_pseudo_inverse():
    mel = _smooth_mel(4)
    fb = _filterbank(CFG)
    refined = target_power(mel, CFG)
    assert (refined >= 0).all()
    err_pinv = (torch.log(fb.T @ mel_to_linear(mel, CFG)) - mel).abs().mean()
    err_refined = (torch.log(fb.T @ refined) - mel).abs().mean()
    assert err_refined < 0.05 < err_pinv                                 # measured 0.02 vs 0.24
    assert torch.equal(target_power(mel, CFG, n_iter=0), mel_to_linear(mel, CFG))


def test_unvoiced_output_is_aperiodic():
    _, peak = _f0_autocorr(mel_to_wave_source_filter(_tilt_mel(), torch.zeros(100), CFG)[2000:14000])
    assert peak < 0.3
    # with resonant formants, coloured noise rings: look at the LPC residual instead (voiced stays periodic)
    mel = log_mel(torch.from_numpy(_vowel(140.0)), CFG)
    n_frames = mel.shape[1]
    for seed in range(3):
        wav = mel_to_wave_source_filter(mel, torch.zeros(n_frames), CFG, seed=seed)
        _, peak = _f0_autocorr(_lpc_residual(wav[2000:14000]))
        assert peak < 0.3, seed
    voiced = mel_to_wave_source_filter(mel, torch.full((n_frames,), 140.0), CFG)
    assert _f0_autocorr(_lpc_residual(voiced[2000:14000]))[1] > 0.8


def test_seeded_and_deterministic():
    mel, zeros = _smooth_mel(30), torch.zeros(30)
    torch.manual_seed(123)
    before = torch.rand(1)
    a = mel_to_wave_source_filter(mel, zeros, CFG, seed=5)
    np.testing.assert_array_equal(a, mel_to_wave_source_filter(mel, zeros, CFG, seed=5))
    b = mel_to_wave_source_filter(mel, zeros, CFG, seed=6)
    assert np.abs(a - b).mean() > 0.5 * np.abs(a).mean()
    torch.manual_seed(123)
    assert torch.equal(before, torch.rand(1))                              # global RNG untouched


def test_excitation():
    n_frames, hop = 60, CFG.hop_length
    f0 = torch.full((n_frames,), 120.0)
    f0[30:] = 0.0
    exc = excitation(f0, CFG, noise_level=0.0, seed=1)
    assert exc.shape == (n_frames * hop,) and exc.dtype == torch.float32
    voiced, unvoiced = exc[: 29 * hop], exc[31 * hop:]
    assert voiced.pow(2).mean() == pytest.approx(1.0, rel=0.1)            # unit power both sides
    assert unvoiced.pow(2).mean() == pytest.approx(1.0, rel=0.1)
    # crossfade over one hop: pure harmonic up to frame 29's centre, pure noise from frame 30's centre
    no_noise = excitation(torch.full((n_frames,), 120.0), CFG, noise_level=0.0, seed=1)
    assert torch.allclose(exc[: 29 * hop + 1], no_noise[: 29 * hop + 1])
    assert not torch.allclose(exc[29 * hop + 40: 30 * hop - 40], no_noise[29 * hop + 40: 30 * hop - 40])
    # band-limited: at 3 kHz only the 3 and 6 kHz harmonics exist; 9 kHz would alias to 7 kHz
    exc = excitation(torch.full((20,), 3000.0), CFG, noise_level=0.0).numpy()
    spec = np.abs(np.fft.rfft(exc[:3200] * np.hanning(3200)))
    freqs = np.fft.rfftfreq(3200, 1 / SR)
    assert spec[np.abs(freqs - 7000) < 100].max() < 1e-3 * spec.max()
    assert spec[np.abs(freqs - 6000) < 20].max() > 0.5 * spec.max()
    # the closed form equals the explicit sum of cosines
    phase = torch.linspace(0, 60, 5001, dtype=torch.float64)
    explicit = sum(torch.cos(k * phase) for k in range(1, 58))
    assert torch.allclose(_harmonic_sum(phase, torch.full_like(phase, 57.0)), explicit, atol=1e-8)
    # noise_level adds noise to voiced samples, seeded
    a = excitation(torch.full((10,), 200.0), CFG, noise_level=0.03, seed=0)
    b = excitation(torch.full((10,), 200.0), CFG, noise_level=0.0, seed=0)
    assert (a - b).std() == pytest.approx(0.03, rel=0.2)


def test_bad_inputs_raise():
    mel, f0 = _smooth_mel(10), torch.full((10,), 100.0)
    with pytest.raises(ValueError, match=r"Tensor\[80, F\]"):
        mel_to_wave_source_filter(mel[:40], f0, CFG)
    with pytest.raises(ValueError, match=r"Tensor\[80, F\]"):
        mel_to_wave_source_filter(mel[None], f0, CFG)
    with pytest.raises(ValueError, match="at least 2 frames"):
        mel_to_wave_source_filter(mel[:, :1], f0[:1], CFG)
    with pytest.raises(ValueError, match="f0 has 9 frames"):
        mel_to_wave_source_filter(mel, f0[:9], CFG)
    with pytest.raises(ValueError, match="1-d"):
        mel_to_wave_source_filter(mel, f0[None], CFG)
    bad = mel.clone()
    bad[3, 4] = float("nan")
    with pytest.raises(ValueError, match="mel contains NaN"):
        mel_to_wave_source_filter(bad, f0, CFG)
    for value, match in ((float("inf"), "f0 contains NaN or inf"), (-5.0, ">= 0"), (9000.0, "Nyquist")):
        bad = f0.clone()
        bad[2] = value
        with pytest.raises(ValueError, match=match):
            mel_to_wave_source_filter(mel, bad, CFG)
        with pytest.raises(ValueError, match=match):
            excitation(bad, CFG)
    with pytest.raises(ValueError, match="noise_level"):
        excitation(f0, CFG, noise_level=-1.0)
