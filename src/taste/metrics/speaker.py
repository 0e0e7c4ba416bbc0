"""Speaker similarity: resemblyzer's pretrained d-vector encoder (bundled in its wheel) and cosine similarity."""
from __future__ import annotations

import numpy as np

from taste.data.speaker_embed import RESEMBLYZER_PARTIALS_PER_SECOND, BatchSpeakerEncoder

SAMPLE_RATE = 16000
EMBED_DIM = 256


class SpeakerEncoder:
    """The speaker-similarity judge: `embed(wav16k: np.ndarray[T]) -> np.ndarray[256]` (L2-normalised float32).

    The one speaker-embedding implementation (`taste.data.speaker_embed.BatchSpeakerEncoder`) at resemblyzer's own
    partial rate, fixed so the instrument does not move with `prepare.speaker_partials_per_second` (the rate of the
    models' conditioning embeddings). The model loads on first use."""

    def __init__(self, device: str = "cpu", partials_per_second: float = RESEMBLYZER_PARTIALS_PER_SECOND):
        self._encoder = BatchSpeakerEncoder(device, partials_per_second)

    def embed(self, wav16k: np.ndarray) -> np.ndarray:
        """Utterance embedding of 16 kHz mono float audio -> float32 [256]."""
        return self._encoder.embed(wav16k)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings [D]; raises on a shape mismatch or a zero vector."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"cosine: shapes differ {a.shape} vs {b.shape}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise ValueError("cosine: zero vector")
    return float(a @ b / (na * nb))
