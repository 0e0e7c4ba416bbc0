"""Issue 11 §1/§4 for the resynthesis table: the judge refuses a leaking LM text; corpus WER carries an
utterance-bootstrap CI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taste.metrics.recognizer import JudgeLeakError
from taste.metrics.stats import corpus_wer_summary
from taste.vocoder.resynthesis import default_judges, summarise_table


def test_default_judges_refuse_an_lm_text_that_holds_a_scored_sentence():
    with pytest.raises(JudgeLeakError, match="scored sentences"):
        default_judges(["tom sailed the boat", "Anna went to the barn."], scored_sentences=["anna went to the barn"])


def test_summarise_table_gives_corpus_wer_with_its_utterance_bootstrap_ci():
    texts = ["a b c d", "e f g", "h i", "j k l m n", "o p q"]
    hyps = ["a b c", "e f g", "x", "j k l m n", "o q"]
    per_utt = pd.DataFrame({"system": "units_vocoder", "id": [f"u{i}" for i in range(5)], "text": texts,
                            "hyp": hyps, "dnsmos": 3.0, "speaker_sim": 0.9, "duration_ratio": 1.0})
    table = summarise_table(per_utt, n_boot=200, seed=3)
    ref = corpus_wer_summary(texts, hyps, n=200, seed=3)
    row = table.loc["units_vocoder"]
    assert row["wer"] == pytest.approx(ref["value"])
    assert (row["wer_lo"], row["wer_hi"]) == pytest.approx((ref["ci_lo"], ref["ci_hi"]))
    assert row["wer_lo"] <= row["wer"] <= row["wer_hi"] and row["wer_lo"] < row["wer_hi"]
    assert np.isfinite(row["dnsmos_lo"])


def _speech(text: str, rate_wpm: int) -> np.ndarray:
    from taste.data.synth import synthesise

    words = tuple(text.split())
    return synthesise(words, (None,) * len(words), "en-us", rate_wpm, 50, dither=3e-4).wav


@pytest.mark.slow
def test_parallel_judging_gives_the_serial_rows():
    # real judges (pocketsphinx, DNSMOS, resemblyzer) on espeak speech: two processes, the same rows in the same order
    from taste.vocoder.resynthesis import judge_utterances, judge_utterances_parallel

    texts = ["the quick brown fox jumps", "a lazy cat sleeps on the mat", "the old man walked home"]
    corpus = ["the quick brown fox runs", "a lazy dog sleeps on the mat", "the old man walked to the market"]
    wavs = [_speech(t, rate) for t, rate in zip(texts, (150, 170, 190))]
    systems = {"original": wavs, "slow": [np.concatenate([w, np.zeros(800, np.float32)]) for w in wavs]}
    ids = ["a", "b", "c"]
    serial = judge_utterances(ids, texts, systems, default_judges(corpus, scored_sentences=texts))
    parallel = judge_utterances_parallel(ids, texts, systems, corpus, workers=2)
    pd.testing.assert_frame_equal(parallel, serial)
    with pytest.raises(JudgeLeakError):
        judge_utterances_parallel(ids, texts, systems, corpus + [texts[0]], workers=2)


def test_pocketsphinx_transcripts_do_not_depend_on_call_order(tmp_path):
    # a noisy utterance after loud noise: with the front-end state carried over (the judge before session 23) this
    # transcript read "old on the warm mat" instead of "on the warm mat"; on a fresh front end it is the same
    # either way
    from taste.metrics.recognizer import Pocketsphinx

    corpus = ["the quick brown fox jumps over the lazy dog", "a lazy cat sleeps on the warm mat",
              "the old man walked to the market"]
    rng = np.random.default_rng(0)
    speech = _speech(corpus[1], 200)
    noisy = (speech + rng.normal(0, 0.1, speech.shape)).astype(np.float32)
    loud_noise = rng.normal(0, 0.5, 32000).astype(np.float32)
    alone = Pocketsphinx(corpus, cache_root=tmp_path).transcribe(noisy)
    after = Pocketsphinx(corpus, cache_root=tmp_path)
    after.transcribe(loud_noise)
    assert after.transcribe(noisy) == alone
