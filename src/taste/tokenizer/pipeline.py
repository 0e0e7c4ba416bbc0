"""The tokenizer stage, step by step, for the notebook and the benchmark (entry-point helpers: they read params)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from taste.config import set_threads
from taste.tokenizer.augment import StretchAugment, stretch_plan, stretched_items
from taste.tokenizer.config import config_from_params
from taste.tokenizer.data import TasteItem, build_items, save_items
from taste.tokenizer.model import WEIGHTS_FILE, TasteTokenizer
from taste.tokenizer.train import StageSteps, train_all
from taste.training import TrainConfig
from taste.training.loop import train_config
from taste.units.extract import load_units

ABLATIONS = ("other_mode", "last_layer_values", "other_duration_feature")
SPLITS = ("train", "dev", "test", "swap_global", "swap_local")


@dataclass(frozen=True)
class StagePaths:
    prepared: Path
    units: Path
    asr: Path
    vocoder: Path
    models: Path        # models/taste: sub-stage folders, ablations, item cache
    final: Path         # models/taste/tokenizer: the model the CLI, TASLM and swap use
    codes: Path         # data/taste_codes
    unit_model: Path = Path("models/units")  # the trained unit tokenizer (stretch augmentation: units of new audio)
    audio_root: Path = Path(".")             # manifests' audio_path values are relative to this folder


def stage_paths(params: dict[str, Any]) -> StagePaths:
    p = params["shared"]["paths"]
    models = Path(p["models"]) / "taste"
    return StagePaths(Path(p["prepared"]), Path(p["units"]), Path(p["models"]) / "asr", Path(p["models"]) / "vocoder",
                      models, models / "tokenizer", Path(p["taste_codes"]), Path(p["models"]) / "units")


def other_mode(params: dict[str, Any]) -> str:
    return "prefix" if params["tokenizer"]["conditioning"] == "word_sync" else "word_sync"


def other_duration_feature(params: dict[str, Any]) -> str:
    """The ablation row's duration feature: none when the main model has one, attention_width when it has none."""
    return "none" if params["tokenizer"]["duration_feature"] != "none" else "attention_width"


def build_model(params: dict[str, Any], paths: StagePaths, *, conditioning: str | None = None,
                value_layer: int | None = None, duration_feature: str | None = None) -> TasteTokenizer:
    """A fresh tokenizer around the trained ASR Whisper (aggregator initialised from its decoder)."""
    from taste.asr.bpe import load_bpe
    from taste.asr.whisper import load_asr

    asr, bpe = load_asr(paths.asr), load_bpe(paths.asr)
    cfg = config_from_params(params, asr.config, conditioning=conditioning, value_layer=value_layer,
                             duration_feature=duration_feature)
    torch.manual_seed(params["shared"]["seed"])
    return TasteTokenizer.from_asr(cfg, asr, bpe, stage="text_only")


def split_items(model: TasteTokenizer, params: dict[str, Any], paths: StagePaths, split: str,
                limit: int | None = None) -> list[TasteItem]:
    """Items of one split (frozen-encoder states cached in memory)."""
    from taste.data.loaders import FeatureStore
    from taste.data.records import read_manifest

    utts = read_manifest(paths.prepared / f"{split}.jsonl")[:limit]
    mels = FeatureStore(paths.prepared / "features" / f"{split}.safetensors")
    speakers = FeatureStore(paths.prepared / "speaker_embeddings.safetensors")
    units = load_units(paths.units / f"{split}.safetensors")
    return build_items(model, utts, mels, units, speakers, float(params["units"]["rate_hz"]))


def with_stretched(model: TasteTokenizer, params: dict[str, Any], paths: StagePaths,
                   train: list[TasteItem]) -> list[TasteItem]:
    """The training set: the train split's items (`train`), plus stretched copies of some of them when
    `tokenizer.stretch_augment.share` > 0 (taste.tokenizer.augment; train split only)."""
    settings = StretchAugment.from_params(params["tokenizer"]["stretch_augment"])
    if settings.share <= 0:
        return list(train)
    return list(train) + stretched_train_items(model, params, paths, settings)


def stretched_train_items(model: TasteTokenizer, params: dict[str, Any], paths: StagePaths,
                          settings: StretchAugment) -> list[TasteItem]:
    """Items of the stretch plan over the train split: audio read as every command reads it, log-mel as the
    prepare stage's features, units from the study's trained unit tokenizer (paths.unit_model)."""
    from taste.data.features import log_mel
    from taste.data.loaders import FeatureStore
    from taste.data.prepare import validation_config
    from taste.data.records import read_manifest
    from taste.data.validate import read_speech
    from taste.units.extract import extract_units
    from taste.units.model import UnitTokenizer
    from taste.vocoder.pipeline import mel_config

    if params["units"]["backend"] != "trained":
        raise ValueError(f"tokenizer.stretch_augment needs the study's trained unit tokenizer to make units of the "
                         f"stretched audio; units.backend is {params['units']['backend']!r} (set "
                         f"tokenizer.stretch_augment.share: 0)")
    utts = [u for u in read_manifest(paths.prepared / "train.jsonl") if u.words]
    plan = stretch_plan(utts, settings, int(params["shared"]["seed"]))
    unit_model = UnitTokenizer.from_pretrained(paths.unit_model).eval()
    mel_cfg = mel_config(params)
    checks = validation_config(params)  # read as the prepare stage validated it (no command minimum on top)

    def mel_of(wav: np.ndarray) -> torch.Tensor:  # float16, as the prepare stage stores its features
        return log_mel(torch.from_numpy(wav), mel_cfg).half()

    @torch.no_grad()
    def units_of(mel: torch.Tensor) -> torch.Tensor:  # as the units stage makes every split's units
        return extract_units(unit_model, {"edited": mel}, ["edited"])["edited"].long()

    return stretched_items(model, plan, lambda u: read_speech(str(paths.audio_root / u.audio_path), u.text, checks,
                                                              min_seconds=0.0),
                           mel_of, units_of, FeatureStore(paths.prepared / "speaker_embeddings.safetensors"),
                           float(params["units"]["rate_hz"]), settings.crossfade_s)


def substage_train_config(params: dict[str, Any]) -> TrainConfig:
    """The optimiser settings the tokenizer's sub-stages share (`base` of train_all): `train_config` of
    `tokenizer.train` with a placeholder `steps` (the block has per-sub-stage step counts; train_all sets each
    sub-stage's steps and caps its warmup)."""
    return train_config({"train": {**params["tokenizer"]["train"], "steps": 1}}, params)


def training_aids(params: dict[str, Any]) -> dict[str, float]:
    """The weights of the training-only losses that read ground-truth word timings (train_all's keywords):
    `tokenizer.align_weight` (cross-attention vs word spans), `tokenizer.assign_weight` (each frame's word, read
    off the cross-attention) and `tokenizer.duration_weight` (word vector vs log duration); plus
    `tokenizer.length_weight`, the decoder's length head loss (word unit counts of the target stream; used only
    when `tokenizer.decoder.length_head` is on)."""
    tp = params["tokenizer"]
    return {"align_weight": float(tp["align_weight"]), "duration_weight": float(tp["duration_weight"]),
            "assign_weight": float(tp["assign_weight"]), "length_weight": float(tp["length_weight"])}


def train_main(params: dict[str, Any], model: TasteTokenizer, items: list[TasteItem], paths: StagePaths) -> list[dict]:
    """text-only -> no VQ -> RVQ; the final model is also saved to paths.final."""
    t = params["tokenizer"]["train"]
    steps = StageSteps(t["text_only_steps"], t["no_vq_steps"], t["rvq_steps"])
    infos = train_all(model, items, steps, substage_train_config(params), paths.models, **training_aids(params))
    model.save_pretrained(paths.final)
    return infos


def wait_for_substage(folder: Path, timeout_s: float, poll_s: float = 5.0) -> Path:
    """Block until train_substage has finished `folder` (its weights and train_info.json exist); the parallel
    ablation process waits so for the main run's text-only model. Raises TimeoutError naming the folder."""
    deadline = time.monotonic() + timeout_s
    while not ((folder / WEIGHTS_FILE).is_file() and (folder / "train_info.json").is_file()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{folder}: the main run's sub-stage did not finish within {timeout_s:.0f} s "
                               f"(tokenizer.ablation_wait_s); train the main model first")
        time.sleep(poll_s)
    return folder


def start_from(model: TasteTokenizer, folder: Path) -> TasteTokenizer:
    """Load a finished sub-stage's weights into a model that differs from it only by the duration feature
    (the duration embedding is the only key allowed to be missing or unexpected)."""
    missing, unexpected = model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=False)
    stray = [k for k in (*missing, *unexpected) if not k.startswith("aggregator.duration_embed.")]
    if stray:
        raise ValueError(f"{folder}: weights do not match the ablation's model beyond the duration feature: "
                         f"{stray[:5]}")
    return model


def train_ablation(params: dict[str, Any], name: str, items: list[TasteItem], paths: StagePaths) -> list[dict]:
    """One ablation row. other_mode / last_layer_values: from the ASR init for `ablation_steps` (half without VQ,
    half with RVQ). other_duration_feature: the main run's schedule (no VQ, then RVQ, the main step counts) from the
    main run's own text-only model, so it differs from the main model only by `tokenizer.duration_feature`."""
    from taste.tokenizer.data import with_last_layer_values

    tp = params["tokenizer"]
    n = int(tp["ablation_steps"])
    if name == "other_duration_feature":
        model = build_model(params, paths, duration_feature=other_duration_feature(params))
        start_from(model, wait_for_substage(paths.models / "text_only", float(tp["ablation_wait_s"])))
        steps = StageSteps(0, tp["train"]["no_vq_steps"], tp["train"]["rvq_steps"])
        return train_all(model, items, steps, substage_train_config(params), paths.models / name,
                         **training_aids(params))
    if name == "other_mode":
        model = build_model(params, paths, conditioning=other_mode(params))
    elif name == "last_layer_values":
        model, items = build_model(params, paths, value_layer=-1), with_last_layer_values(items)
    else:
        raise ValueError(f"unknown ablation {name!r}; expected one of {ABLATIONS}")
    return train_all(model, items, StageSteps(0, n // 2, n - n // 2), substage_train_config(params),
                     paths.models / name, **training_aids(params))


# Which ablation rows the second process trains while this one trains the main model; the rest train here after
# it. Balanced by the session-16 rerun's sub-stage times at 1 thread: main 948 s (text-only 156, no-VQ 385, RVQ
# 407), other_mode 244 s, last_layer_values 250 s, other_duration_feature 766 s. All three in the second process
# made it the critical path (1260 s vs 948); this split gives about 1010 s there and 1198 s here.
SECOND_PROCESS_ABLATIONS = ("other_mode", "other_duration_feature")


def launch_ablations(params_path: str, cache: Path, log: Path,
                     names: tuple[str, ...] = SECOND_PROCESS_ABLATIONS) -> subprocess.Popen:
    """Train ablation rows in a second 1-thread process (two 1-thread jobs beat one 2-thread job here)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "taste.tokenizer.ablation", "--params", params_path, "--cache", str(cache),
           "--only", *names]
    with log.open("w") as out:  # the child holds its own copy of the file descriptor
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """Terminate a child process (kill it after `timeout_s`) and reap it; nothing when it has already exited."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def train_all_rows(params: dict[str, Any], params_path: str, model: TasteTokenizer, items: list[TasteItem],
                   paths: StagePaths, log: Path, parallel: bool = True) -> list[dict]:
    """The main run (train_main) and every ablation row; returns the main run's infos.

    parallel: this process drops to 1 thread; SECOND_PROCESS_ABLATIONS train in a second 1-thread process
    (launch_ablations) from an item cache under paths.models / "cache", removed once both succeed, and the other
    ablations train here after the main model. If the main run
    raises or is interrupted, the ablation process is terminated and reaped before the error propagates (the cache
    stays, for `python -m taste.tokenizer.ablation --only ...`); the thread count returns to shared.threads either way.
    A failed ablation process raises RuntimeError with the tail of `log`."""
    if not parallel:
        infos = train_main(params, model, items, paths)
        for name in ABLATIONS:
            train_ablation(params, name, items, paths)
        return infos
    cache = paths.models / "cache" / "train.safetensors"
    proc = None
    set_threads(1)
    try:
        save_items(cache, items)
        proc = launch_ablations(params_path, cache, log)
        infos = train_main(params, model, items, paths)
        for name in ABLATIONS:
            if name not in SECOND_PROCESS_ABLATIONS:
                train_ablation(params, name, items, paths)
        if proc.wait() != 0:
            raise RuntimeError("ablation training failed:\n" + log.read_text()[-4000:])
    finally:
        if proc is not None:
            stop_process(proc)
        set_threads(params["shared"]["threads"])
    shutil.rmtree(cache.parent, ignore_errors=True)  # the cache only served the ablation process
    return infos


def trained_folder(paths: StagePaths, name: str) -> Path:
    """The saved folder of 'text_only' | 'no_vq' | 'rvq' (main run) or of an ablation name (its RVQ model)."""
    return paths.models / name if name in ("text_only", "no_vq", "rvq") else paths.models / name / "rvq"


def load_trained(paths: StagePaths, name: str) -> TasteTokenizer:
    """'text_only' | 'no_vq' | 'rvq' (main run) or an ablation name (its RVQ model)."""
    return TasteTokenizer.from_pretrained(trained_folder(paths, name))


def write_codes(model: TasteTokenizer, params: dict[str, Any], paths: StagePaths,
                items_by_split: dict[str, list[TasteItem]]) -> dict[str, int]:
    """data/taste_codes/{split}.safetensors: utt id -> int16 [N_words, n_q]. Returns utterances per split."""
    from taste.data.loaders import save_tensor_map
    from taste.tokenizer.evaluate import encode_items

    counts = {}
    for split, items in items_by_split.items():
        codes = encode_items(model, items)
        save_tensor_map(paths.codes / f"{split}.safetensors", codes)
        counts[split] = len(codes)
    return counts
