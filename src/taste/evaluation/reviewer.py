"""The reviewer's command: rerun the study in a clean copy and compare every headline metric with the committed one.

`taste review` clones the repository into a temporary folder, runs `taste materialise && dvc repro` there (or takes a
copy that has already been run, `--copy PATH`), and diffs each `outputs/*/metrics.json` against the committed file.
It prints one readable table and exits 1 when a metric moved beyond the relative tolerance (`evaluation.tolerance`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_COMMAND = "taste materialise && dvc repro"
# Machine-dependent numbers (time, memory) are reported, never compared.
VOLATILE = ("wall_time", "wall_s", "time_s", "seconds", "peak_memory", "memory_mb", "real_time_factor", "rtf")


class MetricsFileError(ValueError):
    """A metrics file is missing or is not a JSON object."""


@dataclass(frozen=True)
class MetricDiff:
    file: str
    key: str
    committed: object
    rerun: object
    rel_diff: float
    status: str  # ok | DIFF | MISSING | new | skipped

    @property
    def failed(self) -> bool:
        return self.status in ("DIFF", "MISSING")


def read_metrics(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MetricsFileError(f"metrics file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MetricsFileError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise MetricsFileError(f"{path}: expected a JSON object at the top level")
    return data


def flatten(data: dict, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1}, the way `dvc metrics show` names keys."""
    out: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def compare_values(committed: object, rerun: object, tolerance: float) -> tuple[float, bool]:
    """(relative difference, within tolerance). Relative to |committed|; near zero an absolute tolerance applies."""
    if not (_is_number(committed) and _is_number(rerun)):
        return (0.0, True) if committed == rerun else (math.inf, False)
    a, b = float(committed), float(rerun)
    if math.isnan(a) or math.isnan(b):
        return (0.0, True) if math.isnan(a) and math.isnan(b) else (math.inf, False)
    diff = abs(a - b)
    rel = diff / abs(a) if abs(a) > 1e-12 else (0.0 if diff == 0 else math.inf)
    return rel, rel <= tolerance or diff <= tolerance * 1e-3


def compare(committed: dict, rerun: dict, tolerance: float, file: str = "metrics.json") -> list[MetricDiff]:
    """Every key of the committed metrics against the rerun; keys only in the rerun are listed as new."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    old, new = flatten(committed), flatten(rerun)
    diffs = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            diffs.append(MetricDiff(file, key, old[key], None, math.inf, "MISSING"))
        elif key not in old:
            diffs.append(MetricDiff(file, key, None, new[key], math.nan, "new"))
        elif any(v in key.lower() for v in VOLATILE):
            diffs.append(MetricDiff(file, key, old[key], new[key], math.nan, "skipped"))
        else:
            rel, ok = compare_values(old[key], new[key], tolerance)
            diffs.append(MetricDiff(file, key, old[key], new[key], rel, "ok" if ok else "DIFF"))
    return diffs


def _fmt(x: object) -> str:
    if x is None:
        return "-"
    if _is_number(x):
        return f"{x:.4g}"
    return str(x)[:24]


def format_table(diffs: Sequence[MetricDiff], tolerance: float) -> str:
    header = ("file", "metric", "committed", "rerun", "rel.diff", "status")
    rows = [(d.file, d.key, _fmt(d.committed), _fmt(d.rerun),
             "-" if math.isnan(d.rel_diff) else ("inf" if math.isinf(d.rel_diff) else f"{d.rel_diff:.2%}"), d.status)
            for d in diffs]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    failed = sum(d.failed for d in diffs)
    summary = (f"{len(diffs)} metrics compared, tolerance {tolerance:.1%} relative: "
               + (f"{failed} differ or are missing" if failed else "all within tolerance"))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows), "", summary])


def metrics_files(root: str | Path) -> list[Path]:
    """outputs/*/metrics.json relative to root, sorted."""
    root = Path(root)
    return sorted(p.relative_to(root) for p in root.glob("outputs/*/metrics.json"))


def compare_trees(committed_root: str | Path, rerun_root: str | Path, tolerance: float) -> list[MetricDiff]:
    committed_root, rerun_root = Path(committed_root), Path(rerun_root)
    files = metrics_files(committed_root)
    if not files:
        raise MetricsFileError(f"no committed outputs/*/metrics.json under {committed_root}")
    diffs: list[MetricDiff] = []
    for rel in files:
        rerun_path = rerun_root / rel
        if not rerun_path.is_file():
            diffs.append(MetricDiff(str(rel), "(whole file)", "present", None, math.inf, "MISSING"))
            continue
        diffs += compare(read_metrics(committed_root / rel), read_metrics(rerun_path), tolerance, str(rel))
    return diffs


def rerun_in_clean_copy(repo: str | Path, workdir: str | Path, command: str = DEFAULT_COMMAND) -> Path:
    """git clone repo into workdir/study and run `command` there with this interpreter's bin first on PATH."""
    clone = Path(workdir) / "study"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(Path(repo).resolve()), str(clone)], check=True)
    for stale in metrics_files(clone):  # git carries the committed metrics: a stage that silently did not run
        (clone / stale).unlink()        # must show up as MISSING, not as a perfect match
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    print(f"rerunning the study in {clone}: {command}", flush=True)
    subprocess.run(command, shell=True, cwd=clone, env=env, check=True)
    return clone


def _default_tolerance(repo: Path) -> float:
    from taste.config import load_params

    try:
        return float(load_params(repo / "params.yaml")["evaluation"]["tolerance"])
    except (KeyError, TypeError, ValueError, FileNotFoundError):
        return 0.05


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="taste review", description=__doc__)
    parser.add_argument("--repo", default=".", help="repository whose committed metrics are checked (default: .)")
    parser.add_argument("--copy", default=None, help="an already-run copy of the study to compare (skips the rerun)")
    parser.add_argument("--tolerance", type=float, default=None, help="relative tolerance (default: evaluation.tolerance)")
    parser.add_argument("--command", default=DEFAULT_COMMAND, help=f"rerun command (default: {DEFAULT_COMMAND!r})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clean copy")
    return parser


def run_review(args: argparse.Namespace) -> int:
    repo = Path(args.repo)
    tolerance = args.tolerance if args.tolerance is not None else _default_tolerance(repo)
    tmp = None
    try:
        if args.copy:
            copy = Path(args.copy)
        else:
            tmp = tempfile.mkdtemp(prefix="taste-review-")
            copy = rerun_in_clean_copy(repo, tmp, args.command)
        diffs = compare_trees(repo, copy, tolerance)
    finally:
        if tmp and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp:
            print(f"clean copy kept at {tmp}")
    print(format_table(diffs, tolerance))
    return 1 if any(d.failed for d in diffs) else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_review(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
