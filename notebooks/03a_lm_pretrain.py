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
# # 03a The text LM and the S3-unit LM: the speech LMs that do not need TASTE
#
# TASLM (stage `taslm`) is built on a small Llama (transformers) pretrained here on the corpus' text-only pool, the
# offline stand-in for Llama-3.2-1B. Its baseline, the **S3-unit LM**, is the same LM fine-tuned on the 25 Hz unit
# stream with the text padded to the unit length (METHOD.md section 3). Neither depends on the TASTE tokenizer, so
# they have this stage of their own: a tokenizer change reruns only `taslm`, which loads both models from
# `models/lm_pretrain/{text_lm,s3_lm}` (under `shared.paths.models`).

# %% tags=["parameters"]
params_path = "params.yaml"

# %%
import json

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from taste.config import load_params, seed_everything, set_threads, stage_dir
from taste.lm import pipeline as P

params = load_params(params_path)
set_threads(params["shared"]["threads"])
seed_everything(params["shared"]["seed"])
out = stage_dir(params, "lm_pretrain")
fig_dir = out / "figures"
fig_dir.mkdir(parents=True, exist_ok=True)
lm_params = params["lm"]
metrics: dict = {"profile": params.get("profile")}
{k: lm_params[k] for k in ("text_lm", "s3_lm")}

# %% [markdown]
# ## 1. The pretrained text LM
# A Llama of `lm.text_lm` size trained from scratch on the text pool (sentences packed into blocks of
# `context` tokens, the study's BPE). Perplexity is measured on held-out stories the LM never saw.

# %%
text_run = P.pretrain_text_lm(params)
metrics["text_lm"] = P.text_lm_metrics(text_run)
metrics["text_lm"]

# %% [markdown]
# ## 2. The S3-unit LM
# The same pretrained LM, the same speech (the train split), the same fine-tuning mode (`lm.taslm.finetune`) and
# budget as each TASLM variant, over the unit stream: unit cross-entropy plus the padded text's cross-entropy. Dev
# losses are measured after training on the dev split.

# %%
runs = {}
_, runs["s3_lm"], s3_dev = P.train_s3_lm(params, text_run.model, text_run.tokenizer, text_run.vocab)
metrics["s3_lm"] = P.run_metrics(runs["s3_lm"], s3_dev)
if text_run.result is not None:
    runs["text_lm"] = text_run.result
pd.DataFrame({k: v.get("dev", {}) for k, v in metrics.items() if isinstance(v, dict) and "dev" in v})

# %%
curves = pd.DataFrame([{**row, "model": name} for name, r in runs.items() for row in r.history if "loss" in row])
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
sns.lineplot(data=curves, x="step", y="loss", hue="model", marker="o", markersize=3, ax=axes[0])
axes[0].set_title("training loss")
parts = [c for c in ("ce", "unit_ce", "text_ce") if c in curves]
sns.lineplot(data=curves.melt(id_vars=["step", "model"], value_vars=parts).dropna(),
             x="step", y="value", hue="model", style="variable", marker="o", markersize=3, ax=axes[1])
axes[1].set_title("cross-entropies (text LM CE; S3-unit LM unit / text CE)")
fig.tight_layout()
fig.savefig(fig_dir / "training_curves.png", dpi=120)
plt.show()

# %%
(out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
metrics

# %% [markdown]
# ## Notes
# - The text LM is tiny and trained for minutes: its continuations are fluent only in the corpus' narrow style.
#   Every speech LM of stage `taslm` (TASLM, the S3-unit LM, the cascade) starts from it, so their comparison is fair.
# - With `lm.text_lm.pretrained_path` (paper profile) the local Llama is loaded instead of trained: `text_lm` then
#   records its held-out perplexity only, and models/lm_pretrain/text_lm points at the folder (pretrained_path.txt).
# - `train_peak_memory_mb` is the process's peak resident set while that model trained, sampled every 20 ms
#   (Linux), so a model trained after another does not report the earlier one's peak (`train_peak_memory_scope`:
#   "model"; "process" where /proc cannot be read, and the number is then the process's peak so far). The stage's
#   own peak in stage_time.json is untouched by it.
