"""The held-out text local set (issue 13): sentences the story generator never produces, spoken at the test voices.

The swap goals must also hold on text unlike the corpus's. `assets/heldout_sentences.txt` holds hand-written
sentences (other vocabulary, questions, lists, numbers written as words, names not in the lexicon) that no model
trains on: the stage refuses to run when one of them occurs in the training text (`check_unseen`).

Each sentence becomes one *base* recording, made exactly like the base rendition of a synthetic local pair
(`taste.data.corpus.local_pair_jobs`): a test speaker (round robin, `corpus.make_speakers` from the data params),
a rate drawn from `swap.heldout.rate_wpm`, the speaker's base pitch, random word markup at
`data.speech.word_markup_share` except on word j (drawn in 1..n-2, no pause right before it), and the corpus's
dither (`data.speech.dither`). Every draw comes from a generator seeded by `shared.seed` and the sentence index
(`heldout_seed`), and the dither from `shared.seed` and the recording id as in `taste.data.materialise`, so the
audio is a pure function of the params and the sentence file. Word timings are the synthesiser's own events (as for
the corpus); speaker embeddings come from the prepare stage's encoder (`BatchSpeakerEncoder`); mel features and
pitch tracks are computed from the waveform by `taste.swap.edited_set` like for every edited set. The bases then go
through exactly the stretched/shifted-word construction and pooled-slope analysis of the test recordings
(`measure_edited_set`).
"""
from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from taste.config import complete_section
from taste.data import corpus
from taste.data.corpus import Speaker, UttJob
from taste.data.materialise import SynthSettings, synthesise_group
from taste.data.records import Utterance, read_manifest, read_text_pool_sentences
from taste.data.speaker_embed import BatchSpeakerEncoder, conditioning_encoder
from taste.data.text_norm import normalise

HELDOUT_PREFIX = "hot"  # recording ids hot0000, hot0001, ...: never an id of the corpus (train_, swl, swg, ...)


class HeldoutTextError(ValueError):
    """The held-out sentence file is unusable, or one of its sentences occurs in the training text."""


@dataclass(frozen=True)
class HeldoutSettings:
    """params.yaml `swap.heldout` (defaults: the synthetic local pairs' draws; 60 bases like swap.edited.max_bases)."""

    sentences: str = "assets/heldout_sentences.txt"
    max_bases: int = 60                          # sentences used (file order); each gives a stretch and a shift pair
    rate_wpm: tuple[int, int] = (150, 190)       # as the swap local pairs (taste.data.materialise._swap_groups)
    min_words: int = 5
    max_words: int = 14

    def __post_init__(self) -> None:
        if self.max_bases < 0:
            raise ValueError(f"swap.heldout.max_bases must be >= 0, got {self.max_bases}")
        if not 3 <= self.min_words <= self.max_words:
            raise ValueError(f"swap.heldout: need 3 <= min_words <= max_words (word j lies in 1..n-2), got "
                             f"{self.min_words}..{self.max_words}")
        lo, hi = self.rate_wpm
        if not 0 < lo <= hi:
            raise ValueError(f"swap.heldout.rate_wpm must be [lo, hi] with 0 < lo <= hi, got {self.rate_wpm}")


def heldout_settings_from_params(heldout_params: Mapping) -> HeldoutSettings:
    """params.yaml's `swap.heldout` (a plain dict; every field given) -> HeldoutSettings."""
    p = complete_section(heldout_params, HeldoutSettings, "swap.heldout")
    p["rate_wpm"] = tuple(int(r) for r in p["rate_wpm"])
    for k in ("max_bases", "min_words", "max_words"):
        p[k] = int(p[k])
    return HeldoutSettings(**p)


def read_heldout_sentences(path: str | Path, min_words: int = 5, max_words: int = 14) -> list[str]:
    """The sentences of a held-out text file (one a line; blank lines and lines starting with # skipped), each
    normalised by `taste.data.text_norm.normalise` (the corpus's word segmentation). Raises HeldoutTextError naming
    file and line for a sentence outside min_words..max_words or one that occurs twice, and for a file without any."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"held-out sentence file not found: {path}")
    out: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sentence = normalise(line)
        n = len(sentence.split())
        if not min_words <= n <= max_words:
            raise HeldoutTextError(f"{path}:{lineno}: {n} words, expected {min_words}..{max_words}: {line.strip()!r}")
        if sentence in seen:
            raise HeldoutTextError(f"{path}:{lineno}: same sentence as line {seen[sentence]}: {sentence!r}")
        seen[sentence] = lineno
        out.append(sentence)
    if not out:
        raise HeldoutTextError(f"{path}: no sentences")
    return out


def training_texts(raw_dir: str | Path) -> list[str]:
    """Every text a model of the study may train on: the text pool (LM pretraining) and every utterance of the raw
    manifest (all speech splits, a superset of the training speech)."""
    raw_dir = Path(raw_dir)
    texts = read_text_pool_sentences(raw_dir / "text_pool.txt")
    if (raw_dir / "manifest.jsonl").is_file():
        texts += [u.text for u in read_manifest(raw_dir / "manifest.jsonl")]
    return texts


def check_unseen(sentences: Sequence[str], training: Iterable[str], where: str = "the training text") -> None:
    """Raise HeldoutTextError when a held-out sentence (normalised) occurs in `training` (normalised the same way)."""
    known = {normalise(t) for t in training}
    seen = [s for s in sentences if normalise(s) in known]
    if seen:
        raise HeldoutTextError(f"{len(seen)} held-out sentence(s) occur in {where}, so they are not held out: "
                               + "; ".join(repr(s) for s in seen[:5]))


def vocabulary_overlap(sentences: Sequence[str], training: Iterable[str]) -> dict:
    """How unlike the training text the held-out words are: word tokens and types not in its vocabulary."""
    vocab = {w for t in training for w in normalise(t).split()}
    tokens = [w for s in sentences for w in s.split()]
    types = set(tokens)
    return {"n_sentences": len(sentences), "n_words": len(tokens),
            "share_tokens_unseen": round(sum(w not in vocab for w in tokens) / max(1, len(tokens)), 4),
            "share_types_unseen": round(sum(w not in vocab for w in types) / max(1, len(types)), 4)}


def heldout_seed(seed: int) -> int:
    """The seed of the held-out draws: shared.seed, but not the swap local pairs' own draws (those use `seed`)."""
    return zlib.crc32(f"{seed}:heldout".encode())


def heldout_jobs(seed: int, sentences: Sequence[str], speakers: Sequence[Speaker], rate_wpm: tuple[int, int],
                 markup_share: float) -> list[tuple[UttJob, int]]:
    """(job, word j) per sentence: the base rendition of a synthetic local pair (`corpus.local_pair_jobs`) with its
    draws seeded by heldout_seed(seed) and the sentence index; speakers in round robin; id hot<index>."""
    if not speakers:
        raise ValueError("the held-out set needs at least one test speaker")
    out = []
    for k, sentence in enumerate(sentences):
        base = corpus.local_pair_jobs(heldout_seed(seed), k, sentence, speakers[k % len(speakers)], None,
                                      tuple(rate_wpm), markup_share)[0]
        out.append((dataclasses.replace(base, id=f"{HELDOUT_PREFIX}{k:04d}", split="heldout", pair=None),
                    base.pair.changed_word))
    return out


def synthesise_heldout(jobs: Sequence[tuple[UttJob, int]], audio_dir: str | Path, seed: int, sample_rate: int,
                       dither: float, max_seconds: float) -> list[tuple[Utterance, int]]:
    """Speak each job by the corpus's own per-recording synthesis (`taste.data.materialise.synthesise_group`: the embedded
    synthesiser, the dither seed crc32 of '<shared.seed>:<id>', 16-bit WAV at audio_dir/audio/<id>.wav) -> (utterance
    record with the synthesiser's word and phone timings, word j); the audio is then read back through
    taste.data.validate.read_speech, as every recording. Where the corpus drops a recording that is too long or
    that the synthesiser refuses, this is an error: the sentence file is fixed, so it must be shortened rather than
    silently dropped (a rendition is too long over max_seconds, the speech subset's limit)."""
    cfg = SynthSettings(out_dir=str(audio_dir), sample_rate=sample_rate, dither=dither, max_seconds=max_seconds,
                        seed=seed)
    out = []
    for job, j in jobs:
        utts, dropped = synthesise_group(([job], cfg))
        if utts is None:
            why = (f"lasts over data.speech.max_seconds {max_seconds} s" if dropped == "too_long"
                   else f"cannot be synthesised ({dropped})")
            raise HeldoutTextError(f"held-out sentence {' '.join(job.words)!r} at {job.rate_wpm} wpm {why}: "
                                   f"shorten or rewrite it")
        out.append((utts[0], j))
    return out


def embed_speakers(utterances: Sequence[Utterance], read_wav: Callable[[Utterance], np.ndarray],
                   encoder: BatchSpeakerEncoder, batch: int = 64) -> dict[str, Tensor]:
    """Per-recording speaker embeddings [256] by `encoder` (the prepare stage's: `conditioning_encoder(params)`)."""
    out: dict[str, Tensor] = {}
    for i in range(0, len(utterances), batch):
        part = utterances[i:i + batch]
        for u, emb in zip(part, encoder.embed_batch([read_wav(u) for u in part])):
            out[u.id] = torch.from_numpy(emb).float()
    return out


def heldout_skip_reason(source: str, settings: HeldoutSettings) -> str | None:
    """Why the held-out text set cannot be made (None when it can): it is spoken at the synthetic test voices."""
    if settings.max_bases == 0:
        return "swap.heldout.max_bases is 0"
    if source != "synthetic":
        return f"the held-out text set is spoken by the synthesiser's test voices (data.source={source})"
    return None


@dataclass
class HeldoutBases:
    """The base recordings of the held-out set, their speaker embeddings and a description for metrics.json."""

    bases: list[tuple[Utterance, int]]
    speakers: dict[str, Tensor]
    info: dict

    def speaker_of(self, recording_id: str) -> Tensor:
        return self.speakers[recording_id]


def build_heldout_bases(params: Mapping, settings: HeldoutSettings, audio_dir: str | Path,
                        read_wav: Callable[[Utterance], np.ndarray], training: Iterable[str] | None = None
                        ) -> HeldoutBases:
    """Read, check, synthesise and embed the held-out sentences. params: the whole params.yaml (shared.seed and
    sample_rate, data.speech: test speakers, word markup, dither, max_seconds; prepare: speaker embedding settings).
    training: the texts the sentences must not occur in (default: training_texts of shared.paths.raw)."""
    seed, sr = int(params["shared"]["seed"]), int(params["shared"]["sample_rate"])
    sp = params["data"]["speech"]
    sentences = read_heldout_sentences(settings.sentences, settings.min_words, settings.max_words)
    sentences = sentences[:settings.max_bases]
    training = list(training if training is not None else training_texts(params["shared"]["paths"]["raw"]))
    check_unseen(sentences, training, "the training text")
    _, test_speakers = corpus.make_speakers(seed, int(sp["n_train_speakers"]), int(sp["n_test_speakers"]),
                                            tuple(sp["pitch"]))
    jobs = heldout_jobs(seed, sentences, test_speakers, settings.rate_wpm, float(sp["word_markup_share"]))
    bases = synthesise_heldout(jobs, audio_dir, seed, sr, float(sp["dither"]), float(sp["max_seconds"]))
    speakers = embed_speakers([u for u, _ in bases], read_wav, conditioning_encoder(params))
    info = {"sentences_file": str(settings.sentences), **vocabulary_overlap(sentences, training),
            "speakers": [s.id for s in test_speakers],
            "seconds_of_audio": round(sum(u.duration for u, _ in bases), 2)}
    return HeldoutBases(bases, speakers, info)
