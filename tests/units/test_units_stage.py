"""Stage 02a + 02b as functions on a tiny fake data/prepared: train, write unit streams, train the vocoder."""

import json

import torch
from unit_fakes import write_fake_prepared

from taste.data.records import read_manifest
from taste.units.extract import load_units
from taste.units.model import UnitTokenizer
from taste.units.pipeline import read_unit_space, train_unit_tokenizer, write_unit_streams
from taste.vocoder.model import UnitVocoder
from taste.vocoder.pipeline import (evaluation_subset, mel_config, resynthesise, train_vocoder, unit_dataset,
                                    unit_space)


def test_units_then_vocoder_stage_functions(tmp_path):
    params = write_fake_prepared(tmp_path)
    model_dir = tmp_path / "models" / "units"
    model, vocab, result = train_unit_tokenizer(params, model_dir, progress=False)
    assert (model_dir / "model.safetensors").exists() and len(result.history) > 0
    assert "pitch_ce" in result.history[-1]   # frame_pitch_weight > 0: the codes are trained to keep pitch
    assert json.loads((model_dir / "phones.json").read_text()) == list(vocab.phones)
    counts = write_unit_streams(model, params)
    assert counts == {"train": 12, "dev": 3, "test": 4}
    assert read_unit_space(tmp_path / "units") == {"codebook_size": model.cfg.codebook_size,
                                                   "rate_hz": model.cfg.rate_hz, "backend": "trained"}
    test_units = load_units(tmp_path / "units" / "test.safetensors")
    loaded = UnitTokenizer.from_pretrained(model_dir)
    assert all(len(u) > 0 for u in test_units.values()) and loaded.cfg == model.cfg

    # rerunning with the same settings resumes (nothing left to do); changed settings start afresh
    _, _, again = train_unit_tokenizer(params, model_dir, progress=False)
    assert again.resumed_from == params["units"]["train"]["steps"]
    params["units"]["train"]["steps"] = 5
    _, _, fresh = train_unit_tokenizer(params, model_dir, progress=False)
    assert fresh.resumed_from == 0

    n_units, rate = unit_space(params)
    vocoder, _ = train_vocoder(params, tmp_path / "models" / "vocoder", n_units, rate, progress=False)
    data = unit_dataset(params, "test")
    subset = evaluation_subset(read_manifest(tmp_path / "test.jsonl"), 2)
    rows = resynthesise(UnitVocoder.from_pretrained(tmp_path / "models" / "vocoder"), data, subset,
                        mel_config(params), 4)
    for name, wavs in rows.items():
        assert len(wavs) == 2
        for wav, orig in zip(wavs, rows["original"]):
            assert abs(len(wav) - len(orig)) <= 4 * 160   # at most one unit of rounding
    assert torch.is_tensor(data[0]["units"])


def test_unit_and_vocoder_runs_are_keyed_by_data_and_code(tmp_path, monkeypatch):
    """Same data and code: the finished run is found again. Changed features (same utterances, same count) or
    changed code: a new run folder next to the old one, trained from step 0 (the old weights are not reused)."""
    import taste.units.pipeline as units_pipeline
    import taste.vocoder.pipeline as vocoder_pipeline
    from taste.data.loaders import FeatureStore, save_tensor_map
    from taste.vocoder.pipeline import unit_space

    params = write_fake_prepared(tmp_path)
    params["units"]["train"]["steps"] = params["vocoder"]["train"]["steps"] = 2
    model_dir = tmp_path / "models" / "units"
    runs = model_dir / "training"
    _, _, first = train_unit_tokenizer(params, model_dir, progress=False)
    _, _, again = train_unit_tokenizer(params, model_dir, progress=False)
    assert first.resumed_from == 0 and again.resumed_from == 2 and len(list(runs.iterdir())) == 1
    old_run = next(runs.iterdir())

    store = FeatureStore(tmp_path / "features" / "train.safetensors")
    changed = {k: store.get(k) + 0.25 for k in store.keys()}
    save_tensor_map(tmp_path / "features" / "train.safetensors", changed, dtype=torch.float16)
    _, _, fresh = train_unit_tokenizer(params, model_dir, progress=False)
    assert fresh.resumed_from == 0 and len(list(runs.iterdir())) == 2
    assert (old_run / "checkpoint" / "state.json").is_file()  # never silently deleted

    monkeypatch.setattr(units_pipeline, "code_digest", lambda: "new code")
    _, _, recoded = train_unit_tokenizer(params, model_dir, progress=False)
    assert recoded.resumed_from == 0 and len(list(runs.iterdir())) == 3

    model, _, _ = train_unit_tokenizer(params, model_dir, progress=False)
    write_unit_streams(model, params)
    n_units, rate = unit_space(params)
    voc_dir = tmp_path / "models" / "vocoder"
    _, v1 = train_vocoder(params, voc_dir, n_units, rate, progress=False)
    _, v2 = train_vocoder(params, voc_dir, n_units, rate, progress=False)
    assert v1.resumed_from == 0 and v2.resumed_from == 2
    monkeypatch.setattr(vocoder_pipeline, "code_digest", lambda: "new code")
    _, v3 = train_vocoder(params, voc_dir, n_units, rate, progress=False)
    assert v3.resumed_from == 0 and len(list((voc_dir / "training").iterdir())) == 2
