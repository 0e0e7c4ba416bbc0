"""Stage 02b as functions: train units(+speaker) -> mel on the train split, then the resynthesis table on test."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from taste.data.audio_io import read_audio
from taste.data.features import MelConfig
from taste.data.loaders import FeatureStore
from taste.data.records import Utterance, read_manifest
from taste.training import TrainResult, train
from taste.units.extract import load_units
from taste.units.pipeline import fresh_run_dir, prepared_paths, train_config
from taste.vocoder.data import UnitMelDataset, collate_units_mel, vocoder_loss
from taste.vocoder.griffin_lim import mel_to_wave
from taste.vocoder.model import UnitVocoder, VocoderConfig


def mel_config(params: dict[str, Any]) -> MelConfig:
    return MelConfig.from_dict(params["shared"]["features"], sample_rate=params["shared"]["sample_rate"])


def vocoder_config(params: dict[str, Any], n_units: int, unit_rate_hz: int) -> VocoderConfig:
    v, feats = params["vocoder"], params["shared"]["features"]
    return VocoderConfig(n_units=n_units, unit_rate_hz=unit_rate_hz,
                         frame_rate_hz=params["shared"]["sample_rate"] // feats["hop_length"], n_mels=feats["n_mels"],
                         d_model=v["d_model"], layers=v["layers"], n_heads=v["n_heads"],
                         conv_layers=v.get("conv_layers", 2), griffin_lim_iters=v["griffin_lim_iters"])


def unit_dataset(params: dict[str, Any], split: str) -> UnitMelDataset:
    root = prepared_paths(params)["root"]
    utts = read_manifest(root / f"{split}.jsonl")
    units = load_units(Path(params["shared"]["paths"]["units"]) / f"{split}.safetensors")
    return UnitMelDataset([u.id for u in utts], units, FeatureStore(prepared_paths(params)["speakers"]),
                          FeatureStore(root / "features" / f"{split}.safetensors"))


def train_vocoder(params: dict[str, Any], model_dir: Path, n_units: int, unit_rate_hz: int, progress: bool = True
                  ) -> tuple[UnitVocoder, TrainResult]:
    """Train on the train split's units (resuming from model_dir/training); save to model_dir."""
    cfg, tcfg = vocoder_config(params, n_units, unit_rate_hz), train_config(params["vocoder"], params)
    data = unit_dataset(params, "train")
    model = UnitVocoder(cfg)
    run_dir = fresh_run_dir(Path(model_dir) / "training", {"model": cfg, "train": tcfg, "n": len(data)})
    result = train(model, data, lambda items: collate_units_mel(items, cfg.upsample), vocoder_loss, tcfg, run_dir,
                   progress=progress)
    model.save_pretrained(model_dir)
    return model, result


def resynthesise(model: UnitVocoder, data: UnitMelDataset, utts: Sequence[Utterance], mel_cfg: MelConfig,
                 n_iter: int) -> dict[str, list[np.ndarray]]:
    """The table's three rows as waveforms: original audio, ground-truth mel -> GL, units -> mel -> GL."""
    rows: dict[str, list[np.ndarray]] = {"original": [], "mel_griffin_lim": [], "units_vocoder": []}
    index = {uid: i for i, uid in enumerate(data.ids)}
    for utt in utts:
        item = data[index[utt.id]]
        rows["original"].append(read_audio(utt.audio_path, mel_cfg.sample_rate))
        rows["mel_griffin_lim"].append(mel_to_wave(item["mel"], mel_cfg, n_iter))
        mel = model.units_to_mel(item["units"][None], item["speaker"][None])[0]
        rows["units_vocoder"].append(mel_to_wave(mel, mel_cfg, n_iter))
    return rows


@torch.no_grad()
def mel_l1(model: UnitVocoder, data: UnitMelDataset, batch_size: int = 16) -> float:
    """Mean L1 of predicted vs ground-truth log-mel over a split (the regression model's own measure)."""
    total, n = 0.0, 0
    for start in range(0, len(data), batch_size):
        batch = collate_units_mel([data[i] for i in range(start, min(len(data), start + batch_size))],
                                  model.cfg.upsample)
        loss, _ = vocoder_loss(model.eval(), batch)
        total, n = total + float(loss) * len(batch["ids"]), n + len(batch["ids"])
    return total / max(n, 1)


def unit_space(params: dict[str, Any]) -> tuple[int, int]:
    """(codebook size, units per second) of the unit streams stage 02a wrote (trained tokenizer or S3)."""
    u = params["units"]
    if u.get("backend", "trained") == "s3_pretrained":
        from taste.units.s3_pretrained import s3_rate_hz

        return 4096, s3_rate_hz(u.get("s3_name", "speech_tokenizer_v1_25hz"))
    return int(u["codebook_size"]), int(u["rate_hz"])


def corpus_sentences(params: dict[str, Any], splits: Sequence[str] = ("train", "dev", "test")) -> list[str]:
    """The speech corpus's own transcripts: the recogniser's language model is built from them."""
    root = prepared_paths(params)["root"]
    return sorted({u.text for s in splits if (root / f"{s}.jsonl").exists() for u in read_manifest(root / f"{s}.jsonl")})


def evaluation_subset(utts: Sequence[Utterance], n: int) -> list[Utterance]:
    """n utterances spread evenly over the split (deterministic), so every test speaker is represented."""
    if n >= len(utts):
        return list(utts)
    return [utts[i] for i in np.linspace(0, len(utts) - 1, n).round().astype(int)]
