"""From per-word rows to the stage's metrics: medians with bootstrap CIs of transfer, leakage and control movement.

Estimator: the median over words (x seeds x directions) of per-word ratios; its 95% CI resamples whole sentence pairs
(`pair_id`), the independent unit, so the words, seeds and directions of one pair stay together. It is kept for
comparison with earlier runs, not as a headline: on contrasts of 1-3 units the ratios take a few quantised values,
and the shared recipient draw makes it read 0.5 under no effect. The headline and its goals are the pooled slopes
of `taste.swap.slope`."""
from __future__ import annotations

import numpy as np
import pandas as pd

from taste.metrics.stats import summarise

ESTIMATOR = "median of per-word ratios; 95% CI from a cluster bootstrap over sentence pairs"


def _stat(rows: pd.DataFrame, n_boot: int, seed: int = 0, absolute: bool = False, column: str = "ratio") -> dict:
    """Median of rows[column] with a CI that resamples sentence pairs (rows.pair_id)."""
    vals = rows[column].to_numpy(dtype=np.float64)
    return summarise(np.abs(vals) if absolute else vals, statistic=np.median, n=n_boot, seed=seed,
                     clusters=rows["pair_id"].to_numpy())


def _global_summary(df: pd.DataFrame, n_boot: int) -> dict:
    swap = df[df.condition == "swap"]
    out = {"transfer": _stat(swap[swap.swapped], n_boot),
           "leakage": _stat(swap[~swap.swapped], n_boot),
           "leakage_abs": _stat(swap[~swap.swapped], n_boot, absolute=True),
           "by_span": {}}
    for span, part in swap.groupby("span"):
        out["by_span"][span] = {"transfer": _stat(part[part.swapped], n_boot),
                                "leakage": _stat(part[~part.swapped], n_boot)}
    mm = df[(df.condition == "mismatch") & df.swapped]
    out["mismatch_transfer"] = _stat(mm, n_boot)
    out["mismatch_source_transfer"] = _stat(mm, n_boot, column="source_ratio")
    return out


def _local_summary(df: pd.DataFrame, n_boot: int) -> dict:
    swap, control = df[df.condition == "swap"], df[df.condition == "control"]
    mm = df[(df.condition == "mismatch") & df.swapped]
    return {"transfer": _stat(swap[swap.is_changed_word], n_boot),
            "leakage": _stat(swap[~swap.swapped], n_boot),
            "leakage_abs": _stat(swap[~swap.swapped], n_boot, absolute=True),
            "control_movement": _stat(control[control.is_changed_word], n_boot),
            "control_movement_abs": _stat(control[control.is_changed_word], n_boot, absolute=True),
            "control_others_transfer": _stat(control[control.swapped], n_boot),
            **{f"{side}_movement": _stat(df[(df.condition == side) & df.is_changed_word], n_boot)
               for side in ("control_before", "control_after")},
            "mismatch_transfer": _stat(mm, n_boot),
            "mismatch_source_transfer": _stat(mm, n_boot, column="source_ratio")}


def _noise_summary(df: pd.DataFrame, n_boot: int) -> dict:
    noise = df[df.condition == "noise"]
    return {"ratio": _stat(noise, n_boot), "ratio_abs": _stat(noise, n_boot, absolute=True)}


def summarise_measure(rows: pd.DataFrame, measure: str, n_boot: int = 1000) -> dict:
    """Metrics of one measure (duration | duration_audio | f0 | f0_vocoder) per swap set."""
    out: dict = {}
    if rows.empty:
        return out
    df = rows[rows.measure == measure]
    for set_name, part in df.groupby("set"):
        body = _local_summary(part, n_boot) if set_name == "local" else _global_summary(part, n_boot)
        if (part.condition == "noise").any():
            body["decoder_noise"] = _noise_summary(part, n_boot)
        out[set_name] = body
    return out


def _wer_entry(rows: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """CI sibling of a mean per-utterance WER: resamples sentence pairs (the independent unit)."""
    s = summarise(rows.wer.to_numpy(dtype=np.float64), statistic=np.mean, n=n_boot, seed=seed,
                  clusters=rows.pair_id.astype(str).to_numpy())
    return {"lo": s["ci_lo"], "hi": s["ci_hi"], "n": s["n"], "n_pairs": s["n_clusters"]}


def wer_table(utt_rows: pd.DataFrame, n_boot: int = 1000, floor_rows: pd.DataFrame | None = None,
              seed: int = 0) -> dict:
    """Mean recogniser WER of the vocoded subset by set and condition (intelligibility under the mismatch ablation),
    each with a `<condition>_ci` sibling (95% CI resampling sentence pairs). floor_rows (study.original_rows): the
    same recogniser on the original recordings of those pairs, reported as condition 'original' (the judge's floor:
    the WER it reads on real speech)."""
    parts = [df for df in (utt_rows, floor_rows) if df is not None and not df.empty]
    if not parts:
        return {}
    out: dict = {}
    for df in parts:
        for (set_name, condition), g in df.groupby(["set", "condition"], sort=False):
            body = out.setdefault(set_name, {})
            body[condition] = float(g.wer.mean())
            body[f"{condition}_ci"] = _wer_entry(g, n_boot, seed)
    return out


def pitch_pairs_only(rows: pd.DataFrame, local_kinds: dict[str, str] | None) -> pd.DataFrame:
    """Pitch rows for the summary: local pairs only where word j's pitch (not its rate) was changed."""
    if rows.empty or local_kinds is None:
        return rows
    local = rows.set == "local"
    keep = ~local | (rows.pair_id.map(local_kinds) == "pitch")
    return rows[keep]


def build_metrics(rows: pd.DataFrame, audio_rows: pd.DataFrame, utt_rows: pd.DataFrame, n_boot: int,
                  extra: dict | None = None, pitch_rows: pd.DataFrame | None = None,
                  local_kinds: dict[str, str] | None = None, floor_rows: pd.DataFrame | None = None) -> dict:
    """The stage's metrics.json body. pitch_rows: measure 'f0_vocoder' for every decode (taste.swap.pitch);
    local_kinds: pair_id -> 'pitch' | 'rate' | 'other' of the local pairs (pitch summaries use the pitch pairs);
    floor_rows: the recogniser on the original recordings of the audio subset (study.original_rows)."""
    metrics = {"estimator": ESTIMATOR, "duration": summarise_measure(rows, "duration", n_boot)}
    metrics["duration_audio"] = summarise_measure(audio_rows, "duration_audio", n_boot)
    metrics["f0"] = summarise_measure(pitch_pairs_only(audio_rows, local_kinds), "f0", n_boot)
    if pitch_rows is not None:
        metrics["f0_vocoder"] = summarise_measure(pitch_pairs_only(pitch_rows, local_kinds), "f0_vocoder", n_boot)
    if local_kinds is not None:
        metrics["local_pairs_by_change"] = {k: sum(v == k for v in local_kinds.values())
                                            for k in sorted(set(local_kinds.values()))}
    metrics["wer_audio_subset"] = wer_table(utt_rows, n_boot, floor_rows)
    metrics.update(extra or {})
    return metrics


def json_safe(obj):
    """NaN / inf -> None and numpy scalars -> Python, recursively: metrics.json stays strict JSON for DVC."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


LOCAL_SET_KEYS = {"duration": "local_rate_pairs", "log_f0": "local_pitch_pairs"}


def local_set_rows(by_set: dict[str, dict]) -> dict:
    """One row per edited local set (name -> its slope_metrics output, e.g. test_stretched, heldout_stretched) with the
    headline slopes side by side: per measure the directed pairs, retention, transfer (swap @ j), control @ j and the
    leakage into j-1 / j+1 (value, ci_lo, ci_hi), and the set's slope goals. Sets in the given order."""
    out: dict = {}
    for name, slope in by_set.items():
        row: dict = {}
        for measure, key in LOCAL_SET_KEYS.items():
            m = (slope or {}).get(measure, {}).get(key, {})
            if "retention" not in m:
                continue

            def ci(s):
                return {k: s[k] for k in ("value", "ci_lo", "ci_hi")} if s else None

            row[measure] = {"n_directed_pairs": m.get("n_directed_pairs"), "retention": ci(m["retention"]),
                            "transfer": ci(m.get("swap", {}).get("word_j")),
                            "control": ci(m.get("control", {}).get("word_j")),
                            "leakage_j-1": ci(m.get("swap", {}).get("offset_-1")),
                            "leakage_j+1": ci(m.get("swap", {}).get("offset_+1"))}
        row["goals"] = dict((slope or {}).get("goals", {}))
        out[name] = row
    return out
