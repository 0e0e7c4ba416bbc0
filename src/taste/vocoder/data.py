"""Vocoder training data: (units, speaker embedding) -> (log-mel, F0) target items, their collate and the loss:
L1 on the log-mel plus, when F0 tracks are given, voicing cross-entropy and L1 on log2 F0 over voiced frames."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from taste.data.features import MEL_PAD_VALUE
from taste.data.loaders import MelSource
from taste.training.loop import model_config
from taste.units.model import padding_mask
from taste.vocoder.model import UnitVocoder, masked_l1


class UnitMelDataset(Dataset):
    """Items: {"id", "units": LongTensor[U], "speaker": Tensor[speaker_dim], "mel": Tensor[n_mels, F]} and, when
    F0 tracks are given, "f0": Tensor[F] (Hz, 0 = unvoiced; the prepare stage's pitch track)."""

    def __init__(self, ids: Sequence[str], units: Mapping[str, Tensor], speakers: MelSource, features: MelSource,
                 pitch: MelSource | None = None):
        missing = [i for i in ids if i not in units]
        if missing:
            raise KeyError(f"no units for {len(missing)} utterances (first: {missing[0]}); rerun the units stage")
        self.ids, self.units, self.speakers, self.features, self.pitch = list(ids), units, speakers, features, pitch

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        utt = self.ids[i]
        item = {"id": utt, "units": self.units[utt].long(), "speaker": self.speakers.get(utt).float(),
                "mel": self.features.get(utt).float()}
        if self.pitch is not None:
            item["f0"] = self.pitch.get(utt).float()
        return item


def collate_units_mel(items: Sequence[dict[str, Any]], upsample: int) -> dict[str, Any]:
    """-> {"ids", "units" [B, U] (-1 pad), "unit_lengths", "speaker" [B, S], "mel" [B, n_mels, U*r], "mel_lengths"}
    and "f0" [B, U*r] (0-padded) when every item has one.

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
    batch = {"ids": [it["id"] for it in items], "units": units, "unit_lengths": u_len,
             "speaker": torch.stack([it["speaker"] for it in items]), "mel": mel, "mel_lengths": mel_lengths}
    if all("f0" in it for it in items):
        f0 = torch.zeros(len(items), u_max * upsample)
        for b, it in enumerate(items):
            n = min(len(it["f0"]), int(mel_lengths[b]))
            f0[b, :n] = it["f0"][:n]
        batch["f0"] = f0
    return batch


def pitch_losses(out: dict[str, Tensor], f0: Tensor, lengths: Tensor, f0_ref_hz: float) -> tuple[Tensor, Tensor]:
    """(voicing BCE over valid frames, L1 of log2(F0 / ref) over voiced valid frames); f0 Tensor[B, F] Hz."""
    valid = padding_mask(lengths.to(f0.device), f0.shape[-1])
    voiced = (f0 > 0) & valid
    bce = F.binary_cross_entropy_with_logits(out["voiced_logit"].float()[valid], voiced[valid].float())
    if not voiced.any():
        return bce, out["log_f0"].sum() * 0.0
    target = torch.log2(f0[voiced] / f0_ref_hz)
    return bce, (out["log_f0"].float()[voiced] - target).abs().mean()


def vocoder_loss(model: UnitVocoder, batch: dict[str, Any], pitch_weight: float = 1.0
                 ) -> tuple[Tensor, dict[str, float]]:
    """L1 between predicted and ground-truth log-mel over valid frames, plus pitch_weight x (voicing BCE + log-F0
    L1 in octaves) when the batch has F0 targets; the loss_fn of taste.training.train."""
    out = model(batch["units"], batch["speaker"], batch["unit_lengths"])
    l1 = masked_l1(out["mel"], batch["mel"], batch["mel_lengths"])
    logs = {"l1": float(l1.detach())}
    if "f0" not in batch or pitch_weight <= 0:
        return l1, logs
    bce, f0_l1 = pitch_losses(out, batch["f0"], batch["mel_lengths"], model_config(model).f0_ref_hz)
    logs.update({"voicing_bce": float(bce.detach()), "log_f0_l1": float(f0_l1.detach())})
    return l1 + pitch_weight * (bce + f0_l1), logs
