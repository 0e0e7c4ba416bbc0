"""The real pipeline, end to end, on the smoke profile: materialise + `dvc repro` in a temporary copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from study_copy import BIN, copy_repo, run
from taste.config import load_params
from taste.stages import STAGE_NOTEBOOKS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    work = tmp_path_factory.mktemp("study")
    env = copy_repo(work)
    run([str(BIN / "taste"), "profile", "apply", "smoke"], work, env)
    run([str(BIN / "taste"), "materialise"], work, env)
    log = run([str(BIN / "dvc"), "repro"], work, env)
    return work, env, log


def test_every_stage_ran_and_reported(smoke_study):
    work, _, _ = smoke_study
    params = load_params(work / "params.yaml")
    assert params["profile"] == "smoke"
    for stage, notebook in STAGE_NOTEBOOKS.items():
        out = work / "outputs" / stage
        assert (out / f"{notebook}.ipynb").exists(), f"{stage}: executed notebook missing"
        timing = json.loads((out / "stage_time.json").read_text())
        assert timing["wall_time_s"] > 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics, f"{stage}: empty metrics"
        # progress does not bury the results: at most one stream output per name in a cell, no bar refreshes
        nb = json.loads((out / f"{notebook}.ipynb").read_text())
        for cell in nb["cells"]:
            names = [o["name"] for o in cell.get("outputs", []) if o.get("output_type") == "stream"]
            assert len(names) == len(set(names)), f"{stage}: a cell has {len(names)} stream outputs"
            text = "".join("".join(o["text"]) for o in cell.get("outputs", []) if o.get("output_type") == "stream")
            assert "\r" not in text.replace("\r\n", "\n"), f"{stage}: progress-bar refreshes left in the output"


def test_second_repro_changes_nothing(smoke_study):
    work, env, _ = smoke_study
    log = run([str(BIN / "dvc"), "repro"], work, env)
    assert "Running stage" not in log, log
    status = run([str(BIN / "dvc"), "status", "--json"], work, env)
    assert json.loads(status.strip().splitlines()[-1] or "{}") == {}


def test_rematerialise_is_identical_and_pinned(smoke_study):
    work, env, _ = smoke_study
    pin_before = (work / "data.dvc").read_text()
    shutil.rmtree(work / "data" / "raw")
    log = run([str(BIN / "taste"), "materialise"], work, env)
    assert "verified" in log
    assert (work / "data.dvc").read_text() == pin_before


def _tiny_pretrained(work: Path, dest: Path) -> tuple[Path, Path]:
    """Random-weight checkpoints of the paper profile's architectures, written with save_pretrained: a Whisper
    (transformers' WhisperForConditionalGeneration, not the project's subclass) and a Llama, each with a
    tokenizer.json, at the smoke study's sizes (its mel bins, window and vocabulary)."""
    from transformers import LlamaConfig, LlamaForCausalLM, WhisperConfig, WhisperForConditionalGeneration

    asr = json.loads((work / "models" / "asr" / "config.json").read_text())
    asr = {k: v for k, v in asr.items() if k not in ("architectures", "transformers_version", "auto_map")}
    whisper_dir, llama_dir = dest / "whisper-tiny-random", dest / "llama-tiny-random"
    WhisperForConditionalGeneration(WhisperConfig(**asr)).save_pretrained(whisper_dir)
    shutil.copy2(work / "models" / "asr" / "tokenizer.json", whisper_dir / "tokenizer.json")
    lm = json.loads((work / "models" / "lm" / "text_lm" / "config.json").read_text())
    lm = {k: v for k, v in lm.items() if k not in ("architectures", "transformers_version")}
    LlamaForCausalLM(LlamaConfig(**lm)).save_pretrained(llama_dir)
    shutil.copy2(work / "models" / "lm" / "text_lm" / "tokenizer.json", llama_dir / "tokenizer.json")
    return whisper_dir, llama_dir


def test_pretrained_weights_from_local_folders(smoke_study, tmp_path):
    """The paper profile's pretrained path: tiny random Whisper and Llama folders, pointed at by
    asr.pretrained_path and lm.text_lm.pretrained_path, carry asr -> tokenizer -> taslm (a few steps each) in a
    copy of the smoke study; nothing is downloaded (HF offline)."""
    import yaml

    work, env, _ = smoke_study
    copy = tmp_path / "study"
    shutil.copytree(work, copy, symlinks=True)
    env = {**env, "PYTHONPATH": str(copy / "src")}
    whisper_dir, llama_dir = _tiny_pretrained(copy, tmp_path)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["asr"]["pretrained_path"] = str(whisper_dir)
    params["lm"]["text_lm"]["pretrained_path"] = str(llama_dir)
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = run([str(BIN / "dvc"), "repro", "taslm"], copy, env)
    for stage in ("asr", "tokenizer", "taslm"):
        assert f"Running stage '{stage}'" in log, log[-3000:]
    assert "Running stage 'units'" not in log  # only the stages that read the pretrained weights rerun
    # the ASR is the pretrained Whisper's weights (not trained here), and TASLM was built on the local Llama
    from safetensors.torch import load_file

    saved = load_file(copy / "models" / "asr" / "model.safetensors")
    original = load_file(whisper_dir / "model.safetensors")
    shared = [k for k in original if k in saved]
    assert shared and all(torch_equal(saved[k], original[k]) for k in shared)
    assert (copy / "models" / "lm" / "text_lm" / "pretrained_path.txt").read_text().strip() == str(llama_dir)
    metrics = json.loads((copy / "outputs" / "taslm" / "metrics.json").read_text())
    assert metrics["continuation"]["prompts"] > 0


def torch_equal(a, b) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.equal(a, b))
