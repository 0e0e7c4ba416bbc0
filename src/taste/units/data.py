"""Training data for the unit tokenizer: (log-mel, CTC phone targets) items, their collate and the loss."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from taste.data.features import MEL_PAD_VALUE
from taste.data.loaders import MelSource
from taste.data.records import Utterance
from taste.training.loop import model_config
from taste.units.model import UnitTokenizer, ctc_loss, unit_lengths_for
from taste.units.phones import PhoneVocab, unit_phone_labels
from taste.units.pitch_labels import PitchClasses, unit_pitch_labels


class MelPhoneDataset(Dataset):
    """Items: {"id", "mel": Tensor[n_mels, F] float32, "targets": LongTensor[P] (1-based phone ids),
    "frame_labels": LongTensor[U] (0-based phone under each unit frame, -1 = silence/none; only when the unit
    stride (mel frames per unit) and rate are given), "pitch_labels": LongTensor[U] (pitch class of each unit,
    taste.units.pitch_labels; only when F0 tracks `pitch` and per-speaker reference F0s `pitch_refs` are given)}."""

    def __init__(self, utterances: Sequence[Utterance], features: MelSource, vocab: PhoneVocab,
                 unit_stride: int | None = None, rate_hz: float | None = None, pitch: MelSource | None = None,
                 pitch_refs: Mapping[str, float] | None = None, pitch_classes: PitchClasses = PitchClasses()):
        self.utterances = list(utterances)
        self.features = features
        self.vocab, self.unit_stride, self.rate_hz = vocab, unit_stride, rate_hz
        self.targets = [torch.tensor(vocab.ctc_targets(u.phones), dtype=torch.long) for u in self.utterances]
        if pitch is not None and unit_stride is None:
            raise ValueError("pitch labels need the unit stride (mel frames per unit)")
        missing = sorted({u.speaker for u in self.utterances} - set(pitch_refs or {})) if pitch is not None else []
        if missing:
            raise ValueError(f"no reference F0 for speaker(s) {missing[:3]}: their utterances have no voiced frames")
        self.pitch, self.pitch_refs, self.pitch_classes = pitch, dict(pitch_refs or {}), pitch_classes

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, i: int) -> dict[str, Any]:
        utt = self.utterances[i]
        mel = self.features.get(utt.id)
        if mel is None:
            raise KeyError(f"no log-mel features for utterance {utt.id}")
        item = {"id": utt.id, "mel": mel.float(), "targets": self.targets[i]}
        if self.unit_stride is not None:
            n_units = int(unit_lengths_for(torch.tensor([mel.shape[-1]]), self.unit_stride)[0])
        if self.unit_stride is not None and self.rate_hz is not None:
            item["frame_labels"] = torch.from_numpy(unit_phone_labels(utt.phones, n_units, self.rate_hz, self.vocab))
        if self.pitch is not None:
            item["pitch_labels"] = unit_pitch_labels(self.pitch.get(utt.id), n_units, self.unit_stride,
                                                     self.pitch_refs[utt.speaker], self.pitch_classes)
        return item


def pad_mels(mels: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """List of Tensor[n_mels, F_i] -> (Tensor[B, n_mels, F_max] padded with log-silence, lengths [B])."""
    lengths = torch.tensor([m.shape[-1] for m in mels], dtype=torch.long)
    out = torch.full((len(mels), mels[0].shape[0], int(lengths.max())), MEL_PAD_VALUE)
    for i, m in enumerate(mels):
        out[i, :, : m.shape[-1]] = m
    return out, lengths


def collate_mel_phones(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """-> {"ids", "mel" [B, n_mels, F], "lengths" [B], "targets" [sum P] (concatenated), "target_lengths" [B]}."""
    mel, lengths = pad_mels([it["mel"] for it in items])
    batch = {"ids": [it["id"] for it in items], "mel": mel, "lengths": lengths,
             "targets": torch.cat([it["targets"] for it in items]),
             "target_lengths": torch.tensor([len(it["targets"]) for it in items], dtype=torch.long)}
    for key in ("frame_labels", "pitch_labels"):
        if all(key in it for it in items):
            labels = torch.full((len(items), max(len(it[key]) for it in items)), -1, dtype=torch.long)
            for i, it in enumerate(items):
                labels[i, : len(it[key])] = it[key]
            batch[key] = labels
    return batch


def unit_tokenizer_loss(model: UnitTokenizer, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
    """CTC over phones + VQ commitment; the loss_fn of taste.training.train."""
    out = model(batch["mel"], batch["lengths"])
    ctc = ctc_loss(out, batch["targets"], batch["target_lengths"])
    loss = ctc + out["commit_loss"]
    logs = {"ctc": float(ctc.detach()), "commit": float(out["commit_loss"].detach())}
    if "inter_logits" in out:
        inter = ctc_loss(out, batch["targets"], batch["target_lengths"], key="inter_logits")
        loss = loss + model_config(model).inter_ctc_weight * inter
        logs["inter_ctc"] = float(inter.detach())
    if "frame_logits" in out and "frame_labels" in batch:
        frame = _unit_ce(out["frame_logits"], batch["frame_labels"])
        loss = loss + model_config(model).frame_phone_weight * frame
        logs["frame_ce"] = float(frame.detach())
    if "pitch_logits" in out and "pitch_labels" in batch:
        pitch = _unit_ce(out["pitch_logits"], batch["pitch_labels"])
        loss = loss + model_config(model).frame_pitch_weight * pitch
        logs["pitch_ce"] = float(pitch.detach())
    units = out["units"][out["units"] >= 0]
    logs["batch_codes_used"] = float(torch.unique(units).numel()) if units.numel() else 0.0
    return loss, logs


def _unit_ce(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of per-unit logits [B, U, C] against labels [B, U'] (-1 = ignore), cut or padded to U."""
    labels = labels[:, : logits.shape[1]]
    labels = torch.nn.functional.pad(labels, (0, logits.shape[1] - labels.shape[1]), value=-1)
    return torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-1)

