"""Unit tokenizer evaluation on a split: codebook usage, phone purity / PNMI, greedy-CTC phone error rate."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from taste.data.records import Utterance
from taste.units.data import MelSource, pad_mels
from taste.units.metrics import codebook_usage, ctc_greedy_decode, phone_error_rate, purity_pnmi
from taste.units.model import UnitTokenizer
from taste.units.phones import PhoneVocab, unit_phone_labels


@torch.no_grad()
def evaluate_unit_tokenizer(model: UnitTokenizer, utterances: Sequence[Utterance], features: MelSource,
                            vocab: PhoneVocab, batch_size: int = 16) -> dict:
    """-> {"metrics": {...}, "units": [np.ndarray], "labels": [np.ndarray]} (units and labels aligned per utterance)."""
    model.eval()
    all_units, all_labels, refs, hyps = [], [], [], []
    for start in range(0, len(utterances), batch_size):
        chunk = utterances[start: start + batch_size]
        mel, lengths = pad_mels([features.get(u.id).float() for u in chunk])
        out = model(mel, lengths)
        for utt, units, n, hyp in zip(chunk, out["units"], out["unit_lengths"].tolist(),
                                      ctc_greedy_decode(out["logits"], out["unit_lengths"])):
            all_units.append(units[:n].numpy())
            all_labels.append(unit_phone_labels(utt.phones, n, model.cfg.rate_hz, vocab))
            refs.append(vocab.ctc_targets(utt.phones))
            hyps.append(hyp)
    metrics = unit_stream_metrics(all_units, all_labels, model.cfg.codebook_size, vocab.n_phones, model.cfg.rate_hz)
    metrics["per"] = phone_error_rate(refs, hyps)
    return {"metrics": metrics, "units": all_units, "labels": all_labels}


def unit_stream_metrics(units: Sequence[np.ndarray], labels: Sequence[np.ndarray], codebook_size: int, n_phones: int,
                        rate_hz: float) -> dict:
    """Usage, perplexity, purity, PNMI and bitrate of any unit streams (trained or S3) with aligned phone labels."""
    metrics = codebook_usage(units, codebook_size)
    if (np.concatenate(labels) >= 0).any():
        metrics.update(purity_pnmi(np.concatenate(units), np.concatenate(labels), codebook_size, n_phones))
    else:  # real corpora without phone alignments: purity and PNMI are undefined
        metrics.update({"phone_purity": None, "cluster_purity": None, "pnmi": None})
    metrics["n_utterances"] = len(units)
    metrics["rate_hz"] = rate_hz
    metrics["bitrate_bps"] = rate_hz * float(np.log2(codebook_size))
    return metrics


def evaluate_unit_streams(units: dict[str, torch.Tensor], utterances: Sequence[Utterance], vocab: PhoneVocab,
                          codebook_size: int, rate_hz: float) -> dict:
    """Metrics of stored unit streams (e.g. S3 units from CosyVoice's tokenizer) against phone alignments."""
    streams = [units[u.id].long().numpy() for u in utterances]
    labels = [unit_phone_labels(u.phones, len(s), rate_hz, vocab) for u, s in zip(utterances, streams)]
    return {"metrics": unit_stream_metrics(streams, labels, codebook_size, vocab.n_phones, rate_hz),
            "units": streams, "labels": labels}
