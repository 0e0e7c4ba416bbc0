"""The continuation prompts' units come from the configured unit backend (issue 15).

`prompt_unit_encoder(params["units"], models)`: backend trained -> the units stage's UnitTokenizer exactly as before
(bit-identical units); backend s3_pretrained (paper profile) -> CosyVoice's S3 tokenizer from units.s3_path, units
computed from the waveform by `s3_units`. Used by the study notebook (03), `taste continue --system s3_lm` and the
evaluation's probe scorer.
"""

import numpy as np
import pytest
import torch
import yaml

from taste.data.features import MelConfig, log_mel
from taste.lm.continuation import (Prompt, PromptUnitEncoder, Systems, UnitBackendError, prepare_audio,
                                   prompt_unit_encoder, prompt_units)
from taste.units.model import build_debug_unit_tokenizer


def _wav(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    rng = np.random.default_rng(seed)
    return (0.2 * np.sin(2 * np.pi * 170 * t) + 0.05 * rng.normal(size=len(t))).astype(np.float32)


def _old_prompt_units(unit_model, wav, mel_cfg):
    """prompt_units before issue 15 (the trained tokenizer, whatever the backend), verbatim."""
    mel = log_mel(torch.from_numpy(np.asarray(wav, dtype=np.float32)), mel_cfg)[None]
    with torch.no_grad():
        units, lengths = unit_model.encode(mel, torch.tensor([mel.shape[-1]]))
    return units[0, : int(lengths[0])]


def _systems() -> Systems:
    return Systems(tokenizer=None, vocab=None, text_lm=None, vocoder=None, mel_cfg=MelConfig())


@pytest.fixture
def trained_models(tmp_path):
    """models/units holding a debug-size unit tokenizer (random weights; its k-means codebook initialised by one
    forward pass, as training does, so every load of it gives the same units)."""
    torch.manual_seed(0)
    model = build_debug_unit_tokenizer()
    mel = log_mel(torch.from_numpy(_wav(3.0, 9)), MelConfig())[None]
    with torch.no_grad():
        model.encode(mel, torch.tensor([mel.shape[-1]]))
    model.eval().save_pretrained(tmp_path / "models" / "units")
    return tmp_path / "models"


def test_trained_backend_gives_exactly_the_old_units(trained_models):
    from taste.units.model import UnitTokenizer

    with pytest.raises(KeyError, match="backend"):  # params.yaml names the backend: no default stands in for it
        prompt_unit_encoder({}, trained_models)
    encoder = prompt_unit_encoder({"backend": "trained", "s3_path": None}, trained_models)
    assert isinstance(encoder, PromptUnitEncoder) and encoder.backend == "trained"
    old_model = UnitTokenizer.from_pretrained(trained_models / "units")  # what the three call sites loaded before
    for seed, seconds in [(0, 1.5), (1, 2.2), (2, 0.7)]:
        wav = _wav(seconds, seed)
        old = _old_prompt_units(old_model, wav, MelConfig())
        new = prompt_units(encoder, wav, MelConfig())
        assert new.dtype == old.dtype and torch.equal(new, old)
        assert torch.equal(prompt_units(old_model, wav, MelConfig()), old)  # a bare UnitTokenizer still works
    # through prepare_audio (the study's and `taste continue`'s path) as well
    p = Prompt("p", "u", "x.wav", None, "s", 1.5, "a dog", "a dog ran")
    wav = _wav()
    a = prepare_audio(p, wav, _systems(), lambda w: np.zeros(256, np.float32), encoder, "a dog")
    b = prepare_audio(p, wav, _systems(), lambda w: np.zeros(256, np.float32), old_model, "a dog")
    assert torch.equal(a.units, b.units) and torch.equal(a.units, _old_prompt_units(old_model, wav, MelConfig()))


def test_trained_backend_ignores_an_s3_checkpoint_it_is_not_asked_for(trained_models, tmp_path):
    encoder = prompt_unit_encoder({"backend": "trained", "s3_path": str(tmp_path / "none.onnx")}, trained_models)
    assert encoder.backend == "trained"


def test_unknown_backend_is_a_clear_error(trained_models):
    with pytest.raises(UnitBackendError, match=r"units.backend 'hubert' is not one of trained, s3_pretrained"):
        prompt_unit_encoder({"backend": "hubert"}, trained_models)
    assert issubclass(UnitBackendError, ValueError)


def test_missing_trained_tokenizer_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "models" / "units")):
        prompt_unit_encoder({"backend": "trained"}, tmp_path / "models")


def test_missing_s3_checkpoint_names_the_path(tmp_path):
    missing = tmp_path / "speech_tokenizer_v1_25hz.onnx"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        prompt_unit_encoder({"backend": "s3_pretrained", "s3_path": str(missing)}, tmp_path / "models")
    with pytest.raises(FileNotFoundError, match="units.s3_path is not set"):
        prompt_unit_encoder({"backend": "s3_pretrained", "s3_path": None}, tmp_path / "models")


# ---------------------------------------------------------------------------------------------------------------------
# Paper profile: CosyVoice's S3 tokenizer (a tiny random-weight checkpoint of its architecture)
# ---------------------------------------------------------------------------------------------------------------------
def _s3_checkpoint(tmp_path):
    pytest.importorskip("s3tokenizer", reason="PyPI s3tokenizer (+ onnx) is not installed")
    from s3_checkpoint import S3_NAME, write_tiny_s3_checkpoint  # tests/s3_checkpoint.py

    return write_tiny_s3_checkpoint(tmp_path / "s3" / f"{S3_NAME}.safetensors"), S3_NAME


def test_s3_backend_gives_the_s3_units_of_the_waveform(tmp_path):
    from s3_checkpoint import chirp_wav

    path, name = _s3_checkpoint(tmp_path)
    from taste.units.s3_pretrained import load_s3_tokenizer, s3_units

    # a fresh paper-profile study: models/units holds no trained tokenizer
    encoder = prompt_unit_encoder({"backend": "s3_pretrained", "s3_path": str(path), "s3_name": name},
                                  tmp_path / "models")
    assert encoder.backend == "s3_pretrained" and encoder.source == str(path)
    reference = load_s3_tokenizer(path, name)
    for seconds in (1.0, 2.0):
        wav = chirp_wav(seconds)
        expected = s3_units(reference, [wav], 16000)[0]
        units = prompt_units(encoder, wav, MelConfig())
        assert units.dtype == torch.long and torch.equal(units, expected)
        assert abs(len(units) - 25 * seconds) <= 1  # 25 Hz
    assert len(set(units.tolist())) > 1  # the codes vary over the chirp (not a degenerate encoder)
    p = Prompt("p", "u", "x.wav", None, "s", 2.0, "a dog", "a dog ran")
    pp = prepare_audio(p, wav, _systems(), lambda w: np.zeros(256, np.float32), encoder, "a dog")
    assert torch.equal(pp.units, expected)


def test_taste_continue_s3_lm_uses_the_configured_backend(tmp_path, monkeypatch, capsys):
    """`taste continue --system s3_lm` on a fresh paper-profile study (no models/units): S3 units of the prompt."""
    from s3_checkpoint import chirp_wav

    path, name = _s3_checkpoint(tmp_path)
    import taste.lm.continuation as continuation
    import taste.data.speaker_embed as speaker_embed
    from taste.cli import main
    from taste.config import load_params
    from taste.data.audio_io import write_audio
    from taste.units.s3_pretrained import load_s3_tokenizer, s3_units

    params = load_params("params.yaml")
    params["units"].update(backend="s3_pretrained", s3_path=str(path), s3_name=name)
    params["shared"]["paths"]["models"] = str(tmp_path / "models")
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    audio = tmp_path / "prompt.wav"
    write_audio(audio, chirp_wav(2.0), 16000)

    seen = {}

    class FakeSpeakerEncoder:
        def __init__(self, params):
            seen["partials_per_second"] = params["prepare"]["speaker_partials_per_second"]

        def embed(self, wav):
            seen["wav"] = wav
            return np.zeros(256, np.float32)

    def fake_continue(system, pp, systems, s, target, max_units, seed):
        seen["system"], seen["units"] = system, pp.units
        return {"system": system}, np.zeros(1600, np.float32)

    monkeypatch.setattr(continuation, "load_systems", lambda params, names: _systems())
    monkeypatch.setattr(continuation, "continue_prompt", fake_continue)
    monkeypatch.setattr(speaker_embed, "conditioning_encoder", FakeSpeakerEncoder)
    rc = main(["--params", str(params_path), "continue", str(audio), "a dog ran", "-o", str(tmp_path / "out.wav"),
               "--system", "s3_lm"])
    assert rc == 0, capsys.readouterr().err
    assert seen["system"] == "s3_lm"
    assert seen["partials_per_second"] == params["prepare"]["speaker_partials_per_second"]  # prepare's embedder
    assert torch.equal(seen["units"], s3_units(load_s3_tokenizer(path, name), [seen["wav"]], 16000)[0])

    # the trained backend on the same empty models folder: a one-line error naming the missing tokenizer
    params["units"]["backend"] = "trained"
    params_path.write_text(yaml.safe_dump(params))
    rc = main(["--params", str(params_path), "continue", str(audio), "a dog ran", "-o", str(tmp_path / "out.wav"),
               "--system", "s3_lm"])
    assert rc == 2 and str(tmp_path / "models" / "units") in capsys.readouterr().err
