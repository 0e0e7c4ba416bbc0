# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: taste
#     language: python
#     name: taste
# ---

# %% [markdown]
# # 02a Units: an S3-style supervised speech tokenizer
#
# TASTE's decoder reconstructs CosyVoice's **S3 units**: tokens from an ASR-trained speech encoder with a
# vector-quantised bottleneck in the middle, so the codes carry *content*. No pretrained S3 tokenizer can be
# downloaded here, so this stage trains one of the same kind on the corpus: log-mel (100 fps) -> conv subsampling
# to `units.rate_hz` -> Transformer encoder -> `vector_quantize_pytorch.VectorQuantize` (k-means init, EMA codebook,
# dead-code restart) -> Transformer head -> CTC over the phones espeak reports. The VQ indices are the units.
# The paper profile instead reads CosyVoice's tokenizer from a local ONNX file (`units.backend: s3_pretrained`).
#
# Measured on the **test split, whose speakers are unseen in training**: codebook usage (share of codes used,
# perplexity), phone purity and PNMI against the ground-truth phone alignments, and the phone error rate of the
# greedy CTC head.

# %% tags=["parameters"]
params_path = "params.yaml"

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Audio, Markdown, display

from taste.config import load_params, seed_everything, set_threads, stage_dir
from taste.data.audio_io import read_audio
from taste.data.loaders import load_pitch, prepared_paths
from taste.units.evaluate import evaluate_unit_streams, evaluate_unit_tokenizer, pitch_information
from taste.units.extract import load_units
from taste.units.metrics import joint_counts
from taste.units.phones import load_phone_vocab
from taste.units.pipeline import (load_split, read_unit_space, s3_unit_streams, train_unit_tokenizer,
                                  write_unit_streams)
from taste.units.pitch_labels import PitchClasses

params = load_params(params_path)
set_threads(params["shared"]["threads"])
seed_everything(params["shared"]["seed"])
out = stage_dir(params, "units")
fig_dir = out / "figures"
model_dir = Path(params["shared"]["paths"]["models"]) / "units"
units_dir = Path(params["shared"]["paths"]["units"])
backend = params["units"]["backend"]
vocab = load_phone_vocab(prepared_paths(params)["phones"])
test_utts, test_feats = load_split(params, "test")
params["units"], backend, vocab.n_phones, len(test_utts)

# %% [markdown]
# ## Training (or loading CosyVoice's S3 tokenizer)
# The shared loop (`taste.training.train`) runs the optimisation: AdamW, warmup + cosine, atomic safetensors
# checkpoints under `models/units/training/` (an interrupted run resumes), the curve in `history.jsonl`.

# %%
if backend == "trained":
    model, vocab, result = train_unit_tokenizer(params, model_dir)
    history = pd.DataFrame([r for r in result.history if "ctc" in r])
    train_info = {"train_wall_time_s": round(result.wall_time_s, 1), "train_peak_memory_mb": round(result.peak_memory_mb, 1),
                  "resumed_from": result.resumed_from, "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6}
else:
    model, history, train_info = None, pd.DataFrame(), {}
train_info

# %%
if len(history):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    sns.lineplot(data=history, x="step", y="ctc", ax=axes[0]).set(title="CTC loss (train)", yscale="log")
    sns.lineplot(data=history, x="step", y="batch_codes_used", ax=axes[1]).set(title="codes used per batch")
    fig.tight_layout()
    fig.savefig(fig_dir / "training_curve.png", dpi=120)

# %% [markdown]
# ## Unit streams for every split
# `data/units/{split}.safetensors`: utterance id -> int16 units. Extraction speed is reported as a real-time factor
# (seconds of compute per second of audio; `benchmarks/bench_units_vocoder.py` measures it apart from the stage).

# %%
t0 = time.perf_counter()
if backend == "trained":
    counts = write_unit_streams(model, params, batch_size=params["units"]["extract_batch_size"])
else:
    counts = s3_unit_streams(params, model_dir)
extract_s = time.perf_counter() - t0
# The unit space the streams were written in (trained: the model's config; S3: the codebook read off the loaded
# checkpoint, the rate from its name; both checked against units.codebook_size / units.rate_hz)
unit_space = read_unit_space(units_dir)
codebook_size, rate_hz = unit_space["codebook_size"], unit_space["rate_hz"]
total_audio_s = 0.0
for split in counts:
    total_audio_s += sum(u.duration for u in load_split(params, split)[0])
extraction_rtf = extract_s / max(total_audio_s, 1e-9)
counts, round(extract_s, 1), round(extraction_rtf, 4)

# %% [markdown]
# ## Test split (unseen speakers)

# %%
if backend == "trained":
    evaluation = evaluate_unit_tokenizer(model, test_utts, test_feats, vocab)
else:
    evaluation = evaluate_unit_streams(load_units(units_dir / "test.safetensors"), test_utts, vocab, codebook_size, rate_hz)
test_metrics = evaluation["metrics"]
# Pitch kept by the codes: purity / PNMI against each unit's pitch class (relative to its speaker's median F0)
test_metrics.update(pitch_information(evaluation["units"], test_utts, load_pitch(params, "test"),
                                      params["shared"]["sample_rate"] // params["shared"]["features"]["hop_length"]
                                      // rate_hz, codebook_size,
                                      PitchClasses(params["units"]["pitch_classes"],
                                                   params["units"]["pitch_step_semitones"])))
pd.Series(test_metrics).to_frame("test")

# %%
counts_per_code = np.bincount(np.concatenate(evaluation["units"]), minlength=codebook_size)
fig, ax = plt.subplots(figsize=(8, 3.2))
sns.lineplot(x=np.arange(1, codebook_size + 1), y=np.sort(counts_per_code)[::-1] + 1, ax=ax)
ax.set(xscale="log", yscale="log", xlabel="code rank", ylabel="frames + 1", title="Unit frequency on test (rank plot)")
fig.tight_layout()
fig.savefig(fig_dir / "code_usage.png", dpi=120)

# %%
# P(phone | code) for the 40 most frequent codes: a sharp column means a code stands for one phone
has_labels = test_metrics["phone_purity"] is not None   # real corpora without phone alignments: no purity
joint = joint_counts(np.concatenate(evaluation["units"]), np.concatenate(evaluation["labels"]), codebook_size,
                     vocab.n_phones)
top = np.argsort(joint.sum(0))[::-1][:40]
cond = joint[:, top] / np.maximum(joint[:, top].sum(0, keepdims=True), 1)
keep = joint.sum(1) > 0
fig, ax = plt.subplots(figsize=(10, 7))
if has_labels:
    sns.heatmap(pd.DataFrame(cond[keep], index=np.array(vocab.phones)[keep], columns=top), cmap="mako_r", ax=ax,
                cbar_kws={"label": "P(phone | code)"})
ax.set(xlabel="code (40 most frequent)", ylabel="phone", title="Which phone each unit stands for (test)")
fig.tight_layout()
fig.savefig(fig_dir / "phone_code_purity.png", dpi=120)

# %% [markdown]
# One test utterance and its units (the units are what the TASTE decoder learns to predict):

# %%
utt = test_utts[0]
display(Audio(read_audio(utt.audio_path, params["shared"]["sample_rate"]), rate=params["shared"]["sample_rate"]))
print(utt.text)
print(" ".join(map(str, evaluation["units"][0][:60])), "...")

# %%
metrics = {**{k: (round(v, 4) if isinstance(v, float) else v) for k, v in test_metrics.items()}, **train_info,
           "backend": backend, "codebook_size": codebook_size, "extraction_rtf": round(extraction_rtf, 4),
           "utterances_per_split": counts}
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
fmt = lambda x, spec=".2f": "n/a" if x is None else format(x, spec)  # noqa: E731
display(Markdown(
    f"**Result.** On {test_metrics['n_utterances']} test utterances of unseen speakers the {backend} tokenizer uses "
    f"{test_metrics['usage_share']:.0%} of its {codebook_size} codes (perplexity {test_metrics['perplexity']:.0f}); "
    f"phone purity {fmt(test_metrics['phone_purity'])} and PNMI {fmt(test_metrics['pnmi'])}"
    + (f"; the CTC head's phone error rate is {test_metrics['per']:.1%}" if "per" in test_metrics else "")
    + f". Targets of the issue: purity >= 0.7, usage >= 50%. Bitrate {test_metrics['bitrate_bps']:.0f} bps. "
    f"Pitch kept by the codes: pitch-class PNMI {fmt(test_metrics['pitch_pnmi'])} (purity "
    f"{fmt(test_metrics['pitch_purity'])}; classes of {params['units'].get('pitch_step_semitones', 3.0):g} semitones "
    "around each speaker's median F0, unvoiced as its own class). "
    "Purity is measured at each unit's centre against espeak's phone alignment, so a 40 ms unit that straddles "
    "a phone boundary counts against it: purity is a lower bound on how phonetic the units are."))
metrics
