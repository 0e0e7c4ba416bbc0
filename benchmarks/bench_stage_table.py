"""Prints the study's stage table (wall time, peak memory, share of the total) from outputs/*/stage_time.json.

Usage: python benchmarks/bench_stage_table.py [--outputs outputs]
The README's stage times come from this table; it writes outputs/benchmarks/stage_table.json beside the others."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from taste.stages import stage_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", default="outputs", help="the study's outputs folder")
    args = parser.parse_args()
    rows = stage_table(args.outputs)
    if len(rows) == 1:
        raise SystemExit(f"no stage_time.json under {args.outputs}/: run the study first (make study)")
    print(f"{'stage':<12} {'wall s':>8} {'min':>6} {'share':>6} {'peak MB':>8}")
    for r in rows:
        print(f"{r['stage']:<12} {r['wall_time_s']:>8.1f} {r['wall_time_s'] / 60:>6.1f} {r['share']:>6.1%} "
              f"{r['peak_memory_mb']:>8.0f}")
    out = Path(args.outputs) / "benchmarks" / "stage_table.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
