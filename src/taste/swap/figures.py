"""Figures of the swap study (seaborn): per-word durations like the paper's slide, transfer distributions, CIs."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def example_keys(rows: pd.DataFrame, set_name: str, span: str, n: int = 3) -> list[tuple[str, str, str, str]]:
    """(set, pair_id, direction, span) of the first n swaps of `span` in `set_name`."""
    part = rows[(rows.set == set_name) & (rows.span == span) & (rows.condition == "swap")]
    keys = list(dict.fromkeys(zip(part.pair_id, part.direction)))[:n]
    return [(set_name, pair_id, direction, span) for pair_id, direction in keys]


def plot_word_durations(rows: pd.DataFrame, examples: Sequence[tuple[str, str, str, str]], path: str | Path,
                        measure: str = "duration", ylabel: str = "seconds") -> Path:
    """One panel per (set, pair_id, direction, span): recipient / donor / swapped per word at the first seed
    (durations, or any other per-word measure such as median F0); swapped words are starred."""
    fig, axes = plt.subplots(max(1, len(examples)), 1, figsize=(9, 2.6 * max(1, len(examples))), squeeze=False)
    for ax, (set_name, pair_id, direction, span) in zip(axes[:, 0], examples):
        part = rows[(rows.set == set_name) & (rows.pair_id == pair_id) & (rows.direction == direction)
                    & (rows.measure == measure) & (rows.condition == "swap") & (rows.span == span)]
        part = part[part.seed == part.seed.min()].sort_values("word_index")
        if part.empty:
            ax.set_axis_off()
            continue
        n = len(part)
        long = pd.DataFrame({"position": np.tile(np.arange(n), 3),
                             ylabel: np.concatenate([part.recipient, part.donor, part.value]),
                             "decode": np.repeat(["recipient", "donor", "swapped"], n)})
        sns.barplot(long, x="position", y=ylabel, hue="decode", ax=ax, palette="deep")
        ax.set_xticks(range(n), [("*" if s else "") + w for w, s in zip(part.word, part.swapped)], fontsize=8,
                      rotation=30)
        ax.set_title(f"{set_name} {pair_id} ({direction}), span {span}; * = swapped word", fontsize=9)
        ax.set_xlabel("")
    return _save(fig, path)


def plot_ratio_distributions(rows: pd.DataFrame, path: str | Path, measure: str = "duration") -> Path:
    """Histograms of the per-word ratio: swapped words (transfer) vs untouched (leakage), per set."""
    df = rows[(rows.measure == measure) & rows.condition.isin(["swap", "control", "noise"])].copy()
    df = df[np.isfinite(df.ratio)]
    df["kind"] = np.where(df.condition == "noise", "decoder noise",
                          np.where(df.swapped, "swapped (transfer)", "untouched (leakage)"))
    df.loc[(df.condition == "control") & df.is_changed_word, "kind"] = "control: word j"
    df["ratio"] = df.ratio.clip(-1.5, 2.5)
    sets = sorted(df.set.unique()) or ["none"]
    fig, axes = plt.subplots(1, len(sets), figsize=(4.5 * len(sets), 3.4), squeeze=False)
    for ax, set_name in zip(axes[0], sets):
        part = df[df.set == set_name]
        if len(part):
            sns.histplot(part, x="ratio", hue="kind", bins=32, stat="density", common_norm=False, element="step",
                         ax=ax)
        for x in (0.0, 1.0):
            ax.axvline(x, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{set_name}: {measure} ratio (clipped to [-1.5, 2.5])", fontsize=9)
    return _save(fig, path)


def plot_span_summary(metrics_measure: dict, path: str | Path, title: str) -> Path:
    """Median transfer and leakage with 95% CIs per span (global sets) and for the local set's j / control."""
    items = []
    for set_name, m in metrics_measure.items():
        for span, body in m.get("by_span", {}).items():
            items += [(set_name, span, "transfer", body["transfer"]), (set_name, span, "leakage", body["leakage"])]
        if set_name == "local":
            items += [(set_name, "changed", "transfer", m["transfer"]), (set_name, "changed", "leakage", m["leakage"]),
                      (set_name, "control", "control j", m["control_movement"])]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    labels = []
    for k, (set_name, span, kind, s) in enumerate(items):
        colour = {"transfer": "C0", "leakage": "C1", "control j": "C2"}[kind]
        if s["n"]:
            ax.errorbar(k, s["value"], yerr=[[s["value"] - s["ci_lo"]], [s["ci_hi"] - s["value"]]], fmt="o",
                        color=colour, capsize=3)
        labels.append(f"{set_name}\n{span}\n{kind}")
    for y, style in ((1.0, "--"), (0.8, ":"), (0.1, ":"), (0.0, "--")):
        ax.axhline(y, color="grey", lw=0.7, ls=style)
    ax.set_xticks(range(len(labels)), labels, fontsize=6)
    ax.set_ylabel("median ratio (95% CI)")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_local_sources(frame: pd.DataFrame, path: str | Path, ylim: tuple[float, float] = (-0.6, 1.6)) -> Path:
    """The local-pair slopes (taste.swap.slope.local_slope_frame) of each source side by side, one panel per
    measure, with their 95% CIs; reference lines at 0, 0.1, 0.8 and 1. Estimates outside `ylim` (a retention near
    zero makes every ratio explode) are drawn as an x at the edge with their value written beside it."""
    measures = list(dict.fromkeys(frame.measure)) or ["duration"]
    fig, axes = plt.subplots(1, len(measures), figsize=(6 * len(measures), 3.8), squeeze=False)
    sources = list(dict.fromkeys(frame.source))
    colours = sns.color_palette(n_colors=max(1, len(sources)))
    lo_lim, hi_lim = ylim
    for ax, measure in zip(axes[0], measures):
        part = frame[frame.measure == measure]
        order = list(dict.fromkeys(part.quantity))
        width = 0.25
        for i, src in enumerate(sources):
            sub = part[part.source == src].set_index("quantity").reindex(order).dropna(subset=["value"])
            x = np.array([order.index(q) + (i - (len(sources) - 1) / 2) * width for q in sub.index])
            v, lo, hi = sub.value.to_numpy(), sub.ci_lo.to_numpy(), sub.ci_hi.to_numpy()
            inside = (v >= lo_lim) & (v <= hi_lim)
            ax.errorbar(x[inside], v[inside], yerr=[v[inside] - np.clip(lo[inside], lo_lim, None),
                                                    np.clip(hi[inside], None, hi_lim) - v[inside]],
                        fmt="o", color=colours[i], capsize=3, label=src)
            for xo, vo in zip(x[~inside], v[~inside]):
                edge = hi_lim if vo > hi_lim else lo_lim
                ax.plot([xo], [edge], marker="x", color=colours[i])
                ax.annotate(f"{vo:.3g}", (xo, edge), fontsize=6, color=colours[i], ha="center",
                            va="top" if vo > hi_lim else "bottom")
        for y, style in ((1.0, "--"), (0.8, ":"), (0.1, ":"), (0.0, "--")):
            ax.axhline(y, color="grey", lw=0.7, ls=style)
        ax.set_ylim(lo_lim - 0.05, hi_lim + 0.05)
        ax.set_xticks(range(len(order)), order, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("pooled slope (95% CI)")
        ax.set_title(f"local pairs, {measure}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    return _save(fig, path)
