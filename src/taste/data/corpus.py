"""Planning the synthetic speech corpus: speakers, per-utterance draws (rate, pitch, word markup) and swap pairs.

A plan is a list of `UttJob`s: pure data, cheap to make, synthesised later (possibly in worker processes).
Every draw comes from a `random.Random` seeded by the utterance id, so plans do not depend on job order.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .records import PairInfo

VARIANTS = tuple(f"m{i}" for i in range(1, 9)) + tuple(f"f{i}" for i in range(1, 6))


@dataclass(frozen=True)
class Speaker:
    """A voice variant at a base pitch and pitch range; test speakers use variants never used in training."""

    variant: str
    base_pitch: int
    pitch_range: int

    @property
    def id(self) -> str:
        return f"{self.variant}_p{self.base_pitch}"

    @property
    def voice(self) -> str:
        return f"en+{self.variant}"


@dataclass(frozen=True)
class UttJob:
    id: str
    split: str
    words: tuple[str, ...]
    markups: tuple[str | None, ...]
    speaker: Speaker
    rate_wpm: int
    pitch: int
    story_id: str | None = None
    pair: PairInfo | None = None


def make_speakers(seed: int, n_train: int, n_test: int, pitch: tuple[int, int]) -> tuple[list[Speaker], list[Speaker]]:
    """Train speakers (variants x two base pitches) and test speakers (held-out variants, one pitch each)."""
    n_train_variants = -(-n_train // 2)
    if n_test + n_train_variants > len(VARIANTS):
        raise ValueError(f"{n_train} train + {n_test} test speakers need more than the {len(VARIANTS)} espeak variants")
    rng = random.Random(f"{seed}:speakers")
    variants = list(VARIANTS)
    rng.shuffle(variants)
    lo, hi = pitch
    low_base, high_base = lo + (hi - lo) // 4, lo + 3 * (hi - lo) // 4
    test = [Speaker(v, rng.randint(low_base, high_base), rng.randint(35, 65)) for v in variants[:n_test]]
    train = []
    for v in variants[n_test:n_test + n_train_variants]:
        for base in (low_base, high_base):
            train.append(Speaker(v, base + rng.randint(-3, 3), rng.randint(35, 65)))
    return train[:n_train], test


def draw_markups(rng: random.Random, n_words: int, share: float) -> tuple[str | None, ...]:
    """Word-level prosody: about `share` of the words get a slower/faster rate, higher/lower pitch or a pause after."""
    out: list[str | None] = []
    for i in range(n_words):
        if rng.random() >= share:
            out.append(None)
            continue
        kinds = ["slow", "fast", "high", "low"] + (["break"] if i < n_words - 1 else [])
        kind = rng.choice(kinds)
        if kind == "slow":
            out.append(f"rate={5 * rng.randint(10, 15)}%")
        elif kind == "fast":
            out.append(f"rate={5 * rng.randint(28, 40)}%")
        elif kind == "high":
            out.append(f"pitch=+{5 * rng.randint(4, 10)}%")
        elif kind == "low":
            out.append(f"pitch=-{5 * rng.randint(4, 8)}%")
        else:
            out.append(f"break={50 * rng.randint(3, 8)}ms")
    return tuple(out)


def utterance_job(seed: int, utt_id: str, split: str, sentence: str, speaker: Speaker, rate_range, pitch_range,
                  markup_share: float, story_id: str | None = None) -> UttJob:
    """An ordinary utterance: rate uniform in rate_range, pitch = speaker's base +- 8, random word markup."""
    rng = random.Random(f"{seed}:utt:{utt_id}")
    words = tuple(sentence.split())
    rate = rng.randint(*rate_range)
    pitch = min(max(speaker.base_pitch + rng.randint(-8, 8), pitch_range[0]), pitch_range[1])
    return UttJob(utt_id, split, words, draw_markups(rng, len(words), markup_share), speaker, rate, pitch, story_id)


def global_pair_jobs(index: int, sentence: str, speaker: Speaker, story_id: str, slow_wpm: int, fast_wpm: int,
                     low_pitch: int, high_pitch: int) -> list[UttJob]:
    """Four renditions of one sentence by one speaker without word markup: slow/fast rate, low/high pitch."""
    words = tuple(sentence.split())
    plain = (None,) * len(words)
    pid = f"swg{index:04d}"
    mid_rate = (slow_wpm + fast_wpm) // 2
    spec = [("global_rate", "slow", slow_wpm, speaker.base_pitch), ("global_rate", "fast", fast_wpm, speaker.base_pitch),
            ("global_pitch", "low", mid_rate, low_pitch), ("global_pitch", "high", mid_rate, high_pitch)]
    return [UttJob(f"{pid}_{role}", "swap_global", words, plain, speaker, rate, pitch, story_id, PairInfo(s, pid, role))
            for s, role, rate, pitch in spec]


LOCAL_CHANGES = ("rate=40%", "rate=250%", "pitch=+60%")


def local_pair_jobs(seed: int, index: int, sentence: str, speaker: Speaker, story_id: str, rate_range,
                    markup_share: float) -> list[UttJob]:
    """Base and variant: same sentence, speaker, rate, pitch and markup, except word j (much slower/faster/higher)."""
    rng = random.Random(f"{seed}:local:{index}")
    words = tuple(sentence.split())
    j = rng.randint(1, len(words) - 2)
    markups = list(draw_markups(rng, len(words), markup_share))
    markups[j] = None
    if j > 0 and (markups[j - 1] or "").startswith("break"):
        markups[j - 1] = None  # a pause right before word j would blur where its timing change starts
    variant = list(markups)
    variant[j] = rng.choice(LOCAL_CHANGES)
    rate = rng.randint(*rate_range)
    pid = f"swl{index:04d}"
    return [UttJob(f"{pid}_{role}", "swap_local", words, tuple(m), speaker, rate, speaker.base_pitch, story_id,
                   PairInfo("local", pid, role, j)) for role, m in (("base", markups), ("variant", variant))]
