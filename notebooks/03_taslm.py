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
# # 03 TASLM: teaching a text LM to speak, its baselines, and speech continuation
#
# TASLM attaches one TASTE token (the word's RVQ codes) to the first subword of every word, delayed by one
# word, so text and speech share one sequence length (METHOD.md section 3). We build it on a small Llama
# (transformers) pretrained on the corpus' text-only pool, the offline stand-in for Llama-3.2-1B, and
# compare it with the paper's baselines: the **S3-unit LM** (the same LM over the 25 Hz unit stream with the
# text padded to the unit length) and the **cascade** (ASR -> text LM -> text-only unit decoder -> vocoder).
# The text LM and the S3-unit LM do not depend on the TASTE tokenizer: stage `lm_pretrain` (03a) trains them and this
# stage loads them from `models/lm_pretrain`, so a tokenizer change does not retrain them.
# Every system continues the same prompts (the first 1.5-3 s of held-out test utterances, unseen speakers);
# the evaluation stage judges the outputs.

# %% tags=["parameters"]
params_path = "params.yaml"

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Audio, Markdown, display

from taste.config import load_params, seed_everything, set_threads, stage_dir
from taste.data.records import read_manifest
from taste.data.speaker_embed import conditioning_encoder
from taste.lm import pipeline as P
from taste.lm.continuation import (load_systems, prepare_prompt, prompt_unit_encoder, run_system,
                                   sampling_from_params, seconds_per_word, select_prompts, write_prompts)
from taste.lm.report import records_frame, speed_table, step_ratio
from taste.lm.taste_use import taste_use_summary, taste_use_table, zeroed_continuations
from taste.tokenizer import TasteTokenizer
from transformers.utils import logging as hf_logging

hf_logging.disable_progress_bar()  # one bar per model load would bury the results in the executed notebook
params = load_params(params_path)
set_threads(params["shared"]["threads"])
seed_everything(params["shared"]["seed"])
out = stage_dir(params, "taslm")
fig_dir = out / "figures"
fig_dir.mkdir(parents=True, exist_ok=True)
paths = params["shared"]["paths"]
lm_params = params["lm"]
codes_dir = Path(paths["taste_codes"])  # the TASTE codes the tokenizer stage wrote
metrics: dict = {"profile": params.get("profile")}
lm_params

# %% [markdown]
# ## 1. The pretrained text LM and the S3-unit LM (stage lm_pretrain)
# A Llama of `lm.text_lm` size trained from scratch on the text pool (held-out perplexity on stories it never saw),
# and the S3-unit LM fine-tuned from it: both trained by stage `lm_pretrain`, loaded here. Their entries of that
# stage's metrics.json are repeated in this stage's, beside the TASLM variants.

# %%
text_lm, lm_tokenizer, lm_vocab = P.load_text_lm(P.text_lm_dir(params))
pretrain_metrics = json.loads((Path(paths["outputs"]) / P.PRETRAIN_STAGE / "metrics.json").read_text(encoding="utf-8"))
metrics["text_lm"] = pretrain_metrics["text_lm"]
metrics["text_lm"]

# %% [markdown]
# ## 2. TASLM, both variants, beside the S3-unit baseline
# Same pretrained LM, same speech (the train split), same budget as the S3-unit LM. TASLM's loss is
# `0.5 * (0.9 KL(frozen LM || model) + 0.1 CE) + 0.5 * TASTE loss`; the TASTE loss is per-codebook cross-entropy
# ("token") or MSE of the predicted mean plus a Gaussian NLL for the learned variance ("embed"). Dev losses are
# measured after training on the dev split.

# %%
taste = TasteTokenizer.from_pretrained(lm_params["taste_model"])
runs = {}
for variant in lm_params["taslm"]["variants"]:
    _, runs[f"taslm_{variant}"], dev = P.train_taslm(params, variant, text_lm, lm_tokenizer, lm_vocab, taste,
                                                     codes_dir=codes_dir)
    metrics[f"taslm_{variant}"] = P.run_metrics(runs[f"taslm_{variant}"], dev)
metrics["s3_lm"] = pretrain_metrics["s3_lm"]
pd.DataFrame({k: v.get("dev", {}) for k, v in metrics.items() if isinstance(v, dict) and "dev" in v})

# %%
curves = pd.DataFrame([{**row, "model": name} for name, r in runs.items() for row in r.history if "loss" in row])
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
sns.lineplot(data=curves, x="step", y="loss", hue="model", marker="o", markersize=3, ax=axes[0])
axes[0].set_title("training loss")
taste_cols = [c for c in ("taste_ce", "taste_mse") if c in curves]
sns.lineplot(data=curves.melt(id_vars=["step", "model"], value_vars=taste_cols).dropna(),
             x="step", y="value", hue="model", style="variable", marker="o", markersize=3, ax=axes[1])
axes[1].set_title("speech-side loss (TASTE CE / MSE)")
text_cols = [c for c in ("text_ce", "text_kl") if c in curves]
sns.lineplot(data=curves.melt(id_vars=["step", "model"], value_vars=text_cols).dropna(),
             x="step", y="value", hue="model", style="variable", marker="o", markersize=3, ax=axes[2])
axes[2].set_title("text loss (CE, KL to the frozen LM)")
fig.tight_layout()
fig.savefig(fig_dir / "training_curves.png", dpi=120)
plt.show()

# %% [markdown]
# The fusion weight `softmax(w)[TASTE]` starts at 0.018 (w = [-2, 2]): the model begins as the text LM and
# learns how much of the speech token to let in.

# %%
fusion = curves.dropna(subset=["fusion_taste"]) if "fusion_taste" in curves else pd.DataFrame()
if len(fusion):
    fig, ax = plt.subplots(figsize=(5, 3))
    sns.lineplot(data=fusion, x="step", y="fusion_taste", hue="model", ax=ax)
    ax.set_title("TASTE share of the input fusion")
    fig.tight_layout()
    fig.savefig(fig_dir / "fusion_weight.png", dpi=120)
    plt.show()
    metrics["fusion_taste_final"] = {m: round(float(g["fusion_taste"].iloc[-1]), 4) for m, g in fusion.groupby("model")}

# %% [markdown]
# ## 3. Continuation
# Prompts: a seeded list of test utterances (speakers unseen in training), cut after the longest word prefix
# ending within `prompt_seconds` by the ground-truth alignment. The prompt's text is the study's ASR output on
# the prompt audio (as the paper uses Whisper); TASLM gets the prompt's TASTE codes from the tokenizer, the
# S3-unit LM the prompt's units. Each system adds `target_words` words: text by top-p / temperature /
# repetition penalty, TASTE codes greedily at word starts ("embed": a sample of the predicted Gaussian,
# re-quantised by the RVQ), S3 units by top-k. TASLM and the cascade speak prompt + continuation through the
# unit decoder (batched, `decode_batch` prompts at a time; each prompt is charged an equal share of the batch's
# time) and keep the continuation's units (cut at the first new word's boundary); the vocoder speaks them.

# %%
cont = lm_params["continuation"]
test_utts = read_manifest(Path(paths["prepared"]) / "test.jsonl")
prompts = select_prompts(test_utts, cont["n_prompts"], tuple(cont["prompt_seconds"]), params["shared"]["seed"])
cont_root = Path(paths["outputs"]) / "continuations"
write_prompts(prompts, cont_root / "prompts.jsonl")
system_names = ["cascade", "s3_lm", *(f"taslm_{v}" for v in lm_params["taslm"]["variants"])]
systems = load_systems(params, system_names)
# Every input of a prompt (speaker embedding, S3 units, ASR text, TASTE codes) comes from the cut prompt audio alone,
# exactly as `taste continue PROMPT.wav` computes it: nothing of the unseen continuation reaches a system.
# The S3-unit LM's prompt units come from the configured unit backend (units.backend: the trained tokenizer, or
# CosyVoice's S3 tokenizer in the paper profile), the unit space it was trained in.
unit_model = prompt_unit_encoder(params["units"], paths["models"], systems.mel_cfg.sample_rate)
speaker_encoder = conditioning_encoder(params)  # the prepare stage's embedder and settings: as in training
prepared = [prepare_prompt(p, systems, speaker_encoder.embed, unit_model) for p in prompts]
train_utts = read_manifest(Path(paths["prepared"]) / "train.jsonl")
max_units = int(2 * seconds_per_word(train_utts) * cont["target_words"] * systems.unit_rate_hz) + 10
asr_share = sum(pp.text_source == "asr" for pp in prepared) / len(prepared)
print(f"{len(prompts)} prompts; ASR text used for {asr_share:.0%}; S3 LM unit cap {max_units}")

# %%
sampling = sampling_from_params(params)
records = {}
for system in system_names:
    t0 = time.perf_counter()
    records[system] = run_system(system, prepared, systems, sampling, cont["target_words"], max_units,
                                 params["shared"]["seed"], cont_root, decode_batch=cont["decode_batch"])
    print(f"{system}: {len(records[system])} continuations in {time.perf_counter() - t0:.1f} s")
frame = records_frame([r for rs in records.values() for r in rs])
frame[["system", "prompt_text", "continuation_text"]].groupby("system").head(3)

# %% [markdown]
# ## 4. Where the time goes
# Per second of generated speech: the LM's autoregressive steps and wall time, and the end-to-end time
# (ASR + TASTE encoding of the prompt + LM + unit decoding + vocoding). TASLM takes one LM step per subword
# token; the S3-unit LM one per 25 Hz unit. `benchmarks/bench_lm.py` repeats this measurement on its own.

# %%
speed = speed_table(frame)
display(speed.round(3))
parts = speed[[c for c in speed.columns if c.startswith("share_")]]
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
sns.barplot(x=speed.index, y=speed["lm_steps_per_speech_s"], ax=axes[0])
axes[0].set_title("LM steps per second of generated speech")
parts.plot.barh(stacked=True, ax=axes[1])
axes[1].set_title("share of end-to-end time")
axes[1].legend(loc="lower right", fontsize=7)
fig.tight_layout()
fig.savefig(fig_dir / "generation_speed.png", dpi=120)
plt.show()
metrics["continuation"] = {
    "prompts": len(prompts), "asr_prompt_share": round(asr_share, 3), "target_words": cont["target_words"],
    "per_system": json.loads(speed.round(4).to_json(orient="index")),
    "s3_over_taslm_step_ratio": step_ratio(speed),
}
metrics["continuation"]["s3_over_taslm_step_ratio"]

# %% [markdown]
# ## 4b. Does TASLM use its TASTE input?
# The same prompts, seeds and sampling, with every word's TASTE vector zeroed at the LM's input (the quantiser
# and the unit decoder stay real). If TASLM ignored its TASTE input, the continuations would not change. Measured
# per prompt: the continuation's speaking rate against the prompt's own rate, paired over prompts.

# %%
metrics["taste_input_ablation"] = {}
ablation_tables = []
for v in lm_params["taslm"]["variants"]:
    t0 = time.perf_counter()
    zeroed = zeroed_continuations(v, prepared, systems, sampling, cont["target_words"], params["shared"]["seed"],
                                  cont["decode_batch"])
    table = taste_use_table(prepared, records[f"taslm_{v}"], zeroed).assign(variant=v)
    ablation_tables.append(table)
    metrics["taste_input_ablation"][v] = taste_use_summary(table, cont["bootstrap"], params["shared"]["seed"])
    print(f"taslm_{v} with zeroed TASTE input: {time.perf_counter() - t0:.1f} s")
ablation = pd.concat(ablation_tables, ignore_index=True)
fig, ax = plt.subplots(figsize=(6, 3.6))
long = ablation.melt(id_vars=["variant", "prompt_rate"], value_vars=["rate_with_taste", "rate_zeroed"],
                     var_name="input", value_name="continuation_rate")
sns.scatterplot(data=long, x="prompt_rate", y="continuation_rate", hue="input", style="variant", ax=ax, s=18)
ax.set_xlabel("prompt rate (words/s)")
ax.set_ylabel("continuation rate (words/s)")
fig.tight_layout()
fig.savefig(fig_dir / "taste_input_ablation.png", dpi=120)
plt.show()
metrics["taste_input_ablation"]

# %% [markdown]
# ## 5. Listen
# The first prompts' continuations from each system (continuation only; the prompt text is printed).

# %%
for pp in prepared[:2]:
    display(Markdown(f"**prompt** ({pp.prompt.end_s:.1f} s, ASR): *{pp.text}*"))
    for system in system_names:
        rec = next(r for r in records[system] if r["prompt_id"] == pp.prompt.prompt_id)
        display(Markdown(f"`{system}`: {rec['continuation_text']}"))
        display(Audio(rec["wav_path"]))

# %%
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
metrics

# %% [markdown]
# ## Notes
# - The text LM is tiny and trained for minutes: its continuations are fluent only in the corpus' narrow style.
#   All four systems share it, so their comparison is fair; absolute quality is far below Llama-3.2-1B.
# - The S3-unit LM's text stream finishes far ahead of its speech (text padded to the unit length): this is the
#   length mismatch TASLM removes, and why it needs many more LM steps per second of speech.
# - Prompts whose ASR transcript was empty, or implausibly long (more than 6 words per second: a decoding loop),
#   fall back to the ground-truth words; `prompt_text_source` in each record says which text a prompt used.
# - `train_peak_memory_mb` is the process's peak resident set while that model trained, sampled every 20 ms
#   (Linux), so a model trained after another does not report the earlier one's peak (`train_peak_memory_scope`:
#   "model"; "process" where /proc cannot be read, and the number is then the process's peak so far). The stage's
#   own peak in stage_time.json is untouched by it.
