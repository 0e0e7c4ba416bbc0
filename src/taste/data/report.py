"""Tables and seaborn figures of the prepared corpus (used by notebook 01_data_prep)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .records import read_manifest  # noqa: E402

SPLITS = ("train", "dev", "test", "swap_global", "swap_local")


def utterance_table(prepared_dir: Path) -> pd.DataFrame:
    """One row per prepared utterance: split, speaker, duration, words, words/s, rate, pitch, marked-up words."""
    rows = []
    for split in SPLITS:
        path = Path(prepared_dir) / f"{split}.jsonl"
        for u in read_manifest(path) if path.exists() else []:
            n = len(u.text.split())
            rows.append(dict(id=u.id, split=split, speaker=u.speaker, duration=u.duration, n_words=n,
                             words_per_second=n / u.duration, rate_wpm=u.rate_wpm, pitch=u.pitch,
                             n_marked=sum(w.markup is not None for w in u.words)))
    return pd.DataFrame(rows)


def word_table(prepared_dir: Path, split: str = "train") -> pd.DataFrame:
    """One row per aligned word: duration, markup kind (plain, rate<100, rate>100, pitch, break), utterance rate."""
    rows = []
    for u in read_manifest(Path(prepared_dir) / f"{split}.jsonl"):
        for w in u.words:
            rows.append(dict(word=w.word, duration=w.duration, markup=markup_kind(w.markup), rate_wpm=u.rate_wpm,
                             n_chars=len(w.word)))
    return pd.DataFrame(rows, columns=["word", "duration", "markup", "rate_wpm", "n_chars"])


def markup_kind(markup: str | None) -> str:
    if markup is None:
        return "plain"
    key, _, value = markup.partition("=")
    if key == "rate":
        return "slower" if float(value.rstrip("%")) < 100 else "faster"
    if key == "pitch":
        return "higher" if value.startswith("+") else "lower"
    return "pause after"


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_duration_histogram(df: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    sns.histplot(data=df, x="duration", hue="split", bins=40, element="step", stat="count", ax=ax)
    ax.set(xlabel="utterance duration (s)", title="Utterance durations by split")
    return _save(fig, path)


def plot_rate_by_speaker(df: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(9, 3.8))
    order = sorted(df["speaker"].unique())
    sns.boxplot(data=df, x="speaker", y="words_per_second", hue="split", order=order, ax=ax, fliersize=1)
    ax.set(xlabel="speaker (voice variant _ base pitch)", ylabel="words per second", title="Speaking rate by speaker")
    ax.tick_params(axis="x", rotation=45)
    return _save(fig, path)


def plot_word_duration_by_markup(words: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if words.empty:  # real corpora carry no alignments: keep the declared plot, say why it is empty
        ax.text(0.5, 0.5, "no word alignments in this corpus", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, path)
    order = [k for k in ("plain", "slower", "faster", "higher", "lower", "pause after") if k in set(words["markup"])]
    sns.boxplot(data=words, x="markup", y="duration", order=order, ax=ax, fliersize=1)
    ax.set(xlabel="word markup", ylabel="word duration (s)", title="Word durations by SSML markup (train)")
    return _save(fig, path)
