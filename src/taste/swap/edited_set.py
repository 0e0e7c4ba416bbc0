"""One edited local set end to end: edit word j of each base recording (`taste.swap.edit`), encode both renditions,
decode the swap jobs at every seed, read durations and vocoder F0, and score them with the pooled-slope estimator.

The swap stage measures two such sets. The bases of the synthetic local pairs (test-like swap sentences) give the
reported table. Dev recordings, with word j the middle word by a fixed rule, give the set that tokenizer designs
are compared on, so that no design is chosen on the sentences it is reported on (issue 13).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from taste.data.records import Utterance
from taste.swap.edit import EditSettings, base_id, encode_edited, make_edited_pairs, pitch_tracks_of
from taste.swap.jobs import SwapPair, build_pairs
from taste.swap.pitch import run_vocoder_pitch
from taste.swap.slope import SlopeSettings, code_agreement, slope_metrics, truth_table
from taste.swap.study import SwapSettings, plan_jobs, run_decoder


@dataclass
class EditedSet:
    """What `measure_edited_set` found: the records and pairs it built, their codes, the slopes and the code
    agreement, and its cost in seconds (all of it, and the decoding alone)."""

    utterances: list[Utterance]
    pairs: list[SwapPair]
    codes: dict[str, Any]
    slope: dict
    agreement: dict
    seconds: float
    decode_seconds: float

    def summary(self, settings: EditSettings) -> dict:
        """The metrics.json entry describing the set (not its slopes)."""
        return {"settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(settings).items()},
                "n_directed_pairs": len(self.pairs), "n_recordings": len({base_id(u.id) for u in self.utterances}),
                "seconds": round(self.seconds, 2), "decode_seconds": round(self.decode_seconds, 2)}


def middle_word_bases(utterances: Sequence[Utterance], max_bases: int, min_words: int = 3
                      ) -> list[tuple[Utterance, int]]:
    """Recordings with word timings and at least `min_words` words, in manifest order, each with word j = its middle
    word (n // 2): a fixed rule, so the edited word is never picked by looking at a result."""
    out = [(u, len(u.words) // 2) for u in utterances if u.words and len(u.words) >= min_words]
    return out[:max_bases]


def measure_edited_set(tokenizer: Any, vocoder: Any, bases: Sequence[tuple[Utterance, int]],
                       read_wav: Callable[[Utterance], np.ndarray], edit_settings: EditSettings,
                       settings: SwapSettings, speaker_of: Callable[[str], Tensor], mel_cfg: Any, pitch_cfg: Any,
                       slope_settings: SlopeSettings, n_boot: int, seed: int,
                       write_wav: Callable[[str, np.ndarray, int], str] | None = None) -> EditedSet:
    """Edit, encode, decode and score one set of base recordings. speaker_of(base recording id) -> [256] embedding
    (every record of an edited pair speaks in its recording's voice); write_wav saves the edited audio."""
    if not bases:
        raise ValueError("an edited set needs at least one base recording with word timings")
    t0 = time.perf_counter()
    utts, audio, kinds = make_edited_pairs(bases, read_wav, edit_settings, write_wav)
    pairs = build_pairs(utts)
    codes = encode_edited(tokenizer, utts, audio, mel_cfg)
    speakers: Mapping[str, Tensor] = {u.id: speaker_of(base_id(u.id)) for u in utts}
    plan = plan_jobs(pairs, codes, settings)
    rows, decoded, decode_s = run_decoder(tokenizer, plan, speakers, settings)
    pitch_rows, _ = run_vocoder_pitch(vocoder, plan, decoded, speakers, settings.min_contrast_hz, settings.batch_size)
    truth = truth_table(pairs, {u.id: u for u in utts}, pitch_tracks_of(audio, pitch_cfg),
                        pitch_cfg.sample_rate / pitch_cfg.hop_length)
    slope = slope_metrics(rows, pitch_rows, truth, plan, kinds, slope_settings, n_boot, seed)
    return EditedSet(utts, pairs, codes, slope, code_agreement(pairs, codes), time.perf_counter() - t0, decode_s)
