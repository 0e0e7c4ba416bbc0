"""Resynthesis table: original audio vs ground-truth mel (+ F0) -> synthesis (topline) vs units -> vocoder,
each judged the same way (WER of an independent recogniser, DNSMOS, speaker similarity to the original, duration ratio).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from taste.metrics.stats import bootstrap_ci, corpus_wer_summary
from taste.metrics.wer import per_utterance_wer

SYSTEMS = ("original", "mel_topline", "units_vocoder")


@dataclass(frozen=True)
class Judges:
    """The measuring instruments, injected so tests can use cheap fakes."""

    transcribe: Callable[[np.ndarray], str]
    dnsmos: Callable[[np.ndarray], float]
    speaker_embed: Callable[[np.ndarray], np.ndarray]


def default_judges(corpus_sentences: Sequence[str], scored_sentences: Sequence[str]) -> Judges:
    """Pocketsphinx with a corpus LM, DNSMOS overall MOS (speechmos), resemblyzer embeddings.

    scored_sentences: the texts the table scores; JudgeLeakError when any is in `corpus_sentences` (blind_corpus)."""
    from taste.metrics.recognizer import Pocketsphinx, check_blind

    check_blind(corpus_sentences, scored_sentences)  # before loading any model
    from taste.metrics.quality import dnsmos
    from taste.metrics.speaker import SpeakerEncoder

    asr, spk = Pocketsphinx(corpus_sentences, scored_sentences=scored_sentences), SpeakerEncoder()
    return Judges(transcribe=asr.transcribe, dnsmos=lambda w: dnsmos(w)["ovrl"], speaker_embed=spk.embed)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def judge_utterances(ids: Sequence[str], texts: Sequence[str], systems: Mapping[str, Sequence[np.ndarray]],
                     judges: Judges, original: str = "original") -> pd.DataFrame:
    """One row per (system, utterance): hyp, wer, dnsmos, speaker_sim (to the original), duration_ratio."""
    if original not in systems:
        raise ValueError(f"judge_utterances: systems must include the reference row {original!r}")
    for name, wavs in systems.items():
        if len(wavs) != len(ids):
            raise ValueError(f"judge_utterances: system {name!r} has {len(wavs)} waveforms for {len(ids)} utterances")
    ref_embed = [judges.speaker_embed(w) for w in systems[original]]
    ref_len = [len(w) for w in systems[original]]
    rows = []
    for name, wavs in systems.items():
        hyps = [judges.transcribe(w) for w in wavs]
        for i, (utt, wav, hyp, w) in enumerate(zip(ids, wavs, hyps, per_utterance_wer(texts, hyps))):
            rows.append({"system": name, "id": utt, "text": texts[i], "hyp": hyp, "wer": w,
                         "dnsmos": judges.dnsmos(wav), "speaker_sim": _cosine(judges.speaker_embed(wav), ref_embed[i]),
                         "duration_ratio": len(wav) / ref_len[i]})
    return pd.DataFrame(rows)


def _judge_share(job: tuple) -> pd.DataFrame:
    ids, texts, systems, corpus_sentences = job
    import torch

    torch.set_num_threads(1)
    return judge_utterances(ids, texts, systems, default_judges(corpus_sentences, scored_sentences=texts))


def judge_utterances_parallel(ids: Sequence[str], texts: Sequence[str], systems: Mapping[str, Sequence[np.ndarray]],
                              corpus_sentences: Sequence[str], workers: int = 2) -> pd.DataFrame:
    """judge_utterances with the default judges (`default_judges(corpus_sentences, texts)`), the utterances shared
    out over `workers` one-thread processes (pocketsphinx and the DNSMOS model are single-threaded); the same rows, in
    the same order, as one process (every judge is order-free: pocketsphinx starts each utterance on a fresh front
    end). JudgeLeakError before any worker starts when a scored text is in `corpus_sentences`."""
    from taste.metrics.recognizer import judge_in_processes

    if workers <= 1 or len(ids) <= 1:  # default_judges checks the blindness
        return judge_utterances(ids, texts, systems, default_judges(corpus_sentences, scored_sentences=texts))
    shares = [list(range(w, len(ids), workers)) for w in range(min(workers, len(ids)))]
    jobs = [([ids[i] for i in share], [texts[i] for i in share],
             {name: [wavs[i] for i in share] for name, wavs in systems.items()}, list(corpus_sentences))
            for share in shares]
    frames = judge_in_processes(_judge_share, jobs, corpus_sentences, texts)
    # each share's rows are system-major over its utterances: tag them with their serial position, then sort
    n = len(ids)
    for frame, share in zip(frames, shares):
        frame["_order"] = [s * n + i for s in range(len(systems)) for i in share]
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


def summarise_table(per_utt: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per system: corpus WER with a 95% CI from the utterance bootstrap (wer_lo, wer_hi: resample utterances,
    recompute sum(edits) / sum(reference words)), and mean DNSMOS / speaker sim / duration ratio with 95% bootstrap
    CIs of the means."""
    rows = []
    for name, g in per_utt.groupby("system", sort=False):
        w = corpus_wer_summary(list(g["text"]), list(g["hyp"]), n=n_boot, seed=seed)
        row = {"system": name, "n": len(g), "wer": w["value"], "wer_lo": w["ci_lo"], "wer_hi": w["ci_hi"]}
        for col in ("dnsmos", "speaker_sim", "duration_ratio"):
            lo, hi = bootstrap_ci(g[col].to_numpy(), n=n_boot, seed=seed)
            row.update({col: float(g[col].mean()), f"{col}_lo": lo, f"{col}_hi": hi})
        rows.append(row)
    return pd.DataFrame(rows).set_index("system")
