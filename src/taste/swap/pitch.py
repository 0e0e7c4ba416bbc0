"""Pitch in the token swap: per-word median F0 of every decode, read from the vocoder's own F0 track.

The vocoder predicts F0 from the decoded units (and the recipient's speaker embedding) and its source-filter
synthesis speaks exactly that F0, so the predicted track is the pitch of the audio, available for every decode
without synthesising it (the audio subset checks it with a pitch tracker). Words are the decoder's own word spans.
On local pairs only some pairs change word j's pitch (the others change its rate): `local_change_kinds` reads
which from the synthesiser's markup.
"""
from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from taste.data.pitch import voiced_median
from taste.data.records import Utterance
from taste.swap.decode import Decoded
from taste.swap.jobs import SwapJob
from taste.swap.measure import compare_pair, noise_rows

MEASURE = "f0_vocoder"


def word_spans_frames(word_durations_s: Sequence[float], frame_rate_hz: float) -> list[tuple[int, int]]:
    """Per-word [start, end) frame spans from consecutive word durations (seconds), rounded on the frame grid."""
    ends = np.rint(np.cumsum(np.asarray(word_durations_s, dtype=np.float64)) * frame_rate_hz).astype(int)
    starts = np.concatenate([[0], ends[:-1]])
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def word_f0(track: np.ndarray | Tensor, spans: Sequence[tuple[int, int]]) -> list[float]:
    """Median voiced F0 (Hz) of each [start, end) frame span of `track` (0 = unvoiced); NaN for a span with none."""
    track = torch.as_tensor(np.asarray(track, dtype=np.float64))
    return [voiced_median(track, start, end) for start, end in spans]


@torch.no_grad()
def predicted_f0(vocoder: Any, items: Sequence[tuple[Sequence[int], Tensor]], batch_size: int = 64) -> list[np.ndarray]:
    """The vocoder's F0 track (Hz per frame, 0 = unvoiced) for each (units, speaker) item, batched by length."""
    order = sorted(range(len(items)), key=lambda k: len(items[k][0]))
    out: list[np.ndarray | None] = [None] * len(items)
    r = vocoder.cfg.upsample
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        lengths = torch.tensor([max(len(items[k][0]), 1) for k in chunk], dtype=torch.long)
        units = torch.full((len(chunk), int(lengths.max())), -1, dtype=torch.long)
        for b, k in enumerate(chunk):
            units[b, : len(items[k][0])] = torch.as_tensor(list(items[k][0]), dtype=torch.long)
        speakers = torch.stack([torch.as_tensor(items[k][1]).float() for k in chunk])
        f0 = vocoder.units_to_f0(units, speakers, lengths)
        for b, k in enumerate(chunk):
            out[k] = f0[b, : len(items[k][0]) * r].numpy()
    return out  # type: ignore[return-value]


def run_vocoder_pitch(vocoder: Any, plan: Sequence[Sequence[SwapJob]], decoded: Mapping[int, Sequence[Sequence[Decoded]]],
                      speakers: Mapping[str, Tensor], min_contrast_hz: float, batch_size: int = 64
                      ) -> tuple[pd.DataFrame, float]:
    """Per-word rows of measure 'f0_vocoder' for every decode at every seed (transfer / leakage / control and the
    decoder-noise rows, as for durations) -> (rows, seconds)."""
    t0 = time.perf_counter()
    seeds = list(decoded)
    frame_rate = vocoder.cfg.frame_rate_hz
    keys, items = [], []
    for seed in seeds:
        for p, jobs in enumerate(plan):
            for j, (job, d) in enumerate(zip(jobs, decoded[seed][p])):
                keys.append((seed, p, j))
                items.append((d.units, speakers[job.pair.recipient_id]))
    tracks = dict(zip(keys, predicted_f0(vocoder, items, batch_size)))

    def values(seed: int, p: int) -> list[list[float]]:
        return [word_f0(tracks[(seed, p, j)], word_spans_frames(d.word_durations_s, frame_rate))
                for j, d in enumerate(decoded[seed][p])]

    rows: list[dict] = []
    for seed, nxt in zip(seeds, seeds[1:] + seeds[:1]):
        for p, jobs in enumerate(plan):
            here = values(seed, p)
            rows += compare_pair(jobs, here, MEASURE, seed, min_contrast_hz)
            if nxt != seed:
                rows += noise_rows(jobs, here, values(nxt, p), MEASURE, seed, min_contrast_hz)
    return pd.DataFrame(rows), time.perf_counter() - t0


def local_change_kinds(utterances: Sequence[Utterance]) -> dict[str, str]:
    """pair_id -> 'pitch' | 'rate' | 'other' for the local pairs: what the variant's SSML markup changed on word j
    (the synthesiser records each word's markup in its alignment; 'other' when it is not recorded)."""
    kinds = {}
    for u in utterances:
        if u.pair is None or u.pair.set != "local" or u.pair.role != "variant":
            continue
        j = u.pair.changed_word
        markup = u.words[j].markup if j is not None and j < len(u.words) else None
        key = (markup or "").partition("=")[0]
        kinds[u.pair.pair_id] = key if key in ("pitch", "rate") else "other"
    return kinds


def tracked_word_f0(wav: np.ndarray, words: Sequence[Any], cfg: Any = None) -> list[float]:
    """Median F0 per word of audio by the prepare stage's pitch tracker (YIN); `words` are WordAlignment records
    (start, duration in seconds) such as taste.swap.study.decoder_word_spans gives."""
    from taste.data.pitch import PitchConfig, track_pitch

    cfg = cfg or PitchConfig()
    rate = cfg.sample_rate / cfg.hop_length
    track = track_pitch(np.asarray(wav, dtype=np.float32), cfg).numpy()
    spans = [(int(round(w.start * rate)), int(round((w.start + w.duration) * rate))) for w in words]
    return word_f0(track, spans)
