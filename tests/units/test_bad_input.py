"""Audio that cannot be tokenised fails with an error that says what is wrong."""

import numpy as np
import pytest
import torch

from taste.data.features import MelConfig
from taste.units.extract import AudioInputError, units_from_audio
from taste.units.model import build_debug_unit_tokenizer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_debug_unit_tokenizer()
    m(torch.randn(2, 80, 120), torch.tensor([120, 120]))  # k-means init
    return m.eval()


def _speech_like(seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def test_units_from_audio_rate(model):
    units = units_from_audio(model, _speech_like(1.0), 16000, MelConfig())
    assert units.shape == (25,) and units.dtype == torch.long and (units >= 0).all()


@pytest.mark.parametrize("wav,sr,message", [
    (np.zeros(16000, dtype=np.float32), 16000, "silence only"),
    (_speech_like(0.1), 16000, "shorter than the minimum"),
    (_speech_like(1.0, 22050), 22050, "sample rate 22050 Hz, expected 16000"),
    (np.stack([_speech_like(1.0)] * 2, axis=1), 16000, "mono"),
    (np.full(16000, np.nan, dtype=np.float32), 16000, "NaN"),
])
def test_bad_audio_raises_clear_error(model, wav, sr, message):
    with pytest.raises(AudioInputError, match=message) as err:
        units_from_audio(model, wav, sr, MelConfig(), name="clip.wav")
    assert "clip.wav" in str(err.value)
