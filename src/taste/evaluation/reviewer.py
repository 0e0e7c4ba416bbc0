"""The reviewer's command: rerun the study in a clean copy and compare every headline metric with the committed one.

`taste review` clones the repository into a temporary folder, runs `taste materialise && dvc repro` there (or takes a
copy that has already been run, `--copy PATH`), and diffs each `outputs/*/metrics.json` against the committed file.
It prints one readable table and exits 1 when a metric differs.

Every random source of the study is seeded per item and torch runs its deterministic algorithms, so on the same CPU
type a rerun reproduces the metrics exactly: they are compared EXACTLY, except the few in TOLERANCES, where the
order of a float reduction may change between runs (each entry says why), and the VOLATILE ones (wall time, memory,
shares of wall time), which are shown, never compared. `evaluation.tolerance` (default 0) or `--tolerance` adds a
relative tolerance for every metric, e.g. to compare against a run on another CPU.
"""

from __future__ import annotations

import argparse
import fnmatch
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
# Machine-dependent numbers (time, memory) are reported, never compared: a key is volatile when it contains one of
# VOLATILE (lower case) or matches one of VOLATILE_KEYS (fnmatch on the flattened key, `*` spans dots).
VOLATILE = ("wall_time", "wall_s", "time_s", "seconds", "peak_memory", "memory_mb", "real_time_factor", "rtf")
VOLATILE_KEYS = (
    "fit_s",                                                  # asr: the fit's wall time
    "timings_s.*",                                            # tokenizer: stage wall times (encoder_states_s, ...)
    "continuation.per_system.*.lm_s_per_speech_s",            # taslm: LM wall time per second of speech
    "continuation.per_system.*.end_to_end_s_per_speech_s",    # taslm: wall time per second of speech
    "continuation.per_system.*.share_*",                      # taslm: shares of the wall time (asr/encode/lm/...)
)
# Deterministic keys that a VOLATILE substring would otherwise catch (compared after all).
NOT_VOLATILE = (
    "continuation.per_system.*.seconds_per_prompt",           # taslm: seconds of generated speech, not wall time
)
# Per-metric relative tolerances, only where the order of a float reduction can change between two runs on the
# same CPU type (everything else is compared exactly). (fnmatch pattern on the flattened key, tolerance, why).
TOLERANCES: tuple[tuple[str, float, str], ...] = (
    ("*dnsmos*", 1e-6,
     "DNSMOS runs in onnxruntime, outside torch's deterministic-algorithms switch: its MLAS kernels choose their "
     "blocking and so the order of their float sums at run time"),
)


class ToleranceError(ValueError):
    """A negative comparison tolerance."""


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


def is_volatile(key: str) -> bool:
    """A machine-dependent number (wall time, memory, a share of wall time): shown, never compared."""
    if any(fnmatch.fnmatchcase(key, p) for p in NOT_VOLATILE):
        return False
    return any(v in key.lower() for v in VOLATILE) or any(fnmatch.fnmatchcase(key, p) for p in VOLATILE_KEYS)


def metric_tolerance(key: str, tolerance: float = 0.0,
                     tolerances: Sequence[tuple[str, float, str]] = TOLERANCES) -> float:
    """The relative tolerance of one metric: the largest of `tolerance` (for every metric; 0 = exact) and the
    entries of `tolerances` whose pattern matches the key."""
    return max([float(tolerance), *(float(t) for pattern, t, _ in tolerances if fnmatch.fnmatchcase(key, pattern))])


def compare(committed: dict, rerun: dict, tolerance: float = 0.0, file: str = "metrics.json",
            tolerances: Sequence[tuple[str, float, str]] = TOLERANCES) -> list[MetricDiff]:
    """Every key of the committed metrics against the rerun; keys only in the rerun are listed as new.

    Exact unless `tolerances` (pattern, relative tolerance, reason) names the key or `tolerance` > 0."""
    if tolerance < 0 or any(t < 0 for _, t, _ in tolerances):
        raise ToleranceError(f"tolerances must be >= 0, got {tolerance} and {[t for _, t, _ in tolerances]}")
    old, new = flatten(committed), flatten(rerun)
    diffs = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            diffs.append(MetricDiff(file, key, old[key], None, math.inf, "MISSING"))
        elif key not in old:
            diffs.append(MetricDiff(file, key, None, new[key], math.nan, "new"))
        elif is_volatile(key):
            diffs.append(MetricDiff(file, key, old[key], new[key], math.nan, "skipped"))
        else:
            rel, ok = compare_values(old[key], new[key], metric_tolerance(key, tolerance, tolerances))
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
    rule = (f"tolerance {tolerance:.1%} relative" if tolerance > 0
            else "exact (per-metric tolerances: " + (", ".join(f"{p} {t:g}" for p, t, _ in TOLERANCES) or "none") + ")")
    summary = (f"{len(diffs)} metrics compared, {rule}: "
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
        return float(load_params(repo / "params.yaml")["evaluation"].get("tolerance", 0.0))
    except (KeyError, TypeError, ValueError, FileNotFoundError):
        return 0.0


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="taste review", description=__doc__)
    parser.add_argument("--repo", default=".", help="repository whose committed metrics are checked (default: .)")
    parser.add_argument("--copy", default=None, help="an already-run copy of the study to compare (skips the rerun)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="a relative tolerance for every metric (default: evaluation.tolerance, 0 = exact "
                             "except the per-metric TOLERANCES of taste.evaluation.reviewer)")
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
