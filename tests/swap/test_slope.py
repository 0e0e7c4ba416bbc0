"""The pooled-slope swap estimator against hand-computed references and the fake tokenizer."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from swap_fakes import RATE_HZ, FakeTokenizer, make_pairs
from taste.data.records import WordAlignment
from taste.swap.jobs import build_pairs
from taste.swap.slope import (SlopeSettings, code_agreement, local_slopes, slope_metrics, slope_settings_from_params,
                              truth_table)
from taste.swap.study import SwapSettings, plan_jobs, run_decoder

SETTINGS = SwapSettings(seeds=(0, 1), batch_size=8, rate_hz=RATE_HZ, audio_pairs=0)


def with_true_words(utts, codes):
    """Give each utterance the word timings its codes stand for in the fake tokenizer ((code + 1) / 25 s)."""
    out = []
    for u in utts:
        durs = (codes[u.id][:, 0].double().numpy() + 1.0) / RATE_HZ
        starts = np.concatenate([[0.0], np.cumsum(durs)[:-1]])
        out.append(u.replace(words=tuple(WordAlignment(w, float(s), float(d))
                                         for w, s, d in zip(u.text.split(), starts, durs))))
    return out


def local_rows(deltas, retention, responses, n_words=3, j=1):
    """Hand-made seed rows of local pairs: recipient 0.3 s everywhere; donor at j = recipient + retention * d;
    condition c at word j + k = recipient + responses[c][k] * d. Returns (rows, truth)."""
    rows, truth = [], []
    for p, d in enumerate(deltas):
        for direction, sign in (("variant->base", 1.0), ("base->variant", -1.0)):
            dd = sign * d
            for cond, by_offset in responses.items():
                for i in range(n_words):
                    k = i - j
                    donor = 0.3 + (retention * dd if k == 0 else 0.0)
                    for seed in (0, 1):
                        rows.append({"set": "local", "pair_id": f"l{p}", "direction": direction, "condition": cond,
                                     "span": cond, "word_index": i, "seed": seed, "measure": "duration",
                                     "value": 0.3 + by_offset.get(k, 0.0) * dd, "recipient": 0.3, "donor": donor})
            for i in range(n_words):
                truth.append({"set": "local", "pair_id": f"l{p}", "direction": direction, "word_index": i,
                              "truth_recipient_duration": 0.3, "truth_donor_duration": 0.3 + (dd if i == j else 0)})
    return pd.DataFrame(rows), pd.DataFrame(truth)


def test_local_slopes_equal_hand_computed_ratios():
    from taste.swap.slope import seed_means

    rows, truth = local_rows([0.2, 0.3, 0.5, 0.15], retention=0.8,
                             responses={"swap": {0: 0.6, -1: 0.05, 1: -0.08}, "control": {0: 0.1}})
    pairs = {f"l{p}" for p in range(4)}
    out = local_slopes(seed_means(rows), truth, "duration", pairs, 0.12, {p: 1 for p in pairs}, n_boot=200)
    assert out["n_directed_pairs"] == 8 and out["n_pairs"] == 4
    assert out["retention"]["value"] == pytest.approx(0.8)
    assert out["swap"]["word_j"]["value"] == pytest.approx(0.75)
    assert out["swap"]["offset_-1"]["value"] == pytest.approx(0.0625)
    assert out["swap"]["offset_+1"]["value"] == pytest.approx(-0.1)
    assert out["control"]["word_j"]["value"] == pytest.approx(0.125)
    assert out["control"]["word_j"]["n_clusters"] == 4
    # Exact data: every resample gives the same ratio, so the CI collapses onto it
    assert out["swap"]["word_j"]["ci_lo"] == pytest.approx(0.75) and out["swap"]["word_j"]["ci_hi"] == pytest.approx(0.75)
    # The ground-truth filter: a pair whose |d| is below the threshold is left out (both directions)
    out = local_slopes(seed_means(rows), truth, "duration", pairs, 0.18, {p: 1 for p in pairs}, n_boot=50)
    assert out["n_directed_pairs"] == 6 and out["n_pairs"] == 3


def test_slope_ci_resamples_sentence_pairs():
    from taste.swap.slope import seed_means

    rng = np.random.default_rng(0)
    rows, truth = local_rows(list(rng.uniform(0.15, 0.5, 30)), 0.8, {"swap": {0: 0.6}})
    # Pair-level noise on the swap response: the CI must widen with it and still cover the pooled value
    noisy = rows.copy()
    shift = {f"l{p}": rng.normal(0, 0.05) for p in range(30)}
    at_j = (noisy.condition == "swap") & (noisy.word_index == 1)
    noisy.loc[at_j, "value"] += noisy.loc[at_j, "pair_id"].map(shift) * np.where(
        noisy.loc[at_j, "direction"] == "variant->base", 1, -1)
    pairs = {f"l{p}" for p in range(30)}
    out = local_slopes(seed_means(noisy), truth, "duration", pairs, 0.12, {p: 1 for p in pairs}, n_boot=500)
    s = out["swap"]["word_j"]
    assert s["ci_lo"] < s["value"] < s["ci_hi"] and s["ci_hi"] - s["ci_lo"] > 0.02
    assert s["n_clusters"] == 30 and s["n"] == 60


def run_fake(leak):
    utts, codes, speakers = make_pairs(n_pairs=4)
    utts = with_true_words(utts, codes)
    pairs = build_pairs(utts)
    plan = plan_jobs(pairs, codes, SETTINGS)
    rows, _, _ = run_decoder(FakeTokenizer(leak=leak), plan, speakers, SETTINGS)
    truth = truth_table(pairs, {u.id: u for u in utts})
    kinds = {p.pair_id: "rate" for p in pairs if p.set == "local"}
    return slope_metrics(rows, None, truth, plan, kinds, SlopeSettings(), n_boot=100)


def test_word_local_fake_meets_the_slope_goals():
    out = run_fake(leak=0.0)
    loc = out["duration"]["local_rate_pairs"]
    assert loc["retention"]["value"] == pytest.approx(1.0)
    assert loc["swap"]["word_j"]["value"] == pytest.approx(1.0)
    assert loc["control"]["word_j"]["value"] == pytest.approx(0.0)
    assert all(v["value"] == pytest.approx(0.0) for k, v in loc["swap"].items() if k != "word_j")
    glob = out["duration"]["global_rate"]
    assert glob["transfer"]["value"] == pytest.approx(1.0) and glob["leakage"]["value"] == pytest.approx(0.0)
    assert set(glob["by_span"]) == {"single", "first_third", "middle_third", "every_other"}
    assert all(out["goals"].values()) and "local_rate_control_met" in out["goals"]


def test_sentence_level_leak_fails_the_goals():
    out = run_fake(leak=0.8)
    loc = out["duration"]["local_rate_pairs"]
    # j's codes move every word through the sentence mean: its neighbours take a share of j's contrast
    neighbours = [v["value"] for k, v in loc["swap"].items() if k != "word_j" and v["n"]]
    assert neighbours and max(abs(v) for v in neighbours) > 0.2
    assert out["duration"]["global_rate"]["leakage"]["value"] > 0.2
    assert not out["goals"]["local_rate_leakage_met"] and not out["goals"]["global_rate_leakage_met"]


def test_truth_table_reads_words_and_pitch():
    utts, codes, _ = make_pairs(n_pairs=1)
    utts = with_true_words(utts, codes)
    pairs = [p for p in build_pairs(utts) if p.set == "local"]
    tracks = {u.id: np.full(200, 100.0 if "base" in u.id else 160.0) for u in utts}
    t = truth_table(pairs, {u.id: u for u in utts}, tracks, 100.0)
    fwd = t[t.direction == pairs[0].direction]
    assert list(fwd.word_index) == list(range(6))
    j = pairs[0].changed_word
    assert fwd.truth_donor_duration.iloc[j] - fwd.truth_recipient_duration.iloc[j] == pytest.approx(5 / RATE_HZ)
    assert np.allclose(fwd.truth_donor_log_f0 - fwd.truth_recipient_log_f0, np.log(160 / 100))
    with pytest.raises(ValueError, match="word timings"):
        truth_table(pairs, {u.id: u.replace(words=()) for u in utts})


def test_code_agreement_per_level_and_side():
    utts, codes, _ = make_pairs(n_pairs=3)
    pairs = build_pairs(utts)
    out = code_agreement(pairs, codes)
    assert out["word_j"]["per_level"] == [0.0, 0.0] and out["word_j"]["n_words"] == 3
    assert out["after_j"]["per_level"] == [1.0, 1.0]
    assert out["before_j"]["per_level"] == [1.0, 1.0]
    codes = {k: v.clone() for k, v in codes.items()}
    codes["l2_variant"][0, 1] = 0  # pair l2 (j = 2): level 1 of its first word now differs
    out = code_agreement(pairs, codes)
    assert out["before_j"]["per_level"][1] < 1.0 and out["before_j"]["per_level"][0] == 1.0


def test_settings_from_params():
    """params.yaml's swap.slope gives every field; a missing or unknown key is refused by name (no dataclass default
    stands in for params.yaml)."""
    from taste.config import ParamsError, load_params

    section = load_params(Path(__file__).resolve().parents[2] / "params.yaml")["swap"]["slope"]
    s = slope_settings_from_params({**section, "min_truth_duration_s": 0.2, "offsets": [-2, 0, 2]})
    assert s.min_truth_duration_s == 0.2 and s.offsets == (-2, 0, 2)
    assert slope_settings_from_params(section).offsets == tuple(section["offsets"])
    with pytest.raises(ParamsError, match=r"swap.slope: missing \['min_truth_duration_s'\]"):
        slope_settings_from_params({k: v for k, v in section.items() if k != "min_truth_duration_s"})
    with pytest.raises(ParamsError, match=r"unknown \['min_truth'\]"):
        slope_settings_from_params({**section, "min_truth": 1})
    with pytest.raises(ParamsError, match="expected a mapping"):
        slope_settings_from_params(None)


def test_local_slope_frame_and_figure(tmp_path):
    """Two sources side by side: every local quantity becomes one tidy row with its CI; the figure is written
    even when a near-zero retention makes a ratio explode (drawn at the edge)."""
    from taste.swap import figures
    from taste.swap.slope import local_slope_frame

    def s(v):
        return {"value": v, "ci_lo": v - 0.1, "ci_hi": v + 0.1, "n": 10}

    a = {"duration": {"local_rate_pairs": {"n_directed_pairs": 10, "retention": s(0.9),
                                           "swap": {"word_j": s(0.7), "offset_-1": s(0.05), "offset_+1": s(0.02)},
                                           "control": {"word_j": s(0.2)}}}}
    b = {"duration": {"local_rate_pairs": {"n_directed_pairs": 8, "retention": s(1e-9),
                                           "swap": {"word_j": s(5e8)}}},
         "log_f0": {"local_pitch_pairs": {"n_directed_pairs": 8, "retention": s(0.5), "noise": {"word_j": s(0.0)}}}}
    f = local_slope_frame({"synthetic": a, "edited": b})
    got = {(r.source, r.measure, r.quantity): r.value for r in f.itertuples()}
    assert got == {("synthetic", "duration", "retention"): 0.9, ("synthetic", "duration", "transfer (swap @ j)"): 0.7,
                   ("synthetic", "duration", "leakage @ j-1"): 0.05, ("synthetic", "duration", "leakage @ j+1"): 0.02,
                   ("synthetic", "duration", "control @ j"): 0.2, ("edited", "duration", "retention"): 1e-9,
                   ("edited", "duration", "transfer (swap @ j)"): 5e8, ("edited", "log_f0", "retention"): 0.5,
                   ("edited", "log_f0", "noise @ j"): 0.0}
    assert set(f.directed_pairs[f.source == "edited"]) == {8}
    path = figures.plot_local_sources(f, tmp_path / "local.png")
    assert path.stat().st_size > 1000


def test_ratio_goals_are_not_assessed_when_retention_ci_includes_zero():
    """Today's pitch: retention -0.007 [-0.027, 0.014] makes control 1.88 [-8.5, 17] noise; neither met nor failed.
    Retention goals and the ratios of a measure whose retention is surely positive are judged as before."""
    from taste.swap.slope import slope_goals

    def s(v, lo, hi):
        return {"value": v, "ci_lo": lo, "ci_hi": hi, "n": 50}

    metrics = {"duration": {"local_rate_pairs": {"retention": s(0.05, -0.02, 0.12),
                                                 "swap": {"word_j": s(0.9, -3, 5), "offset_+1": s(0.01, -1, 1)},
                                                 "control": {"word_j": s(0.02, -2, 2)}},
                            "global_rate": {"retention": s(0.9, 0.84, 0.96), "transfer": s(0.88, 0.86, 0.91),
                                            "leakage": s(0.15, 0.13, 0.17)}},
               "log_f0": {"local_pitch_pairs": {"retention": s(-0.007, -0.027, 0.014),
                                                "swap": {"word_j": s(0.7, -9, 9)},
                                                "control": {"word_j": s(0.05, -8.5, 17)}}}}
    goals = slope_goals(metrics)
    for name in ("local_rate_transfer_met", "local_rate_leakage_met", "local_rate_control_met",
                 "local_pitch_transfer_met", "local_pitch_control_met"):
        assert goals[name] is None and goals[f"{name}_reason"] == "retention CI includes 0"
    assert goals["local_rate_retention_met"] is False
    assert goals["global_rate_transfer_met"] is True and goals["global_rate_leakage_met"] is True
    assert "global_rate_transfer_met_reason" not in goals
    # every measure says whether its retention is surely positive: a measure without retention fails visibly
    assert goals["local_pitch_retention_ci_above_0"] is False and goals["local_rate_retention_ci_above_0"] is False
    assert goals["global_rate_retention_ci_above_0"] is True
    json.dumps(goals)
    below = {"log_f0": {"local_pitch_pairs": {"retention": s(-0.2, -0.3, -0.1), "swap": {"word_j": s(0.7, -9, 9)}}}}
    assert slope_goals(below)["local_pitch_transfer_met_reason"] == "retention CI below 0"
    nan = {"log_f0": {"local_pitch_pairs": {"retention": s(float("nan"), float("nan"), float("nan")),
                                            "swap": {"word_j": s(0.7, -9, 9)}}}}
    assert slope_goals(nan)["local_pitch_transfer_met_reason"] == "no retention estimate"
