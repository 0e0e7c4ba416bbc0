"""Benchmark of stage taslm: TASLM vs the S3-unit LM on the same prompts and target length.

Measures, per second of generated speech, the LM's autoregressive steps and wall time, and the end-to-end time
(prompt ASR + TASTE encoding + LM + unit decoding + vocoding), with the share of each part; plus the training
wall times and peak memory the stages recorded (outputs/taslm/metrics.json, which repeats stage lm_pretrain's
text LM and S3-unit LM entries). With the trained models of models/lm_pretrain and models/lm it runs the real
systems on test prompts; without them it times randomly initialised models of the params.yaml size on synthetic
prompts (LM only; speech seconds from the mean speaking rate), and says so in the output.

    .venv/bin/python benchmarks/bench_lm.py [--params params.yaml] [--prompts 20] [--out outputs/benchmarks/lm.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from taste.config import load_params, set_threads
from taste.lm.continuation import SYSTEMS, decode_drafts, finish, generate_continuation, sampling_from_params
from taste.lm.report import records_frame, speed_table, step_ratio


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def trained_run(params: dict, n_prompts: int, target_words: int) -> list[dict]:
    """Real systems on the stage's test prompts (same prompts, same target length for every system)."""
    from taste.data.loaders import FeatureStore
    from taste.data.records import read_manifest
    from taste.lm.continuation import load_systems, prepare_prompt, seconds_per_word, select_prompts
    from taste.lm.data import load_code_table

    paths, cont = params["shared"]["paths"], params["lm"]["continuation"]
    systems = load_systems(params, SYSTEMS)
    prompts = select_prompts(read_manifest(Path(paths["prepared"]) / "test.jsonl"), n_prompts,
                             tuple(cont["prompt_seconds"]), params["shared"]["seed"])
    units = load_code_table(Path(paths["units"]) / "test.safetensors")
    speakers = FeatureStore(Path(paths["prepared"]) / "speaker_embeddings.safetensors")
    prepared = [prepare_prompt(p, systems, units, speakers) for p in prompts]
    spw = seconds_per_word(read_manifest(Path(paths["prepared"]) / "train.jsonl"))
    max_units = int(2 * spw * target_words * systems.unit_rate_hz) + 10
    records, s = [], sampling_from_params(params)
    for system in SYSTEMS:  # as the stage runs them: LM per prompt, unit decoding batched, vocoding per prompt
        drafts = [generate_continuation(system, pp, systems, s, target_words, max_units, i)
                  for i, pp in enumerate(prepared)]
        decode_drafts(drafts, systems, 0, params["lm"]["continuation"]["decode_batch"])
        records += [finish(d, systems)[0] for d in drafts]
    return records


def random_run(params: dict, n_prompts: int, target_words: int) -> list[dict]:
    """LM-only timing with random weights of the params size (no trained models available)."""
    from taste.asr.bpe import train_bpe, word_ids
    from taste.lm import text_lm as tl
    from taste.lm.generate import generate_s3, generate_taslm
    from taste.lm.pipeline import taslm_config
    from taste.lm.s3_lm import S3LMConfig, S3UnitLM
    from taste.lm.taslm import TASLM

    words = "the old captain walked slowly to the harbour with a small wooden boat at dawn".split()
    tok = train_bpe([" ".join(words[i:] + words[:i]) for i in range(len(words))], vocab_size=200)
    vocab = tl.LMVocab.for_tokenizer(tok)
    t = params["lm"]["text_lm"]
    lm = tl.build_text_lm(tl.TextLMConfig(vocab.size, t["d_model"], t["layers"], t["n_heads"], t["ffn_dim"],
                                          t["context"]), vocab).eval()
    n_q, k, dim = params["tokenizer"]["rvq"]["n_quantizers"], params["tokenizer"]["rvq"]["codebook_size"], 64
    book = _RandomCodebook(n_q, k, dim)
    taslm = TASLM(lm, taslm_config(params, "token", n_q, dim, k), keep_reference=False).eval()
    n_units = params["units"]["codebook_size"]
    s3 = S3UnitLM(lm, S3LMConfig(n_units=n_units)).eval()
    rate, spw = params["units"]["rate_hz"], 60.0 / (sum(params["data"]["speech"]["rate_wpm"]) / 2)
    s = sampling_from_params(params)
    records = []
    for i in range(n_prompts):
        prompt = " ".join(words[i % 8: i % 8 + 5])
        g = torch.Generator().manual_seed(i)
        t0 = time.perf_counter()
        gen = generate_taslm(taslm, book, tok, vocab, word_ids, prompt, torch.randint(0, k, (5, n_q)), target_words,
                             s, g)
        lm_s = time.perf_counter() - t0
        n = len(gen.text.split())
        records.append(_lm_record("taslm_token", i, n, gen.lm_steps, n * spw, lm_s))
        prompt_units = torch.randint(0, n_units, (int(5 * spw * rate),))
        t0 = time.perf_counter()
        gen = generate_s3(s3, tok, vocab, prompt, prompt_units, target_words, int(target_words * spw * rate), s, g)
        records.append(_lm_record("s3_lm", i, len(gen.text.split()), gen.lm_steps, len(gen.units) / rate,
                                  time.perf_counter() - t0))
    return records


class _RandomCodebook:
    def __init__(self, n_q: int, k: int, dim: int):
        self.books = torch.randn(n_q, k, dim)

    def codes_to_vectors(self, codes):
        return sum(self.books[q][codes[:, q]] for q in range(self.books.shape[0]))

    def quantize(self, vectors):
        return torch.stack([torch.cdist(vectors, b).argmin(-1) for b in self.books], -1)


def _lm_record(system: str, i: int, n_words: int, steps: int, seconds: float, lm_s: float) -> dict:
    return {"system": system, "prompt_id": f"r{i}", "n_words": n_words, "lm_steps": steps, "generated_seconds": seconds,
            "timings": {"lm_s": lm_s, "end_to_end_s": lm_s}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--out", default="outputs/benchmarks/lm.json")
    args = ap.parse_args()
    params = load_params(args.params)
    set_threads(params["shared"]["threads"])
    target = params["lm"]["continuation"]["target_words"]
    from taste.lm.pipeline import lm_dir, s3_lm_dir, text_lm_dir

    trained = all((d / "config.json").is_file() for d in (text_lm_dir(params), lm_dir(params) / "taslm_token",
                                                         lm_dir(params) / "taslm_embed", s3_lm_dir(params)))
    t0 = time.perf_counter()
    records = (trained_run if trained else random_run)(params, args.prompts, target)
    table = speed_table(records_frame(records))
    stage_metrics = Path(params["shared"]["paths"]["outputs"]) / "taslm" / "metrics.json"
    training = {}
    if stage_metrics.is_file():
        m = json.loads(stage_metrics.read_text())
        training = {k: {x: v[x] for x in ("train_wall_s", "train_peak_memory_mb") if x in v}
                    for k, v in m.items() if isinstance(v, dict) and "train_wall_s" in v}
    result = {
        "mode": "trained" if trained else "random-weights (LM only)",
        "prompts": args.prompts, "target_words": target, "threads": params["shared"]["threads"],
        "per_system": json.loads(table.round(4).to_json(orient="index")),
        "s3_over_taslm_lm_steps_per_speech_s": step_ratio(table),
        "training_from_stage_metrics": training,
        "bench_wall_s": round(time.perf_counter() - t0, 1), "peak_memory_mb": round(_peak_mb(), 1),
    }
    print(table.round(3).to_string())
    print(json.dumps({k: v for k, v in result.items() if k != "per_system"}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
