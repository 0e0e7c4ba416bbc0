"""`python -m taste.tokenizer.ablation --params params.yaml --cache models/taste/cache/train.safetensors
[--only NAME ...]`: trains ablation rows (other conditioning mode, values from the last layer, the other duration
feature; all of them without --only) in a 1-thread process while the notebook trains the main model; the
duration-feature row starts from the main run's text-only model and waits for it."""

from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> int:
    from taste.config import load_params, set_threads
    from taste.tokenizer.data import load_items
    from taste.tokenizer.pipeline import ABLATIONS, stage_paths, train_ablation

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--cache", required=True)
    ap.add_argument("--only", choices=ABLATIONS, nargs="+", default=None)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    set_threads(1)
    items, paths = load_items(args.cache), stage_paths(load_params(args.params))
    for name in ABLATIONS if args.only is None else args.only:
        infos = train_ablation(params, name, items, paths)
        print(json.dumps({"ablation": name, "stages": infos}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
