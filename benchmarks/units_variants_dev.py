"""Unit-tokenizer design variants, trained on the study's train split and scored on dev (never test): how the
units settings of params.yaml are chosen (issue 11 section 3: `units.frame_phone_weight`, `units.frame_pitch_weight`).

    python benchmarks/units_variants_dev.py NAME '{"frame_pitch_weight": 0.0}' [--root .] [--threads 1]

The JSON overrides keys of params.yaml's `units` section (`train` overrides units.train). --root is a checkout whose
prepare stage has run. Each variant trains in <runs>/<NAME> (resumable, like the stage) and prints one JSON line with
the stage's own measures on dev: phone purity / PNMI, code usage and perplexity, the CTC head's PER, and how much
pitch the codes keep (voiced pitch purity / PNMI).
"""
from __future__ import annotations

import json
import time

from _common import dev_variant_args, override_section
from taste.data.loaders import load_pitch, prepared_paths
from taste.units.evaluate import evaluate_unit_tokenizer, pitch_information
from taste.units.phones import load_phone_vocab
from taste.units.pipeline import load_split, train_unit_tokenizer
from taste.units.pitch_labels import PitchClasses


def main() -> None:
    args, params, overrides = dev_variant_args(__doc__, "units", "outputs/benchmarks/units_variants")
    override_section(params["units"], overrides)
    paths = params["shared"]["paths"]
    paths.update(raw=str(args.root / paths["raw"]), prepared=str(args.root / paths["prepared"]))
    t0 = time.perf_counter()
    model, vocab, _ = train_unit_tokenizer(params, args.runs / args.name, progress=False)
    fit_s = time.perf_counter() - t0
    dev_utts, dev_feats = load_split(params, "dev")
    ev = evaluate_unit_tokenizer(model, dev_utts, dev_feats, load_phone_vocab(prepared_paths(params)["phones"]))
    u = params["units"]
    stride = params["shared"]["sample_rate"] // params["shared"]["features"]["hop_length"] // model.cfg.rate_hz
    pitch = pitch_information(ev["units"], dev_utts, load_pitch(params, "dev"), stride, model.cfg.codebook_size,
                              PitchClasses(u["pitch_classes"], u["pitch_step_semitones"]))
    keep = ("phone_purity", "pnmi", "usage_share", "perplexity", "per")
    out = {k: ev["metrics"].get(k) for k in keep} | pitch
    print(json.dumps({"name": args.name, "overrides": json.loads(args.overrides), "fit_s": round(fit_s),
                      "dev": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}}), flush=True)


if __name__ == "__main__":
    main()
