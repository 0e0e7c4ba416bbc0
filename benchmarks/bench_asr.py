"""Benchmark of the asr stage's Whisper on this CPU.

Measures (1) a training step (forward + backward + AdamW) with batches padded to their own length, as the
length-aware model does, against padding every batch to the encoder window, as stock transformers Whisper
requires; (2) greedy transcription speed as a real-time factor. Uses the trained model in models/asr and real
test features when they exist, else a randomly initialised model of the params.yaml size on random features.

    .venv/bin/python benchmarks/bench_asr.py [--params params.yaml] [--out outputs/benchmarks/asr.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from taste.asr.bpe import load_bpe, train_bpe
from taste.asr.features import pad_mels
from taste.asr.pipeline import config_from_params
from taste.asr.train import make_collate, make_loss_fn
from taste.asr.whisper import build_asr, greedy_decode, load_asr
from taste.config import load_params, set_threads

from _common import mean_step_seconds, peak_mb as _peak_mb, test_mels as _test_mels


def _model_and_tok(params: dict, model_dir: Path):
    if (model_dir / "config.json").is_file():
        return load_asr(model_dir), load_bpe(model_dir), "trained"
    words = "the old captain walked slowly to the harbour with a small wooden boat at dawn".split()
    texts = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    tok = train_bpe(texts, vocab_size=int(params["asr"]["bpe_vocab_size"]))
    return build_asr(config_from_params(params)[0], tok), tok, "random"


def bench_train_step(model, tok, mels, batch_size: int, repeats: int, pad_to_window: bool) -> dict:
    """Mean seconds per optimizer step on one fixed batch (first step is warm-up, not counted)."""
    model.config.pad_to_window = pad_to_window
    collate = make_collate(model)
    target = [model.config.decoder_start_token_id, *tok.encode("the old captain walked to the harbour").ids,
              model.config.eos_token_id]
    batch = collate([(m, target) for m in mels[:batch_size]])
    step_s = mean_step_seconds(model, make_loss_fn(), batch, repeats)
    model.eval()
    model.config.pad_to_window = False
    return {"pad_to_window": pad_to_window, "frames": int(batch["input_features"].shape[-1]),
            "batch_size": len(mels[:batch_size]), "step_s": step_s, "peak_rss_mb": _peak_mb()}


def bench_transcribe(model, mels, batch_size: int, max_new_tokens: int) -> dict:
    """Real-time factor of batched greedy decoding (decode seconds / audio seconds)."""
    batch, lengths = pad_mels(mels[:batch_size])
    greedy_decode(model, batch[:1, :, : int(lengths[0])], lengths[:1], max_new_tokens=2)  # warm-up
    t0 = time.perf_counter()
    out = greedy_decode(model, batch, lengths, max_new_tokens=max_new_tokens)
    secs = time.perf_counter() - t0
    audio_s = float(lengths.sum()) / 100.0
    return {"batch_size": len(out), "audio_s": audio_s, "decode_s": secs, "rtf": secs / audio_s,
            "mean_tokens": sum(len(o) for o in out) / len(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--model", default="models/asr")
    parser.add_argument("--out", default="outputs/benchmarks/asr.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of random utterances (no data)")
    args = parser.parse_args()
    params = load_params(args.params)
    set_threads(params["shared"]["threads"])
    model, tok, kind = _model_and_tok(params, Path(args.model))
    batch_size = int(params["asr"]["train"]["batch_size"])
    mels = _test_mels(params, batch_size, args.seconds)
    result = {
        "model": kind, "threads": torch.get_num_threads(),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "train_step": [bench_train_step(model, tok, mels, batch_size, args.repeats, pad) for pad in (False, True)],
        "transcribe": bench_transcribe(model, mels, batch_size, max_new_tokens=40),
    }
    steps = result["train_step"]
    result["window_padding_slowdown"] = steps[1]["step_s"] / steps[0]["step_s"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
