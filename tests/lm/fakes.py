"""Tiny stand-ins for the other stages' artefacts: a BPE trained on a few sentences, random RVQ codes."""

from __future__ import annotations

import torch

from taste.asr.bpe import train_bpe, word_ids  # noqa: F401  (re-exported for the tests)
from taste.data.records import Utterance

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran to the park",
    "she found a red ball in the garden",
    "the old man walked home slowly",
    "they ate bread and cheese by the river",
    "it was a cold and windy night",
    "the children sang a song at school",
    "he opened the door and smiled",
]


def tiny_bpe():
    return train_bpe(SENTENCES * 3, vocab_size=80, min_frequency=1)


class FakeCodebook:
    """A residual codebook: vectors are sums of code embeddings, quantize is greedy residual nearest."""

    def __init__(self, n_q: int = 2, size: int = 16, dim: int = 16, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.books = torch.randn(n_q, size, dim, generator=g)

    def codes_to_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        return sum(self.books[q][codes[:, q].long()] for q in range(self.books.shape[0]))

    def quantize(self, vectors: torch.Tensor) -> torch.Tensor:
        residual, codes = vectors.float().clone(), []
        for book in self.books:
            idx = torch.cdist(residual, book).argmin(-1)
            codes.append(idx)
            residual = residual - book[idx]
        return torch.stack(codes, -1)


def fake_utterances(n: int = 8, split: str = "train") -> list[Utterance]:
    return [
        Utterance(id=f"u{i}", audio_path=f"a/u{i}.wav", duration=2.0, sample_rate=16000,
                  text=SENTENCES[i % len(SENTENCES)], speaker="s0", split=split, rate_wpm=None, pitch=None)
        for i in range(n)
    ]


def fake_codes(utts, n_q: int = 2, size: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {u.id: torch.randint(0, size, (len(u.text.split()), n_q), generator=g) for u in utts}


def fake_units(utts, n_units: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {u.id: torch.randint(0, n_units, (6 * len(u.text.split()),), generator=g) for u in utts}
