"""The probes' S3-unit LM scorer reads its units from the configured unit backend (issue 15): the trained tokenizer
at ModelPaths.units (unchanged), or CosyVoice's S3 tokenizer from units.s3_path (paper profile)."""

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from taste.data.features import MelConfig, log_mel


def _debug_llama(vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256)
    return LlamaForCausalLM(cfg).eval()


def _mel_fn(wav):
    return log_mel(wav, MelConfig())


def _wav(seconds: float = 1.0) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(int(16000 * seconds))).astype(np.float32)


def test_s3_scorer_trained_units_unchanged():
    """A trained UnitTokenizer and its PromptUnitEncoder give the scorer the very same units as the old code."""
    from taste.evaluation.probes import s3_scorer
    from taste.lm.continuation import PromptUnitEncoder
    from taste.lm.s3_lm import S3LMConfig, S3UnitLM
    from taste.lm.text_lm import LMVocab
    from taste.units.model import build_debug_unit_tokenizer

    torch.manual_seed(0)
    units_model = build_debug_unit_tokenizer().eval()
    lm = S3UnitLM(_debug_llama(40), S3LMConfig(n_units=units_model.cfg.codebook_size)).eval()
    vocab = LMVocab(base_size=30, bos=30, eos=31, pad=32)
    wav = _wav()
    mel = _mel_fn(wav)
    old_units, lengths = units_model.encode(mel[None], torch.tensor([mel.shape[-1]]))  # the old scorer, verbatim
    old = old_units[0, : int(lengths[0])].tolist()
    for tok in (units_model, PromptUnitEncoder("trained", units_model)):
        assert s3_scorer(lm, tok, None, vocab, _mel_fn).encode_units(wav) == old


def _study(tmp_path, units: dict, n_units: int):
    """A text LM + S3-unit LM saved under tmp_path and a params file whose units section is `units`."""
    from taste.asr.bpe import train_bpe
    from taste.config import load_params
    from taste.evaluation.probes import ModelPaths
    from taste.lm.s3_lm import S3LMConfig, S3UnitLM
    from taste.lm.text_lm import LMVocab, build_text_lm, debug_config, save_text_lm

    tok = train_bpe(["the cat sat on the mat", "a dog ran in the park"] * 10, vocab_size=60)
    vocab = LMVocab.for_tokenizer(tok)
    lm_dir = tmp_path / "text_lm"
    save_text_lm(build_text_lm(debug_config(vocab.size + 2), vocab), lm_dir)
    tok.save(str(lm_dir / "tokenizer.json"))
    (lm_dir / "lm_vocab.json").write_text(json.dumps(asdict(vocab)))
    S3UnitLM(_debug_llama(vocab.size + 2), S3LMConfig(n_units=n_units)).save_pretrained(tmp_path / "s3_lm")
    params = load_params("params.yaml")
    params["units"].update(units)
    return ModelPaths(taste=str(tmp_path / "no_taste"), units=str(tmp_path / "models" / "units"), text_lm=str(lm_dir),
                      taslm=str(tmp_path / "no_taslm_{variant}"), s3_lm=str(tmp_path / "s3_lm"),
                      unit_backend=params["units"])


def test_probe_s3_scorer_uses_the_s3_backend(tmp_path):
    pytest.importorskip("s3tokenizer", reason="PyPI s3tokenizer (+ onnx) is not installed")
    from s3_checkpoint import S3_CODES, S3_NAME, chirp_wav, write_tiny_s3_checkpoint

    from taste.evaluation.probes import ProbeUtterance, load_system_scorers
    from taste.units.s3_pretrained import load_s3_tokenizer, s3_units

    path = write_tiny_s3_checkpoint(tmp_path / f"{S3_NAME}.safetensors")
    # no trained tokenizer at paths.units: a fresh paper-profile study
    paths = _study(tmp_path, {"backend": "s3_pretrained", "s3_path": str(path), "s3_name": S3_NAME}, S3_CODES)
    scorers, missing = load_system_scorers(paths, _mel_fn, ["s3_lm"])
    assert set(scorers) == {"s3_lm"} and not missing, missing
    wav = chirp_wav(1.5)
    expected = s3_units(load_s3_tokenizer(path, S3_NAME), [wav], 16000)[0].tolist()
    assert scorers["s3_lm"].encode_units(wav) == expected
    assert np.isfinite(scorers["s3_lm"].score(ProbeUtterance("the cat sat", wav)))

    # an S3 LM whose unit space is smaller than the tokenizer's codes: a clear error, not an index error
    small = _study(tmp_path / "small", {"backend": "s3_pretrained", "s3_path": str(path), "s3_name": S3_NAME}, 4)
    scorers, _ = load_system_scorers(small, _mel_fn, ["s3_lm"])
    assert max(expected) >= 4
    with pytest.raises(ValueError, match="outside the S3-unit LM's 4 units"):
        scorers["s3_lm"].encode_units(wav)


def test_probe_s3_scorer_reports_a_missing_tokenizer(tmp_path):
    from taste.evaluation.probes import load_system_scorers
    from taste.lm.continuation import UnitBackendError

    missing_onnx = tmp_path / "speech_tokenizer_v1_25hz.onnx"
    paths = _study(tmp_path, {"backend": "s3_pretrained", "s3_path": str(missing_onnx)}, 64)
    scorers, missing = load_system_scorers(paths, _mel_fn, ["s3_lm"])
    assert not scorers and str(missing_onnx) in missing["s3_lm"]

    paths = _study(tmp_path / "trained", {"backend": "trained"}, 64)  # trained backend, no models/units
    scorers, missing = load_system_scorers(paths, _mel_fn, ["s3_lm"])
    assert not scorers and str(tmp_path / "trained" / "models" / "units") in missing["s3_lm"]

    paths = _study(tmp_path / "unknown", {"backend": "hubert"}, 64)
    with pytest.raises(UnitBackendError, match="hubert"):
        load_system_scorers(paths, _mel_fn, ["s3_lm"])
