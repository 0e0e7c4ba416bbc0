"""ASR design variants, trained on the study's train split and scored on dev (never test): how the asr settings
of params.yaml were chosen (issue 12; `asr.frame_phone_weight` came from this script).

    python benchmarks/asr_variants_dev.py NAME '{"frame_phone_weight": 0.5, "train": {"steps": 400}}' [--root .]

The JSON overrides keys of params.yaml's `asr` section (`train` overrides asr.train). --root is a checkout whose
prepare stage has run (data/prepared, data/raw). Each variant trains in <runs>/<NAME> (resumable, like the stage)
and prints one JSON line: dev WER / CER by greedy attention decoding, fit time, the last training log row.
"""
from __future__ import annotations

import json
import time

from _common import dev_variant_args, override_section
from taste.asr.pipeline import config_from_params, fit_asr, fit_tokenizer, frame_phone_targets
from taste.asr.train import evaluate_asr
from taste.data.loaders import FeatureStore
from taste.data.records import read_manifest


def main() -> None:
    args, params, overrides = dev_variant_args(__doc__, "asr", "outputs/benchmarks/asr_variants")
    override_section(params["asr"], overrides)
    cfg, train_cfg = config_from_params(params)
    prepared = args.root / params["shared"]["paths"]["prepared"]
    train_rows, dev_rows = (read_manifest(prepared / f"{s}.jsonl") for s in ("train", "dev"))
    train_store, dev_store = (FeatureStore(prepared / "features" / f"{s}.safetensors") for s in ("train", "dev"))
    tok = fit_tokenizer(args.root / params["shared"]["paths"]["raw"] / "text_pool.txt",
                        [u.text for u in train_rows], params["asr"]["bpe_vocab_size"])
    phone_weight = float(params["asr"]["frame_phone_weight"])
    labels, n_phones = frame_phone_targets(train_rows, train_store, prepared / "phones.json", phone_weight)
    t0 = time.perf_counter()
    model, result = fit_asr(cfg, tok, [u.id for u in train_rows], [u.text for u in train_rows], train_store,
                            train_cfg, args.runs / args.name, ctc_weight=float(params["asr"]["ctc_weight"]),
                            frame_phone_weight=phone_weight, phone_labels=labels, n_phones=n_phones)
    fit_s = time.perf_counter() - t0
    summary, _ = evaluate_asr(model, tok, [u.id for u in dev_rows], [u.text for u in dev_rows], dev_store)
    last = next((r for r in reversed(result.history) if "loss" in r), {})
    print(json.dumps({"name": args.name, "overrides": json.loads(args.overrides), "fit_s": round(fit_s),
                      "dev_wer": round(summary["wer"], 3), "dev_cer": round(summary["cer"], 3),
                      "last": {k: round(float(v), 3) for k, v in last.items()}}), flush=True)


if __name__ == "__main__":
    main()
