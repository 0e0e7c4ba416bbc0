"""Word-span edits of real audio, and the tokenizer's stretch augmentation built on them (issue 13).

`span_edit` time-stretches (phase vocoder) or pitch-shifts the aligned span of one word and leaves the rest of the
utterance untouched (`EditedSpan`: where the word now lies); `edited_utterance` is the edited audio's record (word j's
new start and duration, later words moved).
The swap stage builds its edited local pairs with them (taste.swap.edit).

The tokenizer's training corpus marks few words with a changed rate, and over a narrower range (about 0.5-2x) than
the swap study asks the tokens to carry (0.4x / 2.5x). `stretch_plan` + `stretched_items` add training items made
from train utterances with one word stretched by a factor drawn log-uniformly from [min_factor, max_factor]: the
word's duration is then known exactly and differs from what its text predicts, so the unit decoder can only get it
right from the word's own token. Train split only: dev and test (and the swap stage's edited sets) never enter.
"""
from __future__ import annotations

import dataclasses
import math
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from taste.data.records import PairInfo, Utterance

EDIT_KINDS = {"stretch": "rate", "shift": "pitch"}  # edit -> the local change kind the swap's slope estimator reads


def _span_samples(n: int, sr: int, start_s: float, end_s: float) -> tuple[int, int]:
    a = min(max(int(round(start_s * sr)), 0), n)
    b = min(max(int(round(end_s * sr)), a), n)
    if b - a < 2:
        raise ValueError(f"word span [{start_s:.3f}, {end_s:.3f}] s is empty in audio of {n / sr:.3f} s")
    return a, b


def _join(left: np.ndarray, middle: np.ndarray, right: np.ndarray, fade: int) -> np.ndarray:
    """left + middle + right, each join an equal-power crossfade of `fade` samples (shorter where a part is)."""
    def cross(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        n = min(fade, len(x), len(y))
        if n <= 0:
            return np.concatenate([x, y])
        t = np.linspace(0.0, np.pi / 2, n, dtype=np.float64)
        mixed = x[len(x) - n:] * np.cos(t) + y[:n] * np.sin(t)
        return np.concatenate([x[:len(x) - n], mixed, y[n:]])

    return cross(cross(left, middle), right).astype(np.float32)


@dataclass(frozen=True)
class EditedSpan:
    """Where the edited word lies in the edited audio: its start and length (s), and how far the words after it
    moved (s)."""

    start_s: float
    duration_s: float
    shift_s: float


def span_edit(wav: np.ndarray, sr: int, start_s: float, end_s: float, kind: str, amount: float,
              crossfade_s: float) -> tuple[np.ndarray, EditedSpan]:
    """Edit the span [start_s, end_s) -> (edited audio, where the word now lies).

    kind "stretch": the span lasts `amount` times longer (librosa's phase-vocoder time_stretch); "shift": pitch
    moved by `amount` semitones (librosa's pitch_shift). The span is edited together with `crossfade_s` of context
    on both sides, and each join is an equal-power crossfade of that length, so the faded samples are edited ones.
    The word's new start and length are those of its own (edited) samples inside the edited segment: for a
    stretch by f, f x its length, starting where f x the left context ends after the left join (not the span
    between the joins, f(L + 2c) - 2c, which is short by 2c(1 - f) for compressed words). A compressed word's
    first and last c(1 - f) then lie inside the crossfades, blended with its neighbours' original context, so its
    record overlaps theirs by that much (6 ms at f = 0.4, c = 10 ms: under one encoder frame)."""
    import librosa

    wav = np.asarray(wav, dtype=np.float32)
    a, b = _span_samples(len(wav), sr, start_s, end_s)
    fade = int(round(crossfade_s * sr))
    ca, cb = max(a - fade, 0), min(b + fade, len(wav))
    seg = wav[ca:cb]
    if kind not in EDIT_KINDS:
        raise ValueError(f"unknown edit {kind!r}; known: {sorted(EDIT_KINDS)}")
    if kind == "stretch" and amount <= 0:
        raise ValueError(f"stretch factor must be > 0, got {amount}")
    with warnings.catch_warnings():  # a word shorter than librosa's 2048-sample STFT frame is padded: expected here
        warnings.filterwarnings("ignore", message=r"n_fft=\d+ is too large", category=UserWarning)
        edited = (librosa.effects.time_stretch(seg, rate=1.0 / amount) if kind == "stretch"
                  else librosa.effects.pitch_shift(seg, sr=sr, n_steps=amount))
    out = _join(wav[:a], edited, wav[b:], fade)
    scale = len(edited) / len(seg)  # the edit's actual time scale (librosa rounds the output length)
    left_join = min(fade, a, len(edited))  # samples of the edited segment the left crossfade overlaps (_join)
    start = a - left_join + (a - ca) * scale
    return out, EditedSpan(start / sr, (b - a) * scale / sr, (len(out) - len(wav)) / sr)


def edited_utterance(base: Utterance, j: int, kind: str, span: EditedSpan, n_samples: int, audio_path: str
                     ) -> Utterance:
    """The edited audio's record: word j where `span` puts it, the words after it moved by `span.shift_s`, same
    text."""
    if not base.words:
        raise ValueError(f"utterance {base.id}: no word timings; an edited pair needs the word's aligned span")
    if not 0 <= j < len(base.words):
        raise ValueError(f"utterance {base.id}: word {j} out of range for {len(base.words)} words")
    wj = base.words[j]
    words = (*base.words[:j], dataclasses.replace(wj, start=span.start_s, duration=span.duration_s,
                                                  markup=f"edit={kind}"),
             *(w.shifted(span.shift_s) for w in base.words[j + 1:]))
    return base.replace(id=f"{base.id}~{kind}", audio_path=audio_path, duration=n_samples / base.sample_rate,
                        words=words, phones=(), pair=PairInfo("local", f"{kind}:{base.id}", "variant", j))


@dataclass(frozen=True)
class StretchAugment:
    """params.yaml `tokenizer.stretch_augment`: `share` of the train utterances get one stretched copy (0 = off),
    word j drawn uniformly among the words of at least `min_word_s`, factor log-uniform in [min_factor, max_factor]."""

    share: float = 0.0
    min_factor: float = 0.4
    max_factor: float = 2.5
    min_word_s: float = 0.08
    crossfade_s: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"tokenizer.stretch_augment.share must be in [0, 1], got {self.share}")
        if not 0.0 < self.min_factor <= self.max_factor:
            raise ValueError(f"tokenizer.stretch_augment needs 0 < min_factor <= max_factor, got "
                             f"{self.min_factor}, {self.max_factor}")

    @classmethod
    def from_params(cls, section: Mapping | None) -> "StretchAugment":
        return cls(**{k: float(v) for k, v in dict(section or {}).items()})


def stretch_plan(utterances: Sequence[Utterance], settings: StretchAugment, seed: int
                 ) -> list[tuple[Utterance, int, float]]:
    """(utterance, word j, stretch factor) for each utterance drawn, in manifest order; seeded by utterance id, so
    an utterance's draw does not depend on the others."""
    plan = []
    if settings.share <= 0:
        return plan
    lo, hi = math.log(settings.min_factor), math.log(settings.max_factor)
    for u in utterances:
        rng = random.Random(f"{seed}:stretch:{u.id}")
        if rng.random() >= settings.share:
            continue
        words = [j for j, w in enumerate(u.words) if w.duration >= settings.min_word_s]
        if not words:
            continue
        plan.append((u, rng.choice(words), math.exp(rng.uniform(lo, hi))))
    return plan


def stretched_items(model, plan: Sequence[tuple[Utterance, int, float]], read_wav: Callable[[Utterance], np.ndarray],
                    mel: Callable[[np.ndarray], torch.Tensor], units_of: Callable[[torch.Tensor], torch.Tensor],
                    speakers, rate_hz: float, crossfade_s: float) -> list:
    """Training items (taste.tokenizer.data.TasteItem) of the planned stretches: the edited audio's log-mel
    (`mel`), its units (`units_of`: the study's unit tokenizer on that log-mel), the base utterance's speaker
    embedding (`speakers.get(base id)`) and the edited word timings. Item ids are '<base id>~stretch'."""
    from taste.tokenizer.data import build_items

    records, mels, units, speaker_of = [], {}, {}, {}
    for base, j, factor in plan:
        wav = read_wav(base)
        edited, span = span_edit(wav, base.sample_rate, base.words[j].start, base.words[j].end, "stretch", factor,
                                 crossfade_s)
        rec = edited_utterance(base, j, "stretch", span, len(edited), f"{base.audio_path}#stretch")
        m = mel(edited)
        records.append(rec)
        mels[rec.id], units[rec.id], speaker_of[rec.id] = m, units_of(m), base.id

    class _BaseSpeaker:
        def get(self, item_id: str) -> torch.Tensor:
            return speakers.get(speaker_of[item_id])

    return build_items(model, records, mels, units, _BaseSpeaker(), rate_hz)
