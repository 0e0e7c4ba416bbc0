"""The token-swap study: plan every pair's decode jobs, decode them at several seeds, measure per-word duration
(from the decoder's word boundaries) and, on a subset, duration / F0 / WER from vocoded audio."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from taste.data.loaders import FeatureStore
from taste.data.records import Utterance, read_manifest
from taste.swap.decode import Decoded, decode_jobs
from taste.swap.jobs import SwapJob, SwapPair, build_pairs, jobs_for_pair, no_renditions_reason
from taste.swap.measure import compare_pair, noise_rows
from taste.swap.spans import SPAN_RULES

SWAP_SETS = ("swap_global", "swap_local")


@dataclass(frozen=True)
class SwapSettings:
    """Knobs of the study (params.yaml `swap:`); rate_hz = unit rate of the decoder's output (params units.rate_hz)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    spans: tuple[str, ...] = SPAN_RULES
    mismatch_span: str | None = "first_third"
    batch_size: int = 64
    max_pairs: int | Mapping[str, int] | None = None
    min_contrast_s: float = 0.04
    min_contrast_hz: float = 5.0
    audio_pairs: int | Mapping[str, int] = 3
    rate_hz: float = 25.0


def synthetic_pairs_skip_reason(prepared_dir: str | Path, source: str, names: Sequence[str] = SWAP_SETS
                                ) -> str | None:
    """Why the study of the synthetic swap pairs cannot run (None when it can): only a synthesiser makes same-text
    renditions of a sentence, so a real corpus (data.source librispeech / libritts / folder) has none, and the swap
    stage measures its edited local sets (taste.swap.edited_set) alone."""
    paths = [Path(prepared_dir) / f"{name}.jsonl" for name in names]
    return no_renditions_reason((u for path in paths if path.exists() for u in read_manifest(path)), source)


def load_inputs(prepared_dir: str | Path, codes_dir: str | Path, names: Sequence[str] = SWAP_SETS
                ) -> tuple[list[Utterance], dict[str, Tensor], dict[str, Tensor]]:
    """Swap manifests, TASTE codes (id -> Long[N_words, n_q]) and speaker embeddings (id -> [256]).

    Utterances the tokenizer stage wrote no codes for (it may reject some) are dropped with their pair partner,
    with a warning; no codes at all is an error.
    """
    prepared_dir, codes_dir = Path(prepared_dir), Path(codes_dir)
    utts: list[Utterance] = []
    codes: dict[str, Tensor] = {}
    for name in names:
        part = read_manifest(prepared_dir / f"{name}.jsonl")
        store = FeatureStore(codes_dir / f"{name}.safetensors")
        codes.update({u.id: store.get(u.id).long() for u in part if u.id in store})
        utts += part
    incomplete = {(u.pair.set, u.pair.pair_id) for u in utts if u.pair is not None and u.id not in codes}
    kept = [u for u in utts if u.pair is not None and (u.pair.set, u.pair.pair_id) not in incomplete]
    if incomplete:
        warnings.warn(f"{codes_dir}: no codes for some utterances; dropped {len(incomplete)} incomplete pairs")
    if not kept:
        raise ValueError(f"{codes_dir}: no swap pair has TASTE codes for both renditions")
    spk = FeatureStore(prepared_dir / "speaker_embeddings.safetensors")
    speakers = {u.id: spk.get(u.id) for u in kept}
    return kept, {u.id: codes[u.id] for u in kept}, speakers


def plan_jobs(pairs: Sequence[SwapPair], codes: Mapping[str, Tensor], settings: SwapSettings) -> list[list[SwapJob]]:
    """Decode jobs per directed pair (references first)."""
    return [jobs_for_pair(p, codes[p.recipient_id], codes[p.donor_id], settings.spans, settings.mismatch_span)
            for p in pairs]


def run_decoder(tokenizer: Any, plan: Sequence[Sequence[SwapJob]], speakers: Mapping[str, Tensor],
                settings: SwapSettings) -> tuple[pd.DataFrame, dict[int, list[list[Decoded]]], float]:
    """Decode all jobs at every seed -> (per-word rows for measure 'duration', decoded[seed][pair][job], seconds)."""
    flat = [job for jobs in plan for job in jobs]
    decoded: dict[int, list[list[Decoded]]] = {}
    t0 = time.perf_counter()
    for seed in settings.seeds:
        out = iter(decode_jobs(tokenizer, flat, speakers, seed, settings.rate_hz, settings.batch_size))
        decoded[seed] = [[next(out) for _ in jobs] for jobs in plan]
    seconds = time.perf_counter() - t0
    rows: list[dict] = []
    seeds = list(settings.seeds)
    for seed, nxt in zip(seeds, seeds[1:] + seeds[:1]):
        for jobs, dec, dec_next in zip(plan, decoded[seed], decoded[nxt]):
            values = [d.word_durations_s for d in dec]
            rows += compare_pair(jobs, values, "duration", seed, settings.min_contrast_s)
            if nxt != seed:
                rows += noise_rows(jobs, values, [d.word_durations_s for d in dec_next], "duration", seed,
                                   settings.min_contrast_s)
    return pd.DataFrame(rows), decoded, seconds


def audio_subset(plan: Sequence[Sequence[SwapJob]], n_per_set: int | Mapping[str, int]) -> list[int]:
    """Indices into `plan` of the first `n_per_set` forward pairs of each set (the vocoded, force-aligned subset);
    a mapping gives a count per set (sets not named get none)."""
    taken: dict[str, int] = {}
    out = []
    for i, jobs in enumerate(plan):
        pair = jobs[0].pair
        cap = n_per_set.get(pair.set, 0) if isinstance(n_per_set, Mapping) else n_per_set
        if pair.forward and taken.get(pair.set, 0) < cap:
            taken[pair.set] = taken.get(pair.set, 0) + 1
            out.append(i)
    return out


def decoder_word_spans(text: str, word_durations_s: Sequence[float]) -> tuple:
    """The decoder's own word spans as WordAlignment records (the vocoder keeps the unit timing, so word j of the
    audio lies exactly where the decoder put it)."""
    from taste.data.records import WordAlignment

    words = text.split()
    if len(words) != len(word_durations_s):
        raise ValueError(f"{len(word_durations_s)} decoded word durations for {len(words)} words in {text!r}")
    starts = np.concatenate([[0.0], np.cumsum(word_durations_s)[:-1]])
    return tuple(WordAlignment(w, float(s), float(d)) for w, s, d in zip(words, starts, word_durations_s))


def _measure_audio(wav: np.ndarray, text: str, word_durations_s: Sequence[float], recognizer: Any, f0_fn) -> dict:
    """Transcript + WER; per-word durations from a forced alignment of the audio (None when it fails); per-word
    median F0 over the decoder's own word spans (so pitch is measured even where the recogniser cannot align)."""
    from taste.metrics.recognizer import AlignmentError
    from taste.metrics.wer import per_utterance_wer

    hyp = recognizer.transcribe(wav)
    out = {"hyp": hyp, "wer": per_utterance_wer([text], [hyp])[0], "durations": None,
           "f0": list(f0_fn(wav, decoder_word_spans(text, word_durations_s)))}
    try:
        words = recognizer.align(wav, text)
    except AlignmentError:
        return out
    out["durations"] = [w.duration for w in words]
    return out


def run_audio(vocoder: Any, recognizer: Any, plan: Sequence[Sequence[SwapJob]],
              decoded: Mapping[int, Sequence[Sequence[Decoded]]], speakers: Mapping[str, Tensor],
              settings: SwapSettings, f0_fn=None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Vocode the audio subset at the first seed, force-align, F0 per word (decoder word spans), transcribe.

    -> (per-word rows for measures duration_audio / f0, one row per utterance (condition, wer, hyp), wavs by key).
    """
    if f0_fn is None:
        from taste.metrics.prosody import word_f0 as f0_fn
    seed = settings.seeds[0]
    rows, utt_rows, wavs = [], [], {}
    for i in audio_subset(plan, settings.audio_pairs):
        jobs, dec = plan[i], decoded[seed][i]
        measured = []
        for job, d in zip(jobs, dec):
            spk = speakers[job.pair.recipient_id]
            wav = vocoder.synthesise(torch.tensor(d.units, dtype=torch.long), spk)
            wavs[job.key] = wav
            m = _measure_audio(wav, job.pair.text, d.word_durations_s, recognizer, f0_fn)
            measured.append(m)
            utt_rows.append({"set": job.pair.set, "pair_id": job.pair.pair_id, "direction": job.pair.direction,
                             "condition": job.condition, "span": job.span, "wer": m["wer"], "hyp": m["hyp"],
                             "aligned": m["durations"] is not None, "seconds": len(wav) / 16000})
        rows += compare_pair(jobs, [m["durations"] for m in measured], "duration_audio", seed, settings.min_contrast_s)
        rows += compare_pair(jobs, [m["f0"] for m in measured], "f0", seed, settings.min_contrast_hz)
    return pd.DataFrame(rows), pd.DataFrame(utt_rows), wavs


def original_rows(recognizer: Any, plan: Sequence[Sequence[SwapJob]], originals: Any,
                  settings: SwapSettings) -> pd.DataFrame:
    """The judge's floor for the audio subset's WER: the SAME recogniser on the original swap recordings (recipient
    and donor of every pair run_audio vocodes) -> one row per recording (set, pair_id, utt_id, condition='original',
    wer, hyp, seconds). originals: utterance id -> 16 kHz waveform, a mapping or a callable."""
    from taste.metrics.wer import per_utterance_wer

    get = originals if callable(originals) else originals.__getitem__
    rows, seen = [], set()
    for i in audio_subset(plan, settings.audio_pairs):
        pair = plan[i][0].pair
        for uid in (pair.recipient_id, pair.donor_id):
            if uid in seen:
                continue
            seen.add(uid)
            wav = np.asarray(get(uid), dtype=np.float32)
            hyp = recognizer.transcribe(wav)
            rows.append({"set": pair.set, "pair_id": pair.pair_id, "utt_id": uid, "condition": "original",
                         "wer": per_utterance_wer([pair.text], [hyp])[0], "hyp": hyp, "seconds": len(wav) / 16000})
    return pd.DataFrame(rows, columns=["set", "pair_id", "utt_id", "condition", "wer", "hyp", "seconds"])


def _max_pairs(value: Any) -> int | dict[str, int | None] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(k): None if v is None else int(v) for k, v in value.items()}
    return int(value)


def settings_from_params(swap_params: Mapping[str, Any], rate_hz: float) -> SwapSettings:
    """params.yaml's `swap:` section (a plain dict, read by the entry point) -> SwapSettings (every key from
    params.yaml: no default here)."""
    p = swap_params
    return SwapSettings(seeds=tuple(int(s) for s in p["seeds"]), spans=tuple(p["spans"]),
                        mismatch_span=p["mismatch_span"], batch_size=int(p["batch_size"]),
                        max_pairs=_max_pairs(p["max_pairs"]), min_contrast_s=float(p["min_contrast_s"]),
                        min_contrast_hz=float(p["min_contrast_hz"]), audio_pairs=_max_pairs(p["audio_pairs"]) or 0,
                        rate_hz=float(rate_hz))
