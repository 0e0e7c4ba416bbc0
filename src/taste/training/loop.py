"""The one training loop every model of the study shares: data in, loss out, accelerate around it.

Each model folder brings its model, its dataset/collate and a `loss_fn(model, batch) -> (loss, logs)`.
The loop owns sampling (seeded, resumable by step), AdamW with warmup + cosine decay, gradient clipping,
optional bf16 autocast, progress, atomic checkpoints and resume. Under `accelerate launch` with several
processes each rank draws its own slice of every global batch and gradients are averaged across ranks
after backward, so loss functions may call any method of the model (no DDP forward wrapper needed).
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from taste.training.batching import LengthBuckets, unwrap
from taste.training.checkpoint import (
    config_identity,
    find_checkpoint,
    jsonable,
    load_training_state,
    save_training_state,
    write_text_atomic,
)

LossFn = Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]


class EmptyDatasetError(ValueError):
    """The training set has no items."""


class ResumeMismatchError(RuntimeError):
    """A run folder holds a checkpoint (or finished weights) of a different configuration or data fingerprint.

    Resuming would silently mix two runs, so the loop refuses; delete the folder (or point the run elsewhere)
    to start afresh."""

    def __init__(self, run_dir: str | Path, differing: Sequence[str]):
        self.run_dir, self.differing = Path(run_dir), list(differing)
        super().__init__(
            f"{run_dir}: refusing to resume: the saved run was started with a different configuration/data "
            f"fingerprint (differing: {', '.join(self.differing)}); delete {run_dir} to start afresh")


def _diff_keys(prefix: str, saved: Any, current: Any) -> list[str]:
    """Dotted names of the entries where `saved` and `current` (plain JSON values) differ."""
    if isinstance(saved, dict) and isinstance(current, dict):
        out: list[str] = []
        for k in sorted(set(saved) | set(current), key=str):
            if k not in saved:
                out.append(f"{prefix}.{k} (not in the saved run)")
            elif k not in current:
                out.append(f"{prefix}.{k} (only in the saved run)")
            else:
                out.extend(_diff_keys(f"{prefix}.{k}", saved[k], current[k]))
        return out
    return [] if saved == current else [prefix]


def resume_mismatch(saved: dict[str, Any], config: TrainConfig | dict[str, Any] | None,
                    fingerprint: Any) -> list[str]:
    """Which keys of the saved run's {"config", "fingerprint"} differ from the current ones ([] = same run).

    A saved run without a recorded fingerprint (written before fingerprints existed) matches only a current
    run without one. Configs compare by `config_identity` (RESUME_NEUTRAL_KEYS ignored; a field added later counts
    as absent while it holds its LATER_FIELD_DEFAULTS value)."""
    differing: list[str] = []
    if config is not None:
        old = saved.get("config")
        if not isinstance(old, dict):
            differing.append("config (not recorded in the saved run)")
        else:
            differing += _diff_keys("config", config_identity(old), config_identity(config))
    if "fingerprint" not in saved and fingerprint is not None:
        differing.append("fingerprint (not recorded in the saved run)")
    else:
        differing += _diff_keys("fingerprint", saved.get("fingerprint"), jsonable(fingerprint))
    return differing


def check_resume(run_dir: str | Path, saved: dict[str, Any], config: TrainConfig | dict[str, Any] | None,
                 fingerprint: Any) -> None:
    """Raise ResumeMismatchError naming `run_dir` and the differing keys unless `saved` describes this run."""
    differing = resume_mismatch(saved, config, fingerprint)
    if differing:
        raise ResumeMismatchError(run_dir, differing)


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int = 0
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    checkpoint_every: int = 200
    log_every: int = 20
    seed: int = 0
    mixed_precision: str = "no"  # "no" | "bf16"
    betas: tuple[float, float] = (0.9, 0.98)
    bucket_by_length: bool = False  # batches are groups of similar-length items (needs `lengths` in train())


def train_config(section: dict[str, Any], params: dict[str, Any]) -> TrainConfig:
    """TrainConfig from a stage's `train:` block plus the shared seed, mixed precision and checkpoint / log cadence
    (every value from params.yaml: no default here)."""
    t, shared = section["train"], params["shared"]
    return TrainConfig(steps=int(t["steps"]), batch_size=int(t["batch_size"]), lr=float(t["lr"]),
                       warmup_steps=int(t["warmup_steps"]), checkpoint_every=int(shared["checkpoint_every"]),
                       log_every=int(shared["log_every"]), seed=int(shared["seed"]),
                       mixed_precision=str(shared["mixed_precision"]), bucket_by_length=bool(t["bucket_by_length"]))


def model_config(model: torch.nn.Module):
    """The `cfg` of a model, also when a wrapper (DDP, compile) holds it as .module."""
    return getattr(model, "cfg", None) or model.module.cfg


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    wall_time_s: float = 0.0
    peak_memory_mb: float = 0.0
    resumed_from: int = 0
    final_step: int = 0


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1, then cosine decay to 0.1 at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def batch_indices(step: int, batch_size: int, n_items: int, seed: int, rank: int = 0, world: int = 1) -> list[int]:
    """Indices of this rank's share of global batch `step`.

    The data order is an endless chain of seeded permutations (one per epoch); global batch `step` is the
    slice [step * B * world, (step + 1) * B * world) of that chain and rank r takes the r-th B-sized piece.
    Depends only on (step, seed), which is what makes resume exact.
    """
    start = (step * world + rank) * batch_size
    out: list[int] = []
    epoch_cache: dict[int, np.ndarray] = {}
    for pos in range(start, start + batch_size):
        epoch, offset = divmod(pos, n_items)
        if epoch not in epoch_cache:
            epoch_cache[epoch] = np.random.default_rng([seed, epoch]).permutation(n_items)
        out.append(int(epoch_cache[epoch][offset]))
    return out


def to_device(batch: Any, device: torch.device | str) -> Any:
    """A batch with every tensor on `device`: tensors, dataclasses (each field), dicts, lists and tuples
    (named tuples keep their type); anything else is returned as is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return dataclasses.replace(batch, **{f.name: to_device(getattr(batch, f.name), device)
                                             for f in dataclasses.fields(batch) if f.init})
    if isinstance(batch, dict):
        return type(batch)((k, to_device(v, device)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _average_gradients(params: Sequence[torch.nn.Parameter], world: int) -> None:
    import torch.distributed as dist

    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world


def _read_history(path: Path, upto_step: int) -> list[dict[str, float]]:
    """History rows up to the checkpointed step, one per step (a later duplicate replaces an earlier row).

    Rows beyond `upto_step` were logged after the last checkpoint by a run that then crashed; they are
    recomputed on resume, so they are dropped here. A torn last line (crash mid-write) is dropped too."""
    if not path.exists():
        return []
    by_step: dict[int, dict[str, float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if int(row["step"]) <= upto_step:
            by_step[int(row["step"])] = row
    return [by_step[k] for k in sorted(by_step)]


def _rewrite_history(path: Path, rows: list[dict[str, float]]) -> None:
    """Replace history.jsonl by exactly `rows`, atomically (the resumed run then appends after them)."""
    write_text_atomic("".join(json.dumps(r) + "\n" for r in rows), path)


def _batch_source(dataset: Dataset, collate: Callable[[list[Any]], Any], config: TrainConfig,
                  lengths: Sequence[float] | None, out_dir: Path) -> tuple[Dataset, Callable[[list[Any]], Any], int]:
    """(dataset, collate, items drawn per rank and step): the items themselves, or with `bucket_by_length` their
    LengthBuckets groups, one group drawn per step."""
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise EmptyDatasetError(f"training set for {out_dir} is empty")
    if not config.bucket_by_length:
        return dataset, collate, config.batch_size
    if lengths is None:
        raise ValueError(f"{out_dir}: bucket_by_length is on but train() got no item lengths")
    return LengthBuckets(dataset, lengths, config.batch_size, seed=config.seed), unwrap(collate), 1


def _resume(out_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig,
            fingerprint: Any, is_main_process: bool) -> tuple[int, list[dict[str, float]]]:
    """(first step to train, history so far): from out_dir/checkpoint when one exists (refused unless it holds the
    same run), else (0, []). The history file is cut back to the checkpointed step."""
    start_step = 0
    ckpt = find_checkpoint(out_dir / "checkpoint")
    if ckpt is not None:
        saved = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
        check_resume(out_dir, saved, config, fingerprint)  # before any weights are touched
        start_step = int(load_training_state(ckpt, model, optimizer)["step"])
    history = _read_history(out_dir / "history.jsonl", start_step)
    if is_main_process and (history or (out_dir / "history.jsonl").exists()):
        _rewrite_history(out_dir / "history.jsonl", history)
    return start_step, history


def _optimizer_step(model: torch.nn.Module, batch: Any, loss_fn: LossFn, optimizer: torch.optim.Optimizer,
                    params: Sequence[torch.nn.Parameter], config: TrainConfig, accelerator: Any, world: int,
                    step: int, out_dir: Path) -> dict[str, float]:
    """One forward / backward / update -> this step's logs (loss first)."""
    with accelerator.autocast():
        loss, logs = loss_fn(model, batch)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{out_dir}: loss became {loss.item()} at step {step}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if world > 1:
        _average_gradients(params, world)
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
    optimizer.step()
    return {"loss": float(loss.detach()), **{k: float(v) for k, v in logs.items()}}


class _RunningMeans:
    """Means of the step logs since the last history row."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, logs: dict[str, float]) -> None:
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1

    def row(self, step: int, lr: float) -> dict[str, float]:
        """The history row for `step`; the means start afresh."""
        row = {"step": step, "lr": lr, **{k: v / self.n for k, v in self.sums.items()}}
        self.sums, self.n = {}, 0
        return row


def train(
    model: torch.nn.Module,
    dataset: Dataset,
    collate: Callable[[list[Any]], Any],
    loss_fn: LossFn,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    trainable: Iterable[torch.nn.Parameter] | None = None,
    progress: bool = True,
    fingerprint: Any = None,
    lengths: Sequence[float] | None = None,
) -> TrainResult:
    """Train `model` for `config.steps` optimizer steps, resuming from `out_dir/checkpoint` when present.

    `fingerprint` (JSON-able: dicts, dataclasses, strings, digests) names what else the run depends on (model
    config, data digests, starting weights). It is saved with every checkpoint; a checkpoint whose config or
    fingerprint differs from the current one is never resumed: ResumeMismatchError names the differing keys.

    With `config.bucket_by_length`, `lengths` (one per item, in any unit) groups the items into batches of
    similar length (`LengthBuckets`, seeded by `config.seed`) and the loop draws one group per step.

    Returns the training curve (`history`, one row per `log_every` steps plus a final eval row when
    `eval_fn` is given), wall time and peak resident memory. `model` ends with the final weights.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    dataset, collate, draw = _batch_source(dataset, collate, config, lengths, out_dir)
    n_items = len(dataset)  # type: ignore[arg-type]
    out_dir.mkdir(parents=True, exist_ok=True)
    # accelerate chooses the device: the CPU here, a GPU per process under `accelerate launch` where GPUs exist
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    rank, world, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    torch.manual_seed(config.seed)
    model.to(device)
    params = [p for p in (trainable if trainable is not None else model.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    fingerprint = jsonable(fingerprint)
    start_step, history = _resume(out_dir, model, optimizer, config, fingerprint, accelerator.is_main_process)
    accelerator.wait_for_everyone()
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(range(start_step, config.steps), initial=start_step, total=config.steps, mininterval=10,
               disable=not (progress and accelerator.is_main_process), desc=out_dir.name)
    running = _RunningMeans()
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = config.lr * lr_factor(step, config.warmup_steps, config.steps)
        batch = to_device(
            collate([dataset[i] for i in batch_indices(step, draw, n_items, config.seed, rank, world)]),
            device)
        running.add(_optimizer_step(model, batch, loss_fn, optimizer, params, config, accelerator, world, step,
                                    out_dir))
        row = _log_row(step + 1, config, running, optimizer, out_dir, accelerator.is_main_process)
        if row is not None:
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
        if accelerator.is_main_process and _is_checkpoint_step(step + 1, config):
            save_training_state(out_dir / "checkpoint", model, optimizer, step + 1,
                                {"config": _jsonable(config), "fingerprint": fingerprint})
        accelerator.wait_for_everyone()
    model.to("cpu")  # callers evaluate, save and use the model on the CPU, whatever device trained it
    history.extend(_final_eval(model, eval_fn, config.steps))
    model.eval()
    return TrainResult(history=history, wall_time_s=time.perf_counter() - t0, peak_memory_mb=_peak_memory_mb(),
                       resumed_from=start_step, final_step=config.steps)


def _log_row(done: int, config: TrainConfig, running: "_RunningMeans", optimizer, out_dir: Path,
             is_main: bool) -> dict[str, float] | None:
    """Every `log_every` steps and at the last: the running means as a history row, appended to history.jsonl by
    the main process; None on other steps."""
    if done % config.log_every != 0 and done != config.steps:
        return None
    row = running.row(done, optimizer.param_groups[0]["lr"])
    if is_main:
        with (out_dir / "history.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
    return row


def _is_checkpoint_step(done: int, config: TrainConfig) -> bool:
    return done % config.checkpoint_every == 0 or done == config.steps


def _final_eval(model: torch.nn.Module, eval_fn, steps: int) -> list[dict[str, float]]:
    """The final eval row of the history (none without an eval_fn)."""
    if eval_fn is None:
        return []
    model.eval()
    with torch.no_grad():
        return [{"step": steps, **{f"eval_{k}": float(v) for k, v in eval_fn(model).items()}}]


def _jsonable(config: TrainConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))
