"""Paper-profile code path: CosyVoice's S3 tokenizer built with random weights (no checkpoint can be downloaded)."""

import numpy as np
import pytest
import torch

s3tokenizer = pytest.importorskip("s3tokenizer", reason="PyPI s3tokenizer (+ onnx) is not installed")

from s3tokenizer.model import ModelConfig  # noqa: E402

from taste.training.checkpoint import save_safetensors_atomic  # noqa: E402
from taste.units.extract import AudioInputError  # noqa: E402
from taste.units.s3_pretrained import build_s3_tokenizer, load_s3_tokenizer, s3_rate_hz, s3_units  # noqa: E402

TINY = dict(n_mels=128, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=1, n_codebook_size=64)


def _wav(seconds: float) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.2 * np.sin(2 * np.pi * 200 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize("name", ["speech_tokenizer_v1_25hz", "speech_tokenizer_v1"])
def test_random_weight_s3_tokenizer_unit_rate(name):
    torch.manual_seed(0)
    model = build_s3_tokenizer(name, ModelConfig(**TINY))
    units = s3_units(model, [_wav(2.0), _wav(1.0)])
    rate = s3_rate_hz(name)
    assert [len(u) for u in units] == [2 * rate, rate]
    assert all(((u >= 0) & (u < 64)).all() for u in units)


def test_local_file_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    model = build_s3_tokenizer(config=ModelConfig(**TINY))
    save_safetensors_atomic(model.state_dict(), tmp_path / "s3.safetensors")
    loaded = load_s3_tokenizer(tmp_path / "s3.safetensors", config=ModelConfig(**TINY))
    wav = _wav(1.5)
    assert torch.equal(s3_units(model, [wav])[0], s3_units(loaded, [wav])[0])
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        load_s3_tokenizer(tmp_path / "missing.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(ValueError, match="broken.onnx"):
        load_s3_tokenizer(tmp_path / "broken.onnx", config=ModelConfig(**TINY))
    with pytest.raises(AudioInputError, match="sample rate"):
        s3_units(model, [wav], sr=22050)
