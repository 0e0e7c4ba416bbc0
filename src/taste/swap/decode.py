"""Decode swap jobs with the TASTE tokenizer, batched and de-duplicated, into units and per-word durations.

Codes against the tokenizer contract: `decode(transcript, codes, speaker, seed) -> DecodeResult` with `units` and
either `word_durations_s` or `word_boundaries` (unit index where each word starts). When the tokenizer offers
`decode_batch(transcripts, vectors, speakers, seed)` and `codes_to_vectors(codes)`, jobs are decoded in batches
(KV-cached batched sampling: METHOD.md 6).
Decoding stays in one process: at `shared.threads` threads a batch of 64 already keeps both cores busy, and two
one-thread worker processes decoding a batch each were 0.90x as fast (benchmarks/bench_swap.py, `decode_workers`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from taste.swap.jobs import SwapJob


@dataclass(frozen=True)
class Decoded:
    """One generated utterance: unit ids [U] and the decoder's own per-word durations (seconds) [N_words]."""

    units: tuple[int, ...]
    word_durations_s: tuple[float, ...]


def word_durations_from_boundaries(boundaries: Sequence[int], n_units: int, rate_hz: float) -> tuple[float, ...]:
    """Unit index where each word starts -> seconds per word (the last word runs to the end of the units)."""
    ends = list(boundaries[1:]) + [n_units]
    return tuple((int(e) - int(b)) / rate_hz for b, e in zip(boundaries, ends))


def to_decoded(result: Any, n_words: int, rate_hz: float) -> Decoded:
    """Normalise a tokenizer DecodeResult into Decoded; raises ValueError when it has no per-word timing."""
    units = tuple(int(u) for u in torch.as_tensor(result.units).reshape(-1).tolist())
    if getattr(result, "word_durations_s", None) is not None:
        durs = tuple(float(x) for x in result.word_durations_s)
    elif getattr(result, "word_boundaries", None) is not None:
        durs = word_durations_from_boundaries(list(result.word_boundaries), len(units), rate_hz)
    else:
        raise ValueError("decode result has neither word_durations_s nor word_boundaries")
    if len(durs) != n_words:
        raise ValueError(f"decoder returned {len(durs)} word durations for {n_words} words")
    return Decoded(units, durs)


def _job_key(job: SwapJob, voice: bytes) -> tuple:
    # Jobs sharing speaker embedding, text and codes decode identically for a given seed (each row samples from its
    # own generator, unit_decoder.row_generators): decode once. The embedding's bytes, not the recipient's id, name
    # the speaker: an edited pair's two records (and a base shared by several edits) speak with one embedding, and
    # their swap in one direction is the other direction's control, so about a third of those decodes repeat.
    return (voice, job.pair.text, tuple(job.codes.reshape(-1).tolist()))


def _unique_by_length(jobs: Sequence[SwapJob], voices: Mapping[str, bytes]) -> tuple[list[tuple], list[SwapJob], dict]:
    """(key per job, the unique jobs sorted by word count, key -> rank in that order)."""
    keys = [_job_key(job, voices[job.pair.recipient_id]) for job in jobs]
    first: dict[tuple, SwapJob] = {}
    for job, key in zip(jobs, keys):
        first.setdefault(key, job)
    # Batches of similar length waste fewer sampling steps on rows that already finished.
    ranked = sorted(first.items(), key=lambda kv: len(kv[1].pair.text.split()))  # stable: first-seen order on ties
    return keys, [job for _, job in ranked], {key: rank for rank, (key, _) in enumerate(ranked)}


def _decode_in_batches(tokenizer: Any, order: Sequence[SwapJob], speakers: Mapping[str, Tensor], seed: int,
                       rate_hz: float, batch_size: int) -> list[Decoded]:
    results: list[Decoded] = []
    batched = hasattr(tokenizer, "decode_batch") and hasattr(tokenizer, "codes_to_vectors")
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        texts = [j.pair.text for j in chunk]
        codes = [j.codes.long() for j in chunk]
        spk = [speakers[j.pair.recipient_id].float() for j in chunk]
        if batched:
            with torch.no_grad():
                vectors = [tokenizer.codes_to_vectors(c) for c in codes]
                raw = tokenizer.decode_batch(texts, vectors, torch.stack(spk), seed=seed)
        else:
            raw = [tokenizer.decode(t, c, s, seed=seed) for t, c, s in zip(texts, codes, spk)]
        results.extend(to_decoded(r, len(t.split()), rate_hz) for r, t in zip(raw, texts))
    return results


def decode_jobs(tokenizer: Any, jobs: Sequence[SwapJob], speakers: Mapping[str, Tensor], seed: int,
                rate_hz: float, batch_size: int = 64) -> list[Decoded]:
    """Decode every job (recipient's speaker embedding) at one seed -> one Decoded per job, in order."""
    voices = {r: speakers[r].float().cpu().numpy().tobytes() for r in {job.pair.recipient_id for job in jobs}}
    keys, order, rank = _unique_by_length(jobs, voices)
    results = _decode_in_batches(tokenizer, order, speakers, seed, rate_hz, batch_size)
    return [results[rank[key]] for key in keys]
