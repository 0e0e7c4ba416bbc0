import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from fakes import FakeCodebook, fake_codes, fake_utterances, tiny_bpe  # noqa: E402

from taste.lm import text_lm  # noqa: E402


@pytest.fixture(scope="module")
def bpe():
    return tiny_bpe()


@pytest.fixture(scope="module")
def vocab(bpe):
    return text_lm.LMVocab.for_tokenizer(bpe)


@pytest.fixture
def tiny_lm(vocab):
    torch.manual_seed(0)
    return text_lm.build_text_lm(text_lm.debug_config(vocab.size), vocab)


@pytest.fixture(scope="module")
def utts():
    return fake_utterances(8)


@pytest.fixture(scope="module")
def codes(utts):
    return fake_codes(utts)


@pytest.fixture(scope="module")
def codebook():
    return FakeCodebook()
