"""Text-LM pretraining budget, measured on the held-out stories of the text pool (never test): how
`lm.text_lm.train` was chosen (issue 12: the study's minutes; issue 11 section 3: choose on dev).

    python benchmarks/text_lm_steps_dev.py NAME '{"steps": 600, "warmup_steps": 60}' [--root .]

The JSON overrides keys of params.yaml's `lm.text_lm.train`. --root is a checkout whose data/raw and data/prepared
exist (`taste materialise`, `dvc repro prepare`). The BPE is fitted exactly as the asr stage fits it (text pool +
train transcripts), into <runs>/<NAME>/models/asr; the LM trains in <runs>/<NAME> (resumable, like the stage) and the
script prints one JSON line: held-out perplexity (the stage's `text_lm.heldout_perplexity`), train time, last loss.
"""
from __future__ import annotations

import json
import time

from _common import dev_variant_args
from taste.asr.bpe import save_bpe
from taste.asr.pipeline import fit_tokenizer
from taste.data.records import read_manifest
from taste.lm.pipeline import pretrain_text_lm


def main() -> None:
    args, params, overrides = dev_variant_args(__doc__, "lm.text_lm.train", "outputs/benchmarks/text_lm_steps")
    params["lm"]["text_lm"]["train"].update(overrides)
    run_root = (args.runs / args.name).resolve()
    paths = params["shared"]["paths"]
    raw, prepared = args.root / paths["raw"], args.root / paths["prepared"]
    paths.update(raw=str(raw), prepared=str(prepared), models=str(run_root / "models"), outputs=str(run_root))
    train_rows = read_manifest(prepared / "train.jsonl")
    tok = fit_tokenizer(raw / "text_pool.txt", [u.text for u in train_rows], params["asr"]["bpe_vocab_size"])
    save_bpe(tok, run_root / "models" / "asr")
    t0 = time.perf_counter()
    run = pretrain_text_lm(params, progress=False)
    fit_s = time.perf_counter() - t0
    last = next((r for r in reversed(run.result.history) if "loss" in r), {}) if run.result else {}
    print(json.dumps({"name": args.name, "overrides": json.loads(args.overrides), "fit_s": round(fit_s),
                      "heldout_perplexity": round(run.heldout_ppl, 3), "heldout_tokens": run.heldout_tokens,
                      "last": {k: round(float(v), 4) for k, v in last.items()}}), flush=True)


if __name__ == "__main__":
    main()
