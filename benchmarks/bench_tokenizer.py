"""Benchmark of the TASTE tokenizer on this CPU.

Measures (1) seconds per training step of each sub-stage (text-only, no VQ, RVQ) at 1 and 2 threads,
(2) encoding speed (frozen encoder + aggregator + RVQ) and (3) KV-cached decoding speed (units sampled,
batch 1 and batched) as real-time factors (compute seconds / audio seconds), and (4) reports the measured
wall time and peak memory of each training sub-stage from models/taste/<stage>/train_info.json when the
stage has run. Uses the trained model when it exists, else a random model of the params.yaml size.

    .venv/bin/python benchmarks/bench_tokenizer.py [--params params.yaml] [--out outputs/benchmarks/tokenizer.json]
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import torch

from taste.config import load_params, set_threads

from _common import mean_step_seconds, peak_mb as _peak_mb
from taste.tokenizer import TasteTokenizer, config_from_params
from taste.tokenizer.data import Collate, TasteItem
from taste.tokenizer import pipeline as P
from taste.tokenizer.pipeline import stage_paths
from taste.tokenizer.train import DurationTarget, loss_fn

WORDS = "the old captain walked slowly to the harbour with a small wooden boat at dawn".split()


def _model(params: dict) -> tuple[TasteTokenizer, str]:
    paths = stage_paths(params)
    if (paths.final / "config.json").is_file():
        return TasteTokenizer.from_pretrained(paths.final), "trained"
    from taste.asr.bpe import train_bpe
    from taste.asr.pipeline import config_from_params as asr_config
    from taste.asr.whisper import build_asr

    texts = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))]
    tok = train_bpe(texts, vocab_size=int(params["asr"]["bpe_vocab_size"]))
    asr = build_asr(asr_config(params)[0], tok)
    return TasteTokenizer.from_asr(config_from_params(params, asr.config), asr, tok, stage="rvq"), "random"


def _items(model: TasteTokenizer, n: int, n_words: int, rate: float) -> list[TasteItem]:
    """Synthetic items of a typical utterance (0.35 s per word) with random encoder states."""
    from taste.asr.bpe import word_ids

    g = torch.Generator().manual_seed(0)
    text = " ".join(WORDS[:n_words])
    ids, widx = word_ids(model.bpe, text)
    n_units, d = int(n_words * 0.35 * rate), model.cfg.aggregator.d_model
    bounds = tuple(int(j * n_units / n_words) for j in range(n_words))
    return [TasteItem(str(i), text, tuple(ids), tuple(widx), torch.randn(2 * n_units, d, generator=g).half(),
                      torch.randn(2 * n_units, d, generator=g).half(), torch.randn(256, generator=g),
                      torch.randint(0, model.cfg.decoder.n_units, (n_units,), generator=g), bounds,
                      tuple(0.35 * j for j in range(n_words)), (0.35,) * n_words)
            for i in range(n)]


def bench_train_steps(model: TasteTokenizer, items: list[TasteItem], repeats: int, aids: dict[str, float]) -> list[dict]:
    """Optimizer-step time per sub-stage with the study's loss (including its training aids: pipeline.training_aids)."""
    batch = Collate(model.cfg.conditioning, model.cfg.decoder.n_units, model.cfg.encoder_rate_hz)(items)
    rows = []
    for stage in ("text_only", "no_vq", "rvq"):
        model.set_stage(stage)
        target = DurationTarget.from_items(items) if aids["duration_weight"] > 0 else None
        step_s = mean_step_seconds(model, partial(loss_fn, **aids, duration_target=target), batch, repeats)
        rows.append({"stage": stage, "threads": torch.get_num_threads(), "batch_size": len(items),
                     "step_s": step_s, "peak_rss_mb": _peak_mb()})
    model.set_stage("rvq")
    return rows


def bench_encode(model: TasteTokenizer, n: int, seconds: float) -> dict:
    mel = torch.randn(80, int(seconds * 100)) - 4.0
    text = " ".join(WORDS[: max(1, int(seconds / 0.35))])
    model.encode(mel, text)  # warm-up
    t0 = time.perf_counter()
    for _ in range(n):
        model.encode(mel, text)
    return {"utterances": n, "audio_s": seconds, "rtf": (time.perf_counter() - t0) / (n * seconds)}


def bench_decode(model: TasteTokenizer, batch_size: int, n_words: int) -> dict:
    model.eval()
    text = " ".join(WORDS[:n_words])
    vecs = [torch.randn(n_words, model.cfg.aggregator.d_model) for _ in range(batch_size)]
    speakers = torch.randn(batch_size, 256)
    t0 = time.perf_counter()
    results = model.decode_batch([text] * batch_size, vecs, speakers, seed=0)
    elapsed = time.perf_counter() - t0
    audio_s = sum(len(r.units) for r in results) / model.cfg.unit_rate_hz
    return {"batch_size": batch_size, "words": n_words, "units": sum(len(r.units) for r in results),
            "seconds": elapsed, "rtf": elapsed / max(audio_s, 1e-9)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="outputs/benchmarks/tokenizer.json")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    params = load_params(args.params)
    model, source = _model(params)
    rate = float(params["units"]["rate_hz"])
    items = _items(model, int(params["tokenizer"]["train"]["batch_size"]), 9, rate)
    report = {"model": source, "train_steps": [], "substage_training": {}}
    for threads in (1, 2):
        set_threads(threads)
        report["train_steps"] += bench_train_steps(model, items, args.repeats, P.training_aids(params))
    set_threads(params["shared"]["threads"])
    report["encode"] = bench_encode(model, 5, 3.0)
    report["decode"] = [bench_decode(model, 1, 9), bench_decode(model, 16, 9)]
    for stage in ("text_only", "no_vq", "rvq"):
        info = stage_paths(params).models / stage / "train_info.json"
        if info.is_file():
            report["substage_training"][stage] = json.loads(info.read_text())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
