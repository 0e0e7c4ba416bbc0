"""Stage 02a as functions: build configs from params, train the unit tokenizer, evaluate it, write unit streams.

Entry points (notebook, CLI, benchmark) pass the params dict from taste.config.load_params; nothing here reads files
other than the prepared data it is pointed at.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taste.data.audio_io import read_audio
from taste.data.loaders import FeatureStore, load_pitch, prepared_paths
from taste.data.records import read_manifest
from taste.training import TrainResult, train
from taste.training.checkpoint import code_digest, dataset_digest, fresh_run_dir
from taste.training.loop import train_config
from taste.units.data import MelPhoneDataset, collate_mel_phones, unit_tokenizer_loss
from taste.units.extract import extract_units, save_units
from taste.units.model import UnitTokenizer, UnitTokenizerConfig
from taste.units.phones import PhoneVocab, load_phone_vocab
from taste.units.pitch_labels import PitchClasses, speaker_reference_f0

SPLITS = ("train", "dev", "test", "swap_global", "swap_local")


def unit_config(params: dict[str, Any], n_phones: int) -> UnitTokenizerConfig:
    """UnitTokenizerConfig from params["units"] and params["shared"]["features"]."""
    u, feats = params["units"], params["shared"]["features"]
    return UnitTokenizerConfig(
        n_mels=feats["n_mels"], frame_rate_hz=params["shared"]["sample_rate"] // feats["hop_length"],
        rate_hz=u["rate_hz"], d_model=u["d_model"], encoder_layers=u["encoder_layers"], head_layers=u["head_layers"],
        n_heads=u["n_heads"], codebook_size=u["codebook_size"], commitment_weight=u["commitment_weight"],
        ema_decay=u["ema_decay"], dead_code_threshold=u["dead_code_threshold"],
        inter_ctc_weight=u["inter_ctc_weight"], frame_phone_weight=u["frame_phone_weight"], n_phones=n_phones,
        frame_pitch_weight=u["frame_pitch_weight"], pitch_classes=u["pitch_classes"],
        pitch_step_semitones=u["pitch_step_semitones"])


def pitch_dataset_args(cfg: UnitTokenizerConfig, params: dict[str, Any], split: str, utts) -> dict[str, Any]:
    """MelPhoneDataset keyword arguments for pitch labels (none when cfg.frame_pitch_weight is 0)."""
    if cfg.frame_pitch_weight <= 0:
        return {}
    pitch = load_pitch(params, split)
    return {"pitch": pitch, "pitch_refs": speaker_reference_f0(utts, pitch),
            "pitch_classes": PitchClasses(cfg.pitch_classes, cfg.pitch_step_semitones)}


def load_split(params: dict[str, Any], split: str):
    """(utterances, FeatureStore) of a prepared split."""
    root = prepared_paths(params)["root"]
    return read_manifest(root / f"{split}.jsonl"), FeatureStore(root / "features" / f"{split}.safetensors")


def train_unit_tokenizer(params: dict[str, Any], model_dir: Path, progress: bool = True
                         ) -> tuple[UnitTokenizer, PhoneVocab, TrainResult]:
    """Train on the train split (resuming its run under model_dir/training, keyed by settings, data and code), save to model_dir (config.json + safetensors)."""
    vocab = load_phone_vocab(prepared_paths(params)["phones"])
    cfg, tcfg = unit_config(params, vocab.n_phones), train_config(params["units"], params)
    utts, feats = load_split(params, "train")
    model = UnitTokenizer(cfg)
    data = MelPhoneDataset(utts, feats, vocab, cfg.stride, cfg.rate_hz, **pitch_dataset_args(cfg, params, "train", utts))
    fingerprint = {"model": cfg, "phones": list(vocab.phones), "n": len(data), "data": dataset_digest(data),
                   "code": code_digest()}
    run_dir = fresh_run_dir(Path(model_dir) / "training", tcfg, fingerprint)
    result = train(model, data, collate_mel_phones, unit_tokenizer_loss, tcfg, run_dir,
                   progress=progress, fingerprint=fingerprint, lengths=[u.duration for u in utts])
    model.save_pretrained(model_dir)
    (Path(model_dir) / "phones.json").write_text(json.dumps(list(vocab.phones)), encoding="utf-8")
    return model, vocab, result


UNIT_SPACE_FILE = "unit_space.json"


def write_unit_space(units_root: str | Path, codebook_size: int, rate_hz: int, backend: str) -> Path:
    """data/units/unit_space.json: the codebook size and rate of the unit streams beside it, and which backend made
    them, so every reader sizes its unit embeddings from the streams themselves (read_unit_space)."""
    path = Path(units_root) / UNIT_SPACE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"codebook_size": int(codebook_size), "rate_hz": int(rate_hz), "backend": backend},
                               indent=2) + "\n", encoding="utf-8")
    return path


def read_unit_space(units_root: str | Path) -> dict[str, Any] | None:
    """What write_unit_space recorded ({"codebook_size", "rate_hz", "backend"}), or None when the units folder has no
    record (unit streams written before it existed). A record that is not that -> ValueError naming the file."""
    path = Path(units_root) / UNIT_SPACE_FILE
    if not path.is_file():
        return None
    try:
        space = json.loads(path.read_text(encoding="utf-8"))
        return {"codebook_size": int(space["codebook_size"]), "rate_hz": int(space["rate_hz"]),
                "backend": str(space["backend"])}
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a unit-space record ({e}); rerun the units stage") from e


def write_unit_streams(model: UnitTokenizer, params: dict[str, Any], splits=SPLITS, batch_size: int = 32) -> dict[str, int]:
    """data/units/{split}.safetensors for every prepared split present, and their unit_space.json; returns
    utterances per split."""
    out_root = Path(params["shared"]["paths"]["units"])
    counts = {}
    for split in splits:
        if not (prepared_paths(params)["root"] / f"{split}.jsonl").exists():
            continue
        utts, feats = load_split(params, split)
        units = extract_units(model, feats, [u.id for u in utts], batch_size=batch_size)
        save_units(units, out_root / f"{split}.safetensors")
        counts[split] = len(units)
    write_unit_space(out_root, model.cfg.codebook_size, model.cfg.rate_hz, "trained")
    return counts


def s3_unit_streams(params: dict[str, Any], model_dir: str | Path, splits=SPLITS, batch_size: int = 8
                    ) -> dict[str, int]:
    """Paper profile: CosyVoice S3 units from a local file (units.s3_path) for every split, from the audio, and their
    unit_space.json (the codebook size read off the loaded model). model_dir (the stage's models/units) gets
    s3_tokenizer.json: which file made the units (path, size, SHA-256) and the model's sizes, so the stage's output
    records its model as the trained backend's does. A checkpoint whose codebook size or rate differs from params'
    units.codebook_size / units.rate_hz (which size every unit model downstream) -> ValueError."""
    from taste.units.s3_pretrained import describe_s3_tokenizer, load_s3_tokenizer, s3_units

    u = params["units"]
    if not u["s3_path"]:
        raise FileNotFoundError("units.backend is s3_pretrained but units.s3_path is not set (a local .onnx file)")
    name = u["s3_name"]
    model = load_s3_tokenizer(u["s3_path"], name)
    record = describe_s3_tokenizer(model, u["s3_path"], name)
    wanted = int(u["codebook_size"]), int(u["rate_hz"])
    if (record["codebook_size"], record["rate_hz"]) != wanted:
        raise ValueError(f"{u['s3_path']}: this S3 tokenizer ({name}) makes {record['codebook_size']} codes at "
                         f"{record['rate_hz']} Hz, but params say units.codebook_size {wanted[0]} and units.rate_hz "
                         f"{wanted[1]}; every unit model downstream is sized by those: set them to the checkpoint's")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "s3_tokenizer.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    out_root, counts = Path(params["shared"]["paths"]["units"]), {}
    for split in splits:
        if not (prepared_paths(params)["root"] / f"{split}.jsonl").exists():
            continue
        utts, units = read_manifest(prepared_paths(params)["root"] / f"{split}.jsonl"), {}
        for start in range(0, len(utts), batch_size):
            chunk = utts[start: start + batch_size]
            wavs = [read_audio(x.audio_path, params["shared"]["sample_rate"]) for x in chunk]
            for x, codes in zip(chunk, s3_units(model, wavs, names=[x.audio_path for x in chunk])):
                units[x.id] = codes
        save_units(units, out_root / f"{split}.safetensors")
        counts[split] = len(units)
    write_unit_space(out_root, record["codebook_size"], record["rate_hz"], "s3_pretrained")
    return counts
