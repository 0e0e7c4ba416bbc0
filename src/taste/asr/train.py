"""Training the ASR Whisper with the study's loop, and measuring it (WER / CER per split).

Items come from a manifest (text) and a FeatureStore (log-mel); batches are padded only to their own longest
utterance (the length-aware model masks the rest).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn
from torch.utils.data import Dataset

from taste.asr.bpe import EOT, SOT, special_id, word_ids
from taste.asr.features import check_batch, pad_mels, prepare_features
from taste.asr.modeling import AsrWhisper, encoder_lengths
from taste.asr.whisper import transcribe
from taste.evaluation.wer import per_utterance_wer, wer


@dataclass(frozen=True)
class SpecAugment:
    """Masks applied to normalised features during training (speakers at test time are unseen)."""

    freq_masks: int = 2
    freq_width: int = 10
    time_masks: int = 2
    time_width: int = 20


class AsrDataset(Dataset):
    """(mel Tensor[n_mels, F], target ids [SOT, tokens..., EOT]) per utterance."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str], store, tok: Tokenizer):
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} utterance ids but {len(texts)} transcripts")
        self.ids, self.texts, self.store = list(ids), list(texts), store
        sot, eot = special_id(tok, SOT), special_id(tok, EOT)
        self.targets = [[sot, *word_ids(tok, t)[0], eot] for t in self.texts]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, list[int]]:
        return self.store.get(self.ids[i]), self.targets[i]


class LengthBuckets(Dataset):
    """Item i = a whole batch of utterances of similar length (train with batch_size 1 and `unwrap(collate)`).

    The study's loop draws random items; with random batches every batch pads to the longest of B random
    utterances. Grouping by length (jittered by +-`jitter`, seeded, so groups differ between seeds) cuts the
    padded frames, and the step time with them; the loop still shuffles the groups each epoch.
    """

    def __init__(self, dataset: Dataset, lengths: Sequence[int], batch_size: int, seed: int = 0,
                 jitter: float = 0.15):
        if len(lengths) != len(dataset):
            raise ValueError(f"{len(lengths)} lengths for {len(dataset)} items")
        rng = np.random.default_rng(seed)
        keys = np.asarray(lengths, dtype=np.float64) * rng.uniform(1 - jitter, 1 + jitter, len(lengths))
        order = np.argsort(keys, kind="stable").tolist()
        self.dataset = dataset
        self.groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> list:
        return [self.dataset[j] for j in self.groups[i]]


def unwrap(collate):
    """collate for LengthBuckets: the loop hands over [group]; the group is the batch."""
    return lambda items: collate([x for group in items for x in group])


def make_collate(model: AsrWhisper):
    """collate(list of (mel, target ids)) -> batch dict for `loss_fn`, padded to the batch's longest item."""
    cfg = model.config
    window = 2 * cfg.max_source_positions

    def collate(items: list[tuple[torch.Tensor, list[int]]]) -> dict[str, torch.Tensor]:
        mels, lengths = pad_mels([m for m, _ in items])
        lengths = check_batch(mels, lengths, cfg.num_mel_bins, window)
        feats, mask = prepare_features(mels, lengths, window, getattr(cfg, "pad_to_window", False))
        n_tok = max(len(t) for _, t in items) - 1
        if n_tok + 1 > cfg.max_target_positions:
            raise ValueError(f"a transcript has {n_tok + 1} tokens, more than max_target_positions "
                             f"{cfg.max_target_positions}")
        inputs = torch.full((len(items), n_tok), cfg.pad_token_id, dtype=torch.long)
        labels = torch.full((len(items), n_tok), -100, dtype=torch.long)
        for i, (_, t) in enumerate(items):
            inputs[i, : len(t) - 1] = torch.tensor(t[:-1])
            labels[i, : len(t) - 1] = torch.tensor(t[1:])
        ctc = torch.zeros(len(items), n_tok - 1, dtype=torch.long)  # subwords without SOT / EOT
        for i, (_, t) in enumerate(items):
            ctc[i, : len(t) - 2] = torch.tensor(t[1:-1])
        return {"input_features": feats, "attention_mask": mask, "decoder_input_ids": inputs, "labels": labels,
                "ctc_targets": ctc, "ctc_lengths": torch.tensor([len(t) - 2 for _, t in items])}

    return collate


def spec_augment(feats: torch.Tensor, aug: SpecAugment) -> torch.Tensor:
    """feats: Tensor[B, n_mels, F] -> a copy with random frequency and time bands set to 0 (torch RNG)."""
    out = feats.clone()
    batch, n_mels, n_frames = out.shape
    for b in range(batch):
        for _ in range(aug.freq_masks):
            w = int(torch.randint(0, aug.freq_width + 1, ()))
            f0 = int(torch.randint(0, max(1, n_mels - w), ()))
            out[b, f0 : f0 + w] = 0.0
        for _ in range(aug.time_masks):
            w = int(torch.randint(0, aug.time_width + 1, ()))
            t0 = int(torch.randint(0, max(1, n_frames - w), ()))
            out[b, :, t0 : t0 + w] = 0.0
    return out


class CtcTrainingModel(nn.Module):
    """The Whisper plus a CTC head on its encoder, for training only (the head is dropped afterwards).

    Joint CTC / attention training (as in ESPnet) makes the encoder align to the text within a few hundred
    steps, where attention alone learns a language model first; it also makes the encoder's last layer, the
    aggregator's keys in TASTE, more linguistic. CTC blank = the PAD id.
    """

    def __init__(self, whisper: AsrWhisper):
        super().__init__()
        self.whisper = whisper
        self.ctc = nn.Linear(whisper.config.d_model, whisper.config.vocab_size)


def _ctc_loss(head: nn.Linear, enc: torch.Tensor, mask: torch.Tensor, batch: dict, blank: int) -> torch.Tensor:
    """enc: Tensor[B, S, D] encoder states, mask: frame mask [B, F] -> mean CTC loss per target token."""
    log_probs = head(enc).float().log_softmax(-1).transpose(0, 1)  # (S, B, V)
    in_lengths = encoder_lengths(mask.sum(1))
    return nn.functional.ctc_loss(log_probs, batch["ctc_targets"], in_lengths, batch["ctc_lengths"], blank=blank,
                                  reduction="mean", zero_infinity=True)


def make_loss_fn(aug: SpecAugment | None = SpecAugment(), ctc_weight: float = 0.0):
    """loss_fn(model, batch) -> ((1 - w) token cross-entropy + w CTC, logs) for `taste.training.train`.

    `model` is an AsrWhisper, or a CtcTrainingModel when ctc_weight > 0.
    """

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        whisper = getattr(model, "whisper", model)
        feats = batch["input_features"]
        if aug is not None and model.training:
            feats = spec_augment(feats, aug)
        out = whisper(feats, batch["decoder_input_ids"], attention_mask=batch["attention_mask"],
                      labels=batch["labels"])
        with torch.no_grad():
            keep = batch["labels"] != -100
            acc = (out.logits.argmax(-1) == batch["labels"])[keep].float().mean()
        logs = {"ce": float(out.loss.detach()), "token_acc": float(acc)}
        if ctc_weight <= 0:
            return out.loss, logs
        ctc = _ctc_loss(model.ctc, out.encoder_last_hidden_state, batch["attention_mask"], batch,
                        whisper.config.pad_token_id)
        logs["ctc"] = float(ctc.detach())
        return (1 - ctc_weight) * out.loss + ctc_weight * ctc, logs

    return loss_fn


def evaluate_asr(model: AsrWhisper, tok: Tokenizer, ids: Sequence[str], texts: Sequence[str], store,
                 batch_size: int = 32) -> tuple[dict[str, float], list[dict]]:
    """Transcribe utterances (sorted by length, so batches pad little) -> (summary, per-utterance rows).

    summary: wer, cer, n_utterances, audio_s, decode_s, rtf (decode time / audio time).
    """
    if not ids:
        raise ValueError("evaluate_asr: no utterances")
    mels = [store.get(i) for i in ids]
    order = sorted(range(len(ids)), key=lambda i: mels[i].shape[-1])
    hyps: list[str] = [""] * len(ids)
    t0 = time.perf_counter()
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        x, lengths = pad_mels([mels[i] for i in chunk])
        for i, h in zip(chunk, transcribe(model, tok, x, lengths, batch_size=batch_size)):
            hyps[i] = h
    decode_s = time.perf_counter() - t0
    audio_s = sum(m.shape[-1] for m in mels) / 100.0
    per_wer = per_utterance_wer(texts, hyps)
    rows = [{"id": i, "ref": r, "hyp": h, "wer": w} for i, r, h, w in zip(ids, texts, hyps, per_wer)]
    summary = {"wer": wer(texts, hyps), "cer": float(jiwer.cer(list(texts), hyps)), "n_utterances": len(ids),
               "audio_s": audio_s, "decode_s": decode_s, "rtf": decode_s / audio_s}
    return summary, rows


def bpe_corpus(text_pool: str | Path, transcripts: Sequence[str]) -> list[str]:
    """Sentences the BPE is trained on: the text pool (one sentence a line, blank lines between stories)
    and the training transcripts."""
    path = Path(text_pool)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text pool not found (run `taste materialise`)")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return [ln for ln in lines if ln] + [t for t in transcripts if t.strip()]
