"""Reconstruction table (paper Table 1 at CPU scale): every row measured the same way.

Model rows give teacher-forced unit accuracy and per-word durations from the GENERATED boundaries (word_sync);
every row with audio is judged by one set of instruments (pocketsphinx WER and forced alignment, DNSMOS,
resemblyzer speaker similarity). Reference durations for generated boundaries use the same convention as
training (a word owns the pause after it); forced-alignment durations are compared with the ground-truth
word durations of the manifest."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from taste.config import item_seed
from taste.metrics.duration import duration_consistency
from taste.metrics.stats import bootstrap_ci
from taste.tokenizer.data import Collate, TasteItem
from taste.tokenizer.model import DecodeResult, TasteTokenizer
from taste.tokenizer.streams import word_unit_counts
from taste.tokenizer.train import unit_logits_and_targets


def batches(items: Sequence, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


@torch.no_grad()
def teacher_forced_accuracy(model: TasteTokenizer, items: Sequence[TasteItem], n_layers: int | None = None,
                            batch_size: int = 32) -> pd.DataFrame:
    """Per utterance: top-1 / top-5 accuracy of the next UNIT (boundaries and EOS excluded)."""
    model.eval()
    collate, rows = Collate(model.cfg.conditioning, model.cfg.decoder.n_units), []
    for chunk in batches(items, batch_size):
        batch = collate(chunk)
        logits, targets, _ = unit_logits_and_targets(model, batch, n_layers=n_layers)
        top5 = logits.topk(5, dim=-1).indices
        for i, it in enumerate(chunk):
            is_unit = (targets[i] >= 0) & (targets[i] < model.cfg.decoder.n_units)
            t = targets[i][is_unit]
            rows.append({"id": it.id, "top1": float((top5[i][is_unit][:, 0] == t).float().mean()),
                         "top5": float((top5[i][is_unit] == t[:, None]).any(-1).float().mean())})
    return pd.DataFrame(rows)


@torch.no_grad()
def attention_in_span(model: TasteTokenizer, items: Sequence[TasteItem], batch_size: int = 32) -> float:
    """Mean share of a word token's last-layer cross-attention that falls inside its word's ground-truth frames
    (1 = every query looks only at its own word; about word length / utterance length for uniform attention)."""
    from taste.tokenizer.train import alignment_targets

    model.eval()
    collate, shares = Collate(model.cfg.conditioning, model.cfg.decoder.n_units, model.cfg.encoder_rate_hz), []
    for chunk in batches(items, batch_size):
        b = collate(chunk)
        _, _, attention = model.word_vectors(b.text, b.keys, b.values, b.frame_lengths, return_attention=True)
        inside = alignment_targets(b.text.word_index, b.word_frames, attention.shape[-1]) > 0
        rows = inside.any(-1)
        shares.append((attention * inside).sum(-1)[rows])
    return float(torch.cat(shares).mean())


@torch.no_grad()
def eval_vectors(model: TasteTokenizer, items: Sequence[TasteItem], n_layers: int | None) -> list[torch.Tensor] | None:
    """Word vectors the decoder gets at inference (quantised with the first n_layers codebooks); None = text-only."""
    if model.stage == "text_only":
        return None
    batch = Collate(model.cfg.conditioning, model.cfg.decoder.n_units)(items)
    vectors, _ = model.word_vectors(batch.text, batch.keys, batch.values, batch.frame_lengths)
    if model.stage == "rvq":
        vectors = model.codes_to_vectors(model.quantize(vectors), n_layers)
    return [vectors[i, : it.n_words] for i, it in enumerate(items)]


@torch.no_grad()
def reconstruct(model: TasteTokenizer, items: Sequence[TasteItem], n_layers: int | None = None, seed: int = 0,
                batch_size: int = 32, boundary: str | None = None) -> list[DecodeResult]:
    """Batched sampling of units for each item (its own speaker embedding and its own random stream,
    `item_seed(seed, item id)`: an item decodes alike in any batch or order, and no two items share their draws)."""
    out: list[DecodeResult] = []
    for chunk in batches(items, batch_size):
        vecs = eval_vectors(model, chunk, n_layers)
        speakers = torch.stack([it.speaker for it in chunk])
        seeds = [item_seed(seed, it.id) for it in chunk]
        out.extend(model.decode_batch([it.text for it in chunk], vecs, speakers, seed=seeds, boundary=boundary))
    return out


@torch.no_grad()
def encode_items(model: TasteTokenizer, items: Sequence[TasteItem], batch_size: int = 32) -> dict[str, torch.Tensor]:
    """{utt id: int16 codes [N_words, n_q]} (the data/taste_codes files)."""
    codes: dict[str, torch.Tensor] = {}
    for chunk in batches(items, batch_size):
        batch = Collate(model.cfg.conditioning, model.cfg.decoder.n_units)(chunk)
        vectors, _ = model.word_vectors(batch.text, batch.keys, batch.values, batch.frame_lengths)
        c = model.quantize(vectors)
        for i, it in enumerate(chunk):
            codes[it.id] = c[i, : it.n_words].to(torch.int16).contiguous()
    return codes


def reference_word_durations(item: TasteItem, rate_hz: float) -> list[float]:
    """Ground-truth per-word durations in the generated-boundary convention (start to next start)."""
    return [c / rate_hz for c in word_unit_counts(item.boundaries, len(item.units))]


def boundary_durations(items: Sequence[TasteItem], results: Sequence[DecodeResult],
                       rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """(reference, generated) per-word durations pooled over utterances; rows whose word count differs are skipped."""
    ref, hyp, _ = boundary_durations_by_utterance(items, results, rate_hz)
    return ref, hyp


def boundary_durations_by_utterance(items: Sequence[TasteItem], results: Sequence[DecodeResult],
                                    rate_hz: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """boundary_durations plus each word's utterance id (the independent unit of the duration CIs)."""
    ref, hyp, utt = [], [], []
    for it, res in zip(items, results):
        if len(res.word_durations_s) == it.n_words:
            ref.extend(reference_word_durations(it, rate_hz))
            hyp.extend(res.word_durations_s)
            utt.extend([it.id] * it.n_words)
    return np.array(ref), np.array(hyp), np.array(utt, dtype=object)


def consistency_with_ci(ref: np.ndarray, hyp: np.ndarray, n_boot: int, seed: int = 0,
                        utterances: Sequence | None = None) -> dict[str, float]:
    """duration_consistency plus 95% bootstrap CIs that resample UTTERANCES (`utterances: [N_words]` labels each
    word's utterance; cluster_bootstrap_ci keeps the words of one utterance together). Without labels every word
    is its own unit (words of one utterance are not independent: that CI is too narrow; kept for old callers)."""
    from taste.metrics.stats import cluster_bootstrap_ci

    if ref.size == 0:
        return {k: math.nan for k in ("within_25ms", "within_50ms", "pearson_r")}
    out = {k: v for k, v in duration_consistency(ref, hyp).items() if k != "n"}
    idx = np.arange(ref.size)  # resample word indices (the bootstrap hands them back as floats)
    labels = idx if utterances is None else np.asarray(utterances)
    if labels.size != ref.size:
        raise ValueError(f"consistency_with_ci: {labels.size} utterance labels for {ref.size} words")
    labels = labels.astype(str) if labels.dtype == object else labels

    def _r(i: np.ndarray) -> float:
        r, h = ref[i.astype(int)], hyp[i.astype(int)]
        return float(np.corrcoef(r, h)[0, 1]) if np.std(r) > 0 and np.std(h) > 0 else 0.0

    stats = {
        "within_25ms": lambda i: float(np.mean(np.abs(hyp[i.astype(int)] - ref[i.astype(int)]) <= 0.025 + 1e-9)),
        "within_50ms": lambda i: float(np.mean(np.abs(hyp[i.astype(int)] - ref[i.astype(int)]) <= 0.050 + 1e-9)),
        "pearson_r": _r,
    }
    for name, fn in stats.items():
        lo, hi = cluster_bootstrap_ci(idx, labels, statistic=fn, n=n_boot, seed=seed)
        out[f"{name}_lo"], out[f"{name}_hi"] = lo, hi
    return out


def bitrate(words_per_second: float, n_layers: int | None, codebook_size: int) -> float:
    """bits/s of per-word codes: words/s x layers x log2(codebook)."""
    return words_per_second * (n_layers or 0) * math.log2(codebook_size)


@dataclass(frozen=True)
class AudioJudges:
    """Instruments applied identically to every row (injectable for tests)."""

    transcribe: Callable[[np.ndarray], str]
    align: Callable[[np.ndarray, str], Sequence]
    dnsmos: Callable[[np.ndarray], float]
    speaker_embed: Callable[[np.ndarray], np.ndarray]


def default_audio_judges(corpus_sentences: Sequence[str], scored_sentences: Sequence[str]) -> AudioJudges:
    """Pocketsphinx (corpus LM; JudgeLeakError when a scored sentence is in it), DNSMOS overall, resemblyzer."""
    from taste.metrics.recognizer import Pocketsphinx, check_blind

    check_blind(corpus_sentences, scored_sentences)  # before loading any model
    from taste.metrics.quality import dnsmos
    from taste.metrics.speaker import SpeakerEncoder

    ps, spk = Pocketsphinx(corpus_sentences, scored_sentences=scored_sentences), SpeakerEncoder()
    return AudioJudges(ps.transcribe, ps.align, lambda w: dnsmos(w)["ovrl"], spk.embed)


def judge_audio(system: str, items: Sequence, texts: Sequence[str], wavs: Sequence[np.ndarray],
                ref_durations: Sequence[Sequence[float]], ref_speakers: Sequence[np.ndarray],
                judges: AudioJudges) -> pd.DataFrame:
    """One row per utterance: hyp, dnsmos, speaker_sim (to the original's embedding), forced-aligned word
    durations ('fa_durations', None when alignment failed) next to the ground truth ('ref_durations')."""
    from taste.metrics.speaker import cosine

    rows = []
    for utt_id, text, wav, ref_d, ref_spk in zip(items, texts, wavs, ref_durations, ref_speakers):
        try:
            fa = [w.duration for w in judges.align(wav, text)]
        except ValueError:  # AlignmentError: audio cannot hold the words
            fa = None
        rows.append({"system": system, "id": utt_id, "text": text, "hyp": judges.transcribe(wav),
                     "dnsmos": judges.dnsmos(wav), "speaker_sim": cosine(judges.speaker_embed(wav), ref_spk),
                     "fa_durations": fa, "ref_durations": list(ref_d), "seconds": len(wav) / 16000})
    return pd.DataFrame(rows)


def summarise_audio(per_utt: pd.DataFrame, n_boot: int, seed: int = 0) -> pd.DataFrame:
    """Per system: corpus WER (CI: utterance bootstrap of corpus WER), DNSMOS, speaker similarity (CIs of the
    means) and forced-alignment duration consistency (CIs resample utterances)."""
    from taste.metrics.stats import corpus_wer_summary

    rows = []
    for name, g in per_utt.groupby("system", sort=False):
        w = corpus_wer_summary(list(g["text"]), list(g["hyp"]), n=n_boot, seed=seed)  # utterance bootstrap
        row = {"system": name, "n_audio": len(g), "wer": w["value"], "wer_lo": w["ci_lo"], "wer_hi": w["ci_hi"]}
        for col in ("dnsmos", "speaker_sim"):
            lo, hi = bootstrap_ci(g[col].to_numpy(), n=n_boot, seed=seed)
            row.update({col: float(g[col].mean()), f"{col}_lo": lo, f"{col}_hi": hi})
        ok = g[g["fa_durations"].notna()]
        ref = np.concatenate([np.array(r) for r in ok["ref_durations"]]) if len(ok) else np.array([])
        hyp = np.concatenate([np.array(h) for h in ok["fa_durations"]]) if len(ok) else np.array([])
        utts = np.concatenate([[str(u)] * len(r) for u, r in zip(ok["id"], ok["ref_durations"])]) if len(ok) else None
        row["fa_failures"] = int(len(g) - len(ok))
        row.update({f"fa_{k}": v for k, v in consistency_with_ci(ref, hyp, n_boot, seed, utts).items()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("system")


def ce_loss_of(model: TasteTokenizer, items: Sequence[TasteItem]) -> float:
    """Mean teacher-forced cross-entropy (a sanity number for the notebook)."""
    batch = Collate(model.cfg.conditioning, model.cfg.decoder.n_units)(items)
    with torch.no_grad():
        logits, targets, _ = unit_logits_and_targets(model, batch)
    return float(F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-1))
