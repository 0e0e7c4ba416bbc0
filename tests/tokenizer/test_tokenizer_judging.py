"""Issue 11 §1/§4 for the reconstruction table: every stage-level judge builder refuses a leaking LM text;
WER and duration-consistency CIs resample utterances."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taste.metrics.recognizer import JudgeLeakError
from taste.metrics.stats import corpus_wer_summary
from taste.tokenizer import table as T
from taste.tokenizer.evaluate import consistency_with_ci, default_audio_judges, summarise_audio

LEAKY_CORPUS = ["tom sailed the boat", "Anna went to the barn."]
SCORED = ["anna went to the barn"]


def test_default_audio_judges_refuse_a_leaking_lm_text():
    with pytest.raises(JudgeLeakError):
        default_audio_judges(LEAKY_CORPUS, scored_sentences=SCORED)


def test_audio_rows_parallel_refuses_a_leaking_lm_text_before_any_worker():
    wav = np.zeros(1600, np.float32)
    with pytest.raises(JudgeLeakError):
        T.audio_rows_parallel({"original": [wav]}, ["u0"], SCORED, [[0.1] * 5], [np.ones(4)], LEAKY_CORPUS)


def test_judge_rows_worker_scores_its_texts_blind():
    wav = np.zeros(1600, np.float32)
    with pytest.raises(JudgeLeakError):
        T._judge_rows(([("original", [wav])], ["u0"], SCORED, [[0.1] * 5], [np.ones(4)], LEAKY_CORPUS))


def test_consistency_ci_resamples_utterances_not_words():
    # 4 utterances x 10 words; within an utterance every word has the same error, so words are not independent
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.1, 0.5, 40)
    err = np.repeat([0.0, 0.01, 0.1, 0.2], 10)
    utts = np.repeat(["a", "b", "c", "d"], 10)
    by_utt = consistency_with_ci(ref, ref + err, 300, seed=0, utterances=utts)
    by_word = consistency_with_ci(ref, ref + err, 300, seed=0)
    assert by_utt["within_50ms"] == pytest.approx(0.5)
    # resampling whole utterances: the share within 50 ms moves in steps of one utterance (10 words)
    assert {round(by_utt["within_50ms_lo"] * 4, 6) % 1, round(by_utt["within_50ms_hi"] * 4, 6) % 1} == {0.0}
    assert by_utt["within_50ms_hi"] - by_utt["within_50ms_lo"] > by_word["within_50ms_hi"] - by_word["within_50ms_lo"]
    with pytest.raises(ValueError, match="utterance labels"):
        consistency_with_ci(ref, ref, 10, utterances=utts[:5])


def test_summarise_audio_wer_ci_is_the_utterance_bootstrap_of_corpus_wer():
    texts = ["a b c d", "e f g", "h i", "j k l m n", "o p q"]
    hyps = ["a b c", "e f g", "x", "j k l m n", "o q"]
    per = pd.DataFrame({"system": "taste", "id": [f"u{i}" for i in range(5)], "text": texts, "hyp": hyps,
                        "dnsmos": 3.0, "speaker_sim": 0.9,
                        "fa_durations": [[0.2] * len(t.split()) for t in texts],
                        "ref_durations": [[0.21] * len(t.split()) for t in texts], "seconds": 1.0})
    out = summarise_audio(per, 200, seed=2).loc["taste"]
    ref = corpus_wer_summary(texts, hyps, n=200, seed=2)
    assert out["wer"] == pytest.approx(ref["value"])
    assert (out["wer_lo"], out["wer_hi"]) == pytest.approx((ref["ci_lo"], ref["ci_hi"]))
    assert out["fa_within_25ms"] == 1.0 and out["fa_failures"] == 0
