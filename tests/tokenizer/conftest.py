"""Tiny fixtures for the tokenizer tests: a BPE tokenizer, a random 2-layer Whisper, a debug TasteTokenizer."""

import pytest
import torch

SENTENCES = [
    "the cat sat on the mat", "a quick brown fox jumps over the lazy dog", "she sells sea shells by the shore",
    "unbelievable things happened yesterday afternoon", "we don't know what they're doing",
] * 4


@pytest.fixture(scope="session")
def bpe():
    from taste.asr.bpe import train_bpe

    return train_bpe(SENTENCES, vocab_size=80, min_frequency=1)


@pytest.fixture(scope="session")
def asr(bpe):
    from taste.asr.whisper import build_asr, debug_config

    return build_asr(debug_config(), bpe, seed=0)


def make_tokenizer(asr, bpe, conditioning="word_sync", stage="rvq", n_units=32, value_layer=1):
    from dataclasses import replace

    from taste.tokenizer import TasteTokenizer, debug_config

    torch.manual_seed(0)
    cfg = debug_config(conditioning=conditioning, vocab_size=bpe.get_vocab_size(), n_units=n_units)
    cfg = replace(cfg, aggregator=replace(cfg.aggregator, d_model=asr.config.d_model, n_heads=2,
                                          value_layer=value_layer, max_tokens=asr.config.max_target_positions,
                                          ffn_dim=asr.config.decoder_ffn_dim))
    return TasteTokenizer.from_asr(cfg, asr, bpe, stage=stage).eval()


@pytest.fixture()
def tokenizer(asr, bpe):
    return make_tokenizer(asr, bpe)


@pytest.fixture(scope="session")
def mel():
    torch.manual_seed(1)
    return torch.randn(80, 120) - 4.0
