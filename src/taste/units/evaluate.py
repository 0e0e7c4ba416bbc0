"""Unit tokenizer evaluation on a split: codebook usage, phone purity / PNMI, greedy-CTC phone error rate, and how
much pitch the codes keep (pitch-class purity / PNMI)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from taste.data.records import Utterance
from taste.data.loaders import MelSource
from taste.units.data import pad_mels
from taste.units.metrics import codebook_usage, ctc_greedy_decode, phone_error_rate, purity_pnmi
from taste.units.model import UnitTokenizer
from taste.units.phones import PhoneVocab, unit_phone_labels
from taste.units.pitch_labels import PitchClasses, speaker_reference_f0, unit_pitch_labels


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


def pitch_information(units: Sequence[np.ndarray], utterances: Sequence[Utterance], f0: MelSource, stride: int,
                      codebook_size: int, classes: PitchClasses = PitchClasses()) -> dict:
    """How much pitch the unit streams keep: purity and PNMI of the codes against each unit's pitch class
    (taste.units.pitch_labels, relative to each speaker's median F0 over `utterances`).

    units: per utterance int array [U_i], aligned with `utterances`. -> {"pitch_purity", "pitch_pnmi",
    "pitch_class_entropy_bits"}; None values when no unit is voiced.
    """
    refs = speaker_reference_f0(utterances, f0)
    labels = [unit_pitch_labels(f0.get(u.id), len(s), stride, refs[u.speaker], classes).numpy()
              if u.speaker in refs else np.full(len(s), -1) for u, s in zip(utterances, units)]
    flat_units, flat_labels = np.concatenate([np.asarray(s) for s in units]), np.concatenate(labels)
    if not (flat_labels > 0).any():
        return {"pitch_purity": None, "pitch_pnmi": None, "pitch_class_entropy_bits": None}
    scores = purity_pnmi(flat_units, flat_labels, codebook_size, classes.n_classes)
    p = np.bincount(flat_labels[flat_labels >= 0], minlength=classes.n_classes) / max((flat_labels >= 0).sum(), 1)
    entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
    return {"pitch_purity": scores["phone_purity"], "pitch_pnmi": scores["pnmi"], "pitch_class_entropy_bits": entropy}
