import numpy as np
import pytest

from synth_helper import synthesise
from taste.metrics.quality import CheckpointMissingError, dnsmos, utmos


def test_dnsmos_prefers_clean_speech_over_noise():
    wav, _ = synthesise("the quick brown fox jumps over the lazy dog")
    clean = dnsmos(wav)
    noisy = dnsmos(np.clip(wav + np.random.default_rng(0).normal(0, 0.2, len(wav)), -1, 1).astype(np.float32))
    assert set(clean) == {"ovrl", "sig", "bak", "p808"}
    assert all(1.0 <= v <= 5.0 for v in clean.values())
    assert clean["bak"] > noisy["bak"] + 0.5


def test_dnsmos_bad_input():
    with pytest.raises(ValueError, match="mono audio"):
        dnsmos(np.zeros((2, 16000), np.float32))


def test_utmos_needs_local_checkpoint(tmp_path):
    with pytest.raises(CheckpointMissingError, match="local checkpoint"):
        utmos(np.zeros(16000, np.float32), None)
    with pytest.raises(FileNotFoundError, match="not found"):
        utmos(np.zeros(16000, np.float32), tmp_path / "missing.pt")
