"""The TASTE-input ablation of TASLM: zeroed vectors, same prompts and seeds, rates compared per prompt."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from fakes import FakeCodebook
from test_continuation import FakeDecoder, FakeVocoder

from taste.data.features import MelConfig
from taste.lm.continuation import PreparedPrompt, Prompt, Systems, run_system
from taste.lm.generate import Sampling
from taste.lm.taslm import TASLM, TASLMConfig
from taste.lm.taste_use import (ZeroTasteInput, taste_use_summary, taste_use_table, zeroed_continuations)

SAMPLING = Sampling(top_p=0.9, temperature=1.0)


def test_zero_input_keeps_the_quantiser():
    cb = FakeCodebook()
    codes = torch.tensor([[1, 2], [3, 4]])
    z = ZeroTasteInput(cb)
    assert torch.equal(z.codes_to_vectors(codes), torch.zeros(2, 16))
    v = cb.codes_to_vectors(codes)
    assert torch.equal(z.quantize(v), cb.quantize(v))


def make_systems(bpe, vocab, tiny_lm, fusion):
    cb = FakeCodebook()
    taste = FakeDecoder()
    taste.codes_to_vectors, taste.quantize = cb.codes_to_vectors, cb.quantize
    model = TASLM(tiny_lm, TASLMConfig(variant="token", n_q=2, codebook_size=16, taste_dim=16))
    with torch.no_grad():
        model.fusion.copy_(torch.tensor(fusion))
        for p in model.parameters():  # a strong TASTE projection, so a TASTE-reading model really depends on it
            if p.requires_grad and p.dim() == 2 and p.shape[1] == 16:
                p.mul_(20.0)
    return Systems(tokenizer=bpe, vocab=vocab, text_lm=tiny_lm, vocoder=FakeVocoder(), mel_cfg=MelConfig(),
                   taste=taste, taste_text_only=FakeDecoder(), taslm={"token": model})


def prompts(utts, codes, n=6):
    return [PreparedPrompt(Prompt(f"p{i}", u.id, u.audio_path, "s1", u.speaker, 1.0, " ".join(u.text.split()[:3]),
                                  u.text), " ".join(u.text.split()[:3]), "asr", codes[u.id][:3], None,
                           torch.zeros(256)) for i, u in enumerate(utts[:n])]


@pytest.mark.parametrize("fusion,reads_taste", [((-30.0, 30.0), False), ((30.0, -30.0), True)])
def test_zeroing_changes_only_a_model_that_reads_taste(fusion, reads_taste, bpe, vocab, tiny_lm, utts, codes,
                                                       tmp_path):
    systems = make_systems(bpe, vocab, tiny_lm, fusion)
    prepared = prompts(utts, codes)
    real = run_system("taslm_token", prepared, systems, SAMPLING, 3, 40, 7, tmp_path, decode_batch=2)
    zeroed = zeroed_continuations("token", prepared, systems, SAMPLING, 3, 7, decode_batch=2)
    table = taste_use_table(prepared, real, zeroed)
    assert list(table.prompt_id) == [pp.prompt.prompt_id for pp in prepared]
    assert table.same_text.all() != reads_taste
    if not reads_taste:  # text-only model: the ablation is a no-op, rate for rate
        assert np.allclose(table.rate_with_taste, table.rate_zeroed, equal_nan=True)
    # the fake decoder speaks 4 units per word at 25 Hz: 6.25 words/s whatever was said
    assert np.allclose(table.rate_with_taste.dropna(), 6.25)
    assert table.prompt_rate.tolist() == [3.0] * len(prepared)  # 3 true words in 1 s


def test_summary_reads_a_rate_following_model():
    rng = np.random.default_rng(0)
    p = rng.uniform(2, 4, 40)
    table = pd.DataFrame({"prompt_id": [f"p{i}" for i in range(40)], "prompt_rate": p,
                          "rate_with_taste": p * rng.uniform(0.95, 1.05, 40), "rate_zeroed": np.full(40, 3.0),
                          "same_text": [False] * 40})
    s = taste_use_summary(table, n_boot=300, seed=0)
    assert s["n_prompts"] == 40
    assert s["rate_corr_with_taste"]["value"] > 0.9 and s["rate_corr_zeroed"]["value"] is None
    json.dumps(s, allow_nan=False)  # undefined values are None, so metrics.json stays strict JSON
    d = s["rate_gap_zeroed_minus_with"]
    assert d["value"] > 0 and d["ci_lo"] > 0 and d["ci_lo"] <= d["value"] <= d["ci_hi"]
    assert s["same_text_share"] == 0.0
    assert taste_use_summary(table.head(2), 100, 0) == {"n_prompts": 2}


def test_table_needs_the_real_continuation(utts, codes):
    prepared = prompts(utts, codes, n=2)
    with pytest.raises(ValueError, match="no continuation"):
        taste_use_table(prepared, [], [{"prompt_id": "p0", "text": "a", "n_words": 1, "generated_seconds": 1.0}] * 2)
