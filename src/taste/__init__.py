"""TASTE: text-aligned speech tokenization and embedding, and the spoken LM TASLM built on it."""

__version__ = "0.1.0"
