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


class S3WeightsError(ValueError):
    """A units.s3_path file that is not the S3 tokenizer asked for (another model, other sizes, not .onnx or
    .safetensors)."""


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
    """The S3 tokenizer architecture with random weights (`config`: the ModelConfig of that model's s3tokenizer module,
    e.g. tiny in tests; None: s3tokenizer's default config for that model)."""
    s3 = _s3()
    cls = s3.S3TokenizerV3 if "v3" in name else s3.S3TokenizerV2 if "v2" in name else s3.S3Tokenizer
    return (cls(name) if config is None else cls(name, config)).eval()


def load_s3_tokenizer(path: str | os.PathLike, name: str = DEFAULT_NAME, config=None) -> torch.nn.Module:
    """A pretrained S3 tokenizer from a local .onnx (CosyVoice release) or .safetensors file.

    `config` None: s3tokenizer's default ModelConfig for that model, except for a v1 .safetensors state dict (one
    with V1_KEYS), whose sizes are read off the file (`config_from_state_dict`). A missing file ->
    FileNotFoundError; a file that is not this model -> S3WeightsError (a ValueError), both naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: S3 tokenizer weights not found (give units.s3_path a local CosyVoice "
                                f"{name}.onnx; nothing can be downloaded here)")
    try:
        if path.suffix == ".onnx":
            model = build_s3_tokenizer(name, config)
            model.init_from_onnx(str(path))
        elif path.suffix == ".safetensors":
            from safetensors import safe_open
            from safetensors.torch import load_file

            state = load_file(str(path))
            with safe_open(str(path), "pt") as f:
                metadata = f.metadata() or {}
            if config is None and _is_v1_state_dict(state):
                config = config_from_state_dict(state, metadata)
            model = build_s3_tokenizer(name, config)
            model.load_state_dict(state)
        else:
            raise S3WeightsError("expected a .onnx or .safetensors file")
    except S3TokenizerUnavailable:
        raise
    except Exception as e:  # onnx / safetensors / state-dict errors come in many types; name the file either way
        raise S3WeightsError(f"{path}: cannot load S3 tokenizer {name} ({e})") from e
    return model.eval()


# Keys of a v1 S3Tokenizer state dict (s3tokenizer.model) that v2 / v3 (model_v2 / model_v3: FSMN attention,
# FSQ codebook) do not have: only a v1 file's sizes can be read off its shapes.
V1_KEYS = ("encoder.conv1.weight", "encoder.positional_embedding", "quantizer._codebook.embed")


def _is_v1_state_dict(state: dict[str, Tensor]) -> bool:
    """A v1 state dict, or at least not a v2 / v3 one: a file with any of V1_KEYS but conv1 (which v2 / v3 share;
    a v1 file missing some keys is refused by config_from_state_dict, naming what is missing), or with none of
    the encoder's keys at all (another model: config_from_state_dict says it is not an S3 tokenizer)."""
    return any(k in state for k in V1_KEYS[1:]) or not any(k.startswith("encoder.") for k in state)


def config_from_state_dict(state: dict[str, Tensor], metadata: dict[str, str] | None = None):
    """The s3tokenizer ModelConfig a v1 S3Tokenizer state dict was saved from (its sizes read off the tensor shapes).

    The head count leaves no trace in the shapes: it is metadata["n_audio_head"] when the file says, otherwise
    n_audio_state // 64 (CosyVoice's and Whisper's 64-wide heads: 1280 -> 20). Not a v1 state dict ->
    S3WeightsError."""
    _s3()
    from s3tokenizer.model import ModelConfig

    missing = [k for k in V1_KEYS if k not in state]
    if missing:
        raise S3WeightsError(f"not an S3 tokenizer (v1) state dict: no {', '.join(missing)}")
    n_state, n_mels = state["encoder.conv1.weight"].shape[:2]
    layers = {int(k.split(".")[2]) for k in state if k.startswith("encoder.blocks.")}
    heads = int((metadata or {}).get("n_audio_head", max(n_state // 64, 1)))
    return ModelConfig(n_mels=int(n_mels), n_audio_ctx=int(state["encoder.positional_embedding"].shape[0]),
                       n_audio_state=int(n_state), n_audio_head=heads, n_audio_layer=len(layers),
                       n_codebook_size=int(state["quantizer._codebook.embed"].shape[0]))


def describe_s3_tokenizer(model: torch.nn.Module, path: str | os.PathLike, name: str = DEFAULT_NAME) -> dict:
    """What the units stage records of the S3 tokenizer it used: the file (path, bytes, SHA-256), the model name, its
    unit rate and codebook size (read off the loaded model's config: 4096 for v1, 3^8 = 6561 for the FSQ v2/v3), and
    the whole config."""
    import dataclasses
    import hashlib

    path = Path(path)
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256")
    config = model.config
    return {"name": name, "path": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest(),
            "rate_hz": s3_rate_hz(name), "codebook_size": int(config.n_codebook_size),
            "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(vars(config))}


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
