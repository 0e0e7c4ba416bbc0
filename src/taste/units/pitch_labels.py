"""Pitch classes per unit: how high a unit's frames are spoken relative to its speaker's typical F0.

The unit tokenizer can be asked to keep pitch (`units.frame_pitch_weight`): a cross-entropy on the quantised states
against these classes. Class 0 = unvoiced; classes 1..n_bins are `step_semitones`-wide bins of the unit's median F0
in semitones relative to the speaker's median F0, centred so that bin n_bins // 2 + 1 starts at the speaker's median.
F0 tracks come from the prepare stage (`data/prepared/pitch/{split}.safetensors`, Hz at the mel frame rate, 0 =
unvoiced).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from taste.data.records import Utterance

UNVOICED = 0


@dataclass(frozen=True)
class PitchClasses:
    """n_classes = 1 (unvoiced) + n_bins; bins of step_semitones around the speaker's median F0."""

    n_classes: int = 8
    step_semitones: float = 3.0

    def __post_init__(self) -> None:
        if self.n_classes < 2:
            raise ValueError(f"pitch classes need n_classes >= 2 (unvoiced + one bin), got {self.n_classes}")
        if self.step_semitones <= 0:
            raise ValueError(f"step_semitones must be > 0, got {self.step_semitones}")

    @property
    def n_bins(self) -> int:
        return self.n_classes - 1


def speaker_reference_f0(utterances: Sequence[Utterance], f0: Mapping[str, Tensor] | object) -> dict[str, float]:
    """Median voiced F0 (Hz) per speaker over `utterances`; `f0` is anything with .get(utt_id) -> Tensor[F]."""
    voiced: dict[str, list[np.ndarray]] = defaultdict(list)
    for utt in utterances:
        track = np.asarray(f0.get(utt.id), dtype=np.float64)
        voiced[utt.speaker].append(track[track > 0])
    out = {}
    for speaker, parts in voiced.items():
        values = np.concatenate(parts)
        if values.size:
            out[speaker] = float(np.median(values))
    return out


def unit_pitch_labels(f0: Tensor | np.ndarray, n_units: int, stride: int, reference_hz: float,
                      classes: PitchClasses = PitchClasses()) -> Tensor:
    """F0 track Tensor[F] (Hz, 0 = unvoiced) -> LongTensor[n_units] of pitch classes (-1 where a unit has no frames).

    A unit is voiced when at least half of its `stride` frames are; its value is the median of its voiced frames
    (the lower middle value for an even count).
    """
    if reference_hz <= 0:
        raise ValueError(f"reference F0 must be > 0 Hz, got {reference_hz}")
    track = torch.as_tensor(f0, dtype=torch.float32).reshape(-1)
    padded = torch.zeros(n_units * stride)
    n = min(len(track), len(padded))
    padded[:n] = track[:n]
    frames = padded.reshape(n_units, stride)
    counted = torch.zeros(n_units * stride, dtype=torch.bool)
    counted[:n] = True
    counted = counted.reshape(n_units, stride)
    voiced = (frames > 0) & counted
    labels = torch.full((n_units,), UNVOICED, dtype=torch.long)
    is_voiced = voiced.sum(1) * 2 >= counted.sum(1).clamp_min(1)
    is_voiced &= voiced.any(1)
    if is_voiced.any():
        vals = frames.masked_fill(~voiced, float("nan"))[is_voiced].nanmedian(dim=1).values
        semitones = 12.0 * torch.log2(vals / reference_hz)
        bins = torch.floor(semitones / classes.step_semitones).long() + classes.n_bins // 2
        labels[is_voiced] = bins.clamp(0, classes.n_bins - 1) + 1
    labels[~counted.any(1)] = -1
    return labels
