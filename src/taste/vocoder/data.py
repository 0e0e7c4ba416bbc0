"""Vocoder training data: (units, speaker embedding) -> log-mel target items, their collate and the L1 loss."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from taste.units.data import MelSource
from taste.units.model import MEL_PAD_VALUE
from taste.vocoder.model import UnitVocoder, masked_l1


class UnitMelDataset(Dataset):
    """Items: {"id", "units": LongTensor[U], "speaker": Tensor[speaker_dim], "mel": Tensor[n_mels, F]}."""

    def __init__(self, ids: Sequence[str], units: Mapping[str, Tensor], speakers: MelSource, features: MelSource):
        missing = [i for i in ids if i not in units]
        if missing:
            raise KeyError(f"no units for {len(missing)} utterances (first: {missing[0]}); rerun the units stage")
        self.ids, self.units, self.speakers, self.features = list(ids), units, speakers, features

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        utt = self.ids[i]
        return {"id": utt, "units": self.units[utt].long(), "speaker": self.speakers.get(utt).float(),
                "mel": self.features.get(utt).float()}


def collate_units_mel(items: Sequence[dict[str, Any]], upsample: int) -> dict[str, Any]:
    """-> {"ids", "units" [B, U] (-1 pad), "unit_lengths", "speaker" [B, S], "mel" [B, n_mels, U*r], "mel_lengths"}.

    The target mel is cut or padded (log-silence) to U * upsample frames; only min(F, U*r) frames count in the loss.
    """
    u_len = torch.tensor([len(it["units"]) for it in items], dtype=torch.long)
    u_max = int(u_len.max())
    units = torch.full((len(items), u_max), -1, dtype=torch.long)
    mel = torch.full((len(items), items[0]["mel"].shape[0], u_max * upsample), MEL_PAD_VALUE)
    mel_lengths = torch.zeros(len(items), dtype=torch.long)
    for b, it in enumerate(items):
        units[b, : len(it["units"])] = it["units"]
        n = min(it["mel"].shape[-1], len(it["units"]) * upsample)
        mel[b, :, :n] = it["mel"][:, :n]
        mel_lengths[b] = n
    return {"ids": [it["id"] for it in items], "units": units, "unit_lengths": u_len,
            "speaker": torch.stack([it["speaker"] for it in items]), "mel": mel, "mel_lengths": mel_lengths}


def vocoder_loss(model: UnitVocoder, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
    """L1 between predicted and ground-truth log-mel over valid frames; the loss_fn of taste.training.train."""
    pred = model(batch["units"], batch["speaker"], batch["unit_lengths"])
    loss = masked_l1(pred, batch["mel"], batch["mel_lengths"])
    return loss, {"l1": float(loss.detach())}
