"""A tiny stand-in for TasteTokenizer.decode: each word's duration is read off its own codes (optionally mixed with
the sentence's mean code = a 'global rate' leak, plus seeded sampling noise)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from taste.data.records import PairInfo, Utterance

RATE_HZ = 25.0


@dataclass
class FakeResult:
    units: list
    word_boundaries: list


class FakeTokenizer:
    def __init__(self, leak: float = 0.0, noise: float = 0.0, batched: bool = False):
        self.leak, self.noise, self.calls = leak, noise, 0
        if batched:
            self.decode_batch, self.codes_to_vectors = self._decode_batch, self._codes_to_vectors

    def decode(self, transcript, codes, speaker, seed=0):
        self.calls += 1
        codes = torch.as_tensor(codes).long()
        assert codes.shape[0] == len(transcript.split())
        own = codes[:, 0].double().numpy()
        n = (1 - self.leak) * own + self.leak * own.mean() + 1.0
        rng = np.random.default_rng(seed + int(codes.sum()))
        n = np.maximum(1, np.round(n + rng.normal(0, self.noise, len(n)))).astype(int)
        bounds = np.concatenate([[0], np.cumsum(n)[:-1]]).tolist()
        return FakeResult(units=list(range(int(n.sum()))), word_boundaries=bounds)

    def _codes_to_vectors(self, codes):  # the real one sums codebook embeddings; here the codes themselves
        return codes.float()

    def _decode_batch(self, transcripts, vectors, speakers, seed=0):
        assert speakers.shape[0] == len(transcripts) and vectors[0].dtype == torch.float32
        return [self.decode(t, v.round().long(), s, seed + k)
                for k, (t, v, s) in enumerate(zip(transcripts, vectors, speakers))]


def make_pairs(n_pairs: int = 3, n_words: int = 6, n_q: int = 2):
    """Utterances of global_rate and local pairs plus their codes; slow words code 6-8, fast 2-4 (4 units apart)."""
    utts, codes = [], {}
    for p in range(n_pairs):
        text = " ".join(f"w{p}x{i}" for i in range(n_words))
        for role, value in (("slow", 6), ("fast", 2)):
            uid = f"g{p}_{role}"
            utts.append(Utterance(uid, f"a/{uid}.wav", 1.0, 16000, text, "spk", "test", None, None,
                                  pair=PairInfo("global_rate", f"g{p}", role)))
            word_offset = torch.arange(n_words)[:, None] % 3  # words differ, so a mismatch is visible
            codes[uid] = (torch.full((n_words, n_q), value, dtype=torch.long) + word_offset).long()
        j = p % n_words
        for role in ("base", "variant"):
            uid = f"l{p}_{role}"
            utts.append(Utterance(uid, f"a/{uid}.wav", 1.0, 16000, text, "spk", "test", None, None,
                                  pair=PairInfo("local", f"l{p}", role, changed_word=j)))
            c = torch.full((n_words, n_q), 3, dtype=torch.long)
            if role == "variant":
                c[j] = 8
            codes[uid] = c
    speakers = {u.id: torch.ones(256) for u in utts}
    return utts, codes, speakers
