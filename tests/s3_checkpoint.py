"""Tiny random-weight CosyVoice S3 tokenizer checkpoints (s3tokenizer's own v1 architecture) for tests: no release
checkpoint can be downloaded here, so tests write one of these as .safetensors and point units.s3_path at it.

Import this module only after `pytest.importorskip("s3tokenizer")`: it needs PyPI s3tokenizer.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from s3tokenizer.model import ModelConfig
from safetensors.torch import save_file

from taste.units.s3_pretrained import build_s3_tokenizer

S3_NAME = "speech_tokenizer_v1_25hz"  # 25 units per second
S3_CODES = 64
# 64-wide heads like the release (1280 = 20 x 64), so the head count read back from the file matches.
TINY_S3 = ModelConfig(n_mels=128, n_audio_ctx=1500, n_audio_state=64, n_audio_head=1, n_audio_layer=2,
                      n_codebook_size=S3_CODES)


def chirp_wav(seconds: float, f0: float = 180.0) -> np.ndarray:
    """A 16 kHz voiced-like chirp with a little noise (float32)."""
    t = np.arange(int(16000 * seconds)) / 16000
    chirp = np.sin(2 * np.pi * (f0 + 150 * t) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.2 * chirp + 0.01 * np.random.default_rng(0).normal(size=len(t))).astype(np.float32)


def tiny_s3_model(config: ModelConfig = TINY_S3, name: str = S3_NAME, seed: int = 0) -> torch.nn.Module:
    """A random-weight S3 tokenizer whose codes vary over speech-like input."""
    torch.manual_seed(seed)
    model = build_s3_tokenizer(name, config)
    # s3tokenizer starts its codebook at zeros (every frame would be code 0), and random codewords all lie nearer to
    # one corner of a random encoder's outputs than the others: take the codewords from encoder outputs instead.
    import s3tokenizer

    mel = s3tokenizer.log_mel_spectrogram(torch.from_numpy(chirp_wav(3.0, f0=120.0)), n_mels=config.n_mels)[None]
    assert mel.shape[-1] // 4 >= config.n_codebook_size, "3 s of audio gives too few frames for the codebook"
    with torch.inference_mode():
        hidden, _ = model.encoder(mel, torch.tensor([mel.shape[-1]]))
    with torch.no_grad():
        model.quantizer._codebook.embed.copy_(hidden[0, : config.n_codebook_size].clone())
    return model


def save_s3(model: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """The model's state dict as a .safetensors file (with `metadata` in its header) -> path."""
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=metadata)
    return Path(path)


def write_tiny_s3_checkpoint(path: str | Path, config: ModelConfig = TINY_S3, name: str = S3_NAME, seed: int = 0
                             ) -> Path:
    """A tiny S3 tokenizer checkpoint at path (.safetensors), its config in the file's metadata -> path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_s3(tiny_s3_model(config, name, seed), path, metadata={k: str(v) for k, v in asdict(config).items()})
