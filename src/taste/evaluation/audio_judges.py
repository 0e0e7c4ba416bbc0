"""The evaluate stage's audio judges (pocketsphinx, resemblyzer, DNSMOS, UTMOS) built from picklable settings, and a
pool that spreads them over 1-thread processes with results identical to `report.measure_audio`.

Pocketsphinx runs as one stream in its own process (the judge floor first, then every audible continuation in item
order, as the sequential path calls it); since session 23 each utterance starts on a fresh front end, so its
transcripts no longer depend on that order. The stateless judges (speaker embedding, DNSMOS, UTMOS) run in the other `workers - 1` processes, and
the study ASR in the calling process meanwhile. Every process, the caller included while the pool is open, runs
torch on ONE thread: three jobs share the machine's cores, and multi-threaded torch beside other busy processes runs
many times slower here. Resemblyzer's embeddings of long clips move by ~1e-8 between 1 and 2 torch threads, so the
speaker similarities of the parallel path can differ from the sequential path's (2 threads) in the 8th decimal.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from taste.evaluation import report


@dataclass(frozen=True)
class JudgeSettings:
    """What every process needs to build the same judges: pocketsphinx's LM text, the sentences it scores (never in
    that text: JudgeLeakError) and UTMOS's local checkpoint (None = no UTMOS)."""

    corpus_sentences: tuple[str, ...]
    scored_sentences: tuple[str, ...]
    utmos_checkpoint: str | None = None

    def check(self) -> None:
        """Raise JudgeLeakError when a scored sentence is in the LM text; build the cached LM once for every worker."""
        from taste.data.forced_align import build_resources
        from taste.metrics.recognizer import check_blind

        check_blind(self.corpus_sentences, self.scored_sentences)
        build_resources(self.corpus_sentences)

    def recognizer(self):
        """The pocketsphinx judge (it has `transcribe` and `real_time_factor`)."""
        from taste.metrics.recognizer import Pocketsphinx

        return Pocketsphinx(self.corpus_sentences, scored_sentences=self.scored_sentences)

    def stateless(self) -> tuple[Callable, Callable, Callable | None]:
        """(speaker_embed, quality, utmos or None)."""
        from taste.metrics.quality import dnsmos, utmos
        from taste.metrics.speaker import SpeakerEncoder

        utmos_fn = partial(utmos, checkpoint=self.utmos_checkpoint) if self.utmos_checkpoint else None
        return SpeakerEncoder().embed, dnsmos, utmos_fn


# --- worker side: one judge set per process, built once by the pool's initializer --------------------------------
_judges: dict = {}


def _init(settings, kind: str, torch_threads: int = 1) -> None:
    if kind == "recognizer":
        _judges[kind] = settings.recognizer()
        return
    import torch

    torch.set_num_threads(torch_threads)
    _judges[kind] = settings.stateless()


def _transcribe(wavs: list[np.ndarray]) -> tuple[list[str], float]:
    ps = _judges["recognizer"]
    return [ps.transcribe(w) for w in wavs], ps.real_time_factor


def _judge_group(job: tuple) -> list[tuple[int, tuple[dict, float, float]]]:
    """One prompt's audible continuations -> [(index, report.judge_audible's output)]."""
    prompt_wav, entries = job
    speaker_embed, quality, utmos = _judges["stateless"]
    prompt_emb = speaker_embed(prompt_wav)
    return [(i, report.judge_audible(wav, rated, prompt_emb, speaker_embed, quality, utmos))
            for i, wav, rated in entries]


class JudgePool:
    """`workers` processes holding the judges of `settings` (anything with check / recognizer / stateless).

    `transcribe(wavs)` is pocketsphinx's stream; `measure_audio(...)` equals `report.measure_audio` with the
    same judges. workers <= 1: the judges live in this process and `report.measure_audio` runs unchanged.
    Use as a context manager; the blindness check runs before any worker starts."""

    def __init__(self, settings, workers: int = 1):
        settings.check()
        self.settings, self.workers = settings, max(1, int(workers))
        self._ps_pool = self._judge_pool = None
        self._ps = self._stateless = None
        self._caller_threads: int | None = None
        self._rtf = float("nan")

    def __enter__(self) -> JudgePool:
        from multiprocessing import get_context

        if self.workers == 1:
            self._ps, self._stateless = self.settings.recognizer(), self.settings.stateless()
            return self
        import torch

        self._caller_threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the study ASR here, beside the workers
        try:
            ctx = get_context("spawn")
            self._ps_pool = ProcessPoolExecutor(1, mp_context=ctx, initializer=_init,
                                                initargs=(self.settings, "recognizer"))
            self._judge_pool = ProcessPoolExecutor(self.workers - 1, mp_context=ctx, initializer=_init,
                                                   initargs=(self.settings, "stateless", 1))
            for pool in (self._ps_pool, self._judge_pool):  # start the workers (and load their judges) now
                pool.submit(int)
        except BaseException:  # __exit__ will not run: shut what started down and give the caller its threads back
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for pool in (self._ps_pool, self._judge_pool):
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        if self._caller_threads is not None:
            import torch

            torch.set_num_threads(self._caller_threads)

    @property
    def real_time_factor(self) -> float:
        """Pocketsphinx's decoding seconds / audio seconds so far."""
        return self._ps.real_time_factor if self._ps is not None else self._rtf

    def _submit_transcribe(self, wavs: list[np.ndarray]) -> Future:
        return self._ps_pool.submit(_transcribe, list(wavs))

    def _collect(self, future: Future) -> list[str]:
        texts, self._rtf = future.result()
        return texts

    def transcribe(self, wavs: Sequence[np.ndarray]) -> list[str]:
        """Pocketsphinx transcripts of `wavs`, in order, continuing the recogniser's stream."""
        if self._ps is not None:
            return [self._ps.transcribe(w) for w in wavs]
        return self._collect(self._submit_transcribe(list(wavs)))

    def measure_audio(self, items: Sequence[report.Continuation], read: Callable[[str], np.ndarray],
                      asr: Callable[[list[np.ndarray]], list[str]], quality_prompts: set[str] | None = None
                      ) -> pd.DataFrame:
        """`report.measure_audio` with this pool's judges: same rows, same values, same order."""
        if self._ps is not None:
            speaker_embed, quality, utmos = self._stateless
            return report.measure_audio(items, read=read, asr=asr, recognizer=self._ps.transcribe,
                                        speaker_embed=speaker_embed, quality=quality, utmos=utmos,
                                        quality_prompts=quality_prompts)
        wavs = [read(c.wav) for c in items]
        prompts = {c.prompt_wav: read(c.prompt_wav) for c in items}
        scopes = report.judge_scopes(items, wavs, quality_prompts)
        audible = [i for i, scope in enumerate(scopes) if scope.audible]
        ps_future = self._submit_transcribe([wavs[i] for i in audible])
        groups: dict[str, list] = {}
        for i in audible:
            groups.setdefault(items[i].prompt_wav, []).append((i, wavs[i], scopes[i].rated))
        # longest groups first so the last ones to finish are short
        jobs = sorted(((prompts[p], e) for p, e in groups.items()), key=lambda j: -sum(len(w) for _, w, _ in j[1]))
        judged = [self._judge_pool.submit(_judge_group, job) for job in jobs]
        asr_texts = asr(wavs)  # in this process, while the workers judge
        ps_texts = dict(zip(audible, self._collect(ps_future), strict=True))
        scores = dict(pair for f in judged for pair in f.result())
        return report.audio_table(items, wavs, prompts, asr_texts, ps_texts, scores)
