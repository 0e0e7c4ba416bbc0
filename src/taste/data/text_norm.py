"""Transcript normalisation: lowercase words of [a-z'], single spaces. `normalise(t).split()` is THE word segmentation."""
from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[^a-z']+")


def normalise(text: str) -> str:
    """Lowercase, fold accents to ASCII, turn everything but letters and apostrophes into spaces.

    Apostrophes at the edges of a word are dropped (quotes like 'hello' -> hello); inner ones stay (don't).
    """
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = text.lower().replace("`", "'")
    words = []
    for token in _NOT_WORD.sub(" ", text).split():
        token = token.strip("'")
        if token:
            words.append(token)
    return " ".join(words)
