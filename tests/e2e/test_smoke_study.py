"""The real pipeline, end to end, on the smoke profile: materialise + `dvc repro` in a temporary copy."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

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
    lm = json.loads((work / "models" / "lm_pretrain" / "text_lm" / "config.json").read_text())
    lm = {k: v for k, v in lm.items() if k not in ("architectures", "transformers_version")}
    LlamaForCausalLM(LlamaConfig(**lm)).save_pretrained(llama_dir)
    shutil.copy2(work / "models" / "lm_pretrain" / "text_lm" / "tokenizer.json", llama_dir / "tokenizer.json")
    return whisper_dir, llama_dir


def _study_copy(smoke_study, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the finished smoke study in tmp_path/study -> (its folder, the environment to run it in)."""
    work, env, _ = smoke_study
    copy = tmp_path / "study"
    shutil.copytree(work, copy, symlinks=True)
    return copy, {**env, "PYTHONPATH": str(copy / "src")}


def _edit_params(study: Path, edit) -> dict:
    """Apply edit(params) to study/params.yaml -> the params written."""
    import yaml

    params = yaml.safe_load((study / "params.yaml").read_text())
    edit(params)
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def _point_units_at_tiny_s3(params: dict, s3_path: Path) -> None:
    from s3_checkpoint import S3_CODES, S3_NAME  # tests/s3_checkpoint.py

    # the smoke study's unit space is the tiny S3 tokenizer's: 25 units per second, 64 codes
    assert (params["units"]["rate_hz"], params["units"]["codebook_size"]) == (25, S3_CODES)
    params["units"].update(backend="s3_pretrained", s3_path=str(s3_path), s3_name=S3_NAME)
    # the tokenizer's stretch augmentation makes units with the trained unit tokenizer only (as profiles/paper.yaml)
    params["tokenizer"]["stretch_augment"]["share"] = 0.0


def _assert_units_from_s3(study: Path, trained_study: Path, s3_path: Path) -> None:
    """Every prepared split's data/units are the local S3 checkpoint's: one stream per utterance, 25 units per
    second, codes below its 64, exactly what that checkpoint gives for the prepared audio, and not the trained
    tokenizer's units of trained_study."""
    from s3_checkpoint import S3_CODES, S3_NAME, TINY_S3

    from taste.data.audio_io import read_audio
    from taste.data.records import read_manifest
    from taste.units.extract import load_units
    from taste.units.s3_pretrained import load_s3_tokenizer, s3_units

    metrics = json.loads((study / "outputs" / "units" / "metrics.json").read_text())
    assert metrics["backend"] == "s3_pretrained"
    tokenizer = load_s3_tokenizer(s3_path, S3_NAME)
    assert tokenizer.config == TINY_S3  # read back from the file alone, as the stage reads it
    manifests = sorted((study / "data" / "prepared").glob("*.jsonl"))
    splits = {m.stem: read_manifest(m) for m in manifests
              if (study / "data" / "units" / f"{m.stem}.safetensors").exists()}
    assert {"train", "dev", "test"} <= splits.keys()
    assert metrics["utterances_per_split"] == {k: len(v) for k, v in splits.items()}
    for split, utts in splits.items():
        units = load_units(study / "data" / "units" / f"{split}.safetensors")
        trained = load_units(trained_study / "data" / "units" / f"{split}.safetensors")
        assert units.keys() == {u.id for u in utts} == trained.keys(), split
        assert any(not torch_equal(units[k], trained[k]) for k in units), f"{split}: still the trained units"
        for utt in utts:
            assert abs(len(units[utt.id]) - 25 * utt.duration) <= 1, utt.id
            assert 0 <= int(units[utt.id].min()) and int(units[utt.id].max()) < S3_CODES, utt.id
        assert len(torch.unique(torch.cat([units[u.id] for u in utts]))) > 1, f"{split}: one code only"
    sample = splits["test"][:3]
    expected = s3_units(tokenizer, [read_audio(study / u.audio_path, 16000) for u in sample])
    test_units = load_units(study / "data" / "units" / "test.safetensors")
    assert all(torch_equal(test_units[u.id].long(), e) for u, e in zip(sample, expected))


def test_pretrained_weights_from_local_folders(smoke_study, tmp_path):
    """The paper profile's pretrained path: tiny random Whisper and Llama folders, pointed at by
    asr.pretrained_path and lm.text_lm.pretrained_path, carry asr -> tokenizer -> taslm (a few steps each) in a
    copy of the smoke study; nothing is downloaded (HF offline)."""
    copy, env = _study_copy(smoke_study, tmp_path)
    whisper_dir, llama_dir = _tiny_pretrained(copy, tmp_path)

    def edit(params):
        params["asr"]["pretrained_path"] = str(whisper_dir)
        params["lm"]["text_lm"]["pretrained_path"] = str(llama_dir)

    _edit_params(copy, edit)
    log = run([str(BIN / "dvc"), "repro", "taslm"], copy, env)
    for stage in ("asr", "lm_pretrain", "tokenizer", "taslm"):
        assert f"Running stage '{stage}'" in log, log[-3000:]
    assert "Running stage 'units'" not in log  # only the stages that read the pretrained weights rerun
    # the ASR is the pretrained Whisper's weights (not trained here), and TASLM was built on the local Llama
    from safetensors.torch import load_file

    saved = load_file(copy / "models" / "asr" / "model.safetensors")
    original = load_file(whisper_dir / "model.safetensors")
    shared = [k for k in original if k in saved]
    assert shared and all(torch_equal(saved[k], original[k]) for k in shared)
    assert (copy / "models" / "lm_pretrain" / "text_lm" / "pretrained_path.txt").read_text().strip() == str(llama_dir)
    metrics = json.loads((copy / "outputs" / "taslm" / "metrics.json").read_text())
    assert metrics["continuation"]["prompts"] > 0


def test_s3_units_from_a_local_checkpoint(smoke_study, tmp_path):
    """The paper profile's S3 units (units.backend s3_pretrained): a tiny random-weight S3 tokenizer saved as
    .safetensors (its config in the file's metadata), pointed at by units.s3_path, makes every split's units in the
    units stage (its dvc command, `taste stage units`), and the vocoder and tokenizer stages (`dvc repro -s`) train
    on those units. The units stage runs as its command here (the next test runs it under `dvc repro`)."""
    pytest.importorskip("s3tokenizer", reason="PyPI s3tokenizer (+ onnx) is not installed")
    import yaml

    from s3_checkpoint import S3_NAME, write_tiny_s3_checkpoint  # tests/s3_checkpoint.py

    work = smoke_study[0]
    copy, env = _study_copy(smoke_study, tmp_path)
    s3_path = write_tiny_s3_checkpoint(tmp_path / "s3-tiny-random" / f"{S3_NAME}.safetensors")
    _edit_params(copy, lambda params: _point_units_at_tiny_s3(params, s3_path))
    run([str(BIN / "taste"), "stage", "units"], copy, env)
    _assert_units_from_s3(copy, work, s3_path)
    for stage in ("vocoder", "tokenizer"):  # dvc clears each stage's outputs, runs it and records what it read
        log = run([str(BIN / "dvc"), "repro", "--single-item", stage], copy, env)
        assert f"Running stage '{stage}'" in log, log[-3000:]
    lock, old_lock = (yaml.safe_load((study / "dvc.lock").read_text())["stages"] for study in (copy, work))
    read = {stage: next(d["md5"] for d in lock[stage]["deps"] if d["path"] == "data/units")
            for stage in ("vocoder", "tokenizer")}
    old_units = next(o["md5"] for o in old_lock["units"]["outs"] if o["path"] == "data/units")
    assert read["vocoder"] == read["tokenizer"] != old_units  # both read the S3 units, not the trained ones
    # the vocoder trained on them: as many utterances as the smoke study's vocoder, other data
    fingerprint = lambda study: [json.loads(f.read_text())["fingerprint"]  # noqa: E731
                                 for f in (study / "models" / "vocoder" / "training").glob("*/fingerprint.json")]
    (ours,), (theirs,) = fingerprint(copy), fingerprint(work)  # dvc cleared the copied run folder
    assert ours["n"] == theirs["n"] and ours["data"] != theirs["data"]
    # the tokenizer's decoder learned to predict them (its S3 topline row is the vocoder on these units)
    metrics = json.loads((copy / "outputs" / "tokenizer" / "metrics.json").read_text())
    assert metrics["table"]["s3_topline"]["frame_rate_hz"] == 25.0
    history = [json.loads(line)
               for line in (copy / "models" / "taste" / "run_rvq" / "history.jsonl").read_text().splitlines()]
    assert history and all(0.0 <= r["unit_acc"] <= 1.0 for r in history if "unit_acc" in r)


def test_pretrained_weights_and_s3_units_through_dvc(smoke_study, tmp_path):
    """The whole paper profile's pretrained path under `dvc repro taslm`: tiny S3 (units), Whisper (asr) and Llama
    (text LM) from local files carry units -> vocoder / asr -> tokenizer -> taslm, and the stages downstream of the
    units record the S3 units as their input in dvc.lock."""
    pytest.importorskip("s3tokenizer", reason="PyPI s3tokenizer (+ onnx) is not installed")
    import yaml

    from s3_checkpoint import S3_CODES, S3_NAME, write_tiny_s3_checkpoint

    work = smoke_study[0]
    copy, env = _study_copy(smoke_study, tmp_path)
    whisper_dir, llama_dir = _tiny_pretrained(copy, tmp_path)
    s3_path = write_tiny_s3_checkpoint(tmp_path / "s3-tiny-random" / f"{S3_NAME}.safetensors")

    def edit(params):
        _point_units_at_tiny_s3(params, s3_path)
        params["asr"]["pretrained_path"] = str(whisper_dir)
        params["lm"]["text_lm"]["pretrained_path"] = str(llama_dir)

    _edit_params(copy, edit)
    res = subprocess.run([str(BIN / "dvc"), "repro", "taslm"], cwd=copy, env=env, capture_output=True, text=True)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-6000:]
    for stage in ("units", "vocoder", "asr", "lm_pretrain", "tokenizer", "taslm"):
        assert f"Running stage '{stage}'" in log, log[-3000:]
    _assert_units_from_s3(copy, work, s3_path)
    # the units stage's model output records the checkpoint it used (dvc saved it), and the streams their unit space
    record = json.loads((copy / "models" / "units" / "s3_tokenizer.json").read_text())
    assert record["path"] == str(s3_path) and record["codebook_size"] == S3_CODES and len(record["sha256"]) == 64
    assert json.loads((copy / "data" / "units" / "unit_space.json").read_text()) == {
        "codebook_size": S3_CODES, "rate_hz": 25, "backend": "s3_pretrained"}
    lock = yaml.safe_load((copy / "dvc.lock").read_text())["stages"]
    units_md5 = next(o["md5"] for o in lock["units"]["outs"] if o["path"] == "data/units")
    readers = {stage: d["md5"] for stage, entry in lock.items() for d in entry.get("deps", [])
               if d["path"] == "data/units"}
    assert {"vocoder", "lm_pretrain", "tokenizer"} <= readers.keys()
    assert all(md5 == units_md5 for md5 in readers.values()), readers
    metrics = json.loads((copy / "outputs" / "taslm" / "metrics.json").read_text())
    assert metrics["continuation"]["prompts"] > 0


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b))
