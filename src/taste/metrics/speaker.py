"""Speaker similarity: resemblyzer's pretrained d-vector encoder (bundled in its wheel) and cosine similarity."""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
EMBED_DIM = 256


class SpeakerEncoder:
    """`embed(wav16k: np.ndarray[T]) -> np.ndarray[256]` (L2-normalised float32); the model loads on first use."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._encoder = None

    def _load(self):
        if self._encoder is None:
            from resemblyzer import VoiceEncoder

            self._encoder = VoiceEncoder(self.device, verbose=False)
        return self._encoder

    def embed(self, wav16k: np.ndarray) -> np.ndarray:
        """Utterance embedding of 16 kHz mono float audio -> float32 [256]."""
        from resemblyzer import preprocess_wav

        wav = np.asarray(wav16k, dtype=np.float32)
        if wav.ndim != 1 or wav.size < SAMPLE_RATE // 10:
            raise ValueError(f"speaker embedding needs mono audio of at least 0.1 s, got shape {wav.shape}")
        prepared = preprocess_wav(wav, source_sr=SAMPLE_RATE)
        if prepared.size < SAMPLE_RATE // 10:
            prepared = wav  # silence trimming removed (nearly) everything: embed the raw signal instead
        return self._load().embed_utterance(prepared).astype(np.float32)


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
