"""Shared helpers of the tokenizer tests (a uniquely named module, so it never clashes with other folders' conftest)."""

import torch

SENTENCES = [
    "the cat sat on the mat", "a quick brown fox jumps over the lazy dog", "she sells sea shells by the shore",
    "unbelievable things happened yesterday afternoon", "we don't know what they're doing",
] * 4


def make_tokenizer(asr, bpe, conditioning="word_sync", stage="rvq", n_units=32, value_layer=1):
    from dataclasses import replace

    from taste.tokenizer import TasteTokenizer, debug_config

    torch.manual_seed(0)
    cfg = debug_config(conditioning=conditioning, vocab_size=bpe.get_vocab_size(), n_units=n_units)
    cfg = replace(cfg, aggregator=replace(cfg.aggregator, d_model=asr.config.d_model, n_heads=2,
                                          value_layer=value_layer, max_tokens=asr.config.max_target_positions,
                                          ffn_dim=asr.config.decoder_ffn_dim))
    return TasteTokenizer.from_asr(cfg, asr, bpe, stage=stage).eval()
