"""Paper profile (units.backend: s3_pretrained): CosyVoice's S3 tokenizer read from a LOCAL weights file, end to end.

No release checkpoint can be downloaded here, so a tiny random-weight model of s3tokenizer's own v1 architecture is
saved as .safetensors and pointed at by units.s3_path; the units stage's extraction (s3_unit_streams) then reads the
prepared audio through it.
"""

import pytest
import torch

pytest.importorskip("s3tokenizer", reason="PyPI s3tokenizer (+ onnx) is not installed")

from s3tokenizer.model import ModelConfig  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from taste.units.extract import load_units  # noqa: E402
from taste.units.pipeline import read_unit_space, s3_unit_streams, write_unit_space  # noqa: E402
from taste.vocoder.pipeline import unit_space  # noqa: E402
from taste.units.s3_pretrained import (S3WeightsError, build_s3_tokenizer, config_from_state_dict,  # noqa: E402
                                        load_s3_tokenizer, s3_units)

from s3_checkpoint import S3_CODES as CODES, S3_NAME as NAME, TINY_S3 as TINY  # noqa: E402  (tests/s3_checkpoint.py)
from s3_checkpoint import chirp_wav as _wav, save_s3 as _save, tiny_s3_model as _tiny_model  # noqa: E402
from s3_checkpoint import write_tiny_s3_checkpoint  # noqa: E402
from unit_fakes import write_fake_prepared  # noqa: E402


def test_local_safetensors_sizes_come_from_the_file(tmp_path):
    model = _tiny_model()
    path = _save(model, tmp_path / "speech_tokenizer_v1_25hz.safetensors")
    loaded = load_s3_tokenizer(path, NAME)  # no config given: as the units stage calls it
    assert loaded.config == TINY
    wavs = [_wav(2.0), _wav(1.0, f0=260.0)]
    units = s3_units(loaded, wavs)
    assert [len(u) for u in units] == [50, 25]  # 25 units per second
    assert all(u.dtype == torch.long and int(u.min()) >= 0 and int(u.max()) < CODES for u in units)
    assert len(torch.unique(units[0])) > 1
    assert all(torch.equal(a, b) for a, b in zip(units, s3_units(model, wavs)))  # the saved model, exactly
    assert all(torch.equal(a, b) for a, b in zip(units, s3_units(load_s3_tokenizer(path, NAME), wavs)))


def test_head_count_from_file_metadata(tmp_path):
    config = ModelConfig(**{**TINY.__dict__, "n_audio_head": 2})
    model = _tiny_model(config)
    path = _save(model, tmp_path / "s3.safetensors", metadata={"n_audio_head": "2"})
    loaded = load_s3_tokenizer(path, NAME)
    assert loaded.config.n_audio_head == 2
    wav = _wav(1.5)
    assert torch.equal(s3_units(loaded, [wav])[0], s3_units(model, [wav])[0])


def test_units_stage_extraction_from_a_local_file(tmp_path):
    params = write_fake_prepared(tmp_path / "prepared", {"dev": 2, "test": 3})
    weights = write_tiny_s3_checkpoint(tmp_path / "s3.safetensors")
    params["units"].update(backend="s3_pretrained", s3_path=str(weights), s3_name=NAME, codebook_size=CODES,
                           rate_hz=25)
    model_dir = tmp_path / "models" / "units"
    counts = s3_unit_streams(params, model_dir, batch_size=2)
    assert counts == {"dev": 2, "test": 3}
    # the stage's model output records the checkpoint (so dvc has something to save), the streams their unit space
    import hashlib
    import json

    record = json.loads((model_dir / "s3_tokenizer.json").read_text())
    assert record["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (record["codebook_size"], record["rate_hz"], record["name"]) == (CODES, 25, NAME)
    assert record["config"]["n_codebook_size"] == CODES and record["bytes"] == weights.stat().st_size
    assert read_unit_space(tmp_path / "prepared" / "units") == {"codebook_size": CODES, "rate_hz": 25,
                                                                "backend": "s3_pretrained"}
    out = tmp_path / "prepared" / "units" / "test.safetensors"
    stored = load_file(str(out))
    assert all(v.dtype == torch.int16 for v in stored.values())
    units = load_units(out)
    from taste.data.records import read_manifest

    for utt in read_manifest(tmp_path / "prepared" / "test.jsonl"):
        u = units[utt.id]
        assert abs(len(u) - 25 * utt.duration) <= 1
        assert int(u.min()) >= 0 and int(u.max()) < CODES
    first = {k: v.clone() for k, v in units.items()}
    s3_unit_streams(params, model_dir, splits=("test",), batch_size=3)  # another batching, same units
    again = load_units(out)
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)


def test_missing_and_unset_weights_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        load_s3_tokenizer(tmp_path / "nowhere.safetensors")
    params = write_fake_prepared(tmp_path / "prepared", {"test": 1})
    params["units"].update(backend="s3_pretrained", s3_path=None)
    with pytest.raises(FileNotFoundError, match="s3_path"):
        s3_unit_streams(params, tmp_path / "models")
    params["units"]["s3_path"] = str(tmp_path / "gone.onnx")
    with pytest.raises(FileNotFoundError, match="gone.onnx"):
        s3_unit_streams(params, tmp_path / "models")


def test_a_checkpoint_of_another_unit_space_than_params_is_refused(tmp_path):
    """units.codebook_size / rate_hz size every unit model downstream: an S3 checkpoint with another codebook is
    refused by name before any unit is written, and streams whose record disagrees with params are refused too."""
    params = write_fake_prepared(tmp_path / "prepared", {"test": 1})
    weights = write_tiny_s3_checkpoint(tmp_path / "s3.safetensors")
    params["units"].update(backend="s3_pretrained", s3_path=str(weights), s3_name=NAME, codebook_size=4096,
                           rate_hz=25)
    with pytest.raises(ValueError, match=rf"s3\.safetensors: .* makes {CODES} codes at 25 Hz.*codebook_size 4096"):
        s3_unit_streams(params, tmp_path / "models")
    assert not (tmp_path / "prepared" / "units" / "test.safetensors").exists()
    write_unit_space(tmp_path / "prepared" / "units", CODES, 25, "s3_pretrained")
    with pytest.raises(ValueError, match=r"unit_space\.json: the unit streams have 64 codes at 25 Hz"):
        unit_space(params)
    (tmp_path / "prepared" / "units" / "unit_space.json").write_text("{}")
    with pytest.raises(ValueError, match=r"unit_space\.json: not a unit-space record"):
        unit_space(params)


def test_wrong_architecture_files_are_named(tmp_path):
    other = tmp_path / "other_model.safetensors"
    save_file(torch.nn.Linear(4, 3).state_dict(), str(other))
    with pytest.raises(S3WeightsError, match=r"other_model\.safetensors.*not an S3 tokenizer"):
        load_s3_tokenizer(other)
    # The right keys, the wrong sizes for the config asked for.
    tiny = _save(_tiny_model(), tmp_path / "tiny.safetensors")
    with pytest.raises(S3WeightsError, match=r"tiny\.safetensors: cannot load S3 tokenizer"):
        load_s3_tokenizer(tiny, NAME, config=ModelConfig(**{**TINY.__dict__, "n_audio_state": 128, "n_audio_head": 2}))
    # A v1 state dict with a block cut out.
    state = load_file(str(tiny))
    cut = tmp_path / "cut.safetensors"
    save_file({k: v for k, v in state.items() if not k.startswith("encoder.blocks.1.mlp")}, str(cut))
    with pytest.raises(S3WeightsError, match=r"cut\.safetensors"):
        load_s3_tokenizer(cut, NAME)
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(S3WeightsError, match=r"junk\.safetensors"):
        load_s3_tokenizer(tmp_path / "junk.safetensors")
    with pytest.raises(S3WeightsError, match="not an S3 tokenizer"):
        config_from_state_dict({"weight": torch.zeros(2, 2)})


def test_v2_safetensors_take_s3tokenizers_default_config_not_the_v1_reading(tmp_path, monkeypatch):
    """Only a v1 state dict's sizes are read off the file: a v2 file (model_v2: FSQ codebook, no positional
    embedding) loads with the config given, or with none s3tokenizer's default for that model, as before."""
    import s3tokenizer.model_v2
    import taste.units.s3_pretrained as s3p

    name = "speech_tokenizer_v2_25hz"
    tiny_v2 = s3tokenizer.model_v2.ModelConfig(n_mels=128, n_audio_ctx=1500, n_audio_state=64, n_audio_head=1,
                                               n_audio_layer=2)
    torch.manual_seed(0)
    model = build_s3_tokenizer(name, tiny_v2)
    assert isinstance(model, s3tokenizer.S3TokenizerV2)
    path = _save(model, tmp_path / f"{name}.safetensors")
    wav = _wav(1.5)
    loaded = load_s3_tokenizer(path, name, config=tiny_v2)
    assert torch.equal(s3_units(loaded, [wav])[0], s3_units(model, [wav])[0])

    # No config: the v1 reading is not tried, and the model is built with s3tokenizer's default (config None);
    # the release-sized default is swapped for the tiny one here only to keep the test small.
    seen = []
    build = s3p.build_s3_tokenizer

    def spy(name, config=None):
        seen.append(config)
        return build(name, tiny_v2 if config is None else config)

    def no_v1_reading(*a, **k):
        raise AssertionError("config_from_state_dict called for a v2 file")

    monkeypatch.setattr(s3p, "build_s3_tokenizer", spy)
    monkeypatch.setattr(s3p, "config_from_state_dict", no_v1_reading)
    loaded = load_s3_tokenizer(path, name)
    assert seen == [None]
    assert torch.equal(s3_units(loaded, [wav])[0], s3_units(model, [wav])[0])


def test_build_without_config_is_s3tokenizers_default_for_the_model():
    import s3tokenizer.model_v2

    assert build_s3_tokenizer("speech_tokenizer_v2_25hz").config == s3tokenizer.model_v2.ModelConfig()
