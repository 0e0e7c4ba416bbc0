"""Issue 11 §4 for the swap stage: the audio subset's WER comes with the judge's floor (the same recogniser on the
original recordings) and 95% CIs that resample sentence pairs."""

import json

import numpy as np
import pandas as pd
import pytest

from swap_fakes import RATE_HZ, FakeTokenizer, make_pairs
from taste.swap.jobs import build_pairs
from taste.swap.study import SwapSettings, audio_subset, original_rows, plan_jobs, run_audio, run_decoder
from taste.swap.summary import build_metrics, json_safe, wer_table

SETTINGS = SwapSettings(seeds=(0,), batch_size=8, rate_hz=RATE_HZ, audio_pairs=2)


class Vocoder:
    def synthesise(self, units, speaker):
        return np.zeros(len(units) * 640, np.float32)


class Recognizer:
    """Reads real recordings (marked by a 0.5 first sample) perfectly and vocoded audio as two words."""

    def transcribe(self, wav):
        return self.text if wav[0] == 0.5 else "w0x0 w0x1"

    def align(self, wav, text):
        from taste.data.records import WordAlignment

        d = len(wav) / 16000 / len(text.split())
        return tuple(WordAlignment(w, i * d, d) for i, w in enumerate(text.split()))


def test_original_rows_are_the_same_judge_on_the_original_recordings():
    utts, codes, speakers = make_pairs()
    plan = plan_jobs(build_pairs(utts), codes, SETTINGS)
    text = {u.id: u.text for u in utts}
    rec = Recognizer()
    read = []

    def original(uid):
        read.append(uid)
        rec.text = text[uid] if uid.endswith(("slow", "base")) else "wrong"  # one rendition of each pair misheard
        return np.full(16000, 0.5, np.float32)

    floor = original_rows(rec, plan, original, SETTINGS)
    subset_pairs = {plan[i][0].pair.pair_id for i in audio_subset(plan, SETTINGS.audio_pairs)}
    assert set(floor.pair_id) == subset_pairs and len(floor) == 2 * len(subset_pairs) == len(set(read))
    assert (floor.condition == "original").all()
    assert sorted(floor.wer.round(6).unique()) == [0.0, 1.0]  # 'wrong' for a six-word sentence: 6 edits / 6 words
    rows, decoded, _ = run_decoder(FakeTokenizer(), plan, speakers, SETTINGS)
    audio_rows, utt_rows, _ = run_audio(Vocoder(), rec, plan, decoded, speakers, SETTINGS,
                                        lambda wav, words: [120.0] * len(words))
    metrics = json_safe(build_metrics(rows, audio_rows, utt_rows, 50, floor_rows=floor))
    table = metrics["wer_audio_subset"]["global_rate"]
    assert table["original"] == pytest.approx(0.5) and table["recon_recipient"] > table["original"]
    assert table["original_ci"]["n"] == 4 and table["original_ci"]["n_pairs"] == 2
    assert table["recon_recipient_ci"]["lo"] <= table["recon_recipient"] <= table["recon_recipient_ci"]["hi"]
    json.dumps(metrics, allow_nan=False)


def test_wer_table_ci_resamples_pairs():
    utt = pd.DataFrame({"set": "local", "pair_id": ["a", "a", "b", "b"], "condition": "swap",
                        "wer": [0.0, 0.0, 1.0, 1.0]})
    out = wer_table(utt, n_boot=200)["local"]
    assert out["swap"] == 0.5 and out["swap_ci"]["n_pairs"] == 2
    assert {out["swap_ci"]["lo"], out["swap_ci"]["hi"]} <= {0.0, 0.5, 1.0}  # whole pairs move together
    assert wer_table(pd.DataFrame()) == {}
