"""Benchmark of the swap stage on this CPU.

Measures (1) the unit decoder's sampling at the params.yaml size: one batched, KV-cached call for a batch of
sentences against decoding them one at a time (METHOD.md 6: batching is what keeps the stage in budget), and from
it an estimate of the stage's decode time at the configured number of pairs and seeds; (2) the per-utterance cost
of the audio measures (vocoder + source-filter synthesis, pocketsphinx transcription and forced alignment, YIN F0);
(3) swap_codes against its plain-Python reference; (4) whether decode workers would help: `shared.threads` batches
decoded by one process at that many threads, then by as many one-thread processes at once. Uses a randomly
initialised decoder whose boundary logit is biased so words get ~8 units, the length a trained model produces at
25 Hz.

    .venv/bin/python benchmarks/bench_swap.py [--params params.yaml] [--out outputs/benchmarks/swap.json]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from taste.config import load_params, set_threads
from taste.swap.spans import swap_codes
from taste.tokenizer.config import DecoderConfig
from taste.tokenizer.unit_decoder import UnitDecoder

N_WORDS, TARGET_UNITS_PER_WORD = 12, 8.0


def build_decoder(params: dict) -> UnitDecoder:
    dec = params["tokenizer"]["decoder"]
    cfg = DecoderConfig(n_units=int(params["units"]["codebook_size"]), d_model=int(dec["d_model"]),
                        layers=int(dec["layers"]), n_heads=int(dec["n_heads"]), top_k=int(dec["top_k"]),
                        boundary=dec["boundary"], dropout=0.0)
    model = UnitDecoder(cfg, "word_sync", text_vocab=100, taste_dim=64).eval()
    with torch.no_grad():
        model.head.weight.mul_(0.1)
        model.head.bias.zero_()
        if cfg.boundary == "median":
            # full-softmax end probability h per step with a median word of ~8 units: 1 - (1 - h)^8 = 1/2
            h = 1.0 - 0.5 ** (1.0 / 8.0)
            model.head.bias[model.bnd] = math.log(h / (1.0 - h) * cfg.n_units)
        else:
            model.head.bias[model.bnd] = 1.3  # ~1 boundary in 8 tokens among the top-k: trained-model lengths
    return model


def time_generate(model: UnitDecoder, batch: int, seed: int = 0) -> tuple[float, float, float]:
    """-> (wall seconds for one batched generate of `batch` sentences, mean units per word, CPU seconds).

    CPU seconds (all threads) divided by the thread count approximate the wall time on an idle machine;
    the wall time alone is inflated whenever other jobs share the cores."""
    g = torch.Generator().manual_seed(seed)
    fused = torch.randn(batch, N_WORDS, model.cfg.d_model, generator=g)
    mask = torch.ones(batch, N_WORDS, dtype=torch.bool)
    speaker = torch.randn(batch, model.cfg.speaker_dim, generator=g)
    t0, c0 = time.perf_counter(), time.process_time()
    streams = model.generate(fused, mask, speaker, seed=seed)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    units = np.mean([sum(1 for t in s if t < model.bnd) / N_WORDS for s in streams])
    return seconds, float(units), cpu


def _worker_generate(params: dict, batch: int, seed: int, barrier, results) -> None:
    torch.set_num_threads(1)
    model = build_decoder(params)
    time_generate(model, 2)  # warm-up
    barrier.wait(timeout=600)  # both workers time their batch over the same seconds
    results.put(time_generate(model, batch, seed=seed)[0])


def decode_workers_speedup(params: dict, batch: int, workers: int) -> dict:
    """Whether decoding in worker processes would buy time: one process at `shared.threads` threads decoding
    `workers` batches in turn, against `workers` one-thread processes decoding a batch each at the same time (their
    start-up not counted). Session 23: 0.90x, so the swap stage decodes in one process."""
    import multiprocessing as mp

    model = build_decoder(params)
    time_generate(model, 2)
    serial = sum(time_generate(model, batch, seed=s)[0] for s in range(workers))
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_worker_generate, args=(params, batch, s, barrier, results)) for s in range(workers)]
    for p in procs:
        p.start()
    parallel = max(results.get(timeout=1200) for _ in procs)
    for p in procs:
        p.join()
    return {"workers": workers, "batches": workers, "batch": batch, "one_process_s": round(serial, 2),
            "worker_processes_s": round(parallel, 2), "speedup": round(serial / parallel, 2)}


def estimate_decodes(params: dict) -> int:
    """Decodes of the study: pairs x 2 directions x jobs x seeds (jobs: 2 references + spans + mismatch; local: 5)."""
    sp, sets = params["swap"], params["data"]["swap_sets"]
    available = {"global_rate": int(sets["global_sentences"]), "global_pitch": int(sets["global_sentences"]),
                 "local": int(sets["local_pairs"])}
    caps = sp["max_pairs"]
    total = 0
    for name, n in available.items():
        cap = caps.get(name, 0) if isinstance(caps, dict) else caps
        pairs = n if cap is None else min(n, int(cap))
        total += pairs * (5 if name == "local" else 3 + len(sp["spans"]))
    return total * 2 * len(sp["seeds"])


def bench_audio(params: dict) -> dict:
    from taste.metrics.recognizer import Pocketsphinx
    from taste.swap.pitch import tracked_word_f0
    from taste.swap.study import decoder_word_spans
    from taste.vocoder.model import UnitVocoder, VocoderConfig

    voc = params["vocoder"]
    vocoder = UnitVocoder(VocoderConfig(n_units=int(params["units"]["codebook_size"]), d_model=int(voc["d_model"]),
                                        layers=int(voc["layers"]), n_heads=int(voc["n_heads"]),
                                        griffin_lim_iters=int(voc["griffin_lim_iters"]), dropout=0.0)).eval()
    units = torch.randint(0, 512, (int(N_WORDS * TARGET_UNITS_PER_WORD),))
    t0 = time.perf_counter()
    wav = vocoder.synthesise(units, torch.randn(256))
    t_voc = time.perf_counter() - t0
    seconds = len(wav) / 16000
    text = "the old captain walked slowly to the harbour with a small wooden boat"
    rec = Pocketsphinx([text])
    t0 = time.perf_counter()
    rec.transcribe(wav)
    t_asr = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        words = rec.align(wav, text)
    except ValueError:  # random audio may not align; the cost is what matters here
        words = ()
    t_align = time.perf_counter() - t0
    t0 = time.perf_counter()
    tracked_word_f0(wav, decoder_word_spans(text, [seconds / len(text.split())] * len(text.split())))
    t_f0 = time.perf_counter() - t0
    return {"audio_seconds": round(seconds, 2), "vocoder_s": round(t_voc, 3), "transcribe_s": round(t_asr, 3),
            "align_s": round(t_align, 3), "f0_s": round(t_f0, 3),
            "per_utterance_s": round(t_voc + t_asr + t_align + t_f0, 3)}


def bench_swap_codes(n: int = 2000) -> dict:
    rec, don = torch.randint(0, 512, (14, 4)), torch.randint(0, 512, (14, 4))
    words = [1, 4, 5]
    t0 = time.perf_counter()
    for _ in range(n):
        swap_codes(rec, don, words)
    fast = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        out = rec.tolist()
        for i in words:
            out[i] = don[i].tolist()
    slow = (time.perf_counter() - t0) / n
    return {"swap_codes_us": round(fast * 1e6, 1), "python_reference_us": round(slow * 1e6, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="outputs/benchmarks/swap.json")
    ap.add_argument("--batch", type=int, default=None, help="decode batch (default: params swap.batch_size)")
    args = ap.parse_args()
    params = load_params(args.params)
    set_threads(params["shared"]["threads"])
    batch = args.batch or int(params["swap"]["batch_size"])
    model = build_decoder(params)
    time_generate(model, 2)  # warm-up
    t_batch, units, cpu_batch = time_generate(model, batch)
    t_single = sum(time_generate(model, 1, seed=s)[0] for s in range(2)) / 2
    threads = int(params["shared"]["threads"])
    scale = TARGET_UNITS_PER_WORD / max(units, 1e-6)  # sampling steps grow with units per word
    n_decodes = estimate_decodes(params)
    result = {
        "threads": params["shared"]["threads"], "batch": batch, "words_per_sentence": N_WORDS,
        "units_per_word_sampled": round(units, 2),
        "batched_s_per_sentence": round(t_batch / batch, 4), "single_s_per_sentence": round(t_single, 4),
        "batching_speedup": round(t_single / (t_batch / batch), 1),
        "default_study_decodes": n_decodes,
        "estimated_decode_s": round(n_decodes / batch * t_batch * scale, 1),
        "batched_cpu_s_per_sentence": round(cpu_batch / batch, 4),
        "estimated_decode_s_idle_machine": round(n_decodes / batch * cpu_batch / threads * scale, 1),
        "audio": bench_audio(params), "swap": bench_swap_codes(),
        "decode_workers": decode_workers_speedup(params, batch, threads),
    }
    audio_utts = int(params["swap"]["audio_pairs"]) * (7 + 7 + 5)  # global_rate, global_pitch, local jobs
    result["estimated_audio_s"] = round(audio_utts * result["audio"]["per_utterance_s"], 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
