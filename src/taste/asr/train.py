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
from taste.metrics.wer import per_utterance_wer, wer


@dataclass(frozen=True)
class SpecAugment:
    """Masks applied to normalised features during training (speakers at test time are unseen)."""

    freq_masks: int = 2
    freq_width: int = 10
    time_masks: int = 2
    time_width: int = 20


class AsrDataset(Dataset):
    """(mel Tensor[n_mels, F], target ids [SOT, tokens..., EOT]) per utterance, plus its frame phone labels
    (int array, one per encoder state, -1 = silence / none) when `phone_labels` is given."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str], store, tok: Tokenizer,
                 phone_labels: Sequence[np.ndarray] | None = None):
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} utterance ids but {len(texts)} transcripts")
        if phone_labels is not None and len(phone_labels) != len(ids):
            raise ValueError(f"{len(ids)} utterance ids but {len(phone_labels)} phone label arrays")
        self.ids, self.texts, self.store = list(ids), list(texts), store
        self.phone_labels = None if phone_labels is None else list(phone_labels)
        sot, eot = special_id(tok, SOT), special_id(tok, EOT)
        self.targets = [[sot, *word_ids(tok, t)[0], eot] for t in self.texts]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple:
        if self.phone_labels is None:
            return self.store.get(self.ids[i]), self.targets[i]
        return self.store.get(self.ids[i]), self.targets[i], self.phone_labels[i]


def state_phone_labels(utterances: Sequence, n_frames: Sequence[int], vocab) -> list[np.ndarray]:
    """The phone under each encoder state (50 per second: two 100 Hz mel frames) of each utterance, from its
    synthesiser / forced-alignment phones: int arrays [ceil(F / 2)], 0-based phone index, -1 = silence or none.

    utterances: records with `.id` and `.phones`; n_frames: mel frames of each; vocab: `units.phones.PhoneVocab`.
    An utterance without phone timings cannot be labelled (ValueError naming it)."""
    from taste.units.phones import unit_phone_labels

    out = []
    for u, n in zip(utterances, n_frames):
        if not u.phones:
            raise ValueError(f"utterance {u.id}: no phone timings for the ASR's frame-phone loss "
                             "(set asr.frame_phone_weight: 0 for a corpus without them)")
        out.append(unit_phone_labels(u.phones, (int(n) + 1) // 2, 50.0, vocab))
    return out


def make_collate(model: AsrWhisper):
    """collate(list of (mel, target ids)) -> batch dict for `loss_fn`, padded to the batch's longest item."""
    cfg = model.config
    window = 2 * cfg.max_source_positions

    def collate(items: list[tuple]) -> dict[str, torch.Tensor]:
        phones = [it[2] for it in items] if len(items[0]) > 2 else None
        items = [(it[0], it[1]) for it in items]
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
        batch = {"input_features": feats, "attention_mask": mask, "decoder_input_ids": inputs, "labels": labels,
                 "ctc_targets": ctc, "ctc_lengths": torch.tensor([len(t) - 2 for _, t in items])}
        if phones is not None:  # one label per encoder state; padding and silence are ignored (-100)
            frame_phones = torch.full((len(items), (feats.shape[-1] + 1) // 2), -100, dtype=torch.long)
            for i, lab in enumerate(phones):
                lab = torch.as_tensor(lab, dtype=torch.long)
                frame_phones[i, : len(lab)] = lab.masked_fill(lab < 0, -100)
            batch["frame_phones"] = frame_phones
        return batch

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

    def __init__(self, whisper: AsrWhisper, n_phones: int = 0):
        super().__init__()
        self.whisper = whisper
        self.ctc = nn.Linear(whisper.config.d_model, whisper.config.vocab_size)
        # frame-phone head (training aid, like the units model's): the phone under each encoder state
        self.phone = nn.Linear(whisper.config.d_model, n_phones) if n_phones > 0 else None


def _ctc_loss(head: nn.Linear, enc: torch.Tensor, mask: torch.Tensor, batch: dict, blank: int) -> torch.Tensor:
    """enc: Tensor[B, S, D] encoder states, mask: frame mask [B, F] -> mean CTC loss per target token."""
    log_probs = head(enc).float().log_softmax(-1).transpose(0, 1)  # (S, B, V)
    in_lengths = encoder_lengths(mask.sum(1))
    return nn.functional.ctc_loss(log_probs, batch["ctc_targets"], in_lengths, batch["ctc_lengths"], blank=blank,
                                  reduction="mean", zero_infinity=True)


def make_loss_fn(aug: SpecAugment | None = SpecAugment(), ctc_weight: float = 0.0, frame_phone_weight: float = 0.0):
    """loss_fn(model, batch) -> ((1 - w) token cross-entropy + w CTC + p frame-phone CE, logs) for
    `taste.training.train`.

    `model` is an AsrWhisper, or a CtcTrainingModel when ctc_weight > 0 or frame_phone_weight > 0 (its phone
    head reads the encoder's last states; the batch then carries `frame_phones`).
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
        loss = out.loss
        if ctc_weight > 0:
            ctc = _ctc_loss(model.ctc, out.encoder_last_hidden_state, batch["attention_mask"], batch,
                            whisper.config.pad_token_id)
            logs["ctc"] = float(ctc.detach())
            loss = (1 - ctc_weight) * out.loss + ctc_weight * ctc
        if frame_phone_weight > 0:
            if getattr(model, "phone", None) is None or "frame_phones" not in batch:
                raise ValueError("frame_phone_weight > 0 needs a CtcTrainingModel with a phone head and batches "
                                 "with frame_phones")
            logits = model.phone(out.encoder_last_hidden_state).float()
            target = batch["frame_phones"][:, : logits.shape[1]]
            phone_ce = nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=-100)
            logs["phone_ce"] = float(phone_ce.detach())
            loss = loss + frame_phone_weight * phone_ce
        return loss, logs

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
