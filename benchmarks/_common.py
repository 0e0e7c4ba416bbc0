"""Helpers the benchmark scripts share: peak memory, test features, a timed optimizer step, the dev-variant set-up."""

from __future__ import annotations

import argparse
import copy
import json
import resource
import time
from pathlib import Path
from typing import Any, Callable

import torch


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def test_mels(params: dict, n: int, seconds: float = 3.5) -> list[torch.Tensor]:
    """The first n test-split log-mels from data/prepared, or seeded noise of `seconds` when the study has not run."""
    path = Path(params["shared"]["paths"]["prepared"]) / "features" / "test.safetensors"
    if path.is_file():
        from taste.data.loaders import FeatureStore

        store = FeatureStore(path)
        return [store.get(k) for k in list(store.keys())[:n]]
    g = torch.Generator().manual_seed(0)
    return [torch.randn(80, int(seconds * 100), generator=g) - 4.0 for _ in range(n)]


def mean_step_seconds(model: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, Any], tuple], batch: Any,
                      repeats: int) -> float:
    """Mean seconds of one AdamW step on a fixed batch; the first step is warm-up and not counted."""
    return mean_step_seconds_over(model, loss_fn, [batch] * repeats)


def mean_step_seconds_over(model: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, Any], tuple],
                           batches: list[Any]) -> float:
    """Mean seconds of one AdamW step over `batches`; one extra step on the first batch warms up (k-means init)
    and is not counted."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for batch in [batches[0]] + list(batches):
        t0 = time.perf_counter()
        loss, _ = loss_fn(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sum(times[1:]) / len(batches)


def dev_variant_args(doc: str, what: str, default_runs: str) -> tuple[argparse.Namespace, dict, dict]:
    """The command line of a `*_dev.py` design script (NAME, JSON overrides, --root, --runs, --threads), then
    params.yaml of --root loaded, torch threads set and every seed set as the stages set them (`seed_everything`:
    the same deterministic kernels, so a variant with the stage's settings reproduces the stage's training).
    -> (args, a copy of params, the overrides as a dict)."""
    from taste.config import load_params, seed_everything, set_threads

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("overrides", help=f"JSON object of {what} settings")
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--runs", type=Path, default=Path(default_runs))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: shared.threads)")
    args = ap.parse_args()
    params = copy.deepcopy(load_params(args.root / "params.yaml"))
    set_threads(args.threads or params["shared"]["threads"])
    seed_everything(params["shared"]["seed"])
    return args, params, json.loads(args.overrides)


def override_section(section: dict, overrides: dict) -> None:
    """Merge a variant's overrides into a params section in place; a `train` key overrides the section's train block."""
    overrides = dict(overrides)
    section["train"].update(overrides.pop("train", {}))
    section.update(overrides)
