"""Local swap pairs made from the speech itself: one word of a real utterance time-stretched or pitch-shifted.

Same-text renditions that differ in one word exist only where a synthesiser made them. On any corpus with word
timings, a local pair can instead be built from one utterance: the *base* is the utterance as recorded; the
*variant* is the same audio with the aligned span of word j time-stretched (phase vocoder, `stretch_factor` times
longer) or pitch-shifted (`shift_semitones`), the rest untouched. The pair then runs through exactly the local-pair
analysis of the synthetic corpus (swap, controls, neighbour leakage, pooled slopes): its ground truth is the edit
itself (word j's new duration; log-F0 re-measured on the edited audio by the prepare stage's pitch tracker).

The edits are librosa's standard phase-vocoder `time_stretch` and `pitch_shift`; each edited span is joined to its
neighbours with a short equal-power crossfade so the joins do not click (taste.tokenizer.augment, which the
tokenizer's stretch augmentation shares).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from taste.config import complete_section
from taste.data.records import PairInfo, Utterance
from taste.tokenizer.augment import EDIT_KINDS, EditedSpan, edited_utterance, span_edit

__all__ = ["EDIT_KINDS", "EditSettings", "EditedSpan", "edit_span", "edited_utterance", "base_utterances", "make_edited_pairs",
           "encode_edited", "pitch_tracks_of", "edit_settings_from_params", "base_id"]


@dataclass(frozen=True)
class EditSettings:
    """params.yaml `swap.edited` (defaults match the synthetic corpus's local changes: rate=40% makes word j 2.5x
    longer, pitch=+60% is 8.1 semitones; fixed before measuring, not chosen by a measurement)."""

    stretch_factor: float = 2.5
    shift_semitones: float = 8.0
    crossfade_s: float = 0.01
    max_bases: int = 60            # base utterances; each gives one stretch and one shift pair
    kinds: tuple[str, ...] = ("stretch", "shift")
    dev_bases: int = 0             # dev recordings of the dev edited set (taste.swap.edited_set); 0 = none

    def __post_init__(self) -> None:
        if self.stretch_factor <= 0:
            raise ValueError(f"swap.edited.stretch_factor must be > 0, got {self.stretch_factor}")
        unknown = set(self.kinds) - set(EDIT_KINDS)
        if unknown:
            raise ValueError(f"swap.edited.kinds: unknown edit(s) {sorted(unknown)}; known: {sorted(EDIT_KINDS)}")


def edit_span(wav: np.ndarray, sr: int, start_s: float, end_s: float, kind: str, settings: EditSettings
              ) -> tuple[np.ndarray, EditedSpan]:
    """-> (edited audio, where the word now lies): taste.tokenizer.augment.span_edit with the
    stretch factor or semitone shift and the crossfade of `settings`."""
    if kind not in EDIT_KINDS:
        raise ValueError(f"unknown edit {kind!r}; known: {sorted(EDIT_KINDS)}")
    amount = settings.stretch_factor if kind == "stretch" else settings.shift_semitones
    return span_edit(wav, sr, start_s, end_s, kind, amount, settings.crossfade_s)


def base_utterances(utterances: Sequence[Utterance], max_bases: int) -> list[tuple[Utterance, int]]:
    """The base renditions of the synthetic local pairs with their changed word j, in manifest order: the edited
    pairs change the very word the synthesiser changed, so the two local sets compare word for word."""
    out = [(u, u.pair.changed_word) for u in utterances
           if u.pair is not None and u.pair.set == "local" and u.pair.role == "base" and u.words
           and u.pair.changed_word is not None]
    return out[:max_bases]


def make_edited_pairs(bases: Sequence[tuple[Utterance, int]], read_wav: Callable[[Utterance], np.ndarray],
                      settings: EditSettings, write_wav: Callable[[str, np.ndarray, int], str] | None = None
                      ) -> tuple[list[Utterance], dict[str, np.ndarray], dict[str, str]]:
    """-> (utterances: per base its re-labelled base record and one variant per edit kind, audio by utterance id,
    pair_id -> local change kind ('rate' | 'pitch')). Each edit is its own pair with the same base rendition:
    pair_id = '{kind}:{base id}', the base's record id = '{base id}~base'. write_wav(name, wav, sr) -> audio_path
    saves the variant's audio (None: audio_path names the base's audio and the edit)."""
    utts: list[Utterance] = []
    audio: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for base, j in bases:
        wav = np.asarray(read_wav(base), dtype=np.float32)
        for kind in settings.kinds:
            edited, span = edit_span(wav, base.sample_rate, base.words[j].start, base.words[j].end, kind,
                                           settings)
            name = f"{base.id}~{kind}"
            path = write_wav(name, edited, base.sample_rate) if write_wav else f"{base.audio_path}#{kind}"
            variant = edited_utterance(base, j, kind, span, len(edited), path)
            rec = base.replace(id=f"{base.id}~base-{kind}", pair=PairInfo("local", variant.pair.pair_id, "base", j))
            utts += [rec, variant]
            audio[rec.id], audio[variant.id] = wav, edited
            kinds[variant.pair.pair_id] = EDIT_KINDS[kind]
    return utts, audio, kinds


def encode_edited(tokenizer, utterances: Sequence[Utterance], audio: Mapping[str, np.ndarray], mel_cfg
                  ) -> dict[str, "np.ndarray"]:
    """TASTE codes of every utterance, base and variant alike encoded from their waveform by the same path as
    `taste encode` (log-mel -> encoder -> aggregator -> RVQ), so the two renditions differ only by the edit."""
    import torch

    from taste.data.features import log_mel

    done: dict[tuple[int, str], np.ndarray] = {}  # one base waveform serves the base record of every edit kind
    out = {}
    for u in utterances:
        key = (id(audio[u.id]), u.text)
        if key not in done:
            done[key] = tokenizer.encode(log_mel(torch.from_numpy(audio[u.id]), mel_cfg), u.text).codes
        out[u.id] = done[key]
    return out


def pitch_tracks_of(audio: Mapping[str, np.ndarray], pitch_cfg) -> dict[str, np.ndarray]:
    """The prepare stage's pitch track of each waveform (Hz per frame, 0 = unvoiced); a waveform object listed
    under several ids is tracked once."""
    from taste.data.pitch import track_pitch

    done: dict[int, np.ndarray] = {}  # the same waveform object (a base shared by several edits) is tracked once
    for w in audio.values():
        if id(w) not in done:
            done[id(w)] = track_pitch(np.asarray(w, dtype=np.float32), pitch_cfg).numpy()
    return {uid: done[id(w)] for uid, w in audio.items()}


def edit_settings_from_params(edit_params: Mapping) -> EditSettings:
    """params.yaml's `swap.edited` (a plain dict, read by the entry point; every field given) -> EditSettings."""
    p = complete_section(edit_params, EditSettings, "swap.edited")
    p["kinds"] = tuple(p["kinds"])
    for k in ("stretch_factor", "shift_semitones", "crossfade_s"):
        p[k] = float(p[k])
    for k in ("max_bases", "dev_bases"):
        p[k] = int(p[k])
    return EditSettings(**p)


def base_id(utterance_id: str) -> str:
    """The recorded utterance an edited-pair record was made from ('u1~stretch', 'u1~base-shift' -> 'u1')."""
    return utterance_id.split("~", 1)[0]
