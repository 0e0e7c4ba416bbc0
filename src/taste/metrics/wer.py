"""Word error rate on normalised text (jiwer): corpus-level and per utterance."""
from __future__ import annotations

from typing import Sequence

import jiwer

from taste.data.text_norm import normalise


def _pairs(refs: Sequence[str], hyps: Sequence[str]) -> tuple[list[str], list[str]]:
    if len(refs) != len(hyps):
        raise ValueError(f"wer: {len(refs)} references but {len(hyps)} hypotheses")
    refs_n = [normalise(r) for r in refs]
    if any(not r for r in refs_n):
        raise ValueError("wer: a reference is empty after normalisation (WER is undefined for it)")
    return refs_n, [normalise(h) for h in hyps]


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus-level WER = total edits / total reference words, after normalising both sides."""
    refs_n, hyps_n = _pairs(refs, hyps)
    if not refs_n:
        raise ValueError("wer: no utterances")
    return float(jiwer.wer(refs_n, hyps_n))


def per_utterance_wer(refs: Sequence[str], hyps: Sequence[str]) -> list[float]:
    """WER of each (reference, hypothesis) pair, after normalising both sides."""
    refs_n, hyps_n = _pairs(refs, hyps)
    return [float(jiwer.wer(r, h)) for r, h in zip(refs_n, hyps_n)]


def error_counts(ref: str, hyp: str) -> dict[str, int]:
    """Substitutions, deletions, insertions and reference length of one pair (for pooling WER over subsets)."""
    (r,), (h,) = _pairs([ref], [hyp])
    out = jiwer.process_words(r, h)
    return {"sub": out.substitutions, "del": out.deletions, "ins": out.insertions, "n_ref": len(r.split())}
