"""The one place that reads params.yaml: entry points (notebooks, CLI, benchmarks) call these helpers."""

from __future__ import annotations

import copy
import hashlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


class ParamsError(ValueError):
    """params.yaml (or a profile overlay) is missing or malformed."""


def load_params(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """Read the study's parameters; raises ParamsError naming the file when it is absent or not a mapping."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: parameters file not found (run from the repository root)")
    with path.open(encoding="utf-8") as fh:
        params = yaml.safe_load(fh)
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a YAML mapping at the top level")
    return params


def complete_section(section: Any, settings_class: type, where: str) -> dict[str, Any]:
    """A params.yaml section that must give every field of a settings dataclass -> a plain copy of it.

    Raises ParamsError naming the section and the missing or unknown keys, so a dataclass default can never stand in
    for a value params.yaml forgot (params.yaml is the one source of every number a stage uses)."""
    import dataclasses

    if not isinstance(section, dict):
        raise ParamsError(f"params.yaml {where}: expected a mapping, got {type(section).__name__}")
    fields = {f.name for f in dataclasses.fields(settings_class)}
    missing, unknown = sorted(fields - set(section)), sorted(set(section) - fields)
    if missing or unknown:
        raise ParamsError(f"params.yaml {where}: " + "; ".join(
            part for part in (f"missing {missing}" if missing else "", f"unknown {unknown}" if unknown else "") if part))
    return dict(section)


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Return a new dict: `overlay` wins key by key, nested mappings are merged recursively."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_profile(params_path: str | os.PathLike, profile_path: str | os.PathLike) -> dict[str, Any]:
    """Merge a profile overlay into params.yaml in place (DVC then sees an ordinary params change)."""
    params = load_params(params_path)
    overlay = load_params(profile_path)
    merged = deep_merge(params, overlay)
    with Path(params_path).open("w", encoding="utf-8") as fh:
        yaml.safe_dump(merged, fh, sort_keys=False, default_flow_style=None, width=120)
    return merged


def set_threads(n: int) -> None:
    """Pin torch's intra-op threads (2 on the reference machine; 1 per process when two jobs share it)."""
    import torch

    torch.set_num_threads(int(n))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; ask torch for deterministic kernels where it has them."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def stage_dir(params: dict[str, Any], stage: str) -> Path:
    """outputs/<stage>/ (created), where a stage writes metrics, figures and its executed notebook."""
    out = Path(params["shared"]["paths"]["outputs"]) / stage
    (out / "figures").mkdir(parents=True, exist_ok=True)
    return out


def item_seed(seed: int, *keys: object) -> int:
    """A seed for one item from the study seed and the item's stable keys (e.g. its utterance or prompt id):
    the first 63 bits of sha256("seed\x1fkey1\x1fkey2..."). Unlike Python's hash() it is the same in every process
    and on every machine, and unlike `seed + index` it does not depend on the item's position or batch-mates."""
    blob = "\x1f".join([str(int(seed)), *(str(k) for k in keys)]).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") >> 1
