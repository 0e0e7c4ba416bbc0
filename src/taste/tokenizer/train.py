"""The paper's three training sub-stages (text-only -> TASTE without VQ -> with RVQ) through taste.training.train.

Each sub-stage resumes from its own checkpoint folder and, when finished, saves a full TasteTokenizer into
`out_dir/<stage>/`, so a rerun skips finished sub-stages and the text-only / no-VQ models stay available
as rows of the reconstruction table."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from taste.tokenizer.data import Collate, ItemDataset, TasteBatch, TasteItem
from taste.tokenizer.model import STAGES, WEIGHTS_FILE, TasteTokenizer
from taste.training import TrainConfig, train
from taste.training.checkpoint import items_digest, jsonable, module_digest
from taste.training.loop import check_resume


@dataclass
class TeacherForced:
    """One teacher-forced pass: logits [B, S, V], targets Long[B, S], the commitment loss, the vectors the decoder's
    TASTE branch read ([B, N, D], None for text-only) and the aggregator's last cross-attention ([B, L, T], None
    unless asked for)."""

    logits: torch.Tensor
    targets: torch.Tensor
    commit: torch.Tensor
    taste: torch.Tensor | None
    attention: torch.Tensor | None = None
    length_logits: torch.Tensor | None = None   # length head: [B, S - 1, max_word_units] at each input position
    length_targets: torch.Tensor | None = None  # Long[B, S - 1]: unit count of the word a BND opens, -1 elsewhere


def teacher_forced(model: TasteTokenizer, batch: TasteBatch, n_layers: int | None = None,
                   return_attention: bool = False) -> TeacherForced:
    """The decoder's teacher-forced pass over a batch; n_layers (eval only) decodes from the first n RVQ layers."""
    text = batch.text
    attention = None
    if n_layers is not None and model.stage == "rvq" and not model.training:
        vectors, mask = model.word_vectors(text, batch.keys, batch.values, batch.frame_lengths)
        taste, commit = model.codes_to_vectors(model.quantize(vectors), n_layers), batch.keys.new_zeros(())
    elif return_attention:
        taste, _, commit, attention = model.taste_inputs(text, batch.keys, batch.values, batch.frame_lengths,
                                                         return_attention=True)
    else:
        taste, _, commit = model.taste_inputs(text, batch.keys, batch.values, batch.frame_lengths)
    fused, mask = model.decoder.condition(text.token_ids, text.word_index, text.n_words, taste)
    if model.decoder.has_length_head:
        logits, length_logits, length_targets = model.decoder(fused, mask, batch.speaker, batch.stream,
                                                              return_lengths=True)
        return TeacherForced(logits, batch.stream, commit, taste, attention, length_logits, length_targets)
    logits = model.decoder(fused, mask, batch.speaker, batch.stream)
    return TeacherForced(logits, batch.stream, commit, taste, attention)


def unit_logits_and_targets(model: TasteTokenizer, batch: TasteBatch, n_layers: int | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forced (logits [B, S, V], targets Long[B, S], commitment loss); see teacher_forced."""
    out = teacher_forced(model, batch, n_layers=n_layers)
    return out.logits, out.targets, out.commit


def alignment_targets(word_index: torch.Tensor, word_frames: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Where each subword query should look: uniform over its word's frames.

    word_index: Long[B, L] (-1 = no word); word_frames: Long[B, N, 2] [first, last + 1) -> Float[B, L, T]
    (rows of non-word tokens are all zero)."""
    b, length = word_index.shape
    w = word_index.clamp(min=0)
    spans = word_frames.gather(1, w.unsqueeze(-1).expand(b, length, 2))  # (B, L, 2)
    t = torch.arange(n_frames, device=word_index.device)
    inside = (t >= spans[..., :1]) & (t < spans[..., 1:]) & (word_index >= 0).unsqueeze(-1)
    inside = inside.float()
    return inside / inside.sum(-1, keepdim=True).clamp(min=1.0)


def alignment_loss(attention: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the aggregator's cross-attention [B, L, T] against the word-span targets [B, L, T],
    averaged over the subword tokens that belong to a word."""
    rows = targets.sum(-1) > 0
    ce = -(targets * attention.clamp(min=1e-8).log()).sum(-1)
    return ce[rows].mean() if bool(rows.any()) else attention.new_zeros(())


def frame_labels(word_frames: torch.Tensor, n_words: torch.Tensor, n_frames: int) -> torch.Tensor:
    """The word each encoder frame lies in: word_frames Long[B, N, 2] ([first, last + 1) per word), n_words
    Long[B] -> Long[B, T] (-1 = between words, before the first or after the last)."""
    b, n, _ = word_frames.shape
    t = torch.arange(n_frames, device=word_frames.device)
    real = torch.arange(n, device=word_frames.device).unsqueeze(0) < n_words.unsqueeze(1)  # (B, N)
    inside = ((t >= word_frames[..., :1]) & (t < word_frames[..., 1:]) & real.unsqueeze(-1))  # (B, N, T)
    words = torch.arange(n, device=word_frames.device).view(1, n, 1).expand_as(inside)
    # where two spans share a frame (rounding; a compressed word's edges blend into its neighbours', see
    # augment.span_edit), the later word keeps it
    return torch.where(inside, words, torch.full_like(words, -1)).amax(1)


def assignment_loss(attention: torch.Tensor, word_index: torch.Tensor, word_frames: torch.Tensor,
                    n_words: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the frame -> word assignment read off the aggregator's cross-attention
    (aggregator.frame_assignment: each frame's column of the words' attention normalised over the words) against
    the word each frame lies in, averaged over the frames inside a word. The alignment loss says where each word
    looks; this one says which word each frame is heard as, so the attention's frame counts
    (aggregator.word_frame_counts, the "frame_count" duration feature) follow how long a word was spoken."""
    from taste.tokenizer.aggregator import frame_assignment, word_attention

    n = int(n_words.max())
    if word_frames.shape[1] != n:
        raise ValueError(f"word_frames has spans of {word_frames.shape[1]} words, the transcripts {n}")
    assign = frame_assignment(word_attention(attention, word_index, n))  # (B, N, T)
    labels = frame_labels(word_frames, n_words, attention.shape[-1])  # (B, T)
    rows = labels >= 0
    if not bool(rows.any()):
        return attention.new_zeros(())
    picked = assign.gather(1, labels.clamp(min=0).unsqueeze(1)).squeeze(1)  # (B, T)
    return -picked.clamp(min=1e-8).log()[rows].mean()


@dataclass(frozen=True)
class DurationTarget:
    """The duration loss's target: a word's log ground-truth duration (s), standardised by the training items'
    mean and standard deviation (so the loss's scale does not depend on the corpus's speaking rate)."""

    mean: float
    std: float

    @classmethod
    def from_items(cls, items: Sequence[TasteItem]) -> "DurationTarget":
        logs = torch.tensor([math.log(max(d, MIN_DURATION_S)) for it in items for d in it.word_durations_s],
                            dtype=torch.float64)
        if logs.numel() < 2:
            raise ValueError("the duration loss needs word timings of at least two words")
        return cls(float(logs.mean()), float(logs.std().clamp(min=1e-3)))

    def __call__(self, durations_s: torch.Tensor) -> torch.Tensor:
        return (durations_s.clamp(min=MIN_DURATION_S).log() - self.mean) / self.std


MIN_DURATION_S = 0.01


def duration_loss(taste: torch.Tensor, word_mask: torch.Tensor, durations_s: torch.Tensor,
                  target: DurationTarget) -> torch.Tensor:
    """Mean squared error between coordinate 0 of each word's TASTE vector (what the decoder reads: continuous
    without VQ, the dequantised codes with RVQ) and its standardised log ground-truth duration, over real words.
    Parameter-free: the aggregator (and, with RVQ, the codes) must put how long the word was where the decoder can
    read it. A training aid, like the alignment loss: inference never needs timings."""
    if not bool(word_mask.any()):
        return taste.new_zeros(())
    return F.mse_loss(taste[..., 0].float()[word_mask], target(durations_s.float())[word_mask])


def loss_fn(model: TasteTokenizer, batch: TasteBatch, align_weight: float = 0.0, duration_weight: float = 0.0,
            duration_target: DurationTarget | None = None, assign_weight: float = 0.0, length_weight: float = 0.0
            ) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy over the stream (units, boundaries, EOS) + RVQ commitment (+ align_weight x the aggregator's
    alignment loss against ground-truth word spans, + assign_weight x its frame -> word assignment loss,
    + duration_weight x duration_loss: training aids, inference needs no timings; + length_weight x the decoder's
    length head cross-entropy, its word unit counts read off the target stream)."""
    timed = model.stage != "text_only" and batch.word_frames is not None
    use_align, use_assign = timed and align_weight > 0, timed and assign_weight > 0
    use_duration = duration_weight > 0 and model.stage != "text_only" and batch.word_durations is not None
    if use_duration and duration_target is None:
        raise ValueError("duration_weight > 0 needs a duration_target (DurationTarget.from_items of the training items)")
    out = teacher_forced(model, batch, return_attention=use_align or use_assign)
    logits, targets, commit = out.logits, out.targets, out.commit
    ce = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-1)
    is_unit = (targets >= 0) & (targets < model.cfg.decoder.n_units)
    acc = (logits.argmax(-1) == targets)[is_unit].float().mean()
    loss, logs = ce + commit, {"ce": float(ce.detach()), "commit": float(commit.detach()), "unit_acc": float(acc)}
    if use_align:
        attention = out.attention
        align = alignment_loss(attention, alignment_targets(batch.text.word_index, batch.word_frames, attention.shape[-1]))
        loss, logs["align"] = loss + align_weight * align, float(align.detach())
    if use_assign:
        assign = assignment_loss(out.attention, batch.text.word_index, batch.word_frames, batch.text.n_words)
        loss, logs["assign"] = loss + assign_weight * assign, float(assign.detach())
    if use_duration:
        n = out.taste.shape[1]
        word_mask = torch.arange(n, device=out.taste.device).unsqueeze(0) < batch.text.n_words.unsqueeze(1)
        dur = duration_loss(out.taste, word_mask, batch.word_durations[:, :n], duration_target)
        loss, logs["duration"] = loss + duration_weight * dur, float(dur.detach())
    if length_weight > 0 and out.length_logits is not None:
        length = F.cross_entropy(out.length_logits.transpose(1, 2), out.length_targets, ignore_index=-1)
        loss, logs["length"] = loss + length_weight * length, float(length.detach())
    return loss, logs


@dataclass(frozen=True)
class StageSteps:
    text_only: int
    no_vq: int
    rvq: int

    def get(self, stage: str) -> int:
        return getattr(self, stage)


def substage_fingerprint(model: TasteTokenizer, items: Sequence[TasteItem], stage: str, align_weight: float,
                         duration_weight: float = 0.0, assign_weight: float = 0.0, length_weight: float = 0.0) -> dict:
    """What a sub-stage's result depends on besides its TrainConfig: the model config, the weights it starts from
    (the ASR init plus the earlier sub-stages), the training items and the training aids' weights."""
    aids = {"align_weight": align_weight, "duration_weight": duration_weight}
    if assign_weight > 0:  # only when on: runs from before the aid existed keep their fingerprints
        aids["assign_weight"] = assign_weight
    if length_weight > 0 and model.decoder.has_length_head:  # a weight without the head trains nothing
        aids["length_weight"] = length_weight
    model_cfg = jsonable(model.cfg)
    if not model_cfg["decoder"].get("length_head"):  # added in session 23: runs from before keep their fingerprints
        model_cfg["decoder"].pop("length_head", None)
    return jsonable({"stage": stage, "model": model_cfg, "start_weights": module_digest(model),
                     "items": items_digest(items), "n_items": len(items), **aids})


def train_substage(model: TasteTokenizer, items: Sequence[TasteItem], stage: str, config: TrainConfig,
                   out_dir: str | Path, align_weight: float = 0.0, duration_weight: float = 0.0,
                   assign_weight: float = 0.0, length_weight: float = 0.0) -> dict:
    """Train one sub-stage (resumable) and save the model to out_dir/<stage>/. Returns timing info.

    A finished sub-stage is skipped, and an interrupted one resumed, only when it was run with the same
    config and fingerprint (substage_fingerprint); otherwise ResumeMismatchError."""
    stage_dir = Path(out_dir) / stage
    fingerprint = substage_fingerprint(model, items, stage, align_weight, duration_weight, assign_weight,
                                       length_weight)
    if (stage_dir / WEIGHTS_FILE).is_file() and (stage_dir / "train_info.json").is_file():  # finished: skip
        info = json.loads((stage_dir / "train_info.json").read_text())
        check_resume(stage_dir, info, config, fingerprint)
        model.load_state_dict(load_file(str(stage_dir / WEIGHTS_FILE)))
        model.set_stage(stage)
        return {**info, "skipped": True}
    model.set_stage(stage)
    collate = Collate(model.cfg.conditioning, model.cfg.decoder.n_units, model.cfg.encoder_rate_hz)
    trainable = list(model.decoder.parameters())
    if stage != "text_only":
        trainable += list(model.aggregator.parameters()) + list(model.quantizer.parameters())
    target = DurationTarget.from_items(items) if duration_weight > 0 else None
    result = train(model, ItemDataset(items), collate, partial(loss_fn, align_weight=align_weight,
                                                               duration_weight=duration_weight,
                                                               duration_target=target,
                                                               assign_weight=assign_weight,
                                                               length_weight=length_weight), config,
                   Path(out_dir) / f"run_{stage}", trainable=trainable, fingerprint=fingerprint,
                   lengths=[len(it.units) for it in items])
    model.save_pretrained(stage_dir)
    info = {"stage": stage, "steps": config.steps, "wall_time_s": result.wall_time_s,
            "peak_memory_mb": result.peak_memory_mb, "resumed_from": result.resumed_from,
            "final": result.history[-1] if result.history else {},
            "config": jsonable(config), "fingerprint": fingerprint}
    (stage_dir / "train_info.json").write_text(json.dumps(info, indent=2))
    return info


def train_all(model: TasteTokenizer, items: Sequence[TasteItem], steps: StageSteps, base: TrainConfig,
              out_dir: str | Path, stages: Sequence[str] = STAGES, align_weight: float = 0.0,
              duration_weight: float = 0.0, assign_weight: float = 0.0, length_weight: float = 0.0) -> list[dict]:
    """Run the sub-stages in order with the same optimiser settings; a stage with 0 steps is skipped."""
    from dataclasses import replace

    infos = []
    for stage in stages:
        n = steps.get(stage)
        if n <= 0:
            continue
        warmup = min(base.warmup_steps, max(n // 5, 1))
        infos.append(train_substage(model, items, stage, replace(base, steps=n, warmup_steps=warmup), out_dir,
                                    align_weight, duration_weight, assign_weight, length_weight))
    return infos
