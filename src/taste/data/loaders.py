"""Lazy access to prepared per-utterance tensors (features/{split}.safetensors, speaker_embeddings.safetensors)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol

import torch
from safetensors import safe_open
from safetensors.torch import save_file


class MelSource(Protocol):
    """Anything with `.get(utt_id) -> Tensor[n_mels, frames]` (a FeatureStore, or a dict)."""

    def get(self, utt_id: str) -> torch.Tensor: ...


def prepared_paths(params: dict[str, Any]) -> dict[str, Path]:
    """Where the prepare stage put the files models read: its root, phones.json, the speaker embeddings, F0 tracks."""
    root = Path(params["shared"]["paths"]["prepared"])
    return {"root": root, "phones": root / "phones.json", "speakers": root / "speaker_embeddings.safetensors",
            "pitch": root / "pitch"}


def load_pitch(params: dict[str, Any], split: str) -> "FeatureStore":
    """F0 tracks of a prepared split (utt id -> Tensor[F] Hz, 0 = unvoiced), written by the prepare stage."""
    return FeatureStore(prepared_paths(params)["pitch"] / f"{split}.safetensors")


class FeatureStore:
    """Read-only map utt_id -> Tensor from one safetensors file, loading each tensor on demand.

    `get(utt_id)` returns float32 (stored as float16 for log-mel) of shape [n_mels, frames] for features,
    [256] for speaker embeddings.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"feature file not found: {self.path}")
        self._file = safe_open(str(self.path), framework="pt", device="cpu")
        self._keys = tuple(self._file.keys())
        self._key_set = frozenset(self._keys)

    def __getstate__(self) -> dict:  # DataLoader workers get the path and reopen the file themselves
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def get(self, utt_id: str) -> torch.Tensor:
        if utt_id not in self._key_set:
            raise KeyError(f"{self.path}: no entry for utterance {utt_id!r}")
        return self._file.get_tensor(utt_id).float()

    __getitem__ = get

    def keys(self) -> tuple[str, ...]:
        return self._keys

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._key_set

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)


def save_tensor_map(path: str | Path, tensors: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None) -> None:
    """Write utt_id -> tensor as one safetensors file (atomic; keys sorted by safetensors, so bytes are stable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {k: (v.to(dtype) if dtype is not None else v).contiguous() for k, v in tensors.items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(data, str(tmp))
    tmp.replace(path)
