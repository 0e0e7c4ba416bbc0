"""The stage's functions end to end on a tiny world: pretrain, fine-tune three LMs, continue with four systems."""

import json
from pathlib import Path

import pytest
import torch
from world import build_world

from taste.data.records import read_manifest
from taste.lm import pipeline as P
from taste.lm.continuation import (SYSTEMS, load_systems, prepare_prompt, run_system, sampling_from_params,
                                   select_prompts)
from taste.lm.data import load_code_table
from taste.training.memory import current_rss_mb
from taste.lm.report import read_records, speed_table
from taste.tokenizer import TasteTokenizer
from taste.units.model import UnitTokenizer

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def fake_speaker_embed(wav):
    """A deterministic stand-in for resemblyzer: 256 numbers from the audio's level and length."""
    import numpy as np

    return np.full(256, float(np.abs(wav).mean()) + len(wav) / 1e6, np.float32)


def test_stage_end_to_end(tmp_path, monkeypatch):
    params = build_world(tmp_path, REPO / "params.yaml")
    monkeypatch.chdir(tmp_path)
    text = P.pretrain_text_lm(params, progress=False)
    assert text.heldout_ppl > 1 and len(text.result.history) > 0
    taste = TasteTokenizer.from_pretrained(params["lm"]["taste_model"])
    for variant in ("token", "embed"):
        model, result, dev = P.train_taslm(params, variant, text.model, text.tokenizer, text.vocab, taste,
                                           progress=False)
        assert result.final_step == 3 and all(v == v for v in dev.values())  # finite dev losses
    _, result, dev = P.train_s3_lm(params, text.model, text.tokenizer, text.vocab, progress=False)
    assert "unit_ce" in dev
    # each LM reports the peak memory of its own training where the resident set can be sampled (Linux)
    scope = "model" if current_rss_mb() is not None else "process"
    assert text.result.peak_memory_scope == result.peak_memory_scope == scope
    assert P.run_metrics(result, dev)["train_peak_memory_scope"] == scope
    # stage lm_pretrain's models in models/lm_pretrain, stage taslm's in models/lm (separate DVC outputs)
    assert P.text_lm_dir(params) == Path("models/lm_pretrain/text_lm")
    assert P.s3_lm_dir(params) == Path("models/lm_pretrain/s3_lm")
    for path in (P.text_lm_dir(params), P.s3_lm_dir(params), P.lm_dir(params) / "taslm_token",
                 P.lm_dir(params) / "taslm_embed"):
        assert (path / "config.json").is_file(), path
    assert not (P.lm_dir(params) / "text_lm").exists() and not (P.lm_dir(params) / "s3_lm").exists()
    assert P.run_dir(params, "text_lm") == Path("outputs/lm_pretrain/training/text_lm")
    assert P.run_dir(params, "taslm_token") == Path("outputs/taslm/training/taslm_token")

    systems = load_systems(params)
    prompts = select_prompts(read_manifest("data/prepared/test.jsonl"), 3, (0.5, 1.5), seed=0)
    unit_model = UnitTokenizer.from_pretrained("models/units")
    prepared = [prepare_prompt(p, systems, fake_speaker_embed, unit_model) for p in prompts]
    assert all(pp.units is not None and len(pp.units) > 0 for pp in prepared)
    assert all(pp.codes.shape[0] == len(pp.text.split()) for pp in prepared)
    for system in SYSTEMS:
        run_system(system, prepared, systems, sampling_from_params(params), 3, 40, 0, "outputs/continuations")
    frame = read_records("outputs/continuations", SYSTEMS)
    assert len(frame) == 3 * len(SYSTEMS)
    assert all(Path(p).is_file() for p in frame["wav_path"])
    table = speed_table(frame)
    assert set(table.index) == set(SYSTEMS)
    rec = json.loads(Path("outputs/continuations/taslm_token/continuations.jsonl").read_text().splitlines()[0])
    assert {"prompt_id", "story_id", "prompt_text", "continuation_text", "codes", "units", "wav_path", "lm_steps",
            "timings"} <= set(rec)
    # Rerunning resumes from the finished checkpoint instead of training again.
    again = P.pretrain_text_lm(params, progress=False)
    assert again.result.resumed_from == 3
    assert torch.allclose(next(again.model.parameters()), next(text.model.parameters()))
    _, resumed, _ = P.train_s3_lm(params, text.model, text.tokenizer, text.vocab, progress=False)
    assert resumed.resumed_from == 3
    # ...but not when what it learns from changed upstream (same settings, same number of items): a new units stage
    # output must train the S3-unit LM afresh, not hand back the stale finished run.
    path = Path(params["shared"]["paths"]["units"]) / "train.safetensors"
    table = load_code_table(path)
    from safetensors.torch import save_file
    save_file({k: ((v.long() + 1) % params["units"]["codebook_size"]).to(v.dtype).contiguous() for k, v in table.items()},
              str(path))
    _, fresh, _ = P.train_s3_lm(params, text.model, text.tokenizer, text.vocab, progress=False)
    assert fresh.resumed_from == 0


def test_taslm_reads_codes_from_the_given_dir_and_keys_runs_by_data_and_code(tmp_path, monkeypatch):
    """train_taslm takes the codes folder as an argument; the same codes elsewhere resume the same run, changed codes
    or changed code train afresh in a new folder under outputs/taslm/training/taslm_token (the old one is kept)."""
    import shutil

    from safetensors.torch import save_file

    params = build_world(tmp_path, REPO / "params.yaml")
    monkeypatch.chdir(tmp_path)
    text = P.pretrain_text_lm(params, progress=False)
    taste = TasteTokenizer.from_pretrained(params["lm"]["taste_model"])
    moved = tmp_path / "elsewhere" / "codes"
    shutil.copytree(tmp_path / "data/taste_codes", moved)
    shutil.rmtree(tmp_path / "data/taste_codes")   # nothing may read the old hard-coded folder
    args = (params, "token", text.model, text.tokenizer, text.vocab, taste)
    _, first, _ = P.train_taslm(*args, progress=False, codes_dir=moved)
    _, again, _ = P.train_taslm(*args, progress=False, codes_dir=moved)
    runs = P.run_dir(params, "taslm_token")
    assert first.resumed_from == 0 and again.resumed_from == 3 and len(list(runs.iterdir())) == 1

    table = load_code_table(moved / "train.safetensors")
    first_id = sorted(table)[0]
    table[first_id] = ((table[first_id].long() + 1) % taste.cfg.rvq.codebook_size).to(table[first_id].dtype)
    save_file({k: v.contiguous() for k, v in table.items()}, str(moved / "train.safetensors"))
    _, changed, _ = P.train_taslm(*args, progress=False, codes_dir=moved)
    assert changed.resumed_from == 0 and len(list(runs.iterdir())) == 2

    monkeypatch.setattr(P, "code_digest", lambda: "new code")
    _, recoded, _ = P.train_taslm(*args, progress=False, codes_dir=moved)
    assert recoded.resumed_from == 0 and len(list(runs.iterdir())) == 3


def test_taslm_on_the_saved_text_lm_is_the_taslm_on_the_trained_one(tmp_path, monkeypatch):
    """Stage taslm loads the text LM that stage lm_pretrain saved instead of the one in memory right after training:
    the TASLM it fine-tunes from it (weights, dev losses, run fingerprint) must be exactly the same."""
    import shutil

    from safetensors.torch import load_file

    params = build_world(tmp_path, REPO / "params.yaml")
    monkeypatch.chdir(tmp_path)
    text = P.pretrain_text_lm(params, progress=False)
    taste = TasteTokenizer.from_pretrained(params["lm"]["taste_model"])
    _, _, dev = P.train_taslm(params, "token", text.model, text.tokenizer, text.vocab, taste, progress=False)
    weights = load_file(P.lm_dir(params) / "taslm_token" / "model.safetensors")
    shutil.rmtree(P.run_dir(params, "taslm_token"))  # train again, do not resume the finished run
    model, tok, vocab = P.load_text_lm(P.text_lm_dir(params))
    assert P.module_digest(model) == P.module_digest(text.model) and vocab == text.vocab
    _, result, dev_loaded = P.train_taslm(params, "token", model, tok, vocab, taste, progress=False)
    assert result.resumed_from == 0 and dev_loaded == dev
    again = load_file(P.lm_dir(params) / "taslm_token" / "model.safetensors")
    assert again.keys() == weights.keys() and all(torch.equal(again[k], weights[k]) for k in weights)


def test_lora_stage_saves_adapters_and_continues_over_the_saved_text_lm(tmp_path, monkeypatch):
    """lm.taslm.finetune: lora (the paper profile's mode) through the stage functions: the TASLM and S3-unit LM
    folders hold no base-LM tensor, and load_systems puts them back over the saved text LM to continue speech."""
    from safetensors import safe_open

    params = build_world(tmp_path, REPO / "params.yaml")
    params["lm"]["taslm"].update(finetune="lora", lora_r=4, lora_alpha=8)
    monkeypatch.chdir(tmp_path)
    text = P.pretrain_text_lm(params, progress=False)
    taste = TasteTokenizer.from_pretrained(params["lm"]["taste_model"])
    taslm, _, _ = P.train_taslm(params, "token", text.model, text.tokenizer, text.vocab, taste, progress=False)
    s3, _, _ = P.train_s3_lm(params, text.model, text.tokenizer, text.vocab, progress=False)
    for folder, model in ((P.lm_dir(params) / "taslm_token", taslm), (P.s3_lm_dir(params), s3)):
        saved = set(safe_open(str(folder / "model.safetensors"), "pt").keys())
        assert any("lora_" in k for k in saved) and all(not k.startswith("lm.") or "lora_" in k for k in saved)
        assert len(saved) < len(model.state_dict())
    systems = load_systems(params, ["taslm_token", "s3_lm"])
    args = (torch.tensor([[1, 2, 3]]), torch.zeros(1, 3, taslm.config.taste_dim), torch.ones(1, 3, dtype=torch.bool))
    with torch.no_grad():
        assert torch.allclose(systems.taslm["token"](*args).text_logits, taslm.eval()(*args).text_logits, atol=1e-5)
    prompts = select_prompts(read_manifest("data/prepared/test.jsonl"), 2, (0.5, 1.5), seed=0)
    unit_model = UnitTokenizer.from_pretrained("models/units")
    prepared = [prepare_prompt(p, systems, fake_speaker_embed, unit_model) for p in prompts]
    for system in ("taslm_token", "s3_lm"):
        run_system(system, prepared, systems, sampling_from_params(params), 3, 40, 0, "outputs/continuations")
    assert len(read_records("outputs/continuations", ["taslm_token", "s3_lm"])) == 2 * len(prepared)
