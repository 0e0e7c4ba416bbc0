"""The pooled-slope swap estimator: how much of a word's ground-truth contrast a swap carries.

For a set of (directed pair, word) items with ground-truth contrast delta (donor - recipient, from the corpus: word
durations from the synthesiser's alignment, log-F0 from the prepare stage's pitch track) and decoded values y (mean
over decode seeds), the slope of condition c is

    beta_c = sum delta * (y_c - y_recipient) / sum delta^2

so retention = beta_donor (decoding the donor's own codes reproduces the contrast), and transfer / control /
leakage = beta_c / beta_donor (1 = the whole contrast the tokenizer keeps, 0 = none). Unlike the median of per-word
ratios, the slope is not quantised on the unit grid, weights each item by its contrast, is 0 under no effect and
uses the ground truth (not the recipient's own noisy reconstruction) as the scale of each item.

On local pairs delta is always word j's contrast (only j differs by design) and the response is read at word j + k
(k = 0: j itself; k = -1 / +1: leakage into its neighbours), so every ratio is in units of j's retained contrast.
On global pairs each word has its own contrast; swapped words give transfer, untouched words leakage.
The 95% CIs resample whole sentence pairs (both directions, every word of a pair together).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from taste.config import complete_section
from taste.data.records import Utterance
from taste.swap.jobs import SwapJob, SwapPair

ESTIMATOR = ("pooled slope on the ground-truth contrast: sum d*(y_c - y_R) / sum d*(y_D - y_R), y = mean over "
             "seeds; 95% CI from a cluster bootstrap over sentence pairs")
KEYS = ["pair_id", "direction"]


@dataclasses.dataclass(frozen=True)
class SlopeSettings:
    """Which items enter the slope (params.yaml `swap.slope`)."""

    min_truth_duration_s: float = 0.12   # |ground-truth contrast| of word j (local) / the word (global)
    min_truth_global_duration_s: float = 0.04   # global pairs: every word has its own (smaller) contrast
    min_truth_log_f0: float = 0.1        # the same for log-F0 (0.1 = about 10%)
    offsets: tuple[int, ...] = (-1, 0, 1)


def truth_table(pairs: Sequence[SwapPair], utterances: Mapping[str, Utterance],
                pitch_tracks: Mapping[str, np.ndarray] | None = None, frame_rate_hz: float | None = None
                ) -> pd.DataFrame:
    """Ground truth per (directed pair, word): duration (s) and, given pitch tracks (Hz per frame, 0 = unvoiced),
    log of the median voiced F0 over the word's span in each rendition.

    -> columns set, pair_id, direction, word_index, truth_recipient_duration, truth_donor_duration
    (+ truth_recipient_log_f0, truth_donor_log_f0). Raises ValueError when an utterance has no word timings."""
    import torch

    from taste.data.pitch import voiced_median

    def log_f0(uid: str, word) -> float:
        track = torch.as_tensor(np.asarray(pitch_tracks[uid], dtype=np.float64))
        f0 = voiced_median(track, int(round(word.start * frame_rate_hz)), int(round(word.end * frame_rate_hz)))
        return float(np.log(f0)) if np.isfinite(f0) and f0 > 0 else float("nan")

    rows = []
    for pair in pairs:
        rec, don = utterances[pair.recipient_id], utterances[pair.donor_id]
        for utt in (rec, don):
            if len(utt.words) != pair.n_words:
                raise ValueError(f"utterance {utt.id}: {len(utt.words)} word timings for the {pair.n_words} words "
                                 f"of {pair.text!r}; the slope estimator needs the corpus's word alignment")
        for i, (wr, wd) in enumerate(zip(rec.words, don.words)):
            row = {"set": pair.set, "pair_id": pair.pair_id, "direction": pair.direction, "word_index": i,
                   "truth_recipient_duration": wr.duration, "truth_donor_duration": wd.duration}
            if pitch_tracks is not None:
                row["truth_recipient_log_f0"] = log_f0(rec.id, wr)
                row["truth_donor_log_f0"] = log_f0(don.id, wd)
            rows.append(row)
    return pd.DataFrame(rows)


def seed_means(rows: pd.DataFrame, log: bool = False) -> pd.DataFrame:
    """Per-word rows (taste.swap.measure, one per seed) -> one row per (pair, direction, condition, span, word) with
    the seed-mean decoded value of the condition (`value`), the recipient and the donor reconstructions.
    log: take logs first (F0)."""
    df = rows[["set", "pair_id", "direction", "condition", "span", "word_index", "seed", "value", "recipient",
               "donor"]].copy()
    if log:
        for col in ("value", "recipient", "donor"):
            v = df[col].to_numpy(dtype=np.float64)
            df[col] = np.log(np.where(v > 0, v, np.nan))
    return (df.groupby(["set", "pair_id", "direction", "condition", "span", "word_index"], as_index=False)
              [["value", "recipient", "donor"]].mean())


def _ratio_ci(num: np.ndarray, den: np.ndarray, clusters: np.ndarray, n_boot: int, seed: int,
              norm: np.ndarray | None = None) -> dict:
    """sum(num) / sum(den) with a percentile CI resampling clusters (their sums) -> metrics entry."""
    labels, inverse = np.unique(clusters, return_inverse=True)
    k = labels.size
    if k == 0:
        return {"value": float("nan"), "ci_lo": float("nan"), "ci_hi": float("nan"), "n": 0, "n_clusters": 0}
    n_sum = np.bincount(inverse, weights=num, minlength=k)
    d_sum = np.bincount(inverse, weights=den, minlength=k)
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(n_boot)])  # [n_boot, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = (counts @ n_sum) / (counts @ d_sum)
        value = n_sum.sum() / d_sum.sum()
    boot = boot[np.isfinite(boot)]
    lo, hi = (np.quantile(boot, [0.025, 0.975]) if boot.size else (np.nan, np.nan))
    return {"value": float(value), "ci_lo": float(lo), "ci_hi": float(hi), "n": int(num.size), "n_clusters": int(k)}


def _items(means: pd.DataFrame, truth: pd.DataFrame, measure: str) -> pd.DataFrame:
    t = truth[KEYS + ["word_index", f"truth_recipient_{measure}", f"truth_donor_{measure}"]].copy()
    t["delta"] = t[f"truth_donor_{measure}"] - t[f"truth_recipient_{measure}"]
    return means.merge(t[KEYS + ["word_index", "delta"]], on=KEYS + ["word_index"], how="inner")


def local_slopes(means: pd.DataFrame, truth: pd.DataFrame, measure: str, pair_ids: set[str], min_truth: float,
                 changed_word: Mapping[str, int], offsets: Sequence[int] = (-1, 0, 1), n_boot: int = 1000,
                 seed: int = 0) -> dict:
    """Local pairs: retention of word j, and per condition the response at word j + k relative to j's retention.

    pair_ids: the pairs whose j changed in this measure (rate pairs for duration, pitch pairs for log-F0);
    min_truth: |delta_j| below it leaves the directed pair out."""
    loc = means[(means.set == "local") & means.pair_id.isin(pair_ids)]
    if loc.empty:
        return {}
    t = truth[truth.set == "local"].copy()
    t["j"] = t.pair_id.map(changed_word)
    tj = t[t.word_index == t.j]
    delta = (tj[f"truth_donor_{measure}"] - tj[f"truth_recipient_{measure}"]).to_numpy()
    deltas = pd.DataFrame({"pair_id": tj.pair_id.to_numpy(), "direction": tj.direction.to_numpy(), "delta": delta,
                           "j": tj.j.to_numpy()})
    deltas = deltas[np.isfinite(deltas.delta) & (deltas.delta.abs() >= min_truth)]
    loc = loc.merge(deltas, on=KEYS, how="inner")
    if loc.empty:
        return {"n_directed_pairs": 0}
    loc = loc.assign(offset=loc.word_index - loc.j)
    # Retention: the donor reconstruction at j (read from any condition's rows of the pair: the same decode).
    at_j = loc[loc.offset == 0].drop_duplicates(KEYS)
    ret_base = at_j[KEYS + ["delta"]].assign(ret=at_j.delta * (at_j.donor - at_j.recipient))
    ret_base = ret_base[np.isfinite(ret_base.ret)]
    out: dict = {"n_directed_pairs": int(len(ret_base)), "n_pairs": int(ret_base.pair_id.nunique()),
                 "mean_abs_truth_contrast": float(ret_base.delta.abs().mean()) if len(ret_base) else float("nan")}
    out["retention"] = _ratio_ci(ret_base.ret.to_numpy(), (ret_base.delta ** 2).to_numpy(),
                                 ret_base.pair_id.to_numpy(), n_boot, seed)
    ret = ret_base.set_index(KEYS).ret
    for condition, part in loc.groupby("condition"):
        body = {}
        for k in offsets:
            at = part[(part.offset == k)].drop_duplicates(KEYS)
            resp = (at.delta * (at.value - at.recipient)).to_numpy()
            den = ret.reindex(pd.MultiIndex.from_frame(at[KEYS])).to_numpy()
            ok = np.isfinite(resp) & np.isfinite(den)
            body[f"offset_{k:+d}" if k else "word_j"] = _ratio_ci(resp[ok], den[ok], at.pair_id.to_numpy()[ok],
                                                                   n_boot, seed)
        out[condition] = body
    return out


def global_slopes(means: pd.DataFrame, truth: pd.DataFrame, measure: str, set_name: str, min_truth: float,
                  swapped: Mapping[tuple, frozenset], n_boot: int = 1000, seed: int = 0) -> dict:
    """Global pairs (each word its own contrast): per span, transfer = slope of swapped words / their retention and
    leakage = the same over untouched words. swapped: (pair_id, direction, span) -> swapped word indices."""
    g = means[(means.set == set_name) & (means.condition == "swap")]
    if g.empty:
        return {}
    g = _items(g, truth[truth.set == set_name], measure)
    g = g[np.isfinite(g.delta) & (g.delta.abs() >= min_truth)]
    is_swapped = np.array([w in swapped.get((p, d, s), ()) for p, d, s, w in
                           zip(g.pair_id, g.direction, g.span, g.word_index)], dtype=bool)
    g = g.assign(swapped=is_swapped, num=g.delta * (g.value - g.recipient), den=g.delta * (g.donor - g.recipient))
    g = g[np.isfinite(g.num) & np.isfinite(g.den)]
    ret = g.drop_duplicates(KEYS + ["word_index"])
    out = {"retention": _ratio_ci(ret.den.to_numpy(), (ret.delta ** 2).to_numpy(), ret.pair_id.to_numpy(), n_boot,
                                  seed),
           "n_words": int(len(ret)), "by_span": {}}
    for label, part in (("transfer", g[g.swapped]), ("leakage", g[~g.swapped])):
        out[label] = _ratio_ci(part.num.to_numpy(), part.den.to_numpy(), part.pair_id.to_numpy(), n_boot, seed)
    for span, part in g.groupby("span"):
        out["by_span"][span] = {
            label: _ratio_ci(sub.num.to_numpy(), sub.den.to_numpy(), sub.pair_id.to_numpy(), n_boot, seed)
            for label, sub in (("transfer", part[part.swapped]), ("leakage", part[~part.swapped]))}
    return out


def swapped_words(plan: Sequence[Sequence[SwapJob]]) -> dict[tuple, frozenset]:
    """(pair_id, direction, span) -> the word indices its swap job took from the donor."""
    return {(j.pair.pair_id, j.pair.direction, j.span): frozenset(j.words)
            for jobs in plan for j in jobs if j.condition == "swap"}


def slope_metrics(rows: pd.DataFrame, pitch_rows: pd.DataFrame | None, truth: pd.DataFrame,
                  plan: Sequence[Sequence[SwapJob]], local_kinds: Mapping[str, str], settings: SlopeSettings,
                  n_boot: int = 1000, seed: int = 0) -> dict:
    """The slope section of the swap stage's metrics.json: duration (decoder word boundaries) on the rate pairs,
    log-F0 (vocoder F0 track) on the pitch pairs; local and global sets."""
    changed = {j.pair.pair_id: j.pair.changed_word for jobs in plan for j in jobs if j.pair.set == "local"}
    swapped = swapped_words(plan)
    rate_pairs = {p for p, k in local_kinds.items() if k == "rate"}
    pitch_pairs = {p for p, k in local_kinds.items() if k == "pitch"}
    out: dict = {"estimator": ESTIMATOR, "settings": dataclasses.asdict(settings)}
    dur = seed_means(rows[rows.measure == "duration"])
    out["duration"] = {"local_rate_pairs": local_slopes(dur, truth, "duration", rate_pairs,
                                                        settings.min_truth_duration_s, changed, settings.offsets,
                                                        n_boot, seed),
                       "global_rate": global_slopes(dur, truth, "duration", "global_rate",
                                                    settings.min_truth_global_duration_s, swapped, n_boot, seed)}
    if pitch_rows is not None and len(pitch_rows) and "truth_recipient_log_f0" in truth:
        f0 = seed_means(pitch_rows[pitch_rows.measure == "f0_vocoder"], log=True)
        out["log_f0"] = {"local_pitch_pairs": local_slopes(f0, truth, "log_f0", pitch_pairs,
                                                           settings.min_truth_log_f0, changed, settings.offsets,
                                                           n_boot, seed),
                         "global_pitch": global_slopes(f0, truth, "log_f0", "global_pitch",
                                                       settings.min_truth_log_f0, swapped, n_boot, seed)}
    out["goals"] = slope_goals(out)
    return out


SLOPE_GOALS = {"retention_min": 0.8, "transfer_min": 0.8, "control_max": 0.1, "leakage_max": 0.1,
               "pitch_transfer_min": 0.6, "pitch_control_max": 0.15, "global_transfer_min": 0.8,
               "global_leakage_max": 0.2}


def _not_assessable(retention: Mapping | None) -> str | None:
    """Why ratios to this retention mean nothing (None: they are assessable). A ratio beta_c / beta_donor is defined
    only when retention is surely positive (its 95% CI above 0): otherwise it divides by noise and can read as
    anything. This is a validity rule on the estimator, not a threshold chosen by measuring."""
    if not retention or not np.isfinite(retention.get("value", np.nan)) or not np.isfinite(retention["ci_lo"]):
        return "no retention estimate"
    if retention["ci_hi"] < 0:
        return "retention CI below 0"
    if retention["ci_lo"] <= 0:
        return "retention CI includes 0"
    return None


def _ratio_goal(out: dict, name: str, met: bool, why_not: str | None) -> None:
    """out[name] = met, or None with out[name + '_reason'] when the ratio is not assessable."""
    out[name] = bool(met) if why_not is None else None
    if why_not is not None:
        out[f"{name}_reason"] = why_not


def slope_goals(metrics: dict) -> dict:
    """Issue 13's goals on the slope estimator (point estimates; the CIs are beside them in metrics.json).

    Retention goals are plain booleans. Transfer, control and leakage are ratios to retention: where retention's
    95% CI reaches 0 their goal is None (neither met nor failed) beside `<goal>_reason`, and the measure's
    `<measure>_retention_ci_above_0` (always present) reads False, so a measure without retention fails visibly."""
    g = SLOPE_GOALS
    out: dict = {}
    loc = metrics.get("duration", {}).get("local_rate_pairs", {})
    ok = _not_assessable(loc.get("retention"))
    if loc:
        out["local_rate_retention_ci_above_0"] = ok is None
    if "retention" in loc:
        out["local_rate_retention_met"] = bool(loc["retention"]["value"] >= g["retention_min"])
    if "swap" in loc:
        _ratio_goal(out, "local_rate_transfer_met", loc["swap"]["word_j"]["value"] >= g["transfer_min"], ok)
        _ratio_goal(out, "local_rate_leakage_met", all(abs(v["value"]) <= g["leakage_max"]
                                                       for k, v in loc["swap"].items() if k != "word_j"), ok)
    if "control" in loc:
        _ratio_goal(out, "local_rate_control_met", abs(loc["control"]["word_j"]["value"]) <= g["control_max"], ok)
    pitch = metrics.get("log_f0", {}).get("local_pitch_pairs", {})
    ok = _not_assessable(pitch.get("retention"))
    if pitch:
        out["local_pitch_retention_ci_above_0"] = ok is None
    if "swap" in pitch:
        _ratio_goal(out, "local_pitch_transfer_met", pitch["swap"]["word_j"]["value"] >= g["pitch_transfer_min"], ok)
    if "control" in pitch:
        _ratio_goal(out, "local_pitch_control_met",
                    abs(pitch["control"]["word_j"]["value"]) <= g["pitch_control_max"], ok)
    glob = metrics.get("duration", {}).get("global_rate", {})
    ok = _not_assessable(glob.get("retention"))
    if glob:
        out["global_rate_retention_ci_above_0"] = ok is None
    if "transfer" in glob:
        _ratio_goal(out, "global_rate_transfer_met", glob["transfer"]["value"] >= g["global_transfer_min"], ok)
        _ratio_goal(out, "global_rate_leakage_met", abs(glob["leakage"]["value"]) <= g["global_leakage_max"], ok)
    return out


def code_agreement(pairs: Sequence[SwapPair], codes: Mapping[str, "np.ndarray"]) -> dict:
    """Local pairs, no decoding: share of words whose RVQ code (per level) is the same in base and variant, for
    the words before j, j itself and the words after j. Word-local tokens keep the others' codes equal (only j's
    rendition differs); an utterance-level signal changes them too."""
    acc: dict[str, list[np.ndarray]] = {"before_j": [], "word_j": [], "after_j": []}
    for pair in pairs:
        if pair.set != "local" or not pair.forward:
            continue
        a, b = np.asarray(codes[pair.recipient_id]), np.asarray(codes[pair.donor_id])
        same = a == b  # [N, n_q]
        j = pair.changed_word
        acc["before_j"] += list(same[:j])
        acc["word_j"].append(same[j])
        acc["after_j"] += list(same[j + 1:])
    out = {}
    for where, vals in acc.items():
        if vals:
            arr = np.stack(vals).astype(np.float64)
            out[where] = {"per_level": [round(float(x), 4) for x in arr.mean(0)], "n_words": int(arr.shape[0])}
    return out


def slope_settings_from_params(slope_params: Mapping) -> SlopeSettings:
    """params.yaml's `swap.slope` (a plain dict, read by the entry point; every field given) -> SlopeSettings."""
    p = complete_section(slope_params, SlopeSettings, "swap.slope")
    p["offsets"] = tuple(int(k) for k in p["offsets"])
    return SlopeSettings(**{k: (v if k == "offsets" else float(v)) for k, v in p.items()})


LOCAL_QUANTITIES = (("retention", None), ("swap", "word_j"), ("control", "word_j"), ("control_before", "word_j"),
                    ("control_after", "word_j"), ("swap", "offset_-1"), ("swap", "offset_+1"), ("noise", "word_j"))


def local_slope_frame(by_source: Mapping[str, dict]) -> pd.DataFrame:
    """Slope metrics of several local sets (source -> slope_metrics output) -> one tidy row per (source, measure,
    quantity): value, ci_lo, ci_hi, n. Quantities: retention, transfer (swap at j), the controls at j, leakage
    into j-1 / j+1 (swap at j -/+ 1) and the decoder-noise floor at j."""
    keys = {"duration": "local_rate_pairs", "log_f0": "local_pitch_pairs"}
    rows = []
    for source, metrics in by_source.items():
        for measure, key in keys.items():
            m = metrics.get(measure, {}).get(key, {})
            for cond, where in LOCAL_QUANTITIES:
                s = m.get(cond) if where is None else m.get(cond, {}).get(where)
                if not s:
                    continue
                name = {("swap", "word_j"): "transfer (swap @ j)", ("swap", "offset_-1"): "leakage @ j-1",
                        ("swap", "offset_+1"): "leakage @ j+1"}.get((cond, where),
                                                                     cond if where is None else f"{cond} @ j")
                rows.append({"source": source, "measure": measure, "quantity": name, "value": s["value"],
                             "ci_lo": s["ci_lo"], "ci_hi": s["ci_hi"], "n": s["n"],
                             "directed_pairs": m.get("n_directed_pairs")})
    return pd.DataFrame(rows, columns=["source", "measure", "quantity", "value", "ci_lo", "ci_hi", "n",
                                       "directed_pairs"])
