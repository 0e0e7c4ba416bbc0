"""`taste materialise`: regenerate the raw corpus (data/raw) bit-for-bit from params (seed, sizes).

Writes audio/<id>.wav, manifest.jsonl, text_pool.txt, stories.jsonl, corpus_info.json. No timestamps, a fixed file
order and per-utterance seeds make two runs give identical bytes (data.dvc checks it).
"""
from __future__ import annotations

import json
import math
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from . import corpus
from .audio_io import write_audio
from .corpus import Speaker, UttJob
from .records import Utterance, write_manifest
from .storygen import Story, generate_story
from .synth import SynthesisError, synthesise

SPLIT_ORDER = ("train", "dev", "test", "swap_global", "swap_local")


@dataclass(frozen=True)
class SynthSettings:
    out_dir: str
    sample_rate: int
    dither: float
    max_seconds: float
    seed: int


def repo_relative(path: Path) -> str:
    """Manifest paths are relative to the repository root (= cwd of every entry point) when possible."""
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:  # outside the repository (a test's temporary folder): keep it absolute
        return path.as_posix()


def synthesise_group(args: tuple[list[UttJob], SynthSettings]) -> tuple[list[Utterance] | None, str | None]:
    """Synthesise a group (an utterance, or all renditions of a swap pair); keep it only if every member fits."""
    group, cfg = args
    done = []
    for job in group:
        seed = zlib.crc32(f"{cfg.seed}:{job.id}".encode())
        try:
            s = synthesise(job.words, job.markups, job.speaker.voice, job.rate_wpm, job.pitch,
                           pitch_range=job.speaker.pitch_range, dither=cfg.dither, dither_seed=seed,
                           sample_rate=cfg.sample_rate)
        except SynthesisError:
            return None, "synthesis_error"
        if len(s.wav) / cfg.sample_rate > cfg.max_seconds:
            return None, "too_long"
        done.append((job, s))
    utts = []
    for job, s in done:
        path = Path(cfg.out_dir) / "audio" / f"{job.id}.wav"
        write_audio(path, s.wav, cfg.sample_rate)
        utts.append(Utterance(
            id=job.id, audio_path=repo_relative(path), duration=round(len(s.wav) / cfg.sample_rate, 5),
            sample_rate=cfg.sample_rate, text=" ".join(job.words), speaker=job.speaker.id, split=job.split,
            rate_wpm=float(job.rate_wpm), pitch=float(job.pitch), words=s.words, phones=s.phones,
            story_id=job.story_id, pair=job.pair))
    return utts, None


class _Synthesiser:
    """Runs groups in order (a pool of workers, or in-process) and fills a split until its target is met."""

    def __init__(self, cfg: SynthSettings, workers: int, batch: int = 32):
        self.cfg, self.batch = cfg, batch
        self.pool = None
        if workers > 1:
            import multiprocessing as mp
            self.pool = mp.get_context("spawn").Pool(workers)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()

    def _map(self, groups):
        args = [(g, self.cfg) for g in groups]
        return self.pool.map(synthesise_group, args, chunksize=4) if self.pool else [synthesise_group(a) for a in args]

    def fill(self, groups: Iterator[list[UttJob]], need: Callable[[list[Utterance]], int]):
        """Synthesise groups in batches until need(kept) (groups still wanted, an estimate) is 0.

        Returns kept utterances, drop counts and the story ids used, all in generation order.
        """
        kept: list[Utterance] = []
        dropped: Counter = Counter()
        stories: list[str] = []

        def done(kept):
            return need(kept) <= 0

        while not done(kept):
            size = min(self.batch, need(kept) + 2)  # small batches near the end: surplus is wasted synthesis
            batch = [g for _, g in zip(range(size), groups)]
            if not batch:
                raise ValueError("the story generator ran out before the split was filled")
            for group, (utts, reason) in zip(batch, self._map(batch)):
                if done(kept):  # surplus of the last batch: remove what the worker wrote
                    for u in utts or ():
                        Path(u.audio_path if Path(u.audio_path).is_absolute() else Path.cwd() / u.audio_path).unlink()
                    continue
                if group[0].story_id and group[0].story_id not in stories:
                    stories.append(group[0].story_id)
                if utts is None:
                    dropped[reason] += 1
                else:
                    kept += utts
        return kept, dict(sorted(dropped.items())), stories


def _story_stream(seed: int, prefix: str, text: dict, min_words: int, max_words: int,
                  registry: dict[str, Story]) -> Iterator[tuple[Story, str]]:
    """(story, sentence) for every sentence of min..max words, story after story (recorded in `registry`)."""
    i = 0
    while True:
        story = generate_story(seed, prefix, i, tuple(text["sentences_per_story"]), text["min_words"], text["max_words"])
        registry[story.story_id] = story
        for sentence in story.sentences:
            if min_words <= len(sentence.split()) <= max_words:
                yield story, sentence
        i += 1


def _ordinary_groups(seed: int, split: str, speakers: list[Speaker], sp: dict, text: dict,
                     registry: dict[str, Story]) -> Iterator[list[UttJob]]:
    for k, (story, sentence) in enumerate(_story_stream(seed, split, text, text["min_words"], sp["max_words"], registry)):
        yield [corpus.utterance_job(seed, f"{split}_{k:05d}", split, sentence, speakers[k % len(speakers)],
                                    tuple(sp["rate_wpm"]), tuple(sp["pitch"]), sp["word_markup_share"], story.story_id)]


def _swap_groups(seed: int, kind: str, speakers: list[Speaker], sp: dict, sw: dict, text: dict,
                 registry: dict[str, Story]) -> Iterator[list[UttJob]]:
    prefix = "swg" if kind == "swap_global" else "swl"
    stream = _story_stream(seed, prefix, text, max(6, text["min_words"]), sp["max_words"], registry)
    for k, (story, sentence) in enumerate(stream):
        spk = speakers[k % len(speakers)]
        if kind == "swap_global":
            yield corpus.global_pair_jobs(k, sentence, spk, story.story_id, sw["slow_wpm"], sw["fast_wpm"],
                                          sw["low_pitch"], sw["high_pitch"])
        else:
            yield corpus.local_pair_jobs(seed, k, sentence, spk, story.story_id, (150, 190), sp["word_markup_share"])


def _write_text_pool(path: Path, seed: int, text: dict) -> tuple[int, int, set[str]]:
    n_sentences, vocab = 0, set()
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for i in range(text["n_stories"]):
            story = generate_story(seed, "tx", i, tuple(text["sentences_per_story"]), text["min_words"],
                                   text["max_words"])
            for s in story.sentences:
                f.write(s + "\n")
                vocab.update(s.split())
            f.write("\n")
            n_sentences += len(story.sentences)
    return text["n_stories"], n_sentences, vocab


def _clear_outputs(out_dir: Path) -> None:
    """Remove what a previous materialisation wrote (only our own files), so stale audio never survives."""
    for wav in sorted((out_dir / "audio").glob("*.wav")):
        wav.unlink()
    for name in ("manifest.jsonl", "text_pool.txt", "stories.jsonl", "corpus_info.json", "load_rejections.json"):
        (out_dir / name).unlink(missing_ok=True)


def _split_targets(sp: dict, sw: dict, train_spk, test_spk) -> dict[str, tuple]:
    """split -> (its speakers, need(kept): how many more groups the split still wants, an estimate)."""
    def hours_needed(kept: list[Utterance]) -> int:
        missing = 3600 * sp["train_hours"] - sum(u.duration for u in kept)
        mean = sum(u.duration for u in kept) / len(kept) if kept else 3.0
        return 0 if missing <= 0 else math.ceil(missing / mean)

    return {
        "dev": (train_spk, lambda kept: sp["dev_utterances"] - len(kept)),
        "test": (test_spk, lambda kept: sp["test_utterances"] - len(kept)),
        "swap_global": (test_spk, lambda kept: sw["global_sentences"] - len(kept) // 4),
        "swap_local": (test_spk, lambda kept: sw["local_pairs"] - len(kept) // 2),
        "train": (train_spk, hours_needed),
    }


def _write_stories(path: Path, registry: dict[str, Story], split_stories: dict, heldout: list[Story]) -> None:
    """stories.jsonl: every spoken story with its split, then the held-out stories (subset "heldout")."""
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for split in SPLIT_ORDER:
            for sid in split_stories[split]:
                f.write(json.dumps({**registry[sid].to_dict(), "subset": split}, sort_keys=True) + "\n")
        for story in heldout:
            f.write(json.dumps({**story.to_dict(), "subset": "heldout"}, sort_keys=True) + "\n")


def materialise_synthetic(params: dict, out_dir: Path) -> dict:
    """Synthesise the corpus of params' data section into out_dir (audio/, manifest.jsonl, text_pool.txt,
    stories.jsonl, corpus_info.json) -> the corpus summary (corpus_info.json's content)."""
    seed, sr = int(params["shared"]["seed"]), int(params["shared"]["sample_rate"])
    data = params["data"]
    text, sp, sw = data["text"], data["speech"], data["swap_sets"]
    train_spk, test_spk = corpus.make_speakers(seed, sp["n_train_speakers"], sp["n_test_speakers"], tuple(sp["pitch"]))
    cfg = SynthSettings(str(out_dir), sr, float(sp["dither"]), float(sp["max_seconds"]), seed)
    registry: dict[str, Story] = {}
    synth = _Synthesiser(cfg, int(data["workers"]))
    splits, dropped, split_stories = {}, {}, {}
    targets = _split_targets(sp, sw, train_spk, test_spk)
    try:
        for split in SPLIT_ORDER:
            speakers, done = targets[split]
            groups = (_ordinary_groups(seed, split, speakers, sp, text, registry) if split in ("train", "dev", "test")
                      else _swap_groups(seed, split, speakers, sp, sw, text, registry))
            splits[split], dropped[split], split_stories[split] = synth.fill(groups, done)
    finally:
        synth.close()
    write_manifest(out_dir / "manifest.jsonl", [u for split in SPLIT_ORDER for u in splits[split]])
    n_pool_stories, n_pool_sentences, pool_vocab = _write_text_pool(out_dir / "text_pool.txt", seed, text)
    heldout = [generate_story(seed, "heldout", i, tuple(text["sentences_per_story"]), text["min_words"],
                              text["max_words"]) for i in range(int(text["heldout_stories"]))]
    _write_stories(out_dir / "stories.jsonl", registry, split_stories, heldout)
    info = {
        "source": "synthetic", "seed": seed, "sample_rate": sr,
        "utterances": {s: len(splits[s]) for s in SPLIT_ORDER},
        "hours": {s: round(sum(u.duration for u in splits[s]) / 3600, 4) for s in SPLIT_ORDER},
        "dropped_at_generation": dropped,
        "speakers": {"train": [s.id for s in train_spk], "test": [s.id for s in test_spk]},
        "speech_stories": {s: len(split_stories[s]) for s in SPLIT_ORDER},
        "text_pool": {"stories": n_pool_stories, "sentences": n_pool_sentences, "vocabulary": len(pool_vocab)},
        "heldout_stories": len(heldout),
        "topics": sorted({st.topic for st in registry.values()}),
    }
    (out_dir / "corpus_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return info


def materialise(params: dict, out_dir: Path) -> dict:
    """Build data/raw from params (source synthetic, or a real corpus under data.root) -> corpus summary."""
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    _clear_outputs(out_dir)
    source = params["data"]["source"]
    if source == "synthetic":
        return materialise_synthetic(params, out_dir)
    from .real_corpora import materialise_real
    return materialise_real(params, out_dir)
