"""Saved-reference regression: a tiny saved Whisper's encoder states and greedy tokens for fixed inputs.

Guards the length-aware subclass against changes in transformers' Whisper internals. Regenerate (only after
a deliberate change) with `TASTE_REGENERATE=1 .venv/bin/pytest tests/asr/test_reference.py`.
"""

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from taste.asr.bpe import train_bpe
from taste.asr.features import pad_mels
from taste.asr.whisper import build_asr, debug_config, encoder_states, greedy_decode, load_asr, save_asr

REF = Path(__file__).parent / "data"


def _inputs():
    g = torch.Generator().manual_seed(11)
    return pad_mels([torch.randn(80, n, generator=g) - 4.0 for n in (23, 64)])


def _outputs(model):
    mels, lengths = _inputs()
    states = encoder_states(model, mels, lengths, layers=(0, 1, -1))
    ids = greedy_decode(model, mels, lengths, max_new_tokens=8)
    return {"layer0": states[0], "layer1": states[1], "last": states[-1],
            "tokens": torch.tensor([row + [-1] * (8 - len(row)) for row in ids])}


def test_saved_reference_outputs():
    if os.environ.get("TASTE_REGENERATE"):
        tok = train_bpe(["the fox ran across the river", "a quiet morning in the town"] * 4, vocab_size=60)
        save_asr(build_asr(debug_config(), tok, seed=5), tok, REF / "model")
        save_file(_outputs(load_asr(REF / "model")), str(REF / "outputs.safetensors"))
    expected = load_file(str(REF / "outputs.safetensors"))
    got = _outputs(load_asr(REF / "model"))
    for key in ("layer0", "layer1", "last"):
        torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=1e-4)
    assert torch.equal(got["tokens"], expected["tokens"])
