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
# # 01 · Data preparation
#
# The study starts from `data/raw`, regenerated bit-for-bit from its seed by `taste materialise` (pinned by
# `data.dvc`): espeak-ng speech of short coherent stories, with word and phone alignments taken from the
# synthesiser's own events, and SSML prosody markup on about a quarter of the words.
# This stage validates every utterance (rejecting or repairing bad input, see `rejections.json`), writes one
# manifest per split, log-mel features and resemblyzer speaker embeddings to `data/prepared`, and reports the corpus.

# %% tags=["parameters"]
params_path = "params.yaml"

# %%
import json
from pathlib import Path

import pandas as pd
from IPython.display import Audio, Image, display

from taste.config import load_params, set_threads, stage_dir
from taste.data import report
from taste.data.audio_io import read_audio
from taste.data.prepare import prepare
from taste.data.records import read_manifest

params = load_params(params_path)
set_threads(params["shared"]["threads"])
paths = params["shared"]["paths"]
raw_dir, prepared_dir = Path(paths["raw"]), Path(paths["prepared"])
out = stage_dir(params, "prepare")

# %% [markdown]
# ## Validate and prepare
# Every utterance is checked (readable, non-empty, not truncated, 16 kHz mono, no NaN, not clipped, a non-empty
# UTF-8 transcript of plausible length, alignments inside the audio). The stage stops when more than
# `prepare.max_rejection_share` of the utterances are rejected.

# %%
metrics = prepare(params, raw_dir, prepared_dir, progress=False)
corpus_info = json.loads((raw_dir / "corpus_info.json").read_text())
rejections = json.loads((prepared_dir / "rejections.json").read_text())
print(f"{metrics['n_input']} utterances in, {metrics['n_rejected']} rejected, {metrics['n_repaired']} repaired")
pd.DataFrame(rejections["rejections"][:20])

# %% [markdown]
# ## The corpus per split

# %%
df = report.utterance_table(prepared_dir)
summary = df.groupby("split").agg(utterances=("id", "size"), hours=("duration", lambda d: d.sum() / 3600),
                                  speakers=("speaker", "nunique"), mean_duration_s=("duration", "mean"),
                                  words_per_second=("words_per_second", "mean"))
summary.reindex([s for s in report.SPLITS if s in summary.index]).round(3)

# %% [markdown]
# Test speakers are voice variants never used for training; the swap sets are spoken by the test speakers only.

# %%
speakers = df.groupby("split")["speaker"].apply(lambda s: sorted(set(s)))
assert not set(speakers.get("train", [])) & set(speakers.get("test", [])), "a test speaker was heard in training"
speakers.to_frame()

# %%
report.plot_duration_histogram(df, out / "figures" / "duration_histogram.png")
report.plot_rate_by_speaker(df, out / "figures" / "speaking_rate_by_speaker.png")
words = report.word_table(prepared_dir, "train")
report.plot_word_duration_by_markup(words, out / "figures" / "word_duration_by_markup.png")
for name in ("duration_histogram", "speaking_rate_by_speaker", "word_duration_by_markup"):
    display(Image(str(out / "figures" / f"{name}.png")))

# %% [markdown]
# ## Word-level prosody
# The markup works word by word: words spoken at rate < 100% last longer than plain words of the same
# utterances, words at rate > 100% are shorter (the ground truth later stages measure durations against).

# %%
markup_durations = words.groupby("markup")["duration"].agg(["count", "mean", "median"]).round(3)
markup_durations

# %% [markdown]
# ## Listen: a global slow/fast pair and a local pair (only one word's markup differs)

# %%
swap_global = read_manifest(prepared_dir / "swap_global.jsonl")
swap_local = read_manifest(prepared_dir / "swap_local.jsonl")
sr = params["shared"]["sample_rate"]
for utt in [u for u in swap_global if u.pair.set == "global_rate"][:2] + swap_local[:2]:
    changed = utt.pair.changed_word
    note = f" (word {changed} '{utt.words[changed].word}': {utt.words[changed].markup})" if changed is not None else ""
    print(f"{utt.id} [{utt.pair.role}, {utt.rate_wpm:.0f} wpm, pitch {utt.pitch:.0f}]{note}: {utt.text}")
    display(Audio(read_audio(utt.audio_path, sr), rate=sr))

# %% [markdown]
# ## Metrics (DVC)

# %%
stage_metrics = {
    **{k: metrics[k] for k in ("utterances", "hours", "speakers", "words_per_second", "words_per_second_by_speaker",
                               "alignment_coverage",
                               "total_hours", "n_input", "n_rejected", "rejection_share", "n_repaired",
                               "phone_inventory", "voiced_share")},
    "n_speakers_total": int(df["speaker"].nunique()),
    "word_duration_by_markup_s": markup_durations["mean"].to_dict(),
    "dropped_at_generation": corpus_info.get("dropped_at_generation", {}),
    "text_pool": corpus_info.get("text_pool", {}),
}
(out / "metrics.json").write_text(json.dumps(stage_metrics, indent=2, sort_keys=True) + "\n")
stage_metrics["hours"], stage_metrics["n_speakers_total"]
