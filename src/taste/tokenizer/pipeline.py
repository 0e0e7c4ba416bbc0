"""The tokenizer stage, step by step, for the notebook and the benchmark (entry-point helpers: they read params)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from taste.tokenizer.config import config_from_params
from taste.tokenizer.data import TasteItem, build_items, load_units
from taste.tokenizer.model import TasteTokenizer
from taste.tokenizer.train import StageSteps, train_all
from taste.training import TrainConfig

ABLATIONS = ("other_mode", "last_layer_values")
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


def stage_paths(params: dict[str, Any]) -> StagePaths:
    p = params["shared"]["paths"]
    models = Path(p["models"]) / "taste"
    return StagePaths(Path(p["prepared"]), Path(p["units"]), Path(p["models"]) / "asr", Path(p["models"]) / "vocoder",
                      models, models / "tokenizer", Path(p["taste_codes"]))


def other_mode(params: dict[str, Any]) -> str:
    return "prefix" if params["tokenizer"]["conditioning"] == "word_sync" else "word_sync"


def build_model(params: dict[str, Any], paths: StagePaths, *, conditioning: str | None = None,
                value_layer: int | None = None) -> TasteTokenizer:
    """A fresh tokenizer around the trained ASR Whisper (aggregator initialised from its decoder)."""
    from taste.asr.bpe import load_bpe
    from taste.asr.whisper import load_asr

    asr, bpe = load_asr(paths.asr), load_bpe(paths.asr)
    cfg = config_from_params(params, asr.config, conditioning=conditioning, value_layer=value_layer)
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


def train_config(params: dict[str, Any]) -> TrainConfig:
    t = params["tokenizer"]["train"]
    return TrainConfig(steps=1, batch_size=t["batch_size"], lr=t["lr"], warmup_steps=t["warmup_steps"],
                       seed=params["shared"]["seed"], mixed_precision=params["shared"].get("mixed_precision", "no"),
                       checkpoint_every=200, log_every=20)


def train_main(params: dict[str, Any], model: TasteTokenizer, items: list[TasteItem], paths: StagePaths) -> list[dict]:
    """text-only -> no VQ -> RVQ; the final model is also saved to paths.final."""
    t = params["tokenizer"]["train"]
    steps = StageSteps(t["text_only_steps"], t["no_vq_steps"], t["rvq_steps"])
    infos = train_all(model, items, steps, train_config(params), paths.models,
                      align_weight=float(params["tokenizer"]["align_weight"]))
    model.save_pretrained(paths.final)
    return infos


def train_ablation(params: dict[str, Any], name: str, items: list[TasteItem], paths: StagePaths) -> list[dict]:
    """One ablation row, trained from the ASR init for `ablation_steps` (half without VQ, half with RVQ)."""
    from taste.tokenizer.data import with_last_layer_values

    n = int(params["tokenizer"]["ablation_steps"])
    if name == "other_mode":
        model = build_model(params, paths, conditioning=other_mode(params))
    elif name == "last_layer_values":
        model, items = build_model(params, paths, value_layer=-1), with_last_layer_values(items)
    else:
        raise ValueError(f"unknown ablation {name!r}; expected one of {ABLATIONS}")
    return train_all(model, items, StageSteps(0, n // 2, n - n // 2), train_config(params), paths.models / name,
                     align_weight=float(params["tokenizer"]["align_weight"]))


def launch_ablations(params_path: str, cache: Path, log: Path) -> subprocess.Popen:
    """Train both ablations in a second 1-thread process (two 1-thread jobs beat one 2-thread job here)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "taste.tokenizer.ablation", "--params", params_path, "--cache", str(cache)]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)


def load_trained(paths: StagePaths, name: str) -> TasteTokenizer:
    """'text_only' | 'no_vq' | 'rvq' (main run) or an ablation name (its RVQ model)."""
    folder = paths.models / name if name in ("text_only", "no_vq", "rvq") else paths.models / name / "rvq"
    return TasteTokenizer.from_pretrained(folder)


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
