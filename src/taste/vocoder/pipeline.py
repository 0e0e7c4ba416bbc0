"""Stage 02b as functions: train units(+speaker) -> mel + F0 on the train split, then the resynthesis table on test."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from taste.data.audio_io import read_audio
from taste.data.features import MelConfig
from taste.data.loaders import FeatureStore, load_pitch, prepared_paths
from taste.data.records import Utterance, read_manifest
from taste.training import TrainResult, train
from taste.training.checkpoint import code_digest, dataset_digest, fresh_run_dir
from taste.training.loop import train_config
from taste.units.extract import load_units
from taste.units.model import padding_mask
from taste.units.pipeline import UNIT_SPACE_FILE, read_unit_space
from taste.vocoder.data import UnitMelDataset, collate_units_mel, vocoder_loss
from taste.vocoder.model import UnitVocoder, VocoderConfig


def mel_config(params: dict[str, Any]) -> MelConfig:
    return MelConfig.from_dict(params["shared"]["features"], sample_rate=params["shared"]["sample_rate"])


def vocoder_config(params: dict[str, Any], n_units: int, unit_rate_hz: int) -> VocoderConfig:
    v, feats = params["vocoder"], params["shared"]["features"]
    return VocoderConfig(n_units=n_units, unit_rate_hz=unit_rate_hz,
                         frame_rate_hz=params["shared"]["sample_rate"] // feats["hop_length"], n_mels=feats["n_mels"],
                         d_model=v["d_model"], layers=v["layers"], n_heads=v["n_heads"],
                         conv_layers=v["conv_layers"], griffin_lim_iters=v["griffin_lim_iters"],
                         synthesis=v["synthesis"], f0_ref_hz=float(v["f0_ref_hz"]),
                         noise_level=float(v["noise_level"]))


def unit_dataset(params: dict[str, Any], split: str) -> UnitMelDataset:
    root = prepared_paths(params)["root"]
    utts = read_manifest(root / f"{split}.jsonl")
    units = load_units(Path(params["shared"]["paths"]["units"]) / f"{split}.safetensors")
    return UnitMelDataset([u.id for u in utts], units, FeatureStore(prepared_paths(params)["speakers"]),
                          FeatureStore(root / "features" / f"{split}.safetensors"), load_pitch(params, split))


def train_vocoder(params: dict[str, Any], model_dir: Path, n_units: int, unit_rate_hz: int, progress: bool = True
                  ) -> tuple[UnitVocoder, TrainResult]:
    """Train on the train split's units (resuming its run under model_dir/training, keyed by settings, data and
    code); save to model_dir."""
    cfg, tcfg = vocoder_config(params, n_units, unit_rate_hz), train_config(params["vocoder"], params)
    data = unit_dataset(params, "train")
    model = UnitVocoder(cfg)
    pitch_weight = float(params["vocoder"]["pitch_weight"])
    fingerprint = {"model": cfg, "pitch_weight": pitch_weight, "n": len(data), "data": dataset_digest(data),
                   "code": code_digest()}
    run_dir = fresh_run_dir(Path(model_dir) / "training", tcfg, fingerprint)
    result = train(model, data, partial(collate_units_mel, upsample=cfg.upsample),
                   partial(vocoder_loss, pitch_weight=pitch_weight), tcfg, run_dir, progress=progress,
                   fingerprint=fingerprint, lengths=[len(data.units[i]) for i in data.ids])
    model.save_pretrained(model_dir)
    return model, result


def resynthesise(model: UnitVocoder, data: UnitMelDataset, utts: Sequence[Utterance], mel_cfg: MelConfig,
                 n_iter: int) -> dict[str, list[np.ndarray]]:
    """The table's three rows as waveforms: original audio; the vocoder topline (ground-truth mel and F0 through the
    vocoder's synthesis); units -> predicted mel and F0 -> the same synthesis."""
    rows: dict[str, list[np.ndarray]] = {"original": [], "mel_topline": [], "units_vocoder": []}
    index = {uid: i for i, uid in enumerate(data.ids)}
    for utt in utts:
        item = data[index[utt.id]]
        rows["original"].append(read_audio(utt.audio_path, mel_cfg.sample_rate))
        true_f0 = item.get("f0", torch.zeros(item["mel"].shape[-1]))
        rows["mel_topline"].append(model.mel_f0_to_wave(item["mel"], true_f0, mel_cfg, n_iter))
        rows["units_vocoder"].append(model.synthesise(item["units"], item["speaker"], mel_cfg, n_iter))
    return rows


@torch.no_grad()
def mel_l1(model: UnitVocoder, data: UnitMelDataset, batch_size: int = 16) -> float:
    """Mean L1 of predicted vs ground-truth log-mel over a split (the regression model's own measure)."""
    total, n = 0.0, 0
    for start in range(0, len(data), batch_size):
        batch = collate_units_mel([data[i] for i in range(start, min(len(data), start + batch_size))],
                                  model.cfg.upsample)
        _, logs = vocoder_loss(model.eval(), batch, pitch_weight=0.0)
        total, n = total + logs["l1"] * len(batch["ids"]), n + len(batch["ids"])
    return total / max(n, 1)


@torch.no_grad()
def f0_accuracy(model: UnitVocoder, data: UnitMelDataset, batch_size: int = 16) -> dict[str, float]:
    """How well units + speaker predict the utterance's F0 track over a split: voicing error rate, F0 error in
    cents (median |error| on frames voiced in both), and the Pearson r of log-F0 on those frames."""
    wrong = frames = 0
    errors, pred_log, true_log = [], [], []
    for start in range(0, len(data), batch_size):
        batch = collate_units_mel([data[i] for i in range(start, min(len(data), start + batch_size))],
                                  model.cfg.upsample)
        if "f0" not in batch:
            return {}
        _, f0 = model.predict(batch["units"], batch["speaker"], batch["unit_lengths"])
        valid = padding_mask(batch["mel_lengths"], f0.shape[-1])
        truth = batch["f0"]
        wrong += int(((f0 > 0) != (truth > 0))[valid].sum())
        frames += int(valid.sum())
        both = valid & (f0 > 0) & (truth > 0)
        errors.append(1200.0 * torch.log2(f0[both] / truth[both]))
        pred_log.append(torch.log2(f0[both]))
        true_log.append(torch.log2(truth[both]))
    err, p, t = torch.cat(errors), torch.cat(pred_log), torch.cat(true_log)
    r = float(torch.corrcoef(torch.stack([p, t]))[0, 1]) if len(p) > 2 else float("nan")
    return {"voicing_error": wrong / max(frames, 1), "f0_abs_error_cents": float(err.abs().median()) if len(err) else
            float("nan"), "log_f0_r": r}


def unit_space(params: dict[str, Any]) -> tuple[int, int]:
    """(codebook size, units per second) of the unit streams stage 02a wrote (trained tokenizer or S3): params'
    units.codebook_size and units.rate_hz, which every unit model is sized by, checked against what the units stage
    recorded beside the streams (units.pipeline.write_unit_space) when it did. A mismatch (streams from other
    settings) -> ValueError naming the file."""
    u = params["units"]
    expected = int(u["codebook_size"]), int(u["rate_hz"])
    units_root = Path(params["shared"]["paths"]["units"])
    space = read_unit_space(units_root)
    if space is not None and (space["codebook_size"], space["rate_hz"]) != expected:
        raise ValueError(f"{units_root / UNIT_SPACE_FILE}: the unit streams have {space['codebook_size']} codes at "
                         f"{space['rate_hz']} Hz ({space['backend']}) but params say units.codebook_size "
                         f"{expected[0]}, units.rate_hz {expected[1]}: rerun the units stage or fix params.yaml")
    return expected


def corpus_sentences(params: dict[str, Any], splits: Sequence[str] = ("train", "dev", "test")) -> list[str]:
    """The speech corpus's own transcripts: the recogniser's language model is built from them."""
    root = prepared_paths(params)["root"]
    return sorted({u.text for s in splits if (root / f"{s}.jsonl").exists() for u in read_manifest(root / f"{s}.jsonl")})


def evaluation_subset(utts: Sequence[Utterance], n: int) -> list[Utterance]:
    """n utterances spread evenly over the split (deterministic), so every test speaker is represented."""
    if n >= len(utts):
        return list(utts)
    return [utts[i] for i in np.linspace(0, len(utts) - 1, n).round().astype(int)]
