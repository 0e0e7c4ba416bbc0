"""Runs one study stage: its notebook through papermill, timed, into outputs/<stage>/."""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

from taste.config import REPO_ROOT

STAGE_NOTEBOOKS: dict[str, str] = {
    "prepare": "01_data_prep",
    "units": "02a_units",
    "vocoder": "02b_vocoder",
    "asr": "02c_asr",
    "tokenizer": "02d_tokenizer",
    "lm_pretrain": "03a_lm_pretrain",
    "taslm": "03_taslm",
    "swap": "04_token_swap",
    "evaluate": "05_evaluate",
}
KERNEL_NAME = "taste"


class UnknownStageError(ValueError):
    pass


def run_stage(stage: str, params_path: str = "params.yaml", repo: Path = REPO_ROOT, outputs: str = "outputs") -> dict:
    """Execute the stage's notebook; write outputs/<stage>/<notebook>.ipynb and stage_time.json."""
    import papermill

    if stage not in STAGE_NOTEBOOKS:
        raise UnknownStageError(f"unknown stage {stage!r}; stages are {', '.join(STAGE_NOTEBOOKS)}")
    name = STAGE_NOTEBOOKS[stage]
    source = repo / "notebooks" / f"{name}.ipynb"
    if not source.exists():
        raise FileNotFoundError(f"{source}: notebook for stage {stage!r} not found")
    out_dir = repo / outputs / stage
    out_dir.mkdir(parents=True, exist_ok=True)  # papermill does not create it
    env_threads = os.environ.get("TASTE_THREADS")
    t0 = time.perf_counter()
    papermill.execute_notebook(
        str(source), str(out_dir / f"{name}.ipynb"), parameters={"params_path": params_path},
        kernel_name=KERNEL_NAME, cwd=str(repo), progress_bar=False, log_output=True,
        # one stdout and one stderr output per cell, carriage returns applied: a progress bar leaves its last line,
        # not one output per refresh above the results (nbclient's coalesce_streams)
        coalesce_streams=True,
    )
    timing = {
        "stage": stage,
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, 1),
        "threads_override": env_threads,
    }
    (out_dir / "stage_time.json").write_text(json.dumps(timing, indent=2) + "\n", encoding="utf-8")
    print(f"stage {stage}: {timing['wall_time_s']} s, peak memory {timing['peak_memory_mb']} MB")
    return timing


def stage_table(outputs_root: str | Path) -> list[dict]:
    """The study's stage table from outputs/<stage>/stage_time.json, in pipeline order: one row per stage that has
    run (stage, wall_time_s, peak_memory_mb, share of the summed wall time) and a last `total` row."""
    rows = []
    for stage in STAGE_NOTEBOOKS:
        path = Path(outputs_root) / stage / "stage_time.json"
        if path.is_file():
            t = json.loads(path.read_text(encoding="utf-8"))
            rows.append({"stage": stage, "wall_time_s": float(t["wall_time_s"]),
                         "peak_memory_mb": float(t["peak_memory_mb"])})
    total = sum(r["wall_time_s"] for r in rows)
    for r in rows:
        r["share"] = r["wall_time_s"] / total if total else float("nan")
    rows.append({"stage": "total", "wall_time_s": total, "share": 1.0 if rows else float("nan"),
                 "peak_memory_mb": max((r["peak_memory_mb"] for r in rows), default=float("nan"))})
    return rows


def cell_profile(notebook: str | Path, top: int | None = None) -> list[dict]:
    """Where an executed stage notebook spent its time: papermill's per-cell durations, longest first.

    -> rows of cell (index in the notebook), seconds, share (of the summed cell time) and first_line (the cell's
    first line of code that is not a comment). A notebook that papermill did not execute raises ValueError."""
    path = Path(notebook)
    nb = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for i, cell in enumerate(nb.get("cells", [])):
        seconds = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if cell.get("cell_type") != "code" or seconds is None:
            continue
        source = "".join(cell.get("source", []))
        first = next((ln.strip() for ln in source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")),
                     "")
        rows.append({"cell": i, "seconds": float(seconds), "first_line": first})
    if not rows:
        raise ValueError(f"{path}: no papermill cell durations (not a notebook executed by `taste stage`)")
    total = sum(r["seconds"] for r in rows)
    for r in rows:
        r["share"] = r["seconds"] / total if total else float("nan")
    rows.sort(key=lambda r: -r["seconds"])
    return rows[:top] if top else rows
