"""The asr stage end to end, for the notebook and the CLI: tokenizer, model, training, evaluation.

Entry points turn params.yaml into the plain arguments these functions take (`config_from_params`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from taste.asr.bpe import train_bpe
from taste.asr.modeling import AsrWhisper
from taste.asr.train import (AsrDataset, CtcTrainingModel, SpecAugment, bpe_corpus, make_collate, make_loss_fn,
                             state_phone_labels)
from taste.asr.whisper import AsrConfig, build_asr
from taste.training import TrainConfig, TrainResult, train
from taste.training.checkpoint import code_digest, dataset_digest, fresh_run_dir
from taste.training.loop import train_config


def config_from_params(params: dict) -> tuple[AsrConfig, TrainConfig]:
    """params.yaml (asr, data.speech.max_seconds, shared) -> the model and training configs."""
    a = params["asr"]
    cfg = AsrConfig(
        n_mels=int(params["shared"]["features"]["n_mels"]), d_model=int(a["d_model"]),
        encoder_layers=int(a["encoder_layers"]), decoder_layers=int(a["decoder_layers"]),
        n_heads=int(a["n_heads"]), ffn_dim=int(a["ffn_dim"]),
        max_seconds=float(params["data"]["speech"]["max_seconds"]),
        max_target_positions=int(a["max_target_positions"]),
    )
    train_cfg = train_config(params["asr"], params)
    return cfg, train_cfg


def fit_tokenizer(text_pool: str | Path, transcripts: Sequence[str], vocab_size: int) -> Tokenizer:
    """BPE on the text pool plus the training transcripts."""
    return train_bpe(bpe_corpus(text_pool, transcripts), vocab_size=vocab_size)


def frame_phone_targets(rows: Sequence, store, phones_path: str | Path, weight: float
                        ) -> tuple[list | None, int]:
    """(phone labels per encoder state, number of phones) for the frame-phone training aid, or (None, 0) when
    `weight` is 0. rows: the training utterances (with phone timings); store: their features (frame counts);
    phones_path: the prepare stage's phones.json."""
    if weight <= 0:
        return None, 0
    from taste.units.phones import load_phone_vocab

    vocab = load_phone_vocab(phones_path)
    labels = state_phone_labels(rows, [store.get(u.id).shape[-1] for u in rows], vocab)
    return labels, vocab.n_phones


def fit_asr(cfg: AsrConfig, tok: Tokenizer, ids: Sequence[str], texts: Sequence[str], store,
            train_cfg: TrainConfig, out_dir: str | Path, spec_augment: bool = True,
            ctc_weight: float = 0.3, frame_phone_weight: float = 0.0,
            phone_labels: Sequence | None = None, n_phones: int = 0) -> tuple[AsrWhisper, TrainResult]:
    """Build and train the Whisper on (ids, texts) with features from `store`, in the run folder
    `out_dir/<key>` (asr_fingerprint, fresh_run_dir): a rerun with the same model, training settings, vocabulary,
    training data and code resumes (or finds finished) its run; any change trains afresh in a new folder.

    With `train_cfg.bucket_by_length` the loop draws groups of similar-length utterances (`LengthBuckets` in
    `taste.training.batching`). With `ctc_weight` > 0 an auxiliary CTC head on the encoder joins training
    (`CtcTrainingModel`) and is dropped afterwards; with `frame_phone_weight` > 0 so does a frame-phone head
    (`phone_labels` from `state_phone_labels`, `n_phones`).
    """
    if frame_phone_weight > 0 and (phone_labels is None or n_phones <= 0):
        raise ValueError("frame_phone_weight > 0 needs phone_labels and n_phones")
    model = build_asr(cfg, tok, seed=train_cfg.seed)
    use_phones = frame_phone_weight > 0
    trained = CtcTrainingModel(model, n_phones if use_phones else 0) if ctc_weight > 0 or use_phones else model
    dataset = AsrDataset(ids, texts, store, tok, phone_labels if use_phones else None)
    collate = make_collate(model)
    lengths = [store.get(i).shape[-1] for i in ids] if train_cfg.bucket_by_length else None
    loss_fn = make_loss_fn(SpecAugment() if spec_augment else None, ctc_weight=ctc_weight,
                           frame_phone_weight=frame_phone_weight)
    fingerprint = asr_fingerprint(cfg, tok, dataset, spec_augment=spec_augment,
                                  ctc_weight=ctc_weight, frame_phone_weight=frame_phone_weight,
                                  n_phones=n_phones if use_phones else 0)
    run = fresh_run_dir(out_dir, train_cfg, fingerprint)
    result = train(trained, dataset, collate, loss_fn, train_cfg, run, fingerprint=fingerprint, lengths=lengths)
    return model.eval(), result


def asr_fingerprint(cfg: AsrConfig, tok: Tokenizer, dataset, **settings) -> dict:
    """What an ASR run depends on besides its TrainConfig: the model config, the vocabulary, the other training
    `settings`, a digest of the exact training items (features, targets, phone labels) and the code
    (a smoke run's checkpoint must never be loaded into the default-size model, nor old weights reported as new)."""
    return {"model": cfg, "tokenizer": hashlib.sha256(tok.to_str().encode()).hexdigest(), "settings": settings,
            "n": len(dataset), "data": dataset_digest(dataset), "code": code_digest()}


def write_jsonl(path: str | Path, rows: Sequence[dict]) -> None:
    """Rows as JSON lines (per-utterance transcripts)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
