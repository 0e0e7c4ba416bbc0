"""Where is word j's duration lost: in the TASTE word vectors, or in the unit decoder that reads them? (issue 13)

    python benchmarks/duration_probe_dev.py MODEL_DIR [--root .] [--train-utterances 1500] [--threads 2]

MODEL_DIR is a saved TasteTokenizer (the stage's models/taste/no_vq or models/taste/rvq). A ridge probe is fitted
from the word vectors the decoder sees (no-VQ: the aggregator's continuous vectors; RVQ: the dequantised codes) to
each word's log ground-truth duration on the train split, and scored on dev: R^2 of all dev words, and, on the
swap stage's dev edited pairs (word j of a dev recording stretched or compressed, nothing else changed), the slope
of the probe's predicted duration difference of j on the true one, pooled over pairs exactly like the swap stage's
retention (sum d*(y_variant - y_base) / sum d^2). A probe slope near 1 with a decoder retention far below it says
the vectors carry j's duration and the decoder does not use it; a probe slope as low as the retention says the
vectors never carried it. Dev only: nothing here is chosen on or reported for test. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from taste.config import load_params, seed_everything, set_threads
from taste.data.features import log_mel
from taste.data.records import read_manifest
from taste.data.validate import read_speech
from taste.swap.edit import edit_settings_from_params, make_edited_pairs
from taste.swap.edited_set import middle_word_bases
from taste.tokenizer import pipeline as P
from taste.tokenizer.data import Collate
from taste.tokenizer.model import TasteTokenizer
from taste.vocoder.pipeline import mel_config
from tokenizer_variants_dev import switch_off_location_prior, variant_paths


def decoder_vectors(model: TasteTokenizer, vectors: torch.Tensor) -> torch.Tensor:
    """[N, D] aggregator output -> what the decoder's TASTE branch receives at the model's stage."""
    return vectors if model.stage == "no_vq" else model.codes_to_vectors(model.quantize(vectors))


@torch.no_grad()
def word_features(model: TasteTokenizer, items, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(decoder-side word vectors [W, D], log ground-truth word durations [W]) over items with timings."""
    xs, ys = [], []
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        batch = Collate(model.cfg.conditioning, model.cfg.decoder.n_units)(chunk)
        vectors, _ = model.word_vectors(batch.text, batch.keys, batch.values, batch.frame_lengths)
        for k, it in enumerate(chunk):
            xs.append(decoder_vectors(model, vectors[k, : it.n_words]).numpy())
            ys.append(np.log(np.maximum(np.asarray(it.word_durations_s, dtype=np.float64), 1e-3)))
    return np.concatenate(xs), np.concatenate(ys)


@torch.no_grad()
def encode_with_widths(model: TasteTokenizer, mel: torch.Tensor, transcript: str
                       ) -> tuple[torch.Tensor, list[float], list[float], list[float]]:
    """One encoder pass over an utterance -> (the decoder-side word vectors [N, D], as `model.encode` gives them;
    each word's last-layer cross-attention width in nats, tokenizer.aggregator.word_attention_width; the same
    width with the location prior switched off; the log of each word's frame count,
    tokenizer.aggregator.word_frame_counts; the log of its frames in the best monotonic segmentation,
    tokenizer.aggregator.word_monotonic_counts, from the same attention)."""
    from taste.tokenizer.aggregator import word_attention_width, word_frame_counts, word_monotonic_counts

    text = model.tokenize([transcript])
    states = model.encoder_states(mel.unsqueeze(0).float(), torch.tensor([mel.shape[-1]]))
    n_words = int(text.n_words.max())
    vectors, _, attention = model.word_vectors(text, *states, return_attention=True)
    with location_prior_off(model):
        _, _, attention_no_prior = model.word_vectors(text, *states, return_attention=True)
    log_counts = word_frame_counts(attention, text.word_index, n_words).clamp(min=1.0).log()
    log_monotonic = word_monotonic_counts(attention, text.word_index, text.n_words, states[2]).clamp(min=1.0).log()
    return (decoder_vectors(model, vectors[0]), word_attention_width(attention, text.word_index, n_words)[0].tolist(),
            word_attention_width(attention_no_prior, text.word_index, n_words)[0].tolist(), log_counts[0].tolist(),
            log_monotonic[0].tolist())


@contextmanager
def location_prior_off(model: TasteTokenizer):
    """Switch the aggregator's learnable location prior off (tokenizer_variants_dev.switch_off_location_prior:
    softplus(w) ~ 0 in every layer), then restore its weights and whether they train."""
    saved = [(layer.location_weight.detach().clone(), layer.location_weight.requires_grad)
             for layer in model.aggregator.layers]
    switch_off_location_prior(model)
    try:
        yield model
    finally:
        with torch.no_grad():
            for layer, (w, trains) in zip(model.aggregator.layers, saved):
                layer.location_weight.copy_(w)
                layer.location_weight.requires_grad_(trains)


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Closed-form ridge on standardised features -> (weights, intercept, mean, scale)."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return w, float(y.mean()), mu, sd


def predict(probe, x: np.ndarray) -> np.ndarray:
    w, b, mu, sd = probe
    return ((x - mu) / sd) @ w + b


def r2(y: np.ndarray, yhat: np.ndarray) -> float:
    return float(1.0 - np.sum((y - yhat) ** 2) / np.sum((y - y.mean()) ** 2))


def pair_slope(delta: np.ndarray, diff: np.ndarray, clusters: np.ndarray, n_boot: int, seed: int) -> list[float]:
    """sum d*diff / sum d^2 with the swap stage's own cluster-bootstrap CI (base recordings) -> [value, lo, hi]."""
    from taste.swap.slope import _ratio_ci

    r = _ratio_ci(delta * diff, delta ** 2, clusters, n_boot, seed)
    return [round(r["value"], 3), round(r["ci_lo"], 3), round(r["ci_hi"], 3)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--train-utterances", type=int, default=1500)
    ap.add_argument("--alpha", type=float, default=10.0, help="ridge penalty on standardised features")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    root = args.root.resolve()
    params = load_params(str(root / "params.yaml"))
    set_threads(args.threads or params["shared"]["threads"])
    seed = int(params["shared"]["seed"])
    seed_everything(seed)
    model = TasteTokenizer.from_pretrained(args.model).eval()
    if model.stage == "text_only":
        raise SystemExit(f"{args.model}: a text-only model has no word vectors to probe")
    paths = variant_paths(root, params, root / "benchmarks_runs" / "duration_probe")
    t0 = time.perf_counter()
    x_tr, y_tr = word_features(model, P.split_items(model, params, paths, "train", limit=args.train_utterances))
    x_dev, y_dev = word_features(model, P.split_items(model, params, paths, "dev",
                                                     limit=int(params["tokenizer"]["eval_utterances"])))
    # The probe is fitted on the stage's cached (float16) encoder states and read on fresh float32 ones below, as
    # the swap stage encodes its recordings: a small mismatch, the same for base and variant.
    probe = fit_ridge(x_tr, y_tr, args.alpha)

    # The swap stage's dev edited pairs: word j of a dev recording stretched / compressed (rate edits only).
    sp = params["swap"]
    edit_settings = edit_settings_from_params(sp["edited"])
    bases = middle_word_bases(read_manifest(paths.prepared / "dev.jsonl"), edit_settings.dev_bases)
    utts, audio, kinds = make_edited_pairs(bases, lambda u: read_speech(str(root / u.audio_path), u.text),
                                           edit_settings)
    mel_cfg = mel_config(params)
    by_pair: dict[str, dict[str, object]] = {}
    for u in utts:
        if kinds.get(u.pair.pair_id) == "rate":
            by_pair.setdefault(u.pair.pair_id, {})[u.pair.role] = u
    delta, diff, clusters, log_delta, width_diff, width_diff_no_prior, count_diff = [], [], [], [], [], [], []
    monotonic_diff = []
    with torch.no_grad():
        for pair_id, roles in sorted(by_pair.items()):
            base, variant = roles["base"], next(v for r, v in roles.items() if r != "base")
            j = base.pair.changed_word
            pred, width, width_no_prior, count, monotonic = [], [], [], [], []
            for u in (base, variant):
                vec, w, w_no_prior, c, mono = encode_with_widths(model, log_mel(torch.from_numpy(audio[u.id]), mel_cfg),
                                                           u.text)
                pred.append(float(np.exp(predict(probe, vec[j: j + 1].numpy())[0])))
                width.append(w[j])
                width_no_prior.append(w_no_prior[j])
                count.append(c[j])
                monotonic.append(mono[j])
            truth = [u.words[j].end - u.words[j].start for u in (base, variant)]
            delta.append(truth[1] - truth[0])
            diff.append(pred[1] - pred[0])
            log_delta.append(float(np.log(truth[1] / truth[0])))
            width_diff.append(width[1] - width[0])
            width_diff_no_prior.append(width_no_prior[1] - width_no_prior[0])
            count_diff.append(count[1] - count[0])
            monotonic_diff.append(monotonic[1] - monotonic[0])
            clusters.append(pair_id.split(":", 1)[1])
    delta, diff, clusters = np.array(delta), np.array(diff), np.array(clusters)
    log_delta, width_diff, width_diff_no_prior = np.array(log_delta), np.array(width_diff), np.array(width_diff_no_prior)
    count_diff, monotonic_diff = np.array(count_diff), np.array(monotonic_diff)
    out = {"model": str(args.model), "stage": model.stage, "train_words": int(y_tr.size), "dev_words": int(y_dev.size),
           "alpha": args.alpha, "probe_r2_train": round(r2(y_tr, predict(probe, x_tr)), 3),
           "probe_r2_dev": round(r2(y_dev, predict(probe, x_dev)), 3),
           "edited_dev_rate_pairs": int(delta.size),
           "mean_abs_truth_contrast_s": round(float(np.mean(np.abs(delta))), 3),
           "probe_slope_on_edited_pairs": pair_slope(delta, diff, clusters, int(sp["bootstrap"]), seed),
           # the aggregator's own statistic: last-layer attention width (nats) of j against log(true duration
           # ratio); 1 = the attention spreads over exactly the word's frames in both renditions
           "attention_width_log_slope_on_edited_pairs": pair_slope(log_delta, width_diff, clusters,
                                                                   int(sp["bootstrap"]), seed),
           # the same with the aggregator's location prior switched off at inference (a model trained with it)
           "attention_width_log_slope_prior_off": pair_slope(log_delta, width_diff_no_prior, clusters,
                                                             int(sp["bootstrap"]), seed),
           # the log of j's frame count (its frames as the attention assigns them, over the words) against the
           # log true duration ratio: 1 = the attention counts exactly the word's frames in both renditions
           "frame_count_log_slope_on_edited_pairs": pair_slope(log_delta, count_diff, clusters,
                                                               int(sp["bootstrap"]), seed),
           # the same for j's frames in the best monotonic segmentation of the frames into the words, read off the
           # same attention (the monotonic_count duration feature)
           "monotonic_count_log_slope_on_edited_pairs": pair_slope(log_delta, monotonic_diff, clusters,
                                                                   int(sp["bootstrap"]), seed),
           "seconds": round(time.perf_counter() - t0)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
