"""The paper's three training sub-stages (text-only -> TASTE without VQ -> with RVQ) through taste.training.train.

Each sub-stage resumes from its own checkpoint folder and, when finished, saves a full TasteTokenizer into
`out_dir/<stage>/`, so a rerun skips finished sub-stages and the text-only / no-VQ models stay available
as rows of the reconstruction table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from taste.tokenizer.data import Collate, ItemDataset, TasteBatch, TasteItem
from taste.tokenizer.model import STAGES, WEIGHTS_FILE, TasteTokenizer
from taste.training import TrainConfig, train


def unit_logits_and_targets(model: TasteTokenizer, batch: TasteBatch,
                            n_layers: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forced logits [B, S, V], targets Long[B, S] and the commitment loss.
    n_layers (eval only) decodes from the first n RVQ layers."""
    text = batch.text
    if n_layers is not None and model.stage == "rvq" and not model.training:
        vectors, mask = model.word_vectors(text, batch.keys, batch.values, batch.frame_lengths)
        taste, commit = model.codes_to_vectors(model.quantize(vectors), n_layers), batch.keys.new_zeros(())
    else:
        taste, _, commit = model.taste_inputs(text, batch.keys, batch.values, batch.frame_lengths)
    fused, mask = model.decoder.condition(text.token_ids, text.word_index, text.n_words, taste)
    logits = model.decoder(fused, mask, batch.speaker, batch.stream)
    return logits, batch.stream, commit


def loss_fn(model: TasteTokenizer, batch: TasteBatch) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy over the stream (units, boundaries, EOS) + RVQ commitment."""
    logits, targets, commit = unit_logits_and_targets(model, batch)
    ce = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-1)
    is_unit = (targets >= 0) & (targets < model.cfg.decoder.n_units)
    acc = (logits.argmax(-1) == targets)[is_unit].float().mean()
    return ce + commit, {"ce": float(ce.detach()), "commit": float(commit.detach()), "unit_acc": float(acc)}


@dataclass(frozen=True)
class StageSteps:
    text_only: int
    no_vq: int
    rvq: int

    def get(self, stage: str) -> int:
        return getattr(self, stage)


def train_substage(model: TasteTokenizer, items: Sequence[TasteItem], stage: str, config: TrainConfig,
                   out_dir: str | Path) -> dict:
    """Train one sub-stage (resumable) and save the model to out_dir/<stage>/. Returns timing info."""
    stage_dir = Path(out_dir) / stage
    if (stage_dir / WEIGHTS_FILE).is_file():  # finished earlier: load and skip
        model.load_state_dict(load_file(str(stage_dir / WEIGHTS_FILE)))
        model.set_stage(stage)
        info = json.loads((stage_dir / "train_info.json").read_text())
        return {**info, "skipped": True}
    model.set_stage(stage)
    collate = Collate(model.cfg.conditioning, model.cfg.decoder.n_units)
    trainable = list(model.decoder.parameters())
    if stage != "text_only":
        trainable += list(model.aggregator.parameters()) + list(model.quantizer.parameters())
    result = train(model, ItemDataset(items), collate, loss_fn, config, Path(out_dir) / f"run_{stage}",
                   trainable=trainable)
    model.save_pretrained(stage_dir)
    info = {"stage": stage, "steps": config.steps, "wall_time_s": result.wall_time_s,
            "peak_memory_mb": result.peak_memory_mb, "resumed_from": result.resumed_from,
            "final": result.history[-1] if result.history else {}}
    (stage_dir / "train_info.json").write_text(json.dumps(info, indent=2))
    return info


def train_all(model: TasteTokenizer, items: Sequence[TasteItem], steps: StageSteps, base: TrainConfig,
              out_dir: str | Path, stages: Sequence[str] = STAGES) -> list[dict]:
    """Run the sub-stages in order with the same optimiser settings; a stage with 0 steps is skipped."""
    from dataclasses import replace

    infos = []
    for stage in stages:
        n = steps.get(stage)
        if n <= 0:
            continue
        warmup = min(base.warmup_steps, max(n // 5, 1))
        infos.append(train_substage(model, items, stage, replace(base, steps=n, warmup_steps=warmup), out_dir))
    return infos
