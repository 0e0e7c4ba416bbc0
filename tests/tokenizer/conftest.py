"""Tiny fixtures for the tokenizer tests: a BPE tokenizer, a random 2-layer Whisper, a debug TasteTokenizer."""

import pytest
import torch

from tk_helpers import SENTENCES, make_tokenizer


@pytest.fixture(scope="session")
def bpe():
    from taste.asr.bpe import train_bpe

    return train_bpe(SENTENCES, vocab_size=80, min_frequency=1)


@pytest.fixture(scope="session")
def asr(bpe):
    from taste.asr.whisper import build_asr, debug_config

    return build_asr(debug_config(), bpe, seed=0)


@pytest.fixture()
def tokenizer(asr, bpe):
    return make_tokenizer(asr, bpe)


@pytest.fixture(scope="session")
def mel():
    torch.manual_seed(1)
    return torch.randn(80, 120) - 4.0
