"""Pocketsphinx as the study's independent recogniser and forced word aligner, kept blind to what it scores.

The recogniser itself (corpus LM and dictionary, pronunciations, forced alignment) lives in `taste.data.forced_align`,
which the prepare stage also uses to time corpora that come without word timings. This module adds the judge's rule:
the LM is built from corpus text but never from the sentences a table scores, so callers pass train-split text and the
sentences they score, and `blind_corpus` / `Pocketsphinx(scored_sentences=...)` keep the two apart (a judge that knows
the answer is no judge).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from taste.data import forced_align
from taste.data.forced_align import AlignmentError  # noqa: F401 (re-exported: callers catch it beside the judge)
from taste.data.text_norm import normalise


class JudgeLeakError(ValueError):
    """The recogniser's language-model text contains a sentence that it is used to score."""


def blind_corpus(corpus_sentences: Sequence[str], scored_sentences: Sequence[str]) -> tuple[list[str], int]:
    """LM text that cannot know the answer -> (corpus sentences minus every scored one, how many were removed).

    Sentences are compared after `normalise`, so a scored sentence never reaches the LM in another spelling."""
    scored = {normalise(s) for s in scored_sentences}
    kept = [s for s in corpus_sentences if normalise(s) not in scored]
    return kept, len(corpus_sentences) - len(kept)


def check_blind(corpus_sentences: Sequence[str], scored_sentences: Sequence[str]) -> None:
    """Raise JudgeLeakError naming the first leaked sentences when any scored sentence is in the LM text."""
    leaked = sorted({normalise(s) for s in corpus_sentences} & {normalise(s) for s in scored_sentences} - {""})
    if leaked:
        raise JudgeLeakError(f"{len(leaked)} scored sentences are in the recogniser's LM text, e.g. {leaked[:3]}; "
                             f"build it from train-split text with blind_corpus()")


def judge_in_processes(worker: Callable[[Any], Any], jobs: Sequence[Any], corpus_sentences: Sequence[str],
                       scored_sentences: Sequence[str]) -> list:
    """`worker(job)` for every job, each in its own spawn process (pocketsphinx is single-threaded, so two processes
    use two cores), in job order. The blindness check runs first (JudgeLeakError before any process starts), and the
    recogniser's LM and dictionary are built once here, so the workers reuse the cache instead of each building it."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    check_blind(corpus_sentences, scored_sentences)
    forced_align.build_resources(corpus_sentences)
    with ProcessPoolExecutor(len(jobs), mp_context=get_context("spawn")) as pool:
        return list(pool.map(worker, jobs))


class Pocketsphinx(forced_align.Pocketsphinx):
    """`taste.data.forced_align.Pocketsphinx` that refuses an LM text containing any sentence it will score."""

    def __init__(self, corpus_sentences: Sequence[str], cache_root: str | Path | None = None,
                 scored_sentences: Sequence[str] = ()):
        """corpus_sentences: the LM text; scored_sentences: what it will transcribe (must not be in the LM text)."""
        check_blind(corpus_sentences, scored_sentences)
        super().__init__(corpus_sentences, cache_root)
