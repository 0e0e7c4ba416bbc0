"""Does this CPU train faster as one process with N threads or as N one-thread processes side by side?

Issue 12 asks whether the study should run independent stages (or a stage's models) in parallel processes. This
script answers it for the study's ASR (the model size of params.yaml, one fixed batch of `asr.train.batch_size`
utterances): the mean optimizer-step time at 1 thread, at `shared.threads` threads, and of `shared.threads`
one-thread processes stepping at the same time. Throughput is steps per second over all processes.

    .venv/bin/python benchmarks/bench_threads.py [--params params.yaml] [--seconds 3.4] [--repeats 8]

Uses real test features when the prepare stage has run (data/prepared), else seeded noise. Run it alone: any other
load on the machine changes the answer. Writes outputs/benchmarks/threads.json.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from pathlib import Path

import torch

from taste.asr.bpe import train_bpe
from taste.asr.pipeline import config_from_params
from taste.asr.train import make_collate, make_loss_fn
from taste.asr.whisper import build_asr
from taste.config import load_params

from _common import mean_step_seconds, test_mels

SENTENCE = "the old captain walked slowly to the harbour with a small wooden boat at dawn"


def _step_seconds(args: tuple[str, int, float, int]) -> float:
    """Mean seconds per AdamW step of a fresh params-size ASR at `threads` threads (runs in its own process)."""
    params_path, threads, seconds, repeats = args
    torch.set_num_threads(threads)
    params = load_params(params_path)
    words = SENTENCE.split()
    tok = train_bpe([" ".join(words[i:] + words[:i]) for i in range(len(words))], vocab_size=200)
    model = build_asr(config_from_params(params)[0], tok)
    batch_size = int(params["asr"]["train"]["batch_size"])
    target = [model.config.decoder_start_token_id, *tok.encode(SENTENCE).ids, model.config.eos_token_id]
    batch = make_collate(model)([(m, target) for m in test_mels(params, batch_size, seconds)])
    return mean_step_seconds(model, make_loss_fn(), batch, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--seconds", type=float, default=3.4, help="utterance length when no data (train mean)")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--out", default="outputs/benchmarks/threads.json")
    args = parser.parse_args()
    params = load_params(args.params)
    n = int(params["shared"]["threads"])
    job = (args.params, 1, args.seconds, args.repeats)
    ctx = mp.get_context("spawn")  # a fresh interpreter per measurement: no thread pool carried over
    with ctx.Pool(1) as pool:
        one = pool.map(_step_seconds, [job])[0]
    with ctx.Pool(1) as pool:
        many = pool.map(_step_seconds, [(args.params, n, args.seconds, args.repeats)])[0]
    with ctx.Pool(n) as pool:
        side = pool.map(_step_seconds, [job] * n)
    rows = [
        {"layout": "1 process x 1 thread", "step_s": one, "steps_per_s": 1 / one},
        {"layout": f"1 process x {n} threads", "step_s": many, "steps_per_s": 1 / many},
        {"layout": f"{n} processes x 1 thread", "step_s": sum(side) / n, "steps_per_s": sum(1 / s for s in side)},
    ]
    result = {"model": "asr (params.yaml size, random init)",
              "batch_size": int(params["asr"]["train"]["batch_size"]), "layouts": rows,
              "thread_speedup": one / many, "parallel_processes_gain": rows[2]["steps_per_s"] / rows[1]["steps_per_s"]}
    for r in rows:
        print(f"{r['layout']:<24} {r['step_s']:.3f} s/step  {r['steps_per_s']:.2f} steps/s in all")
    print(f"{n} threads are {result['thread_speedup']:.2f}x one thread; {n} one-thread processes give "
          f"{result['parallel_processes_gain']:.2f}x the throughput of one {n}-thread process")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
