"""Issue 11 §4: corpus WER with an utterance-bootstrap CI, paired ratios of systems, paired ordering checks over
prompts, and the prompt's speaking rate from its true text."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from taste.evaluation.report import (Continuation, headline_metrics, measure_audio, ordering_verdict,
                                     paired_ordering, read_continuations)
from taste.metrics.stats import (corpus_wer_summary, paired_corpus_wer_ratio, paired_ratio_of_sums_ratio,
                                    ratio_of_sums_summary, utterance_word_errors)
from taste.metrics.wer import wer

SR = 16000
REFS = ["anna went to the barn", "tom sailed the boat", "the goat ate hay", "a red fox ran",
        "the old man sang a song", "she fed the hens"]
HYPS = ["anna went to barn", "tom sailed a boat", "the goat ate hay", "a fox ran away",
        "the old man sang", "she fed the hens"]


def test_corpus_wer_summary_is_corpus_wer_with_an_utterance_bootstrap_ci():
    s = corpus_wer_summary(REFS, HYPS, n=400, seed=1)
    assert s["value"] == pytest.approx(wer(REFS, HYPS)) and s["n"] == len(REFS)
    assert s["ci_lo"] <= s["value"] <= s["ci_hi"] and s["ci_lo"] < s["ci_hi"]
    # the statistic is sum(edits) / sum(words) of the resample, not a mean of per-utterance WERs
    errors, words = utterance_word_errors(REFS, HYPS)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(REFS), size=(400, len(REFS)))
    boot = errors[idx].sum(1) / words[idx].sum(1)
    assert s["ci_lo"] == pytest.approx(np.quantile(boot, 0.025))
    assert s["ci_hi"] == pytest.approx(np.quantile(boot, 0.975))


def test_ratio_of_sums_clusters_resample_groups_together():
    e, t = np.array([1.0, 1.0, 0.0, 0.0]), np.array([2.0, 2.0, 2.0, 2.0])
    one = ratio_of_sums_summary(e, t, clusters=["a", "a", "b", "b"], n=300)
    assert one["value"] == 0.25 and one["n_clusters"] == 2 and one["n"] == 4
    assert set(np.round([one["ci_lo"], one["ci_hi"]], 6)) <= {0.0, 0.25, 0.5}  # only whole clusters move
    empty = ratio_of_sums_summary([], [], n=10)
    assert empty["n"] == 0 and np.isnan(empty["value"])


def test_paired_ratio_of_sums_ratio_is_exact_when_a_is_a_multiple_of_b():
    eb = np.array([1.0, 2.0, 0.0, 3.0, 1.0])
    r = paired_ratio_of_sums_ratio(2 * eb, eb, np.full(5, 4.0), n=200)
    assert r["value"] == pytest.approx(2.0) and r["ci_lo"] == pytest.approx(2.0) and r["ci_hi"] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        paired_ratio_of_sums_ratio([1.0, 2.0], [1.0], [3.0, 3.0])


def test_paired_corpus_wer_ratio_pairs_by_utterance_id():
    per_utt = pd.DataFrame(
        [{"system": "units", "id": f"u{i}", "text": r, "hyp": h} for i, (r, h) in enumerate(zip(REFS, HYPS))]
        + [{"system": "topline", "id": f"u{i}", "text": r, "hyp": r if i % 2 else h}
           for i, (r, h) in reversed(list(enumerate(zip(REFS, HYPS))))])  # other order: pairing is by id
    r = paired_corpus_wer_ratio(per_utt, "units", "topline", n=300)
    top = per_utt[per_utt.system == "topline"].sort_values("id")
    expected = wer(REFS, HYPS) / wer(list(top.text), list(top.hyp))
    assert r["value"] == pytest.approx(expected) and r["n"] == len(REFS)
    assert r["ci_lo"] <= r["value"] <= r["ci_hi"]
    assert paired_corpus_wer_ratio(per_utt, "units", "missing")["n"] == 0


def _judged(n_prompts=12, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 0.7, n_prompts)  # prompt difficulty, shared by all systems: what pairing removes
    factor = {"cascade": 1.0, "s3_lm": 0.5, "taslm_token": 0.95, "taslm_embed": 1.0}
    rows = [{"system": s, "prompt_id": f"p{i}", "embed_sim": base[i] * f} for s, f in factor.items()
            for i in range(n_prompts)]
    return pd.DataFrame(rows)


def test_paired_ordering_ratios_over_prompts_with_cis():
    df = _judged()
    ordering = paired_ordering(df, ["embed_sim"], n_boot=200)
    assert set(ordering) == {"embed_sim.taslm_token_over_cascade", "embed_sim.taslm_token_over_s3_lm",
                             "embed_sim.taslm_embed_over_cascade", "embed_sim.taslm_embed_over_s3_lm"}
    tok = ordering["embed_sim.taslm_token_over_cascade"]
    # every prompt keeps the same ratio, so the paired CI collapses on it (an unpaired one would not)
    assert tok["value"] == pytest.approx(0.95) and tok["ci_lo"] == pytest.approx(0.95)
    assert tok["ci_hi"] == pytest.approx(0.95) and tok["n"] == 12
    assert ordering["embed_sim.taslm_embed_over_s3_lm"]["value"] == pytest.approx(2.0)
    verdict = ordering_verdict(ordering).set_index("variant")
    assert verdict.loc["taslm_token", "close_to_cascade"] and verdict.loc["taslm_token", "close_to_cascade_ci"]
    assert verdict.loc["taslm_embed", "vs_s3_lo"] == pytest.approx(2.0) and verdict.loc["taslm_embed", "above_s3_ci"]
    summary = pd.DataFrame(columns=["system", "judge", "mean", "lo", "hi", "n"])
    metrics = headline_metrics(summary, {}, ordering)
    assert metrics["ordering"]["embed_sim.taslm_token_over_cascade"] == pytest.approx(0.95)
    ci = metrics["ordering"]["embed_sim.taslm_token_over_cascade_ci"]
    assert ci["lo"] == pytest.approx(0.95) and ci["n"] == 12
    json.dumps(metrics, allow_nan=False)


def test_paired_ordering_uses_only_prompts_both_systems_were_judged_on():
    df = _judged()
    df.loc[(df.system == "cascade") & (df.prompt_id == "p0"), "embed_sim"] = np.nan
    ordering = paired_ordering(df, ["embed_sim"], n_boot=50)
    assert ordering["embed_sim.taslm_token_over_cascade"]["n"] == 11
    assert ordering["embed_sim.taslm_token_over_s3_lm"]["n"] == 12


def _speech(seconds_silence: float, seconds_speech: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    pad = np.zeros(int(seconds_silence * SR), np.float32)
    return np.concatenate([pad, 0.3 * rng.standard_normal(int(seconds_speech * SR)).astype(np.float32), pad])


def test_prompt_rate_counts_the_true_prompt_words_not_the_asr_transcript(tmp_path):
    path = tmp_path / "continuations.jsonl"
    path.write_text(json.dumps({"prompt_id": "p1", "prompt_text": "anna went", "prompt_wav": "p.wav",
                                "prompt_gt_text": "anna went to the barn", "continuation_text": "she fed the goat",
                                "wav": "c.wav"}) + "\n")
    (c,) = read_continuations(path, "cascade")
    assert c.prompt_gt_text == "anna went to the barn" and c.prompt_text == "anna went"
    audio = {"p.wav": _speech(0.2, 1.0), "c.wav": _speech(0.2, 1.0)}
    kwargs = dict(read=audio.__getitem__, asr=lambda wavs: ["x"] * len(wavs), recognizer=lambda w: "x",
                  speaker_embed=lambda w: np.ones(2), quality=lambda w: {"ovrl": 3.0, "sig": 3.0, "bak": 3.0})
    df = measure_audio([c], **kwargs)
    assert df.loc[0, "rate_prompt"] == pytest.approx(5.0, rel=0.05)  # 5 true words in 1 s, not the ASR's 2
    assert df.loc[0, "rate_diff"] == pytest.approx(0.2, abs=0.02)   # 4 intended words in 1 s vs 5
    assert df.loc[0, "prompt_rate_text"] == "ground_truth"
    old = Continuation("cascade", "p1", None, "anna went", "p.wav", "she fed the goat", "c.wav")
    df_old = measure_audio([old], **kwargs)  # a record without the true text falls back to the transcript
    assert df_old.loc[0, "rate_prompt"] == pytest.approx(2.0, rel=0.05) and df_old.loc[0, "prompt_rate_text"] == "asr"
