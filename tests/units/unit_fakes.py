"""A tiny synthetic corpus: each phone is a fixed spectral pattern, utterances are random phone strings."""

from __future__ import annotations

import numpy as np
import torch

from taste.data.records import PhoneAlignment, Utterance
from taste.units.phones import PhoneVocab

PHONES = ("a", "b", "k", "s", "t", "u")
VOCAB = PhoneVocab(PHONES)


class DictStore(dict):
    """Stands in for taste.data.loaders.FeatureStore: `.get(id) -> Tensor`."""


def fake_corpus(n_utts: int = 12, n_mels: int = 80, seed: int = 0, fps: int = 100):
    """-> (utterances with phone alignments, DictStore id -> log-mel [n_mels, F])."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(0, 2.0, size=(len(PHONES), n_mels)).astype(np.float32)
    utts, feats = [], DictStore()
    for i in range(n_utts):
        frames, phones, t = [], [], 0
        for _ in range(int(rng.integers(4, 9))):
            p = int(rng.integers(len(PHONES)))
            dur = int(rng.integers(8, 20))
            frames.append(patterns[p][:, None] + 0.3 * rng.normal(size=(n_mels, dur)).astype(np.float32))
            phones.append(PhoneAlignment(PHONES[p], t / fps, dur / fps))
            t += dur
        uid = f"utt{i:03d}"
        utts.append(Utterance(id=uid, audio_path=f"data/raw/audio/{uid}.wav", duration=t / fps, sample_rate=16000,
                              text="x", speaker=f"spk{i % 2}", split="train", rate_wpm=None, pitch=None,
                              phones=tuple(phones)))
        feats[uid] = torch.from_numpy(np.concatenate(frames, axis=1))
    return utts, feats
