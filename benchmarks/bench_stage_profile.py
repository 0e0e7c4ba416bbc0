"""Prints where each stage's minutes go: the longest cells of its executed notebook (papermill's cell durations).

Usage: python benchmarks/bench_stage_profile.py [--outputs outputs] [--top 4] [--stage NAME ...]
Reads outputs/<stage>/<notebook>.ipynb, which `taste stage` (dvc repro) writes; pull them from the DVC cache first
(`dvc checkout`) when the study ran elsewhere. Writes outputs/benchmarks/stage_profile.json."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from taste.stages import STAGE_NOTEBOOKS, cell_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", default="outputs", help="the study's outputs folder")
    parser.add_argument("--top", type=int, default=4, help="cells per stage")
    parser.add_argument("--stage", nargs="*", default=list(STAGE_NOTEBOOKS), choices=list(STAGE_NOTEBOOKS))
    args = parser.parse_args()
    report = {}
    for stage in args.stage:
        path = Path(args.outputs) / stage / f"{STAGE_NOTEBOOKS[stage]}.ipynb"
        if not path.is_file():
            print(f"{stage}: {path} not found (stage not run here)")
            continue
        rows = cell_profile(path)
        report[stage] = rows
        total = sum(r["seconds"] for r in rows)
        print(f"{stage}: {total:.0f} s in {len(rows)} cells")
        for r in rows[: args.top]:
            print(f"  {r['seconds']:>7.0f} s {r['share']:>6.1%}  cell {r['cell']:>2}  {r['first_line'][:80]}")
    if not report:
        raise SystemExit(f"no executed stage notebooks under {args.outputs}/: run the study first (make study)")
    out = Path(args.outputs) / "benchmarks" / "stage_profile.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
