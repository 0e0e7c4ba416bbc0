"""From the study's log-mel features to Whisper encoder inputs: batching, Whisper's normalisation, masks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from taste.asr.modeling import InputTooLongError

LN10 = math.log(10.0)


class EmptyInputError(ValueError):
    """An utterance (or batch) with no mel frames."""


def pad_mels(mels: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """list of Tensor[n_mels, F_i] -> (Tensor[B, n_mels, max F], Long[B] lengths), zero padded."""
    if len(mels) == 0:
        raise EmptyInputError("no utterances to batch")
    lengths = torch.tensor([m.shape[-1] for m in mels], dtype=torch.long)
    out = torch.zeros(len(mels), mels[0].shape[0], int(lengths.max()), dtype=torch.float32)
    for i, m in enumerate(mels):
        out[i, :, : m.shape[-1]] = m
    return out, lengths


def check_batch(mels: torch.Tensor, lengths: torch.Tensor | None, n_mels: int, window: int) -> torch.Tensor:
    """Validate a padded batch (Tensor[B, n_mels, F]) and return its lengths (Long[B])."""
    if mels.ndim != 3 or mels.shape[1] != n_mels:
        raise ValueError(f"expected log-mel of shape [B, {n_mels}, F], got {tuple(mels.shape)}")
    if lengths is None:
        lengths = torch.full((mels.shape[0],), mels.shape[-1], dtype=torch.long)
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    if mels.shape[0] == 0 or mels.shape[-1] == 0 or bool((lengths <= 0).any()):
        raise EmptyInputError(f"empty input: batch shape {tuple(mels.shape)}, lengths {lengths.tolist()}")
    if bool((lengths > mels.shape[-1]).any()):
        raise ValueError(f"lengths {lengths.tolist()} exceed the padded frame count {mels.shape[-1]}")
    if int(lengths.max()) > window:
        raise InputTooLongError(
            f"utterance of {int(lengths.max())} frames ({int(lengths.max()) / 100:.2f} s at 100 fps) is longer "
            f"than the encoder window of {window} frames; raise asr max_source_positions (data.speech.max_seconds)")
    return lengths


def whisper_normalise(logmel: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Whisper's input scaling, per utterance: log10, floor at (max - 8), (x + 4) / 4.

    logmel: Tensor[B, n_mels, F], natural log (the study's features); valid: Bool[B, F]. Padded frames are
    floored like silence; the maximum is taken over valid frames only, so padding cannot change it.
    """
    x = logmel / LN10
    peak = x.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=(1, 2), keepdim=True)
    x = torch.maximum(x, peak - 8.0)
    return (x + 4.0) / 4.0


def prepare_features(
    mels: torch.Tensor, lengths: torch.Tensor, window: int, pad_to_window: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded natural-log mel [B, n_mels, F] + lengths [B] -> (encoder input [B, n_mels, F'], frame mask [B, F']).

    Length-aware models get F' = max length rounded up to even, padding zeroed (what conv padding sees at the
    end of an unpadded input). `pad_to_window` (pretrained Whisper, trained on full windows): F' = window,
    padding at the silence floor and an all-ones mask, as Whisper's feature extractor does.
    """
    width = window if pad_to_window else int(lengths.max()) + int(lengths.max()) % 2
    frames = torch.arange(width)
    valid = frames[None, :] < lengths[:, None]  # (B, F')
    x = torch.zeros(mels.shape[0], mels.shape[1], width, dtype=torch.float32)
    keep = min(width, mels.shape[-1])
    x[..., :keep] = mels[..., :keep].float()
    x = whisper_normalise(x, valid)
    if pad_to_window:
        return x, torch.ones_like(valid, dtype=torch.long)
    return x * valid[:, None, :], valid.long()
