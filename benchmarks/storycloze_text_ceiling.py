"""How high can the StoryCloze probe go with this text LM? (issue 12 asks >= 0.75 of the text-carrying systems.)

The evaluate stage's probes give every system the true words; the cascade row is the text LM's total log-likelihood of
context + ending against context + distractor, so it is already the probe's text ceiling on its 100 items. This
script measures the same ceiling on more items, from the text alone: the held-out stories of data/raw/stories.jsonl
(the probe's own stories are the test/dev ones with audio; no model trains on either), context sentence i against its
true next sentence and a sentence of another held-out story with the same word count where possible. Two scorings:
  total  the probe's rule: log p(context + ending) vs log p(context + distractor);
  pmi    log p(context + ending) - log p(ending) vs the same for the distractor (how much the context raises the
         ending's probability; removes the candidates' own prior, which the total rule compares too).
95% CIs resample items (each item is one story position; stories contribute several).

    python benchmarks/storycloze_text_ceiling.py [--root .] [--items 400] [--text-lm models/lm_pretrain/text_lm]
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import torch

from taste.config import set_threads
from taste.evaluation.probes import causal_lm_loglik
from taste.lm.pipeline import load_text_lm
from taste.lm.text_lm import encode_sentence


def bootstrap_ci(wins: list[bool], rng: random.Random, n_boot: int = 1000) -> dict:
    w = np.asarray(wins, dtype=float)
    means = [float(np.mean(rng.choices(list(w), k=len(w)))) for _ in range(n_boot)]
    return {"accuracy": round(float(w.mean()), 3), "lo": round(float(np.percentile(means, 2.5)), 3),
            "hi": round(float(np.percentile(means, 97.5)), 3), "n": len(w)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--text-lm", default="models/lm_pretrain/text_lm", help="relative to --root")
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("outputs/benchmarks/storycloze_text_ceiling.json"))
    args = ap.parse_args()
    set_threads(1)
    model, tok, vocab = load_text_lm(args.root / args.text_lm)
    stories = [json.loads(line) for line in (args.root / "data/raw/stories.jsonl").read_text().splitlines()]
    held = [s for s in stories if s["subset"] == "heldout"]
    rng = random.Random(args.seed)
    positions = [(s, i) for s in held for i in range(len(s["sentences"]) - 1)]
    rng.shuffle(positions)

    def loglik(text: str) -> float:
        return causal_lm_loglik(model, encode_sentence(tok, text, vocab))

    total, pmi = [], []
    with torch.no_grad():
        for story, i in positions[: args.items]:
            context, ending = story["sentences"][i], story["sentences"][i + 1]
            n_words = len(ending.split())
            others = [x for o in held if o["story_id"] != story["story_id"] for x in o["sentences"]]
            distractor = min(others, key=lambda x: (abs(len(x.split()) - n_words), rng.random()))
            a, b = loglik(f"{context} {ending}"), loglik(f"{context} {distractor}")
            total.append(a > b)
            pmi.append(a - loglik(ending) > b - loglik(distractor))
    result = {"text_lm": str(args.text_lm), "stories": "heldout", "total": bootstrap_ci(total, rng),
              "pmi": bootstrap_ci(pmi, rng)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
