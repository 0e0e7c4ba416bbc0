"""BPE subword tokenizer trained on the corpus text; whitespace words stay recoverable from the tokens.

Words are pre-split on whitespace (Metaspace: each word starts with "▁"), so every token belongs to exactly
one word of `text.split()`, the word segmentation used everywhere in the project.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SOT = "<|startoftranscript|>"
EOT = "<|endoftext|>"
PAD = "<|pad|>"
UNK = "<|unk|>"
# Free special tokens other stages may claim (e.g. task ids), so they need not grow the vocabulary.
N_EXTRA = 8
EXTRA = tuple(f"<|extra_{i}|>" for i in range(N_EXTRA))
SPECIAL_TOKENS = (PAD, SOT, EOT, UNK, *EXTRA)
TOKENIZER_FILE = "tokenizer.json"
ALPHABET = "abcdefghijklmnopqrstuvwxyz'▁"


class TranscriptError(ValueError):
    """A transcript the tokenizer cannot use (e.g. no words)."""


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """Train a BPE tokenizer on normalised sentences; special tokens get the first ids (PAD = 0)."""
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=list(ALPHABET),  # every normalised word stays encodable, seen in training or not
        show_progress=False,
    )
    tok.train_from_iterator((t for t in texts if t.strip()), trainer=trainer)
    return tok


def save_bpe(tok: Tokenizer, directory: str | Path) -> Path:
    """Write `directory/tokenizer.json` and return its path."""
    path = Path(directory) / TOKENIZER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def load_bpe(directory: str | Path) -> Tokenizer:
    """Load `directory/tokenizer.json` (or a path to the json file itself)."""
    path = Path(directory)
    if path.is_dir():
        path = path / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no tokenizer file (run the asr stage first)")
    return Tokenizer.from_file(str(path))


def special_id(tok: Tokenizer, token: str) -> int:
    """Id of a special token; a clear error when the tokenizer lacks it."""
    idx = tok.token_to_id(token)
    if idx is None:
        raise KeyError(f"tokenizer has no special token {token!r}")
    return idx


def word_ids(tok: Tokenizer, text: str) -> tuple[list[int], list[int]]:
    """Subword ids of `text` (no special tokens) and, per token, the index of its word in `text.split()`.

    Words are found from character offsets, not from the pre-tokenizer's pieces, so the result holds for any
    tokenizer (Whisper's byte-level BPE splits "don't" into two pre-tokens; it is one word here).
    """
    words = text.split()
    if not words:
        raise TranscriptError(f"transcript has no words: {text!r}")
    joined = " ".join(words)
    starts = list(itertools.accumulate((len(w) + 1 for w in words[:-1]), initial=0))
    enc = tok.encode(joined, add_special_tokens=False)
    index = []
    for _, end in enc.offsets:
        c = max(0, end - 1)
        if c < len(joined) and joined[c] == " ":  # a bare word-start marker belongs to the next word
            c += 1
        index.append(bisect.bisect_right(starts, c) - 1)
    return list(enc.ids), index


def decode_text(tok: Tokenizer, ids: Iterable[int]) -> str:
    """Token ids -> text with special tokens dropped and single spaces."""
    return " ".join(tok.decode(list(ids), skip_special_tokens=True).split())
