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
# # 02d: the TASTE tokenizer and its reconstruction table
#
# A frozen Whisper encoder (stage 02c) gives speech states; the aggregator lets each subword token of the
# transcript attend to them (keys from the last encoder layer, values from a shallow one), averages the
# subwords of each word, and a residual VQ turns each word vector into a few codes. A unit decoder
# (text branch + TASTE branch, speaker embedding, causal Transformer) turns transcript + codes back into
# the S3-style units of stage 02a, which the vocoder of stage 02b speaks.
#
# Training follows the paper's three sub-stages: text-only decoder -> TASTE without VQ -> with RVQ.
# Three training aids read the corpus's word timings (inference never does): the aggregator's cross-attention is
# pulled toward each word's frames (`tokenizer.align_weight`); each frame's attention, normalised over the words, is
# trained to name the word the frame lies in (`tokenizer.assign_weight`), so that the attention counts a word's frames
# and the duration feature (`tokenizer.duration_feature`; `monotonic_count`: the word's frames in the best
# monotonic segmentation of the frames into the words, read off that assignment) can add that count to the word's
# vector; and coordinate 0 of each word's TASTE vector is pulled toward its log duration
# (`tokenizer.duration_weight`). The training set adds a copy of every train utterance (`stretch_augment.share`)
# with one word time-stretched 0.4x-2.5x (`tokenizer.stretch_augment`), the range the swap study asks the tokens to
# carry.
# The ablation rows (the other conditioning mode, values from the last layer, the other duration feature) train
# beside the main model: with `tokenizer.parallel_ablations` (the default) two of them in a second 1-thread process
# while the main model trains and the third here after it; without it, all here after the main model. The table on
# the test split (unseen speakers) measures
# every row the same way.

# %% tags=["parameters"]
params_path = "params.yaml"

# %%
import json
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Audio, Markdown, display

from taste.config import load_params, seed_everything, set_threads, stage_dir
from taste.tokenizer import pipeline as P
from taste.tokenizer import table as T
from taste.tokenizer.data import with_last_layer_values
from taste.metrics.stats import paired_corpus_wer_ratio
from taste.tokenizer.evaluate import default_audio_judges
from transformers.utils import logging as hf_logging

hf_logging.disable_progress_bar()  # one bar per model load would bury the results in the executed notebook
params = load_params(params_path)
tp = params["tokenizer"]
seed, rate = params["shared"]["seed"], float(params["units"]["rate_hz"])
seed_everything(seed)
out = stage_dir(params, "tokenizer")
paths = P.stage_paths(params)
parallel = bool(tp["parallel_ablations"])
set_threads(params["shared"]["threads"])
timings = {}

# %% [markdown]
# ## Frozen-encoder states, computed once per utterance
# The encoder never trains, so its key (last layer) and value (layer `tokenizer.value_layer`) states are
# computed once and kept in memory; training then only runs the aggregator and the decoder.

# %%
t0 = time.perf_counter()
model = P.build_model(params, paths)
items = {split: P.split_items(model, params, paths, split) for split in P.SPLITS}
timings["encoder_states_s"] = time.perf_counter() - t0
# the training set: the train split, plus (tokenizer.stretch_augment) copies with one word time-stretched
t0 = time.perf_counter()
train_set = P.with_stretched(model, params, paths, items["train"])
timings["stretch_augment_s"] = time.perf_counter() - t0
print({k: len(v) for k, v in items.items()}, f"{timings['encoder_states_s']:.1f} s;",
      f"training set {len(train_set)} items ({len(train_set) - len(items['train'])} stretched,",
      f"{timings['stretch_augment_s']:.1f} s)")

# %% [markdown]
# ## Training: three sub-stages, ablations in parallel

# %%
t0 = time.perf_counter()
# parallel: two 1-thread processes; this one trains the main model, then the ablation rows not in
# P.SECOND_PROCESS_ABLATIONS; the other trains those (and is stopped if this one fails)
infos = P.train_all_rows(params, params_path, model, train_set, paths, out / "ablations.log", parallel=parallel)
timings["training_s"] = time.perf_counter() - t0
pd.DataFrame(infos)[["stage", "steps", "wall_time_s", "peak_memory_mb", "resumed_from"]]

# %%
curves = []
for run in sorted(paths.models.glob("**/run_*/history.jsonl")):
    label = ("main" if run.parent.parent == paths.models else run.parent.parent.name) + "/" + run.parent.name[4:]
    for line in run.read_text().splitlines():
        curves.append({"run": label, **json.loads(line)})
curves = pd.DataFrame(curves)
fig, ax = plt.subplots(figsize=(8, 4))
sns.lineplot(data=curves, x="step", y="ce", hue="run", ax=ax)
ax.set(title="Unit-decoder cross-entropy per sub-stage", ylabel="cross-entropy")
fig.savefig(out / "figures" / "training_curves.png", dpi=120, bbox_inches="tight")

# %% [markdown]
# ## Per-word codes for TASLM and the swap analysis

# %%
code_counts = P.write_codes(model, params, paths, items)
code_counts

# %% [markdown]
# ## Reconstruction table
# Model rows: teacher-forced unit accuracy and durations from the decoder's generated word boundaries on
# `tokenizer.eval_utterances` test utterances; every row with audio (the first `tokenizer.audio_eval_utterances`)
# is judged by pocketsphinx (WER; forced alignment for word durations), DNSMOS and resemblyzer.

# %%
from taste.data.audio_io import read_audio
from taste.data.loaders import FeatureStore
from taste.data.records import read_manifest, read_text_pool_sentences
from taste.metrics.recognizer import blind_corpus
from taste.vocoder import UnitVocoder

t0 = time.perf_counter()
n_boot = int(tp["bootstrap"])
eval_items = items["test"][: tp["eval_utterances"]]
models = {k: P.load_trained(paths, k) for k in ("text_only", "no_vq", "rvq", *P.ABLATIONS)}
rows = T.model_rows(models, eval_items, with_last_layer_values(eval_items), P.other_mode(params))
if params["shared"]["threads"] > 1:  # one 1-thread process per core, each loading its rows' models from their folders
    measures, decodes = T.measure_rows_parallel(rows, {k: P.trained_folder(paths, k) for k in models}, n_boot, seed,
                                                rate, workers=params["shared"]["threads"])
else:
    measures, decodes = T.measure_rows(rows, n_boot, seed, rate)
timings["model_rows_s"] = time.perf_counter() - t0
# How text-aligned is the aggregator? Share of each word query's cross-attention inside its own word's frames.
from taste.tokenizer.evaluate import attention_in_span

attention_share = {name: attention_in_span(m, with_last_layer_values(eval_items) if name == "last_layer_values"
                                           else eval_items) for name, m in models.items() if m.stage != "text_only"}
attention_share

# %%
t0 = time.perf_counter()
sub = eval_items[: tp["audio_eval_utterances"]]
manifests = {s: read_manifest(paths.prepared / f"{s}.jsonl") for s in ("train", "dev", "test")}
utt = {u.id: u for u in manifests["test"]}
vocoder = UnitVocoder.from_pretrained(paths.vocoder)
mels = FeatureStore(paths.prepared / "features" / "test.safetensors")
f0s = FeatureStore(paths.prepared / "pitch" / "test.safetensors")
wavs = {
    "original": [read_audio(utt[it.id].audio_path, 16000) for it in sub],
    # ground-truth mel and F0 through the vocoder's own synthesis: what the synthesiser alone costs
    "vocoder_topline": [vocoder.mel_f0_to_wave(mels.get(it.id), f0s.get(it.id)) for it in sub],
    "s3_topline": [vocoder.synthesise(it.units, it.speaker) for it in sub],
}
for row in rows:
    wavs[row.name] = [vocoder.synthesise(r.units, it.speaker) for r, it in zip(decodes[row.name], sub)]
# The recogniser's LM: train-split transcripts + the text pool, minus every sentence it scores (it never knows the answer)
corpus, n_removed = blind_corpus([u.text for u in manifests["train"]]
                                 + read_text_pool_sentences(Path(params["shared"]["paths"]["raw"]) / "text_pool.txt",
                                                            params["evaluation"]["recognizer_sentences"]),
                                 [it.text for it in sub])
print(f"recogniser LM: {len(corpus)} train-split sentences ({n_removed} scored sentences removed)")
judge_args = ([it.id for it in sub], [it.text for it in sub], [it.word_durations_s for it in sub],
              [it.speaker.numpy() for it in sub])
if params["shared"]["threads"] > 1:  # pocketsphinx is single-threaded: one judging process per core
    per_utt = T.audio_rows_parallel(wavs, *judge_args, corpus, workers=params["shared"]["threads"])
else:
    per_utt = T.audio_rows(wavs, *judge_args, default_audio_judges(corpus, scored_sentences=judge_args[1]))
audio_summary = T.summarise_audio(per_utt, n_boot, seed)
timings["audio_rows_s"] = time.perf_counter() - t0

# %%
n_codes = int(params["units"]["codebook_size"])
fixed = {"original": {"frame_rate_hz": 16000.0, "bitrate_bps": 256000.0},
         "vocoder_topline": {"frame_rate_hz": 100.0, "bitrate_bps": math.nan},
         "s3_topline": {"frame_rate_hz": rate, "bitrate_bps": rate * math.log2(n_codes)}}
table = T.assemble(measures, audio_summary, fixed)
table.to_csv(out / "reconstruction_table.csv")
show = ["frame_rate_hz", "bitrate_bps", "tf_top1", "tf_top5", "wer", "dnsmos", "speaker_sim",
        "gen_within_25ms", "gen_within_50ms", "gen_pearson_r", "fa_within_25ms", "fa_within_50ms", "fa_pearson_r"]
table[[c for c in show if c in table.columns]].round(3)

# %%
tidy = T.tidy_for_plot(table, ["tf_top5", "wer", "dnsmos", "speaker_sim", "gen_within_50ms", "gen_pearson_r",
                               "fa_within_50ms", "fa_pearson_r"])
order = list(dict.fromkeys(tidy["system"]))
grid = sns.catplot(data=tidy, y="system", x="value", col="metric", col_wrap=4, kind="bar", sharex=False,
                   order=order, height=3.2, aspect=1.1, color="#4c72b0")
for ax, (metric, g) in zip(grid.axes.flat, tidy.groupby("metric", sort=False)):
    ok = g.dropna(subset=["lo", "hi"])
    err = [np.clip(ok["value"] - ok["lo"], 0, None), np.clip(ok["hi"] - ok["value"], 0, None)]
    ax.errorbar(ok["value"], [order.index(s) for s in ok["system"]], xerr=err, fmt="none", ecolor="black", capsize=2)
grid.savefig(out / "figures" / "reconstruction_table.png", dpi=110, bbox_inches="tight")

# %%
rvq_name = f"taste_rvq{tp['rvq']['n_quantizers']}"
fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharex=True, sharey=True)
for ax, name in zip(axes, ["text_only", rvq_name]):
    ref, hyp = T.boundary_durations(eval_items, decodes[name], rate) if name in decodes else ([], [])
    sns.scatterplot(x=ref, y=hyp, s=10, alpha=0.4, ax=ax)
    ax.plot([0, 1.5], [0, 1.5], color="grey", lw=1)
    ax.set(title=name, xlabel="ground-truth word duration (s)", ylabel="generated word duration (s)")
fig.savefig(out / "figures" / "word_durations.png", dpi=120, bbox_inches="tight")

# %% [markdown]
# ## Listen: the first test utterances, every row

# %%
for i, it in enumerate(sub[:2]):
    display(Markdown(f"**{it.id}**: *{it.text}*"))
    for name, w in wavs.items():
        display(Markdown(f"`{name}`"), Audio(w[i], rate=16000))

# %%
def _clean(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


row = lambda name, col: _clean(table.loc[name, col]) if name in table.index and col in table.columns else None
# TASTE over the S3 topline: corpus WERs paired over the same audio utterances (95% CI resamples utterances)
wer_ratio = paired_corpus_wer_ratio(per_utt, rvq_name, "s3_topline", n=n_boot, seed=seed)
metrics = {
    "table": {s: {**{c: _clean(table.loc[s, c]) for c in show if c in table.columns},
                  **({"wer_ci": {"lo": row(s, "wer_lo"), "hi": row(s, "wer_hi")}}  # utterance bootstrap
                     if "wer_lo" in table.columns and row(s, "wer_lo") is not None else {})} for s in table.index},
    "training": {i["stage"]: {"steps": i["steps"], "wall_time_s": i["wall_time_s"],
                              "peak_memory_mb": i["peak_memory_mb"]} for i in infos},
    "timings_s": timings,
    "training_set": {"train_split_items": len(items["train"]), "stretched_items": len(train_set) - len(items["train"])},
    "codes_written": code_counts,
    "attention_in_own_word": attention_share,
    "checks": {
        "rvq_bitrate_le_150": (row(rvq_name, "bitrate_bps") or 1e9) <= 150,
        "gen_within_50ms_taste": row(rvq_name, "gen_within_50ms"),
        "gen_within_50ms_text_only": row("text_only", "gen_within_50ms"),
        "top5_taste_gt_text_only": (row(rvq_name, "tf_top5") or 0) > (row("text_only", "tf_top5") or 1),
        "wer_ratio_taste_vs_s3": _clean(wer_ratio["value"]),
        "wer_ratio_taste_vs_s3_ci": {"lo": _clean(wer_ratio["ci_lo"]), "hi": _clean(wer_ratio["ci_hi"]),
                                     "n": wer_ratio["n"]},
    },
}
(out / "metrics.json").write_text(json.dumps(metrics, indent=2))
print(json.dumps(timings, indent=1))
metrics["checks"]

# %% [markdown]
# **Reading the table.** Teacher-forced accuracy barely separates the rows (METHOD.md 6); the duration
# columns do. `gen_*` compares the decoder's generated word boundaries with the ground-truth alignment
# (a word owns the pause after it), `fa_*` re-measures durations by forced alignment of the re-synthesised
# audio against the ground-truth word durations (the `original` row shows the aligner's own error).
# The conditioning-mode and last-layer-values rows trained for `tokenizer.ablation_steps` only (half without VQ,
# half with RVQ), from the same ASR initialisation, so they are compared with the main rows at a smaller budget.
# The `taste_rvq4_duration_*` row is the other setting of `tokenizer.duration_feature` under the main schedule:
# it starts from the main run's own text-only model and trains the same no-VQ and RVQ steps with the same seeds, so
# it differs from `taste_rvq4` only by the duration feature (issue 13's ablation row).
