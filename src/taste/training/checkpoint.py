"""Atomic, pickle-free checkpoints: weights and optimizer tensors as safetensors, the rest as JSON."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def save_safetensors_atomic(state_dict: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Write `state_dict` to `path` via a temporary file + rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tensors = {k: v.detach().cpu().clone() for k, v in state_dict.items()}  # clone: unties shared storage
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: weights file not found")
    return load_file(str(path))


def write_json_atomic(obj: Any, path: str | os.PathLike) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (safetensors) and JSON-able scalars."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, slots in state["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{name}"] = value
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_training_state(
    directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, extra: dict[str, Any]
) -> None:
    """Write a complete checkpoint into `directory` atomically (tmp dir, then swap)."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # clone(): tied weights (e.g. Llama embeddings) share storage, which safetensors refuses to save
    save_file({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    save_file({k: v.contiguous().cpu() for k, v in opt_tensors.items()}, str(tmp / "optimizer.safetensors"))
    save_file({"torch_rng": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "optimizer": opt_meta, **extra}, indent=1), encoding="utf-8")
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint: `directory`, or its `.old` twin if a crash hit mid-swap."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / "state.json").exists():
            return candidate
    return None


def load_training_state(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimizer and RNG from a checkpoint written by save_training_state; returns state.json."""
    meta = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    optimizer.load_state_dict(_unflatten_optimizer(load_file(str(directory / "optimizer.safetensors")), meta["optimizer"]))
    torch.set_rng_state(load_file(str(directory / "rng.safetensors"))["torch_rng"])
    return meta


def write_text_atomic(text: str, path: str | os.PathLike) -> None:
    """Write `text` to `path` via a temporary file + rename (a crash leaves the old or the new file, never half)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    return str(obj)


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON values (dataclasses -> dicts, tuples -> lists, anything else -> str): what state.json
    stores, so a saved fingerprint and a freshly computed one compare equal exactly when they describe the same run."""
    return json.loads(json.dumps(obj, default=_json_default, sort_keys=True))


def module_digest(module: torch.nn.Module) -> str:
    """sha256 over a module's state (names, shapes, dtypes, bytes): identifies the exact weights a run starts from."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(tensor_bytes_tag(name, tensor))
    return h.hexdigest()


def tensor_bytes_tag(name: str, tensor: torch.Tensor) -> bytes:
    t = tensor.detach().cpu().contiguous()
    head = f"{name}:{tuple(t.shape)}:{t.dtype}".encode()
    return head + (t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


_PLAIN = (str, bytes, int, float, bool, type(None))


def _digest_value(h: Any, name: str, value: Any) -> None:
    """Feed one named value into `h`: tensors and arrays by shape, dtype and bytes; containers, dataclasses and
    other objects field by field; plain values (and sequences of them) by repr."""
    if torch.is_tensor(value):
        h.update(tensor_bytes_tag(name, value))
    elif isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        body = arr.tobytes() if arr.dtype != object else repr(arr.tolist()).encode()
        h.update(f"{name}:{arr.shape}:{arr.dtype}".encode() + body)
    elif isinstance(value, dict):
        for k, v in value.items():
            _digest_value(h, f"{name}.{k}", v)
    elif isinstance(value, (list, tuple)) and not all(isinstance(v, _PLAIN) for v in value):
        h.update(f"{name}=[{len(value)}];".encode())
        for i, v in enumerate(value):
            _digest_value(h, f"{name}[{i}]", v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _digest_value(h, f.name if not name else f"{name}.{f.name}", getattr(value, f.name))
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        for k, v in vars(value).items():
            _digest_value(h, k if not name else f"{name}.{k}", v)
    else:
        h.update(f"{name}={value!r};".encode())


def items_digest(items: Iterable[Any]) -> str:
    """sha256 over every field of every item, in order: tensors by name, shape, dtype and bytes; dicts, dataclasses
    and other objects field by field; anything else by repr. Identifies a run's exact training data."""
    h = hashlib.sha256()
    for item in items:
        _digest_value(h, "", item)
    return h.hexdigest()


def dataset_digest(dataset: Any) -> str:
    """items_digest over `dataset[0] .. dataset[len - 1]`: exactly the items a training loop draws from."""
    return items_digest(dataset[i] for i in range(len(dataset)))


@functools.cache
def code_digest() -> str:
    """sha256 over the relative paths and bytes of every .py file of the installed `taste` package (once per
    process): a run's fingerprint holds it, so a code change never resumes a run trained by the old code."""
    import taste

    root = Path(taste.__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        h.update(f"{rel}:{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


# TrainConfig fields that change only how often the loop logs / checkpoints, never the trained weights.
RESUME_NEUTRAL_KEYS = frozenset({"checkpoint_every", "log_every"})


# TrainConfig fields added after runs were saved, with the value every older run had: a run holding that value is
# the same run as before the field existed (same folder name, and it resumes), as with the training aids' weights.
LATER_FIELD_DEFAULTS = {"bucket_by_length": False}


def config_identity(config: Any) -> Any:
    """A run's config as it identifies the run: JSON, minus RESUME_NEUTRAL_KEYS and minus fields that hold their
    LATER_FIELD_DEFAULTS value."""
    cfg = jsonable(config)
    if isinstance(cfg, dict):
        cfg = {k: v for k, v in cfg.items()
               if k not in RESUME_NEUTRAL_KEYS and not (k in LATER_FIELD_DEFAULTS and v == LATER_FIELD_DEFAULTS[k])}
    return cfg


def run_key(config: Any, fingerprint: Any) -> str:
    """A short hash of (config_identity(config), fingerprint): the name of the run's folder."""
    blob = json.dumps({"config": config_identity(config), "fingerprint": jsonable(fingerprint)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def fresh_run_dir(base: str | os.PathLike, config: Any, fingerprint: Any) -> Path:
    """base/<run_key>: the folder of the one run with this config and fingerprint, created if new.

    The one mechanism every trainer uses: a rerun with the same settings, data and code resumes (or finds finished)
    its own run; anything else gets a new folder next to the old ones, which are never deleted here. Pass the same
    `fingerprint` to `train()`, which refuses (ResumeMismatchError) a folder holding a different run.
    fingerprint.json in the folder says, for people, what the run was made from."""
    run = Path(base) / run_key(config, fingerprint)
    run.mkdir(parents=True, exist_ok=True)
    stamp = run / "fingerprint.json"
    if not stamp.exists():
        write_json_atomic({"config": jsonable(config), "fingerprint": jsonable(fingerprint)}, stamp)
    return run
