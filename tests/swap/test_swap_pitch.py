"""Pitch in the swap study: per-word F0 over word spans (against a slow reference), the vocoder-F0 rows of every
decode (full transfer when each word's units carry its own pitch), and the local pairs' change kinds."""
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from swap_fakes import RATE_HZ, make_pairs
from taste.data.records import PairInfo, Utterance, WordAlignment
from taste.swap.decode import Decoded
from taste.swap.jobs import build_pairs
from taste.swap.pitch import (local_change_kinds, predicted_f0, run_vocoder_pitch, tracked_word_f0, word_f0,
                              word_spans_frames)
from taste.swap.study import SwapSettings, decoder_word_spans, plan_jobs
from taste.swap.summary import build_metrics

UNITS_PER_WORD = 2


class FakePitchVocoder:
    """F0 of a frame = 100 Hz + 20 Hz x its unit id (4 frames per unit); unit id 0 is unvoiced."""

    cfg = SimpleNamespace(upsample=4, frame_rate_hz=100)

    def __init__(self):
        self.batches = 0

    def units_to_f0(self, units, speakers, lengths):
        assert units.shape[0] == speakers.shape[0] == lengths.shape[0]
        self.batches += 1
        f0 = torch.where(units > 0, 100.0 + 20.0 * units.float(), torch.zeros_like(units, dtype=torch.float32))
        return f0.repeat_interleave(self.cfg.upsample, dim=1)


def fake_decode(job) -> Decoded:
    """Each word speaks UNITS_PER_WORD units whose id is the word's first code: pitch lives in the word's codes."""
    units = tuple(int(c) for c in job.codes[:, 0] for _ in range(UNITS_PER_WORD))
    return Decoded(units, tuple(UNITS_PER_WORD / RATE_HZ for _ in range(job.pair.n_words)))


def slow_word_f0(track, spans):
    out = []
    for s, e in spans:
        vals = sorted(float(track[i]) for i in range(max(s, 0), min(max(e, 0), len(track))) if track[i] > 0)
        out.append(float(np.median(vals)) if vals else float("nan"))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_word_f0_matches_slow_reference(seed):
    rng = np.random.default_rng(seed)
    track = rng.uniform(80, 300, 60) * (rng.random(60) > 0.4)
    durations = rng.uniform(0.02, 0.15, 5)
    spans = word_spans_frames(durations, 100)
    assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    np.testing.assert_allclose(word_f0(track, spans), slow_word_f0(track, spans), equal_nan=True)
    assert math.isnan(word_f0(np.zeros(10), [(0, 10)])[0])


def test_vocoder_pitch_rows_give_full_transfer_when_units_carry_word_pitch():
    utts, codes, speakers = make_pairs()
    settings = SwapSettings(seeds=(0, 1), rate_hz=RATE_HZ)
    plan = plan_jobs(build_pairs(utts), codes, settings)
    decoded = {seed: [[fake_decode(job) for job in jobs] for jobs in plan] for seed in settings.seeds}
    vocoder = FakePitchVocoder()
    rows, _ = run_vocoder_pitch(vocoder, plan, decoded, speakers, min_contrast_hz=5.0, batch_size=16)
    assert set(rows.measure) == {"f0_vocoder"} and vocoder.batches > 1
    metrics = build_metrics(pd.DataFrame(columns=["measure"]), pd.DataFrame(), pd.DataFrame(), 50, pitch_rows=rows)
    g, loc = metrics["f0_vocoder"]["global_rate"], metrics["f0_vocoder"]["local"]
    assert g["transfer"]["value"] == pytest.approx(1.0) and g["leakage"]["value"] == pytest.approx(0.0)
    assert loc["transfer"]["value"] == pytest.approx(1.0)
    assert loc["control_movement"]["value"] == pytest.approx(0.0)
    # identical decodes at both seeds: the decoder-noise rows measure no movement
    assert g["decoder_noise"]["ratio_abs"]["value"] == pytest.approx(0.0)
    # the swapped word's F0 is the donor's value: 100 + 20 x its code
    swapped = rows[(rows.condition == "swap") & rows.swapped]
    np.testing.assert_allclose(swapped.value, swapped.donor)
    # Local pairs that changed word j's rate are left out of the pitch summary; the counts name what was analysed.
    local_ids = sorted(set(rows[rows.set == "local"].pair_id))
    kinds = {pid: ("pitch" if k == 0 else "rate") for k, pid in enumerate(local_ids)}
    only_pitch = build_metrics(pd.DataFrame(columns=["measure"]), pd.DataFrame(), pd.DataFrame(), 50,
                               pitch_rows=rows, local_kinds=kinds)
    n_local = only_pitch["f0_vocoder"]["local"]["transfer"]["n"]
    assert 0 < n_local < loc["transfer"]["n"]
    assert only_pitch["local_pairs_by_change"] == {"pitch": 1, "rate": len(local_ids) - 1}
    assert only_pitch["f0_vocoder"]["global_rate"] == metrics["f0_vocoder"]["global_rate"]


def test_predicted_f0_keeps_item_order_and_lengths():
    vocoder = FakePitchVocoder()
    items = [((3, 1, 2), torch.zeros(4)), ((5,), torch.zeros(4)), ((1, 1), torch.zeros(4))]
    tracks = predicted_f0(vocoder, items, batch_size=2)
    assert [len(t) for t in tracks] == [12, 4, 8]
    assert tracks[1][0] == pytest.approx(200.0) and tracks[0][4] == pytest.approx(120.0)


def _local_utt(pid, role, markup):
    words = tuple(WordAlignment(w, 0.3 * i, 0.3, markup if (i == 1 and role == "variant") else None)
                  for i, w in enumerate(("a", "b", "c")))
    return Utterance(f"{pid}_{role}", "x.wav", 1.0, 16000, "a b c", "spk", "swap_local", None, None, words=words,
                     pair=PairInfo("local", pid, role, changed_word=1))


def test_local_change_kinds_read_the_variant_markup():
    utts = [_local_utt("p1", r, "pitch=+60%") for r in ("base", "variant")]
    utts += [_local_utt("p2", r, "rate=40%") for r in ("base", "variant")]
    utts += [_local_utt("p3", r, None) for r in ("base", "variant")]
    assert local_change_kinds(utts) == {"p1": "pitch", "p2": "rate", "p3": "other"}
    rows = pd.DataFrame({"set": ["local", "local", "global_pitch"], "pair_id": ["p1", "p2", "g1"]})
    from taste.swap.summary import pitch_pairs_only
    assert pitch_pairs_only(rows, local_change_kinds(utts)).pair_id.tolist() == ["p1", "g1"]


def test_tracked_word_f0_reads_a_tone_per_word():
    """Two words of audio at 120 Hz and 240 Hz: the tracker's per-word medians over the decoder spans."""
    sr = 16000
    t = np.arange(int(0.4 * sr)) / sr
    wav = np.concatenate([0.3 * np.sin(2 * np.pi * 120 * t), 0.3 * np.sin(2 * np.pi * 240 * t)]).astype(np.float32)
    f0 = tracked_word_f0(wav, decoder_word_spans("lo hi", [0.4, 0.4]))
    assert f0[0] == pytest.approx(120, rel=0.02) and f0[1] == pytest.approx(240, rel=0.02)
