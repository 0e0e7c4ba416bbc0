"""Benchmark of length-bucketed batches against the loop's random batches, on the study's own train split.

Prints, for the training loops that `tokenizer.train.bucket_by_length` & co. switch (units, vocoder, asr, tokenizer,
S3-unit LM, TASLM), the share of a padded batch's positions that are real items under (a) the random batches the
loop draws (`taste.training.loop.batch_indices`, the first epoch) and (b) `LengthBuckets` groups of the same size
(`taste.training.batching`). Lengths are the utterances' durations from the train manifest (mel frames, units and
word counts all follow them); the S3-unit LM's sequences are cut at `lm.s3_lm.max_units` as the stage cuts them.
Then it times optimizer steps of the units model and the vocoder (params.yaml sizes, fresh weights, real train
features and units) on the loop's first random batches and on the first bucketed groups, the same number of
items each. Needs the prepare stage's output (and the units stage's for the vocoder timing).

    .venv/bin/python benchmarks/bench_batching.py [--params params.yaml] [--steps 8] [--threads 2]
        [--out outputs/benchmarks/batching.json]
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch

from _common import mean_step_seconds_over, peak_mb
from taste.config import load_params, set_threads
from taste.data.loaders import prepared_paths
from taste.data.records import read_manifest
from taste.training.batching import LengthBuckets, real_share
from taste.training.loop import batch_indices


def shares(lengths: list[float], batch_size: int, seed: int) -> dict[str, float]:
    """Real-position share of one epoch of random batches (as the loop draws them) and of the bucketed groups."""
    n = len(lengths)
    steps = (n + batch_size - 1) // batch_size
    random_groups = [batch_indices(s, batch_size, n, seed) for s in range(steps)]
    buckets = LengthBuckets(list(range(n)), lengths, batch_size, seed=seed)
    return {"random": real_share(lengths, random_groups), "bucketed": real_share(lengths, buckets.groups)}


def compare(make_model: Callable[[], torch.nn.Module], loss_fn: Callable, dataset, collate, lengths: list[float],
            batch_size: int, seed: int, steps: int) -> dict[str, float]:
    n = len(dataset)
    random_batches = [collate([dataset[i] for i in batch_indices(s, batch_size, n, seed)]) for s in range(steps)]
    buckets = LengthBuckets(list(range(n)), lengths, batch_size, seed=seed)
    order = [buckets.groups[i] for s in range(steps) for i in batch_indices(s, 1, len(buckets), seed)]
    bucketed_batches = [collate([dataset[i] for i in g]) for g in order]
    torch.manual_seed(seed)
    t_random = mean_step_seconds_over(make_model(), loss_fn, random_batches)
    torch.manual_seed(seed)
    t_bucketed = mean_step_seconds_over(make_model(), loss_fn, bucketed_batches)
    return {"random_s_per_step": t_random, "bucketed_s_per_step": t_bucketed, "speedup": t_random / t_bucketed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("outputs/benchmarks/batching.json"))
    args = ap.parse_args()
    params = load_params(args.params)
    set_threads(args.threads)
    seed = params["shared"]["seed"]
    manifest = prepared_paths(params)["root"] / "train.jsonl"
    if not manifest.is_file():  # `make bench` on a fresh clone: nothing of the study to measure yet
        print(f"{manifest} is missing: this benchmark reads the train split; run `dvc repro prepare` first")
        return
    utts = read_manifest(manifest)
    durations = [u.duration for u in utts]
    words = [float(len(u.text.split())) for u in utts]
    rate = params["units"]["rate_hz"]
    s3_units = [min(d * rate, params["lm"]["s3_lm"]["max_units"]) for d in durations]
    report: dict[str, Any] = {"n_train": len(utts), "shares": {}, "step_time": {}}
    for name, section, lengths in [("units", params["units"], durations), ("vocoder", params["vocoder"], durations),
                                   ("asr", params["asr"], durations), ("tokenizer", params["tokenizer"], durations),
                                   ("s3_lm", params["lm"]["s3_lm"], s3_units),
                                   ("taslm", params["lm"]["taslm"], words)]:
        b = section["train"]["batch_size"]
        report["shares"][name] = {"batch_size": b, "bucket_by_length": bool(section["train"]["bucket_by_length"]),
                                  **shares(lengths, b, seed)}
        r = report["shares"][name]
        print(f"{name:>10}: real positions {r['random']:.3f} random, {r['bucketed']:.3f} bucketed "
              f"(batch {b}, bucket_by_length {r['bucket_by_length']})")

    from taste.units.data import MelPhoneDataset, collate_mel_phones, unit_tokenizer_loss
    from taste.units.model import UnitTokenizer
    from taste.units.phones import load_phone_vocab
    from taste.units.pipeline import load_split, pitch_dataset_args, unit_config

    vocab = load_phone_vocab(prepared_paths(params)["phones"])
    cfg = unit_config(params, vocab.n_phones)
    utts, feats = load_split(params, "train")
    data = MelPhoneDataset(utts, feats, vocab, cfg.stride, cfg.rate_hz, **pitch_dataset_args(cfg, params, "train", utts))
    report["step_time"]["units"] = compare(lambda: UnitTokenizer(cfg), unit_tokenizer_loss, data, collate_mel_phones,
                                           durations, params["units"]["train"]["batch_size"], seed, args.steps)
    units_file = Path(params["shared"]["paths"]["units"]) / "train.safetensors"
    if units_file.is_file():
        from taste.vocoder.data import collate_units_mel, vocoder_loss
        from taste.vocoder.model import UnitVocoder
        from taste.vocoder.pipeline import unit_dataset, unit_space, vocoder_config

        n_units, unit_rate = unit_space(params)
        vcfg = vocoder_config(params, n_units, unit_rate)
        vdata = unit_dataset(params, "train")
        report["step_time"]["vocoder"] = compare(
            lambda: UnitVocoder(vcfg), partial(vocoder_loss, pitch_weight=float(params["vocoder"]["pitch_weight"])),
            vdata, partial(collate_units_mel, upsample=vcfg.upsample), [len(vdata.units[i]) for i in vdata.ids],
            params["vocoder"]["train"]["batch_size"], seed, args.steps)
    else:
        print(f"{units_file} is missing: the vocoder timing needs the units stage (dvc repro units)")
    for name, r in report["step_time"].items():
        print(f"{name:>10}: {r['random_s_per_step']:.3f} s/step random, {r['bucketed_s_per_step']:.3f} s/step "
              f"bucketed ({r['speedup']:.2f}x; {args.steps} steps each, {args.threads} threads)")
    report["peak_memory_mb"] = peak_mb()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
