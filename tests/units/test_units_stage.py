"""Stage 02a + 02b as functions on a tiny fake data/prepared: train, write unit streams, train the vocoder."""

import json

import torch
from unit_fakes import write_fake_prepared

from taste.data.records import read_manifest
from taste.units.extract import load_units
from taste.units.model import UnitTokenizer
from taste.units.pipeline import train_unit_tokenizer, write_unit_streams
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
