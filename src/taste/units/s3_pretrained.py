"""CosyVoice's S3 tokenizer (paper profile) through PyPI `s3tokenizer`, from a LOCAL file only (no download here).

`load_s3_tokenizer(path)` reads CosyVoice's speech_tokenizer_*.onnx (or a safetensors state dict of the same model);
`s3_units(model, wavs)` turns 16 kHz audio into S3 units (25 Hz for *_25hz models, 50 Hz for v1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from taste.units.extract import check_audio

DEFAULT_NAME = "speech_tokenizer_v1_25hz"


class S3TokenizerUnavailable(ImportError):
    """PyPI s3tokenizer (and onnx) is not installed in this environment."""


def _s3():
    try:
        import s3tokenizer
    except ImportError as e:
        raise S3TokenizerUnavailable(f"the paper profile's S3 units need `pip install s3tokenizer onnx` ({e})") from e
    return s3tokenizer


def s3_rate_hz(name: str) -> int:
    """Units per second of a CosyVoice tokenizer name."""
    return 25 if "25hz" in name else 50


def build_s3_tokenizer(name: str = DEFAULT_NAME, config=None) -> torch.nn.Module:
    """The S3 tokenizer architecture with random weights (`config`: s3tokenizer.model.ModelConfig, e.g. tiny in tests)."""
    s3 = _s3()
    from s3tokenizer.model import ModelConfig

    config = config or ModelConfig()
    cls = s3.S3TokenizerV3 if "v3" in name else s3.S3TokenizerV2 if "v2" in name else s3.S3Tokenizer
    return cls(name, config).eval()


def load_s3_tokenizer(path: str | os.PathLike, name: str = DEFAULT_NAME, config=None) -> torch.nn.Module:
    """A pretrained S3 tokenizer from a local .onnx (CosyVoice release) or .safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: S3 tokenizer weights not found (give units.s3_path a local CosyVoice "
                                f"{name}.onnx; nothing can be downloaded here)")
    model = build_s3_tokenizer(name, config)
    try:
        if path.suffix == ".onnx":
            model.init_from_onnx(str(path))
        elif path.suffix == ".safetensors":
            from safetensors.torch import load_file

            model.load_state_dict(load_file(str(path)))
        else:
            raise ValueError("expected a .onnx or .safetensors file")
    except Exception as e:  # onnx / state-dict errors come in many types; name the file either way
        raise ValueError(f"{path}: cannot load S3 tokenizer {name} ({e})") from e
    return model.eval()


@torch.inference_mode()
def s3_units(model: torch.nn.Module, wavs: Sequence[np.ndarray], sr: int = 16000, names: Sequence[str] | None = None
             ) -> list[Tensor]:
    """16 kHz waveforms [T] -> S3 units LongTensor[U] each (audio checked like the trained tokenizer's input)."""
    s3 = _s3()
    names = names or [f"wav{i}" for i in range(len(wavs))]
    n_mels = model.config.n_mels
    mels = [s3.log_mel_spectrogram(torch.from_numpy(check_audio(w, sr, name=n)), n_mels=n_mels)
            for w, n in zip(wavs, names)]
    mel, mel_len = s3.padding(mels)
    codes, code_len = model.quantize(mel, mel_len)
    return [c[: int(n)].long().clone() for c, n in zip(codes, code_len)]
